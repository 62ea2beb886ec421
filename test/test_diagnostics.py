# Copyright 2026 The farsee_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""The /diagnostics status and ~/latency record without DDS: levels, messages and values."""

from diagnostic_msgs.msg import DiagnosticStatus
import numpy as np
from std_msgs.msg import Header

from farsee_ros.ros.diagnostics import camera_status, latency_record
from farsee_ros.ros.mailbox import COUNTERS, Period
from farsee_ros.ros.parameters import LATENCY_STAGES

TOPIC = '/cam/image_raw'
ENGINE = {'device': 'cpu', 'precision': 'fp32', 'model': '/models/small.pt',
          'input_size': '128x192'}


def _period(latencies=(), last_invalid='', last_error='', **delta):
    """Return a Period whose totals equal this period's changes (its first period)."""
    counts = dict(dict.fromkeys(COUNTERS, 0), **delta)
    return Period(dict(counts), dict(counts), list(latencies), last_invalid, last_error)


def _status(period, elapsed_s=1.0, expected_rate_hz=0.0, reliability='reliable'):
    status = camera_status('farsee', '/farsee', TOPIC, period, elapsed_s,
                           expected_rate_hz=expected_rate_hz, reliability=reliability,
                           engine=ENGINE)
    return status, {kv.key: kv.value for kv in status.values}


def test_a_healthy_period_is_ok_with_rates_and_latency_percentiles():
    latencies = [12.0, 15.0, 11.0, 40.0, 13.0]
    status, values = _status(_period(latencies, received=12, processed=5, dropped=7),
                             elapsed_s=2.0, expected_rate_hz=2.0)
    assert status.level == DiagnosticStatus.OK
    assert (status.name, status.hardware_id) == ('farsee: /cam/image_raw', '/farsee')
    p50, p95 = np.percentile(latencies, [50, 95])
    assert values['latency_p50_ms'] == f'{p50:.2f}' == '13.00'
    assert values['latency_p95_ms'] == f'{p95:.2f}'
    assert values['latency_max_ms'] == '40.00'
    assert status.message == '2.5 Hz, p50 13.00 ms'
    assert (values['input_rate_hz'], values['output_rate_hz'], values['expected_rate_hz']) == \
        ('6.00', '2.50', '2')


def test_the_keys_and_their_order_are_those_published():
    _, values = _status(_period(received=1, processed=1, lost=2))
    assert list(values) == [
        'topic', 'input_rate_hz', 'output_rate_hz', 'expected_rate_hz', 'latency_p50_ms',
        'latency_p95_ms', 'latency_max_ms', 'stage_decode_p50_ms', 'stage_preprocess_p50_ms',
        'stage_inference_p50_ms', 'stage_postprocess_p50_ms', 'stage_overlay_p50_ms',
        'stage_publish_p50_ms', 'stage_queue_p50_ms', 'stage_handoff_p50_ms',
        'stage_processing_p50_ms', 'frames_received', 'frames_processed',
        'frames_dropped', 'frames_invalid', 'frames_errors', 'frames_lost', 'frames_non_finite',
        'period_received', 'period_processed', 'period_dropped', 'period_invalid',
        'period_errors', 'period_lost', 'period_non_finite', 'qos_reliability', 'device',
        'precision', 'model', 'input_size',
        'last_invalid_reason', 'last_error']
    assert values['topic'] == TOPIC and values['qos_reliability'] == 'reliable'
    assert (values['frames_lost'], values['period_lost']) == ('2', '2')
    assert {k: values[k] for k in ENGINE} == ENGINE


def test_each_stage_reports_its_median_over_the_period():
    period = _period([20.0, 30.0, 25.0], received=3, processed=3)
    period.stages_ms = {'inference': [8.0, 12.0, 9.0], 'handoff': [0.1, 0.3, 0.2]}
    _, values = _status(period)
    assert values['stage_inference_p50_ms'] == '9.00'
    assert values['stage_handoff_p50_ms'] == '0.20'
    assert values['stage_publish_p50_ms'] == 'nan'   # no frame recorded that stage


def test_no_latencies_in_a_period_read_nan():
    status, values = _status(_period(received=3))
    assert status.level == DiagnosticStatus.OK   # no rate check with expected_rate_hz 0
    assert [values[f'latency_{k}_ms'] for k in ('p50', 'p95', 'max')] == ['nan'] * 3
    assert status.message == '0.0 Hz, p50 nan ms'


def test_before_the_first_frame_it_warns_and_says_whether_there_is_a_subscription():
    status, values = _status(_period(), reliability=None)
    assert status.level == DiagnosticStatus.WARN
    assert status.message == 'no frames received on /cam/image_raw (no publisher yet)'
    assert values['qos_reliability'] == 'None'
    status, _ = _status(_period(), reliability='best_effort')
    assert status.message == 'no frames received on /cam/image_raw'


def test_invalid_frames_and_a_slow_output_warn():
    status, values = _status(_period([5.0], received=4, processed=1, invalid=3,
                                     last_invalid='encoding rgb16'), expected_rate_hz=10.0)
    assert status.level == DiagnosticStatus.WARN
    assert status.message == ('3 invalid frames (encoding rgb16); output 1.0 Hz below expected '
                              '10 Hz')
    assert values['last_invalid_reason'] == 'encoding rgb16'


def test_inference_failures_are_an_error_listed_first():
    status, values = _status(_period(received=2, errors=1, invalid=1, last_invalid='step',
                                     last_error='RuntimeError: boom'))
    assert status.level == DiagnosticStatus.ERROR
    assert status.message == '1 inference failures (RuntimeError: boom); 1 invalid frames (step)'
    assert values['last_error'] == 'RuntimeError: boom'


def test_the_rates_and_problems_are_of_this_period_the_frames_of_all_time():
    period = Period(counts=dict(dict.fromkeys(COUNTERS, 0), received=50, processed=40, invalid=2),
                    delta=dict.fromkeys(COUNTERS, 0), latencies_ms=[], last_invalid='old',
                    last_error='')
    status, values = _status(period, elapsed_s=0.5)
    assert status.level == DiagnosticStatus.OK   # the invalid frames were in an earlier period
    assert (values['frames_received'], values['period_received']) == ('50', '0')
    assert values['input_rate_hz'] == '0.00' and values['last_invalid_reason'] == 'old'


def test_the_latency_record_has_every_stage_in_ms_and_the_frame_header():
    header = Header(frame_id='cam_optical')
    header.stamp.sec, header.stamp.nanosec = 12, 345
    stages = {stage: i + 0.12345 for i, stage in enumerate(LATENCY_STAGES)}
    record = latency_record('farsee', '/farsee', TOPIC, header, stages)
    assert record.header == header
    (status,) = record.status
    assert status.level == DiagnosticStatus.OK
    assert (status.name, status.message, status.hardware_id) == \
        ('farsee: latency /cam/image_raw', 'per-frame latency, ms', '/farsee')
    assert [(kv.key, kv.value) for kv in status.values] == [
        (f'{stage}_ms', f'{i}.123') for i, stage in enumerate(LATENCY_STAGES)]
