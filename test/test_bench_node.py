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

"""`farsee-ros bench-node` runs end to end through a real node process and reports numbers."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest


def _bench_node(folder, checkpoint, *args, env=None):
    """Run `farsee-ros bench-node` on the CPU with `args`; return its output and JSON report."""
    report = folder / 'report.json'
    result = subprocess.run(
        [sys.executable, '-m', 'farsee_ros.tools.cli', 'bench-node', '--model', checkpoint,
         '--device', 'cpu', '--warmup', '2', *args, '--report', str(report)],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads(report.read_text())


def test_bench_node_reports_latency_and_overhead(tmp_path, node_checkpoint):
    result, data = _bench_node(tmp_path, node_checkpoint, '--size', '120', '160',
                               '--frames', '8', '--rate', '5')
    assert data['frames_sent'] == 8
    assert 0 < data['frames_processed'] <= 8
    assert data['dropped'] == 8 - data['frames_processed']
    for key in ('node_overhead_ms', 'subscriber_latency_ms'):
        assert set(data[key]) == {'p50', 'p95', 'p99', 'max'}
        assert 0 <= data[key]['p50'] <= data[key]['max'] and math.isfinite(data[key]['max'])
    assert data['subscriber_latency_ms']['p50'] >= data['stage_median_ms']['inference']
    assert '| node_overhead_ms |' in result.stdout


def test_bench_node_sends_a_picture_given_with_image(tmp_path, node_checkpoint):
    from PIL import Image

    from farsee_ros.tools.bench_node import _pixels
    from farsee_ros.tools.demo import synthetic_street_frame
    picture = tmp_path / 'street.png'
    rgb = synthetic_street_frame(90, 120)
    Image.fromarray(rgb).save(picture)
    sent = _pixels((120, 160), str(picture))
    expected = np.asarray(Image.fromarray(rgb).resize((160, 120), Image.Resampling.BILINEAR))
    assert sent.shape == (120, 160, 3) and np.array_equal(sent, expected[..., ::-1])   # bgr8
    result, data = _bench_node(tmp_path, node_checkpoint, '--size', '120', '160',
                               '--frames', '4', '--rate', '5', '--image', str(picture))
    assert data['frame'] == '120x160 bgr8 of street.png' and data['frames_processed'] > 0
    assert 'of street.png' in result.stdout

    (tmp_path / 'notes.txt').write_text('not a picture')
    with pytest.raises(SystemExit, match='--image .*notes.txt: cannot read it as a picture'):
        _pixels((120, 160), str(tmp_path / 'notes.txt'))


def test_outputs_arrive_promptly_on_default_discovery_and_transports(tmp_path, node_checkpoint):
    """As a user runs it: SUBNET discovery, Fast DDS's default transports, labels + overlay."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'FASTDDS_BUILTIN_TRANSPORTS',
                        'FASTDDS_DEFAULT_PROFILES_FILE', 'FARSEE_FASTDDS_PROFILE')}
    _, data = _bench_node(tmp_path, node_checkpoint, '--size', '360', '480', '--frames', '25',
                          '--rate', '5', '--transport', 'default', env=env)
    assert data['transport'] == 'default' and data['overlay_subscribed']
    assert data['frames_processed'] == data['frames_sent'] == 25
    # Without the node's Fast DDS profile a lost sample waited for the 3 s heartbeat
    # (docs/qos.md); with it, a subscriber gets each frame right after the node published it.
    assert data['subscriber_minus_node_ms']['max'] < 1000, data['subscriber_minus_node_ms']


def test_bench_node_soak_accounts_for_frames_memory_and_exit(tmp_path, node_checkpoint):
    """A short overload soak through real DDS: the report's structure and its accounting."""
    result, data = _bench_node(tmp_path, node_checkpoint, '--size', '120', '160',
                               '--soak', '3', '--rate', '30')
    assert data['mode'] == 'soak' and data['seconds'] == 3 and data['rate_hz'] == 30
    assert data['achieved_rate_hz'] > 0 and data['publisher_qos']['reliability'] == 'reliable'
    frames = data['frames']
    handled = frames['processed'] + frames['dropped'] + frames['invalid'] + frames['errors']
    assert frames['sent'] > 0 and frames['processed'] > 0, frames
    assert frames['sent'] >= frames['node_received'] >= frames['processed'] + frames['dropped']
    assert frames['lost_before_node'] == frames['sent'] - frames['node_received']
    assert frames['unaccounted_in_node'] == frames['node_received'] - handled
    assert frames['invalid'] == frames['errors'] == 0 and frames['counters_settled']
    # Every frame sent reached the node or left a gap in the sequence numbers it counted.
    assert frames['node_counted_lost'] == frames['lost_before_node'], frames
    assert frames['every_frame_accounted'], frames
    assert 0 < frames['labels_returned'] <= frames['processed']
    for key in ('latency_ms', 'node_processing_ms', 'publish_call_ms'):
        assert set(data[key]) == {'p50', 'p99', 'max'}
        assert 0 < data[key]['p50'] <= data[key]['max'] and math.isfinite(data[key]['max'])
    memory = data['node_memory_mib']
    assert 0 < memory['idle'] <= memory['max']
    assert 0 < memory['start'] <= memory['max'] and 0 < memory['end'] <= memory['max']
    assert memory['growth'] == round(memory['end'] - memory['start'], 1)
    assert len(memory['samples']) >= 2 and memory['limit'] == 50
    assert memory['within_limit'] == (memory['growth'] < 50)
    assert data['node_exit']['crashed'] is False
    assert data['node_exit']['exit_code_during_run'] is None
    assert data['node_exit']['exit_code_after_sigint'] == 0
    for line in ('| sent | node received |', '| node RSS (MiB) |', 'accounting: ', 'node: ran'):
        assert line in result.stdout, result.stdout


def test_max_rate_searches_and_confirms_with_two_cameras(tmp_path, node_checkpoint):
    """--max-rate on two cameras: the search's probes, a confirmed rate, per-camera counts."""
    result, data = _bench_node(tmp_path, node_checkpoint, '--size', '120', '160',
                               '--cameras', '2', '--max-rate', '12', '--probe-seconds', '1',
                               '--soak', '2', '--param', 'pipeline:=true')
    assert data['mode'] == 'max-rate' and data['camera_count'] == 2
    assert data['params'] == {'pipeline': 'true'}
    phases = [p['phase'] for p in data['probes']]
    assert phases[:2] == ['trial (not counted)', 'lower bound'] and 'confirmation' in phases
    rate = data['max_rate_hz']
    assert rate is not None and 5 <= rate <= 12, data['probes']
    confirmation = data['confirmation']
    assert confirmation['rate_hz'] == rate and data['probes'][-1]['sustained']
    cameras = confirmation['cameras']
    assert sorted(cameras) == ['/bench/cam0/image_raw', '/bench/cam1/image_raw']
    for frames in cameras.values():   # each camera on its own: none may starve
        assert frames['sent'] > 0 and frames['sent'] - frames['processed'] < 0.05 * frames['sent']
    assert confirmation['frames']['sent'] == sum(c['sent'] for c in cameras.values())
    assert set(data['stage_p50_ms']) >= {'inference', 'postprocess', 'handoff', 'processing'}
    assert '| max rate (Hz) |' in result.stdout and '| pipeline:=true |' in result.stdout


def test_node_parameters_parse_as_ros_assignments():
    from farsee_ros.tools.bench_node import node_params

    assert node_params(['pipeline:=false', 'inference_threads:=1,qos_depth:=5']) == {
        'pipeline': 'false', 'inference_threads': '1', 'qos_depth': '5'}
    assert node_params(['']) == {}
    with pytest.raises(SystemExit, match="node parameter 'pipeline=false': write NAME:=VALUE"):
        node_params(['pipeline=false'])


def test_bench_node_soak_rejects_bad_values(capsys):
    from farsee_ros.tools.cli import build_parser

    for bad in (['--soak', '0'], ['--soak', '-5'], ['--soak', 'nan'], ['--soak', 'a minute'],
                ['--soak', '3', '--rate', '0']):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(['bench-node', *bad])
        assert exit_info.value.code == 2
        option = bad[-2]
        assert f'argument {option}: must be a positive number, got {bad[-1]!r}' \
            in capsys.readouterr().err


def test_soak_accounting_flags_each_gap():
    from farsee_ros.tools.bench_node import account

    before = dict(received=2, processed=2, dropped=0, invalid=0, errors=0, lost=0)
    after = dict(received=12, processed=5, dropped=6, invalid=0, errors=0, lost=0)
    frames = account(sent=11, before=before, after=after, settled=True, returned=2)
    assert frames['lost_before_node'] == 1 and frames['unaccounted_in_node'] == 1
    assert frames['labels_lost_on_return'] == 1 and not frames['every_frame_accounted']
    after.update(received=13, dropped=8)
    assert account(sent=11, before=before, after=after, settled=True,
                   returned=3)['every_frame_accounted']
    assert not account(sent=11, before=before, after=after, settled=False,
                       returned=3)['every_frame_accounted']
    # Frames that never reached the node are accounted when the node counted them lost.
    after.update(lost=2)
    frames = account(sent=13, before=before, after=after, settled=True, returned=3)
    assert frames['lost_before_node'] == frames['node_counted_lost'] == 2
    assert frames['every_frame_accounted']
    assert not account(sent=14, before=before, after=after, settled=True,
                       returned=3)['every_frame_accounted']


def test_memory_growth_leaves_out_the_step_to_the_working_set():
    from farsee_ros.tools.bench_node import RssSampler
    sampler = RssSampler(pid=0)
    # Idle 800 MiB, 1000 MiB from 2 s on with a +-20 MiB saw-tooth: no growth.
    sampler.samples = [(0.0, 800.0)] + [(float(t), 1000.0 + (20 if t % 2 else -20))
                                        for t in range(2, 62)]
    flat = sampler.summary()
    assert flat['idle'] == 800.0 and flat['start'] == pytest.approx(1000, abs=20)
    assert abs(flat['growth']) <= 40 and flat['within_limit']
    assert abs(flat['trend_mib_per_min']) < 5
    # The same with a leak of 2 MiB a second: growth near 100 MiB over the minute, over the bar.
    sampler.samples = [(t, rss + 2 * t) for t, rss in sampler.samples]
    leak = sampler.summary()
    assert leak['growth'] > 80 and not leak['within_limit']
    assert leak['trend_mib_per_min'] == pytest.approx(120, abs=10)
