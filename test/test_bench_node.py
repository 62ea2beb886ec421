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


def test_bench_node_reports_latency_and_overhead(tmp_path, small_checkpoint):
    report = tmp_path / 'bench.json'
    result = subprocess.run(
        [sys.executable, '-m', 'farsee_ros.tools.cli', 'bench-node', '--model', small_checkpoint,
         '--device', 'cpu', '--size', '120', '160', '--frames', '8', '--warmup', '2',
         '--rate', '5', '--report', str(report)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(report.read_text())
    assert data['frames_sent'] == 8
    assert 0 < data['frames_processed'] <= 8
    assert data['dropped'] == 8 - data['frames_processed']
    for key in ('node_overhead_ms', 'subscriber_latency_ms'):
        assert set(data[key]) == {'p50', 'p95', 'p99', 'max'}
        assert 0 <= data[key]['p50'] <= data[key]['max'] and math.isfinite(data[key]['max'])
    assert data['subscriber_latency_ms']['p50'] >= data['stage_median_ms']['inference']
    assert '| node_overhead_ms |' in result.stdout


def test_outputs_arrive_promptly_on_default_discovery_and_transports(tmp_path, small_checkpoint):
    """As a user runs it: SUBNET discovery, Fast DDS's default transports, labels + overlay."""
    report = tmp_path / 'default.json'
    env = {k: v for k, v in os.environ.items()
           if k not in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'FASTDDS_BUILTIN_TRANSPORTS',
                        'FASTDDS_DEFAULT_PROFILES_FILE', 'FARSEE_FASTDDS_PROFILE')}
    result = subprocess.run(
        [sys.executable, '-m', 'farsee_ros.tools.cli', 'bench-node', '--model', small_checkpoint,
         '--device', 'cpu', '--size', '360', '480', '--frames', '25', '--warmup', '2',
         '--rate', '5', '--transport', 'default', '--report', str(report)],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(report.read_text())
    assert data['transport'] == 'default' and data['overlay_subscribed']
    assert data['frames_processed'] == data['frames_sent'] == 25
    # Without the node's Fast DDS profile a lost sample waited for the 3 s heartbeat
    # (docs/qos.md); with it, a subscriber gets each frame right after the node published it.
    assert data['subscriber_minus_node_ms']['max'] < 1000, data['subscriber_minus_node_ms']
