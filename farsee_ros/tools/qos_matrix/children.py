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
Run a cell's two child processes: the subscriber and publisher roles, and their life cycle.

Each child is this package started again (``python -m farsee_ros.tools.qos_matrix --role
subscriber|publisher``) in a session of its own, with the cell's environment; it writes its
result as JSON (and its output to a log) in the cell's folder, stops early when a stop file
appears, its parent goes away or its deadline passes, and probes which transports it really
got. rclpy is imported only inside the roles, so the parent never loads it.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...common import atomic_write
from .cells import Cell, Settings

# The folder that holds the farsee_ros package (above farsee_ros/tools/qos_matrix/), put on the
# children's PYTHONPATH so that they import this very copy of it.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


# ----------------------------------------------------------------------------- in the child


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


def run_subscriber(args: argparse.Namespace) -> int:
    """Be the subscriber child: record (frame, stamp, receive time, bytes) of every image."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from ..harness import stamp_ns

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


def run_publisher(args: argparse.Namespace) -> int:
    """Be the publisher child: wait for the match, settle, publish the frames, linger."""
    import rclpy
    from sensor_msgs.msg import Image

    from ..harness import image_message

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


# ----------------------------------------------------------------------------- in the parent


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
    env['PYTHONPATH'] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get('PYTHONPATH')) if p)
    return env


def spawn(role: str, cell: Cell, settings: Settings, folder: str, topic: str,
          deadline: float) -> subprocess.Popen:
    """Start the `role` child of `cell`; its result, log and stop file live in `folder`."""
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


def touch(path: str) -> None:
    """Create `path` if missing (a child's stop file)."""
    with open(path, 'a'):
        pass


def reap(processes: Sequence[subprocess.Popen], wait: float) -> int:
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


def read_json(path: str) -> Optional[dict]:
    """Return a child's JSON result, or None if it wrote none (or a broken one)."""
    try:
        with open(path) as source:
            return json.load(source)
    except (OSError, ValueError):
        return None


def log_tail(path: str, lines: int = 3) -> str:
    """Return the last non-empty `lines` of a child's log, joined with ' / ', for a note."""
    try:
        with open(path, errors='replace') as source:
            text = [line.strip() for line in source if line.strip()]
    except OSError:
        return ''
    return ' / '.join(text[-lines:])[-100 * lines:]
