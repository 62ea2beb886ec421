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

"""qos_matrix: one real two-process cell over Fast DDS, and the incompatible combination."""

import json
import time

import pytest

from farsee_ros.tools.qos_matrix import Cell, format_row, main, run_cell, Settings


def test_one_real_cell_through_two_processes(tmp_path):
    out, data = tmp_path / 'qos.md', tmp_path / 'qos.json'
    started = time.monotonic()
    rc = main(['--sizes', '640x480', '--rates', '10', '--transports', 'DEFAULT',
               '--pub-qos', 'reliable:10', '--sub-reliability', 'reliable', '--sub-depths', '10',
               '--frames', '10', '--discovery-range', 'LOCALHOST',
               '--out', str(out), '--json', str(data)])
    assert time.monotonic() - started < 60
    assert rc == 0
    result = json.loads(data.read_text())
    row, = result['results']
    assert row['status'] == 'measured'
    assert row['sent'] == 10
    assert 0 < row['received'] <= 10
    assert row['unique'] == row['received']
    assert len(row['latencies_ms']) == row['received']
    assert all(latency > 0 for latency in row['latencies_ms'])
    assert 0 < row['p50_ms'] <= row['p95_ms'] <= row['max_ms']
    # Both children really were separate Fast DDS participants with SHM + UDP (DEFAULT).
    assert row['pub_probe']['udp'] > 0 and row['sub_probe']['udp'] > 0
    line = format_row(row)
    assert line.startswith('| 640x480 (0.9 MB) | 10 | DEFAULT/DEFAULT | reliable, depth 10 | '
                           f'reliable, depth 10 | {row["received"]}/10 | ')
    assert line.count('|') == 11
    table = out.read_text().splitlines()
    assert table[0].startswith('| size | rate (Hz) | transports (pub/sub) |')
    assert table[2] == line


def test_incompatible_combination_is_reported_without_running():
    cell = Cell(640, 480, 10.0, 'DEFAULT', 'DEFAULT', 'best_effort', 1, 'reliable', 5)
    assert not cell.compatible
    started = time.monotonic()
    row = run_cell(cell, Settings(frames=10, domain_id=1))
    assert time.monotonic() - started < 1.0  # no process was started
    assert row['status'] == 'incompatible'
    assert row['sent'] == 0 and row['received'] == 0
    line = format_row(row)
    assert '| incompatible | - | - | - |' in line
    assert 'best effort, depth 1 | reliable, depth 5 |' in line


def test_bad_arguments_are_rejected_before_anything_runs(capsys):
    assert main(['--transports', 'BOGUS', '--frames', '1']) == 2
    assert 'Fast DDS accepts' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['--sub-reliability', 'sometimes'])
