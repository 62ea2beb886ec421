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
Run the matrix: its options, one cell at a time, the table and JSON it writes.

`run(args)` also dispatches the hidden ``--role`` to a child process's role; SIGTERM (like
Ctrl-C) stops the run between cells, reaps the children and still prints the partial table.
"""

import argparse
from dataclasses import asdict
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

from ...common import percentiles
from .cells import (build_cells, Cell, DEFAULT_FRAMES, DEFAULT_PUB_QOS, DEFAULT_RATES,
                    DEFAULT_SIZES, DEFAULT_SUB_DEPTHS, DEFAULT_SUB_RELIABILITIES,
                    DEFAULT_TRANSPORTS, DISCOVERY_RANGES, estimate_seconds, EXPECTED_TRANSPORTS,
                    INCOMPATIBLE_NOTE, QUICK, RELIABILITIES, Settings)
from .children import (effective_transports, log_tail, read_json, reap, run_publisher,
                       run_subscriber, spawn, touch)
from .report import format_row, format_table


def _transport_notes(role: str, requested: str, probe: Optional[dict]) -> List[str]:
    expected = EXPECTED_TRANSPORTS.get(requested.split('?', 1)[0])
    if not probe or expected is None:
        return []
    found = effective_transports(probe)
    if found != expected:
        return [f'{role} got {found}, not {requested}']
    return []


def never_matched(row: dict) -> bool:
    """Say whether a result row is a cell whose publisher never matched its subscriber."""
    return row['status'] == 'unmatched'


def run_cell(cell: Cell, settings: Settings, workdir: Optional[str] = None,
             index: int = 0, retry: bool = True) -> dict:
    """
    Measure one cell with a fresh subscriber and publisher process; return its result row.

    With `retry`, a cell whose publisher never matched its subscriber (a discovery failure,
    not a delivery result) is run once more with fresh processes, and the row says so.
    """
    row = _measure(cell, settings, workdir, f'{index:03d}')
    if retry and row['status'] in ('unmatched', 'error') and row.get('sent', 0) == 0:
        first = '; '.join(row['notes'])
        row = _measure(cell, settings, workdir, f'{index:03d}r')
        row['notes'].insert(0, f'retried after: {first}')
    return row


def _measure(cell: Cell, settings: Settings, workdir: Optional[str], tag: str) -> dict:
    row = {**asdict(cell), 'frames': settings.frames, 'status': 'incompatible', 'sent': 0,
           'received': 0, 'unique': 0, 'p50_ms': None, 'p95_ms': None, 'max_ms': None,
           'latencies_ms': [], 'notes': [], 'load': list(os.getloadavg())}
    if not cell.compatible:
        row['notes'].append(INCOMPATIBLE_NOTE)
        return row
    folder = tempfile.mkdtemp(prefix=f'cell{tag}-', dir=workdir)
    topic = f'qos_matrix_{os.getpid()}_{tag}'
    budget = (settings.match_timeout + settings.settle + settings.frames / cell.rate
              + settings.grace + 20.0)
    processes: List[subprocess.Popen] = []
    sub_result = pub_result = None
    started = time.monotonic()
    try:
        sub = spawn('subscriber', cell, settings, folder, topic, budget + 5.0)
        processes.append(sub)
        pub = spawn('publisher', cell, settings, folder, topic, budget)
        processes.append(pub)
        end = time.monotonic() + budget + 5.0
        pub_json = os.path.join(folder, 'publisher.json')
        # Done when the publisher exits or has written its result (a slow tear-down is reaped).
        while time.monotonic() < end and pub.poll() is None and not os.path.exists(pub_json):
            if sub.poll() is not None:
                touch(os.path.join(folder, 'stop-publisher'))  # all arrived: skip the grace
            time.sleep(0.02)
        if pub.poll() is None and not os.path.exists(pub_json):
            row['notes'].append('publisher timed out')
        touch(os.path.join(folder, 'stop-publisher'))
        touch(os.path.join(folder, 'stop-subscriber'))
        killed = reap(processes, wait=5.0)
        if killed:
            row['killed_at_teardown'] = killed
        sub_result = read_json(os.path.join(folder, 'subscriber.json'))
        pub_result = read_json(os.path.join(folder, 'publisher.json'))
    finally:
        reap(processes, wait=0.0)
    row['seconds'] = round(time.monotonic() - started, 2)
    row['load'] += list(os.getloadavg())
    row['status'] = 'measured'
    if pub_result is None or sub_result is None:
        row['status'] = 'error'
        for role, result in (('publisher', pub_result), ('subscriber', sub_result)):
            if result is None:
                row['notes'].append(f'{role} wrote no result: '
                                    + log_tail(os.path.join(folder, f'{role}.log')))
    if pub_result:
        row['sent'] = pub_result.get('sent', 0)
        row['match_s'] = pub_result.get('match_s')
        row['publish_ms'] = pub_result.get('publish_ms', [])
        row['publish_s'] = pub_result.get('publish_s')
        row['pub_probe'] = pub_result.get('probe')
        if not pub_result.get('matched') and row['status'] != 'error':
            row['status'] = 'unmatched'
            row['notes'].append(pub_result.get('reason') or 'publisher never matched')
        if pub_result.get('max_subscriptions', 0) > 1:
            row['notes'].append('cross-talk: publisher matched more than one subscriber')
        if row.get('publish_s') and row['sent'] > 1:
            achieved = (row['sent'] - 1) / row['publish_s']
            if achieved < 0.9 * cell.rate:
                row['notes'].append(f'publisher reached only {achieved:.1f} Hz')
        row['notes'] += _transport_notes('pub', cell.pub_transport, row['pub_probe'])
    if sub_result:
        samples = sub_result.get('samples', [])
        latencies = [(received - stamp) / 1e6 for _, stamp, received, _ in samples]
        row['received'] = len(samples)
        row['unique'] = len({frame for frame, _, _, _ in samples})
        row['latencies_ms'] = [round(v, 3) for v in latencies]
        row['sub_probe'] = sub_result.get('probe')
        if latencies:
            stats = percentiles(latencies, ('p50', 'p95', 'max'))
            row['p50_ms'], row['p95_ms'], row['max_ms'] = stats['p50'], stats['p95'], stats['max']
        if any(size != cell.frame_bytes for _, _, _, size in samples):
            row['notes'].append('frames of the wrong size arrived')
        if row['unique'] != row['received']:
            row['notes'].append(f'{row["received"] - row["unique"]} duplicate frames')
        if sub_result.get('max_publishers', 0) > 1:
            row['notes'].append('cross-talk: subscriber matched more than one publisher')
        row['notes'] += _transport_notes('sub', cell.sub_transport, row['sub_probe'])
    if row['status'] == 'error' or any('timed out' in note for note in row['notes']):
        row['logs'] = {role: log_tail(os.path.join(folder, f'{role}.log'), 20)
                       for role in ('publisher', 'subscriber')}
    if max(row['load']) > (os.cpu_count() or 1):
        row['notes'].append(f'load {max(row["load"]):.1f}')
    shutil.rmtree(folder, ignore_errors=True)
    return row


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the qos-matrix options (and the hidden child-process ones) to `parser`."""
    parser.add_argument('--quick', action='store_true',
                        help='a small subset: 2048x1024 at 30 Hz, DEFAULT and LARGE_DATA, '
                             'reliable publisher, subscriber depth 1 and 5, 30 frames')
    parser.add_argument('--sizes', nargs='+', metavar='WxH',
                        help=f'frame sizes, bgr8 (default: {" ".join(DEFAULT_SIZES)})')
    parser.add_argument('--rates', nargs='+', type=float, metavar='HZ',
                        help='publish rates (default: 10 30)')
    parser.add_argument('--transports', nargs='+', metavar='PUB[/SUB]',
                        help='FASTDDS_BUILTIN_TRANSPORTS of the publisher/subscriber processes, '
                             'DEFAULT = unset; one value means both (default: '
                             f'{" ".join(DEFAULT_TRANSPORTS)})')
    parser.add_argument('--pub-qos', nargs='+', metavar='RELIABILITY:DEPTH',
                        help=f'publisher QoS (default: {" ".join(DEFAULT_PUB_QOS)})')
    parser.add_argument('--sub-reliability', nargs='+', choices=RELIABILITIES,
                        help='subscriber reliabilities (default: both)')
    parser.add_argument('--sub-depths', nargs='+', type=int, metavar='N',
                        help='subscriber KEEP_LAST depths (default: 1 5 10)')
    parser.add_argument('--frames', type=int, help=f'frames per cell (default: {DEFAULT_FRAMES})')
    parser.add_argument('--discovery-range', choices=DISCOVERY_RANGES, default='SUBNET',
                        help='ROS_AUTOMATIC_DISCOVERY_RANGE of the children (default: SUBNET, '
                             "ROS's own default; with LOCALHOST rmw_fastrtps configures its own "
                             'transports and ignores FASTDDS_BUILTIN_TRANSPORTS)')
    parser.add_argument('--domain-id', type=int,
                        help='ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID, else random 1..100)')
    parser.add_argument('--match-timeout', type=float, default=5.0,
                        help='seconds the publisher waits for the subscriber (default: 5; '
                             'a cell that does not match is retried once, unless its '
                             'transport pair already failed to match twice in this run)')
    parser.add_argument('--settle', type=float, default=0.5,
                        help='seconds between matching and the first frame (default: 0.5)')
    parser.add_argument('--grace', type=float, default=1.0,
                        help='seconds the publisher lingers after the last frame (default: 1)')
    parser.add_argument('--out', metavar='FILE.md', help='also write the markdown table here')
    parser.add_argument('--json', metavar='FILE', help='write every result (all latencies) here')
    hidden = argparse.SUPPRESS
    parser.add_argument('--role', choices=('publisher', 'subscriber'), help=hidden)
    parser.add_argument('--topic', help=hidden)
    parser.add_argument('--width', type=int, help=hidden)
    parser.add_argument('--height', type=int, help=hidden)
    parser.add_argument('--rate', type=float, help=hidden)
    parser.add_argument('--reliability', choices=RELIABILITIES, help=hidden)
    parser.add_argument('--depth', type=int, help=hidden)
    parser.add_argument('--deadline', type=float, help=hidden)
    parser.add_argument('--result', help=hidden)
    parser.add_argument('--stop-file', help=hidden)


def _pick(value, quick_key: str, default, quick: bool):
    if value is not None:
        return value
    return QUICK[quick_key] if quick else default


def _domain_id(requested: Optional[int]) -> int:
    if requested is None:
        env = os.environ.get('ROS_DOMAIN_ID', '').strip()
        requested = int(env) if env.isdigit() else random.SystemRandom().randint(1, 100)
    if not 0 <= requested <= 232:
        raise ValueError(f'ROS_DOMAIN_ID {requested} is out of range 0..232')
    return requested


class _Terminated(Exception):
    pass


def _on_sigterm(signum, frame):
    raise _Terminated()


def run(args: argparse.Namespace) -> int:
    """Run the matrix (or, with the hidden --role, one child process); return an exit code."""
    if args.role == 'subscriber':
        return run_subscriber(args)
    if args.role == 'publisher':
        return run_publisher(args)
    quick = args.quick
    frames = _pick(args.frames, 'frames', DEFAULT_FRAMES, quick)
    if frames < 1:
        raise ValueError('--frames must be at least 1')
    cells = build_cells(
        _pick(args.sizes, 'sizes', DEFAULT_SIZES, quick),
        _pick(args.rates, 'rates', DEFAULT_RATES, quick),
        _pick(args.transports, 'transports', DEFAULT_TRANSPORTS, quick),
        _pick(args.pub_qos, 'pub_qos', DEFAULT_PUB_QOS, quick),
        _pick(args.sub_reliability, 'sub_reliability', DEFAULT_SUB_RELIABILITIES, quick),
        _pick(args.sub_depths, 'sub_depths', DEFAULT_SUB_DEPTHS, quick))
    settings = Settings(frames=frames, domain_id=_domain_id(args.domain_id),
                        discovery_range=args.discovery_range, match_timeout=args.match_timeout,
                        settle=args.settle, grace=args.grace)
    measured = sum(cell.compatible for cell in cells)
    print(f'qos-matrix: {len(cells)} cells ({measured} to measure, '
          f'{len(cells) - measured} incompatible), {frames} frames each, ROS_DOMAIN_ID '
          f'{settings.domain_id}, ROS_AUTOMATIC_DISCOVERY_RANGE {settings.discovery_range}; '
          f'estimated {estimate_seconds(cells, settings) / 60:.1f} min', file=sys.stderr,
          flush=True)
    started, load_start = time.time(), os.getloadavg()
    rows: List[dict] = []
    previous = None
    if hasattr(signal, 'SIGTERM'):
        try:
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # not the main thread
            previous = None
    workdir = tempfile.mkdtemp(prefix='qos_matrix_')
    try:
        unmatched = set()  # transport pairs that failed to match even when retried
        for index, cell in enumerate(cells):
            pair = (cell.pub_transport, cell.sub_transport)
            row = run_cell(cell, settings, workdir, index, retry=pair not in unmatched)
            if never_matched(row) and row['notes'][0].startswith('retried after'):
                unmatched.add(pair)
            rows.append(row)
            print(f'[{index + 1}/{len(cells)}] {format_row(row)}', file=sys.stderr, flush=True)
    except (KeyboardInterrupt, _Terminated):
        print('qos-matrix: interrupted; children stopped; partial table follows',
              file=sys.stderr)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(workdir, ignore_errors=True)
    table = format_table(rows)
    print(table)
    if args.out:
        with open(args.out, 'w') as out:
            out.write(table + '\n')
    if args.json:
        meta = {
            'argv': sys.argv, 'frames': frames, 'domain_id': settings.domain_id,
            'discovery_range': settings.discovery_range, 'settle_s': settings.settle,
            'grace_s': settings.grace, 'match_timeout_s': settings.match_timeout,
            'cpu_count': os.cpu_count(), 'started': started,
            'seconds': round(time.time() - started, 1), 'load_start': list(load_start),
            'load_end': list(os.getloadavg()), 'fastdds': _package_version('ros-fastdds'),
            'rmw_fastrtps': _package_version('ros-rmw-fastrtps-cpp')}
        with open(args.json, 'w') as out:
            json.dump({'meta': meta, 'results': rows}, out, indent=1)
    complete = len(rows) == len(cells)
    return 0 if complete and all(r['status'] != 'error' for r in rows) else 1


def _package_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001 - informational only
        return None


def main(argv: Optional[List[str]] = None) -> int:
    """Parse `argv` and run (`python -m farsee_ros.tools.qos_matrix`, `farsee-ros qos-matrix`)."""
    # The package's docstring describes the tool (the --help text).
    description = sys.modules[__package__].__doc__
    parser = argparse.ArgumentParser(prog='qos-matrix', description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as exc:
        print(f'qos-matrix: error: {exc}', file=sys.stderr)
        return 2
