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
Measure how camera-sized images cross Fast DDS for a matrix of QoS, rates and transports.

Every measured cell runs two fresh OS processes, a subscriber and a publisher, each a plain
rclpy node started from this module in a hidden role (``--role subscriber|publisher``) with
``FASTDDS_BUILTIN_TRANSPORTS`` set as the cell says (unset for DEFAULT), one ROS_DOMAIN_ID for
the whole run and a topic of its own. The publisher waits until the subscriber is matched,
settles, publishes N bgr8 frames at the cell's rate (stamped with the wall clock just before
``publish``) and lingers for a grace period; the subscriber's callback only records
(stamp, receive time), so receive time - stamp is the transport latency between two processes
on one machine, including rclpy's conversion of the message on both sides. Children write
JSON results that this parent reads; each child also reports which transports it really got
(TCP listener, UDP sockets, mapped Fast DDS shared-memory segments), so a transport that was
asked for but not applied is flagged rather than silently measured as something else.

    python -m farsee_ros.tools.qos_matrix           # full matrix, 144 cells (~11 min, 2 cores)
    python -m farsee_ros.tools.qos_matrix --quick   # 8 cells (under a minute)
    python -m farsee_ros.tools.qos_matrix --sizes 640x480 --rates 10 --out qos.md --json qos.json
"""

import argparse
from dataclasses import asdict, dataclass
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..common import atomic_write, percentiles

# Values Fast DDS 3.x accepts for FASTDDS_BUILTIN_TRANSPORTS (set_builtin_transports_from_env_var
# in RTPSParticipantImpl.cpp); LARGE_DATA also takes options, e.g. 'LARGE_DATA?max_msg_size=1MB'.
# Here 'DEFAULT' means: leave the variable unset (Fast DDS then builds SHM + UDPv4).
FASTDDS_TRANSPORTS = ('DEFAULT', 'DEFAULTv6', 'SHM', 'UDPv4', 'UDPv6', 'LARGE_DATA',
                      'LARGE_DATAv6', 'P2P', 'NONE')
# What each builtin-transport value should open in a participant, as this module's probe sees it.
EXPECTED_TRANSPORTS = {
    'DEFAULT': 'SHM+UDP', 'DEFAULTv6': 'SHM+UDP', 'SHM': 'SHM', 'UDPv4': 'UDP', 'UDPv6': 'UDP',
    'LARGE_DATA': 'SHM+TCP+UDP', 'LARGE_DATAv6': 'SHM+TCP+UDP',
}
RELIABILITIES = ('reliable', 'best_effort')
DISCOVERY_RANGES = ('SUBNET', 'LOCALHOST', 'SYSTEM_DEFAULT')

DEFAULT_SIZES = ('640x480', '2048x1024')
DEFAULT_RATES = (10.0, 30.0)
DEFAULT_TRANSPORTS = ('DEFAULT/DEFAULT', 'LARGE_DATA/LARGE_DATA', 'DEFAULT/LARGE_DATA')
DEFAULT_PUB_QOS = ('reliable:10', 'best_effort:1')
DEFAULT_SUB_RELIABILITIES = RELIABILITIES
DEFAULT_SUB_DEPTHS = (1, 5, 10)
DEFAULT_FRAMES = 60

QUICK = {
    'sizes': ['2048x1024'], 'rates': [30.0],
    'transports': ['DEFAULT/DEFAULT', 'LARGE_DATA/LARGE_DATA'],
    'pub_qos': ['reliable:10'], 'sub_reliability': list(RELIABILITIES),
    'sub_depths': [1, 5], 'frames': 30,
}

# Rough per-cell cost besides settling, publishing and grace (two interpreter starts, discovery,
# tear-down), used only for the up-front estimate; measured on a 2-core machine.
CELL_OVERHEAD_S = 1.0
INCOMPATIBLE_NOTE = 'not run: a best-effort publisher never serves a reliable subscriber'


@dataclass(frozen=True)
class Cell:
    """One point of the matrix."""

    width: int
    height: int
    rate: float
    pub_transport: str
    sub_transport: str
    pub_reliability: str
    pub_depth: int
    sub_reliability: str
    sub_depth: int

    @property
    def frame_bytes(self) -> int:
        """Return the size of one bgr8 frame in bytes."""
        return self.width * self.height * 3

    @property
    def compatible(self) -> bool:
        """Say whether DDS can match the two endpoints (best effort cannot serve reliable)."""
        return not (self.pub_reliability == 'best_effort' and self.sub_reliability == 'reliable')


@dataclass
class Settings:
    """How every cell of one run is measured."""

    frames: int = DEFAULT_FRAMES
    domain_id: int = 0
    discovery_range: str = 'SUBNET'
    match_timeout: float = 5.0
    settle: float = 0.5
    grace: float = 1.0


# ----------------------------------------------------------------------------- parsing


def parse_size(text: str) -> Tuple[int, int]:
    """Parse 'WIDTHxHEIGHT' into (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise ValueError(f'invalid size {text!r}; expected WIDTHxHEIGHT, e.g. 640x480') from None
    if width <= 0 or height <= 0:
        raise ValueError(f'invalid size {text!r}: both sides must be positive')
    return width, height


def check_transport(value: str) -> str:
    """Return `value` if Fast DDS accepts it for FASTDDS_BUILTIN_TRANSPORTS, else raise."""
    base = value.split('?', 1)[0]
    if base not in FASTDDS_TRANSPORTS:
        raise ValueError(f'invalid transport {value!r}; Fast DDS accepts: '
                         f'{", ".join(FASTDDS_TRANSPORTS)} (LARGE_DATA may take ?options)')
    return value


def parse_transport_pair(text: str) -> Tuple[str, str]:
    """Parse 'PUB/SUB' (or one value for both) into (publisher, subscriber) transports."""
    parts = text.split('/')
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise ValueError(f'invalid transports {text!r}; expected PUB/SUB, e.g. DEFAULT/LARGE_DATA')
    return check_transport(parts[0]), check_transport(parts[1])


def parse_qos(text: str) -> Tuple[str, int]:
    """Parse 'RELIABILITY:DEPTH' (e.g. reliable:10, best_effort:1) into (reliability, depth)."""
    reliability, _, depth = text.partition(':')
    reliability = reliability.replace('-', '_')
    if reliability not in RELIABILITIES or not depth.isdigit() or int(depth) < 1:
        raise ValueError(f'invalid QoS {text!r}; expected reliable:DEPTH or best_effort:DEPTH')
    return reliability, int(depth)


def build_cells(sizes: Sequence[str], rates: Sequence[float], transports: Sequence[str],
                pub_qos: Sequence[str], sub_reliabilities: Sequence[str],
                sub_depths: Sequence[int]) -> List[Cell]:
    """Return the matrix's cells in the order they are run and tabulated."""
    for reliability in sub_reliabilities:
        if reliability.replace('-', '_') not in RELIABILITIES:
            raise ValueError(f'invalid subscriber reliability {reliability!r}; accepted: '
                             f'{", ".join(RELIABILITIES)}')
    if any(rate <= 0 for rate in rates):
        raise ValueError('rates must be positive')
    if any(depth < 1 for depth in sub_depths):
        raise ValueError('subscriber depths must be at least 1')
    cells = []
    for size, rate, pair, qos, sub_rel, sub_depth in itertools.product(
            sizes, rates, transports, pub_qos, sub_reliabilities, sub_depths):
        width, height = parse_size(size)
        pub_transport, sub_transport = parse_transport_pair(pair)
        pub_rel, pub_depth = parse_qos(qos)
        cells.append(Cell(width, height, float(rate), pub_transport, sub_transport, pub_rel,
                          pub_depth, sub_rel.replace('-', '_'), int(sub_depth)))
    return cells


def estimate_seconds(cells: Sequence[Cell], settings: Settings) -> float:
    """Estimate the wall time of measuring `cells` (incompatible ones cost nothing)."""
    return sum(CELL_OVERHEAD_S + settings.settle + settings.frames / cell.rate
               + settings.grace / 2 for cell in cells if cell.compatible)


# ----------------------------------------------------------------------------- children


def _qos_profile(reliability: str, depth: int):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, durability=DurabilityPolicy.VOLATILE,
        reliability=(ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                     else ReliabilityPolicy.BEST_EFFORT))


def transport_probe() -> Dict[str, int]:
    """
    Count this process's TCP listeners, UDP sockets and mapped Fast DDS shared-memory segments.

    Linux only (reads /proc); elsewhere all counts are 0. A LARGE_DATA participant listens on
    TCP; DEFAULT opens UDP sockets and a shared-memory segment; UDPv4 maps no segment.
    """
    counts = {'tcp_listen': 0, 'udp': 0, 'shm': 0}
    try:
        inodes = set()
        for fd in os.listdir('/proc/self/fd'):
            try:
                target = os.readlink(f'/proc/self/fd/{fd}')
            except OSError:
                continue
            if target.startswith('socket:['):
                inodes.add(target[len('socket:['):-1])
        for proto in ('tcp', 'tcp6', 'udp', 'udp6'):
            path = f'/proc/net/{proto}'
            if not os.path.exists(path):
                continue
            with open(path) as table:
                for line in table.readlines()[1:]:
                    fields = line.split()
                    if len(fields) < 10 or fields[9] not in inodes:
                        continue
                    if proto.startswith('udp'):
                        counts['udp'] += 1
                    elif fields[3] == '0A':  # TCP_LISTEN
                        counts['tcp_listen'] += 1
        with open('/proc/self/maps') as maps:
            segments = {line.split()[-1] for line in maps if '/dev/shm/fastdds_' in line}
        counts['shm'] = len(segments)
    except OSError:
        pass
    return counts


def effective_transports(probe: Dict[str, int]) -> str:
    """Name the transports a probe found, e.g. 'SHM+TCP+UDP'."""
    names = [name for name, key in (('SHM', 'shm'), ('TCP', 'tcp_listen'), ('UDP', 'udp'))
             if probe.get(key)]
    return '+'.join(names) or 'none'


def _write_json(path: str, data: dict) -> None:
    with atomic_write(path) as out:
        json.dump(data, out)


def _child_should_stop(stop_file: str, parent: int, deadline: float) -> Optional[str]:
    if os.path.exists(stop_file):
        return 'stopped'
    if os.getppid() != parent:
        return 'orphaned'
    if time.monotonic() > deadline:
        return 'deadline'
    return None


def _subscriber(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from .harness import stamp_ns

    parent, deadline = os.getppid(), time.monotonic() + args.deadline
    rclpy.init(args=[])
    node = rclpy.create_node(f'qos_matrix_sub_{os.getpid()}')
    samples: List[Tuple[str, int, int, int]] = []

    def on_image(msg: Image) -> None:
        received = time.time_ns()
        stamp = stamp_ns(msg.header)
        samples.append((msg.header.frame_id, stamp, received, len(msg.data)))

    sub = node.create_subscription(Image, args.topic, on_image,
                                   _qos_profile(args.reliability, args.depth))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    probe = transport_probe()
    max_publishers, reason = 0, None
    try:
        while reason is None:
            executor.spin_once(timeout_sec=0.05)
            max_publishers = max(max_publishers, sub.get_publisher_count())
            if len(samples) >= args.frames:
                reason = 'all received'
            else:
                reason = _child_should_stop(args.stop_file, parent, deadline)
        drain_end = time.monotonic() + 0.2
        while reason == 'stopped' and time.monotonic() < drain_end:
            executor.spin_once(timeout_sec=0.02)
    except (ExternalShutdownException, KeyboardInterrupt):
        reason = 'interrupted'
    finally:
        _write_json(args.result, {
            'role': 'subscriber', 'reason': reason, 'samples': samples,
            'max_publishers': max_publishers, 'probe': probe})
        executor.shutdown(timeout_sec=0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _publisher(args: argparse.Namespace) -> int:
    import rclpy
    from sensor_msgs.msg import Image

    from .harness import image_message

    parent, deadline = os.getppid(), time.monotonic() + args.deadline
    rclpy.init(args=[])
    node = rclpy.create_node(f'qos_matrix_pub_{os.getpid()}')
    pub = node.create_publisher(Image, args.topic, _qos_profile(args.reliability, args.depth))
    # Prepared once: random bytes, so no transport or compression shortcut can exploit them.
    msg = image_message(np.random.default_rng(0).integers(
        0, 256, (args.height, args.width, 3), dtype=np.uint8), 'bgr8', 0)
    probe = transport_probe()
    result = {'role': 'publisher', 'sent': 0, 'matched': False, 'probe': probe,
              'max_subscriptions': 0, 'publish_ms': [], 'reason': None}
    try:
        start = time.monotonic()
        while pub.get_subscription_count() == 0:
            if time.monotonic() - start > args.match_timeout:
                result['reason'] = f'no subscriber matched within {args.match_timeout:g} s'
                return 3
            if _child_should_stop(args.stop_file, parent, deadline):
                result['reason'] = 'stopped before matching'
                return 3
            time.sleep(0.01)
        result['matched'] = True
        result['match_s'] = time.monotonic() - start
        time.sleep(args.settle)
        begin = time.monotonic()
        for index in range(args.frames):
            delay = begin + index / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            msg.header.frame_id = str(index)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
            t0 = time.perf_counter()
            pub.publish(msg)
            result['publish_ms'].append((time.perf_counter() - t0) * 1e3)
            result['sent'] = index + 1
            result['max_subscriptions'] = max(result['max_subscriptions'],
                                              pub.get_subscription_count())
            result['reason'] = _child_should_stop(args.stop_file, parent, deadline)
            if result['reason']:
                break
        result['publish_s'] = time.monotonic() - begin
        # Grace: let retransmissions finish; the parent cuts it short once all frames arrived.
        grace_end = time.monotonic() + args.grace
        while time.monotonic() < grace_end and not _child_should_stop(
                args.stop_file, parent, deadline):
            time.sleep(0.01)
        return 0
    except KeyboardInterrupt:
        result['reason'] = 'interrupted'
        return 130
    finally:
        _write_json(args.result, result)
        node.destroy_node()
        rclpy.try_shutdown()


# ----------------------------------------------------------------------------- parent


def child_env(transport: str, settings: Settings) -> Dict[str, str]:
    """Return the environment of a child process for `transport` ('DEFAULT' leaves it unset)."""
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(settings.domain_id)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = settings.discovery_range
    env['RMW_IMPLEMENTATION'] = 'rmw_fastrtps_cpp'
    if transport == 'DEFAULT':
        env.pop('FASTDDS_BUILTIN_TRANSPORTS', None)
    else:
        env['FASTDDS_BUILTIN_TRANSPORTS'] = transport
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env['PYTHONPATH'] = os.pathsep.join(p for p in (root, env.get('PYTHONPATH')) if p)
    return env


def _spawn(role: str, cell: Cell, settings: Settings, folder: str, topic: str,
           deadline: float) -> subprocess.Popen:
    reliability, depth, transport = (
        (cell.pub_reliability, cell.pub_depth, cell.pub_transport) if role == 'publisher'
        else (cell.sub_reliability, cell.sub_depth, cell.sub_transport))
    command = [sys.executable, '-m', 'farsee_ros.tools.qos_matrix', '--role', role,
               '--topic', topic, '--width', str(cell.width), '--height', str(cell.height),
               '--rate', repr(cell.rate), '--reliability', reliability, '--depth', str(depth),
               '--frames', str(settings.frames), '--match-timeout', repr(settings.match_timeout),
               '--settle', repr(settings.settle), '--grace', repr(settings.grace),
               '--deadline', repr(deadline),
               '--result', os.path.join(folder, f'{role}.json'),
               '--stop-file', os.path.join(folder, f'stop-{role}')]
    log = open(os.path.join(folder, f'{role}.log'), 'wb')
    try:
        # A session of its own: a terminal's Ctrl-C reaches the parent, which tears down.
        return subprocess.Popen(command, env=child_env(transport, settings), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        log.close()


def _touch(path: str) -> None:
    with open(path, 'a'):
        pass


def _reap(processes: Sequence[subprocess.Popen], wait: float) -> int:
    """
    Wait up to `wait` s for each process, then SIGTERM, then SIGKILL: nothing outlives us.

    Return how many processes had to be signalled.
    """
    end = time.monotonic() + wait
    for proc in processes:
        try:
            proc.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    signalled = sum(1 for p in processes if p.poll() is None)
    for sig, pause in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        alive = [p for p in processes if p.poll() is None]
        for proc in alive:
            try:
                os.killpg(proc.pid, sig)
            except OSError:
                pass
        for proc in alive:
            try:
                proc.wait(timeout=pause)
            except subprocess.TimeoutExpired:
                pass
    return signalled


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as source:
            return json.load(source)
    except (OSError, ValueError):
        return None


def _log_tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, errors='replace') as source:
            text = [line.strip() for line in source if line.strip()]
    except OSError:
        return ''
    return ' / '.join(text[-lines:])[-100 * lines:]


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
        sub = _spawn('subscriber', cell, settings, folder, topic, budget + 5.0)
        processes.append(sub)
        pub = _spawn('publisher', cell, settings, folder, topic, budget)
        processes.append(pub)
        end = time.monotonic() + budget + 5.0
        pub_json = os.path.join(folder, 'publisher.json')
        # Done when the publisher exits or has written its result (a slow tear-down is reaped).
        while time.monotonic() < end and pub.poll() is None and not os.path.exists(pub_json):
            if sub.poll() is not None:
                _touch(os.path.join(folder, 'stop-publisher'))  # all arrived: skip the grace
            time.sleep(0.02)
        if pub.poll() is None and not os.path.exists(pub_json):
            row['notes'].append('publisher timed out')
        _touch(os.path.join(folder, 'stop-publisher'))
        _touch(os.path.join(folder, 'stop-subscriber'))
        killed = _reap(processes, wait=5.0)
        if killed:
            row['killed_at_teardown'] = killed
        sub_result = _read_json(os.path.join(folder, 'subscriber.json'))
        pub_result = _read_json(os.path.join(folder, 'publisher.json'))
    finally:
        _reap(processes, wait=0.0)
    row['seconds'] = round(time.monotonic() - started, 2)
    row['load'] += list(os.getloadavg())
    row['status'] = 'measured'
    if pub_result is None or sub_result is None:
        row['status'] = 'error'
        for role, result in (('publisher', pub_result), ('subscriber', sub_result)):
            if result is None:
                row['notes'].append(f'{role} wrote no result: '
                                    + _log_tail(os.path.join(folder, f'{role}.log')))
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
        row['logs'] = {role: _log_tail(os.path.join(folder, f'{role}.log'), 20)
                       for role in ('publisher', 'subscriber')}
    if max(row['load']) > (os.cpu_count() or 1):
        row['notes'].append(f'load {max(row["load"]):.1f}')
    shutil.rmtree(folder, ignore_errors=True)
    return row


# ----------------------------------------------------------------------------- table

HEADER = ('| size | rate (Hz) | transports (pub/sub) | publisher QoS | subscriber QoS | '
          'received/sent | p50 (ms) | p95 (ms) | max (ms) | notes |\n'
          '|---|---:|---|---|---|---:|---:|---:|---:|---|')


def _ms(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.1f}'


def format_row(row: dict) -> str:
    """Format one result (from run_cell) as a markdown table row."""
    size = f'{row["width"]}x{row["height"]} ({row["width"] * row["height"] * 3 / 1e6:.1f} MB)'
    rate = f'{row["rate"]:g}'
    transports = f'{row["pub_transport"]}/{row["sub_transport"]}'
    pub = f'{row["pub_reliability"].replace("_", " ")}, depth {row["pub_depth"]}'
    sub = f'{row["sub_reliability"].replace("_", " ")}, depth {row["sub_depth"]}'
    if row['status'] == 'incompatible':
        delivered = 'incompatible'
    elif row['status'] == 'unmatched':
        delivered = 'no match'
    else:
        delivered = f'{row["received"]}/{row["sent"]}'
    notes = '; '.join(row.get('notes', []))
    return (f'| {size} | {rate} | {transports} | {pub} | {sub} | {delivered} | '
            f'{_ms(row["p50_ms"])} | {_ms(row["p95_ms"])} | {_ms(row["max_ms"])} | {notes} |')


def format_table(rows: Sequence[dict]) -> str:
    """Format results as a markdown table, one row per cell."""
    return '\n'.join([HEADER] + [format_row(row) for row in rows])


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
        return _subscriber(args)
    if args.role == 'publisher':
        return _publisher(args)
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
    parser = argparse.ArgumentParser(prog='qos-matrix', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as exc:
        print(f'qos-matrix: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
