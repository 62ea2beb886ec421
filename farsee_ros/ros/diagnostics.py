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

"""
The node's diagnostics messages: each camera's /diagnostics status and the ~/latency record.

Plain functions of their inputs (no node, no clock), so levels, messages and values are
tested without DDS.
"""

from typing import Any, Dict, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from ..common import percentiles
from .mailbox import Period
from .parameters import LATENCY_STAGES

# The per-stage medians in /diagnostics: every latency stage but end_to_end (latency_p50_ms).
PIPELINE_STAGES = tuple(s for s in LATENCY_STAGES if s != 'end_to_end')


def camera_status(node_name: str, hardware_id: str, topic: str, period: Period,
                  elapsed_s: float, *, expected_rate_hz: float, reliability: Optional[str],
                  engine: Dict[str, str]) -> DiagnosticStatus:
    """
    Summarise one camera's diagnostics period (`elapsed_s` seconds long) as a status.

    ERROR on inference failures in the period; WARN on invalid frames in the period, an output
    rate below `expected_rate_hz` (0 = no rate check) or no frame received yet; else OK.
    `reliability` is the subscription's (None before there is one); `engine` holds the device,
    precision, model and input_size values.
    """
    delta = period.delta
    input_rate, output_rate = delta['received'] / elapsed_s, delta['processed'] / elapsed_s
    level, problems = DiagnosticStatus.OK, []
    if delta['errors']:
        level = DiagnosticStatus.ERROR
        problems.append(f'{delta["errors"]} inference failures ({period.last_error})')
    if delta['invalid']:
        level = max(level, DiagnosticStatus.WARN)
        problems.append(f'{delta["invalid"]} invalid frames ({period.last_invalid})')
    if expected_rate_hz > 0 and output_rate < expected_rate_hz:
        level = max(level, DiagnosticStatus.WARN)
        problems.append(f'output {output_rate:.1f} Hz below expected {expected_rate_hz:g} Hz')
    if period.counts['received'] == 0:
        level = max(level, DiagnosticStatus.WARN)
        problems.append(f'no frames received on {topic}'
                        + ('' if reliability is not None else ' (no publisher yet)'))
    latency = percentiles(period.latencies_ms, ('p50', 'p95', 'max'))
    values = {
        'topic': topic,
        'input_rate_hz': f'{input_rate:.2f}', 'output_rate_hz': f'{output_rate:.2f}',
        'expected_rate_hz': f'{expected_rate_hz:g}',
        'latency_p50_ms': _ms(latency['p50']), 'latency_p95_ms': _ms(latency['p95']),
        'latency_max_ms': _ms(latency['max']),
    }
    for stage in PIPELINE_STAGES:   # where the time goes, of the frames of this period
        values[f'stage_{stage}_p50_ms'] = _ms(percentiles(period.stages_ms.get(stage, []),
                                                          ('p50',))['p50'])
    values.update({f'frames_{k}': str(v) for k, v in period.counts.items()})
    values.update({f'period_{k}': str(v) for k, v in delta.items()})
    values['qos_reliability'] = str(reliability)
    values.update(engine)
    values.update(last_invalid_reason=period.last_invalid, last_error=period.last_error)
    message = '; '.join(problems) or f'{output_rate:.1f} Hz, p50 {values["latency_p50_ms"]} ms'
    return DiagnosticStatus(level=level, name=f'{node_name}: {topic}', message=message,
                            hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])


def latency_record(node_name: str, hardware_id: str, topic: str, header: Any,
                   stages_ms: Dict[str, float]) -> DiagnosticArray:
    """Return one frame's ~/latency record: every LATENCY_STAGES time in ms, the frame's header."""
    status = DiagnosticStatus(
        level=DiagnosticStatus.OK, name=f'{node_name}: latency {topic}',
        message='per-frame latency, ms', hardware_id=hardware_id,
        values=[KeyValue(key=f'{k}_ms', value=f'{stages_ms[k]:.3f}') for k in LATENCY_STAGES])
    return DiagnosticArray(header=header, status=[status])


def _ms(value: Optional[float]) -> str:
    return 'nan' if value is None else f'{value:.2f}'
