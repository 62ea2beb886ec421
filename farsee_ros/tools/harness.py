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
segment_node as its own process, and a real rclpy client to talk to it.

Used by the tests, the benchmarks and replay. The node is started with the command line
launch_ros would give it (`--ros-args -r __node:=farsee --params-file segment.yaml -p ...`).
"""

import array
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ..ros.resources import share_directory


def stamp_ns(header: Any) -> int:
    """Return a std_msgs/Header's stamp in nanoseconds."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def latency_stages(msg: Any) -> Dict[str, float]:
    """Return a ~/latency record's stage times in ms by stage name ('inference', ...)."""
    return {kv.key[:-len('_ms')]: float(kv.value) for kv in msg.status[0].values}


def model_line(log: str) -> str:
    """Return the node's start-up line naming its model, device and input ('started' if none)."""
    return next((ln.strip() for ln in log.splitlines() if 'model ' in ln), 'started')


def image_message(pixels: np.ndarray, encoding: str, stamp_ns: int,
                  frame_id: str = 'camera') -> Image:
    """Build a sensor_msgs/Image from an array (no per-element copies)."""
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.height, msg.width = pixels.shape[:2]
    msg.encoding = encoding
    msg.step = pixels.strides[0]
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(pixels).tobytes())
    msg.data = data
    return msg


class NodeProcess:
    """segment_node in its own process; stdout+stderr captured to a log file."""

    def __init__(self, log_dir, params: Dict[str, Any], name: str = 'node',
                 extra_args: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None):
        self.log_path = os.path.join(str(log_dir), f'{name}.log')
        command = [sys.executable, '-m', 'farsee_ros.ros.segment_node', '--ros-args',
                   '-r', '__node:=farsee',
                   '--params-file', os.path.join(share_directory(), 'config', 'segment.yaml')]
        for key, value in params.items():
            command += ['-p', f'{key}:={value}']
        command += extra_args or []
        self._log = open(self.log_path, 'w')
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=dict(os.environ, PYTHONUNBUFFERED='1', **(env or {})))

    @classmethod
    def for_camera(cls, log_dir, image_topic: str, model: Optional[str] = None,
                   device: str = 'auto', name: str = 'node', backend: str = 'auto',
                   params: Optional[Dict[str, Any]] = None) -> 'NodeProcess':
        """Start segment_node on one camera topic; `model` None = the default weights."""
        params = {'device': device, 'backend': backend, 'image_topics': f'[{image_topic}]',
                  **(params or {})}
        if model:
            params['model_path'] = os.path.abspath(model)
        return cls(log_dir, params, name=name)

    def log(self) -> str:
        """Return what the node has printed so far."""
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path) as f:
            return f.read()

    def wait_for_log(self, text: str, timeout: float = 60.0) -> bool:
        """Wait until `text` appears in the node's output (False on timeout or exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if self.process.poll() is not None:
                return text in self.log()
            time.sleep(0.1)
        return False

    def _status(self) -> Dict[str, str]:
        """Return the process's /proc/PID/status fields (Linux; empty elsewhere or once gone)."""
        try:
            with open(f'/proc/{self.process.pid}/status') as f:
                lines = f.read().splitlines()
        except OSError:
            return {}
        return {key: value.strip() for key, _, value in (line.partition(':') for line in lines)}

    def signal_state(self) -> str:
        """Return the process's signal masks and state from /proc (Linux; '' elsewhere)."""
        status = self._status()
        return ' '.join(f'{key}: {status[key]}' for key in ('State', 'Threads', 'SigBlk',
                                                            'SigIgn', 'SigCgt', 'SigPnd',
                                                            'ShdPnd') if key in status)

    def wait_until_sigint_handled(self, timeout: float = 30.0) -> bool:
        """
        Wait until the interpreter catches SIGINT (Linux: /proc/PID/status SigCgt).

        Before that, in the interpreter's own start-up, SIGINT has the OS default action (or
        the ignore it inherited), as for any program. True once caught; False on timeout, on
        exit, or where /proc cannot tell.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            caught = self._status().get('SigCgt')
            if caught is None:
                return False
            if int(caught, 16) & (1 << (signal.SIGINT - 1)):
                return True
            time.sleep(0.002)
        return False

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.process.poll() is None

    def interrupt(self, timeout: float = 10.0, times: int = 1,
                  gap_s: float = 0.0) -> Optional[int]:
        """
        Send SIGINT (`times` times, `gap_s` apart); return the exit code (None: still running).

        Twice in quick succession is a terminal's Ctrl-C under `ros2 launch`: the terminal
        signals the whole foreground process group, node included, and launch then signals it.
        """
        for index in range(times):
            if index:
                time.sleep(gap_s)
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Stop the node (SIGINT, then kill) and close the log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class Client:
    """A real rclpy node in this process, spun by a background thread."""

    def __init__(self, name: str = 'farsee_test_client'):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.received: Dict[str, List[Any]] = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: B902 - the context went away at shutdown
                return

    def publisher(self, msg_type, topic: str, reliable: bool = True, depth: int = 10):
        """Create a publisher with the given reliability and depth."""
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        return self.node.create_publisher(msg_type, topic, qos)

    def collect(self, msg_type, topic: str, reliable: bool = True, depth: int = 50) -> List[Any]:
        """Subscribe; every message is appended with its receive time (ROS time, ns)."""
        messages = self.received.setdefault(topic, [])
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)

        def store(msg):
            received_ns = self.node.get_clock().now().nanoseconds
            with self.lock:
                messages.append((received_ns, msg))
        self.node.create_subscription(msg_type, topic, store, qos)
        return messages

    def messages(self, topic: str) -> List[Any]:
        """Return the messages collected on `topic` so far."""
        with self.lock:
            return [m for _, m in self.received.get(topic, [])]

    def timed_messages(self, topic: str) -> List[Any]:
        """Return (receive time in ns, message) pairs collected on `topic` so far."""
        with self.lock:
            return list(self.received.get(topic, []))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Poll `predicate` until it holds or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def now_ns(self) -> int:
        """Return the client's ROS time in nanoseconds."""
        return self.node.get_clock().now().nanoseconds

    def close(self) -> None:
        """Destroy the client node and shut its context down."""
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2)
