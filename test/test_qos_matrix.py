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

"""qos_matrix: one real two-process cell over Fast DDS, the incompatible one, the pure parts."""

import json
import os
import subprocess
import sys
import time

import pytest

from farsee_ros.tools.qos_matrix import (build_cells, Cell, child_env, effective_transports,
                                         estimate_seconds, format_row, format_table, main,
                                         parse_qos, parse_size, parse_transport_pair, run_cell,
                                         Settings)
from farsee_ros.tools.qos_matrix.report import HEADER


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


def test_sizes_transports_and_qos_are_parsed_or_rejected():
    assert parse_size('640x480') == (640, 480)
    assert parse_size('2048X1024') == (2048, 1024)
    for bad in ('640', '640x', 'axb', '0x480', '640x-1'):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert parse_transport_pair('DEFAULT') == ('DEFAULT', 'DEFAULT')
    assert parse_transport_pair('DEFAULT/LARGE_DATA') == ('DEFAULT', 'LARGE_DATA')
    assert parse_transport_pair('LARGE_DATA?max_msg_size=1MB/SHM') == (
        'LARGE_DATA?max_msg_size=1MB', 'SHM')
    for bad in ('BOGUS', 'DEFAULT/BOGUS', 'SHM/SHM/SHM'):
        with pytest.raises(ValueError):
            parse_transport_pair(bad)
    assert parse_qos('reliable:10') == ('reliable', 10)
    assert parse_qos('best-effort:1') == ('best_effort', 1)
    for bad in ('reliable', 'reliable:0', 'sometimes:5', 'best_effort:x'):
        with pytest.raises(ValueError):
            parse_qos(bad)


def test_cells_are_the_product_in_order_and_estimated():
    cells = build_cells(['640x480', '2048x1024'], [10, 30], ['DEFAULT/LARGE_DATA'],
                        ['reliable:10', 'best_effort:1'], ['reliable', 'best-effort'], [1, 5])
    assert len(cells) == 2 * 2 * 1 * 2 * 2 * 2
    assert cells[0] == Cell(640, 480, 10.0, 'DEFAULT', 'LARGE_DATA', 'reliable', 10,
                            'reliable', 1)
    assert cells[1].sub_depth == 5 and cells[2].sub_reliability == 'best_effort'
    assert cells[-1] == Cell(2048, 1024, 30.0, 'DEFAULT', 'LARGE_DATA', 'best_effort', 1,
                             'best_effort', 5)
    assert cells[0].frame_bytes == 640 * 480 * 3
    assert sum(not cell.compatible for cell in cells) == 8  # best effort pub, reliable sub
    settings = Settings(frames=30, settle=0.5, grace=1.0)
    one = 1.0 + 0.5 + 30 / 10.0 + 0.5
    assert estimate_seconds(cells[:1], settings) == pytest.approx(one)
    assert estimate_seconds([c for c in cells if not c.compatible], settings) == 0
    for args in ((['640x480'], [0], ['DEFAULT'], ['reliable:1'], ['reliable'], [1]),
                 (['640x480'], [10], ['DEFAULT'], ['reliable:1'], ['sometimes'], [1]),
                 (['640x480'], [10], ['DEFAULT'], ['reliable:1'], ['reliable'], [0])):
        with pytest.raises(ValueError):
            build_cells(*args)


def test_table_and_transport_names_are_formatted():
    cell = Cell(2048, 1024, 30.0, 'LARGE_DATA', 'LARGE_DATA', 'reliable', 10, 'best_effort', 1)
    row = {'width': 2048, 'height': 1024, 'rate': 30.0, 'pub_transport': 'LARGE_DATA',
           'sub_transport': 'LARGE_DATA', 'pub_reliability': 'reliable', 'pub_depth': 10,
           'sub_reliability': 'best_effort', 'sub_depth': 1, 'status': 'measured',
           'received': 28, 'sent': 30, 'p50_ms': 3.14, 'p95_ms': 6.0, 'max_ms': 12.25,
           'notes': ['2 lost', 'load 3.0']}
    assert cell.frame_bytes == 2048 * 1024 * 3
    line = format_row(row)
    assert line == ('| 2048x1024 (6.3 MB) | 30 | LARGE_DATA/LARGE_DATA | reliable, depth 10 | '
                    'best effort, depth 1 | 28/30 | 3.1 | 6.0 | 12.2 | 2 lost; load 3.0 |')
    assert format_row(dict(row, status='unmatched')).count('| no match |') == 1
    assert format_table([row, row]) == '\n'.join([HEADER, line, line])
    assert format_table([]).splitlines()[1] == '|---|---:|---|---|---|---:|---:|---:|---:|---|'
    assert effective_transports({'shm': 1, 'tcp_listen': 2, 'udp': 3}) == 'SHM+TCP+UDP'
    assert effective_transports({'shm': 1, 'tcp_listen': 0, 'udp': 2}) == 'SHM+UDP'
    assert effective_transports({}) == 'none'


def test_child_environment_sets_transport_domain_and_import_path(monkeypatch):
    monkeypatch.setenv('FASTDDS_BUILTIN_TRANSPORTS', 'SHM')
    settings = Settings(domain_id=42, discovery_range='LOCALHOST')
    env = child_env('DEFAULT', settings)
    assert 'FASTDDS_BUILTIN_TRANSPORTS' not in env
    assert env['ROS_DOMAIN_ID'] == '42'
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert env['RMW_IMPLEMENTATION'] == 'rmw_fastrtps_cpp'
    assert child_env('LARGE_DATA', settings)['FASTDDS_BUILTIN_TRANSPORTS'] == 'LARGE_DATA'
    # The children import this very copy of farsee_ros: the folder above the package.
    root = env['PYTHONPATH'].split(os.pathsep)[0]
    assert os.path.isfile(os.path.join(root, 'farsee_ros', 'tools', 'qos_matrix', 'cells.py'))


def test_the_parent_does_not_import_rclpy_and_the_module_runs():
    code = ('import sys; import farsee_ros.tools.qos_matrix as q; '
            'assert q.run and q.add_arguments; '
            "assert 'rclpy' not in sys.modules, sorted(m for m in sys.modules if 'rcl' in m)")
    subprocess.run([sys.executable, '-c', code], check=True, timeout=60)
    done = subprocess.run([sys.executable, '-m', 'farsee_ros.tools.qos_matrix', '--sizes', '1x'],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "qos-matrix: error: invalid size '1x'" in done.stderr
