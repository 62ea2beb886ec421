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
One way to run segment_node against frames over real DDS: start, publish, record, join by stamp.

`NodeRun` starts the node as its own process (or talks to a running one), subscribes to its
labels, latency and (optionally) overlay, and publishes frames to its camera topic; `play`
sends a sequence through it; `first_by_stamp` joins what came back to what was sent. replay,
bench-node and the demo all measure through this module, so they measure the same thing.
"""

from dataclasses import dataclass
import os
import random
import tempfile
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .harness import Client, image_message, model_line, NodeProcess, stamp_ns

# Depth of the recorder's subscriptions: deep enough that a burst is never lost at this end.
RECORD_DEPTH = 100


@dataclass
class Stream:
    """One camera of a NodeRun: its image topic, the node's outputs for it, its publisher."""

    image_topic: str
    labels_topic: str
    latency_topic: str
    overlay_topic: str
    publisher: Any = None


@dataclass
class Playback:
    """What one run through segment_node sent and got back (receive times in ns)."""

    prefix: str                                  # the node's topic prefix, /farsee
    sent: Dict[int, Dict[str, Any]]              # published stamp -> index, sent_ns, bag_stamp
    labels: List[Tuple[int, Any]]
    latency: List[Tuple[int, Any]]
    overlays: List[Tuple[int, Any]]
    published: List[Tuple[int, bytes]]          # (sent_ns, serialized Image) with keep_inputs
    node: str                                   # the node's model line, or 'external'


def first_by_stamp(sent: Iterable[int], messages: Sequence[Tuple[int, Any]]
                   ) -> Dict[int, Tuple[int, Any]]:
    """Return stamp -> (receive time, message) of the first message per sent stamp."""
    wanted = set(sent)
    joined: Dict[int, Tuple[int, Any]] = {}
    for received_ns, msg in messages:
        stamp = stamp_ns(msg.header)
        if stamp in wanted and stamp not in joined:
            joined[stamp] = (received_ns, msg)
    return joined


class NodeRun:
    """
    segment_node on one camera topic, and a recorder of its outputs (a context manager).

    Starts the node (unless `external`), subscribes to <prefix>/labels, <prefix>/latency and,
    with `overlay`, <prefix>/overlay (the node renders the overlay only while subscribed), and
    with `publish` creates the camera publisher. Each run gets an own ROS_DOMAIN_ID unless one
    is set.
    """

    def __init__(self, image_topic: str, *, model: Optional[str] = None, device: str = 'auto',
                 backend: str = 'auto',
                 external: bool = False, node_name: str = 'farsee', overlay: bool = False,
                 publish: bool = True, name: str = 'run',
                 params: Optional[Dict[str, Any]] = None, more_cameras: Sequence[str] = ()):
        from ..ros.parameters import camera_names

        self.image_topic = image_topic
        self.prefix = f'/{node_name.strip("/")}'
        topics = [image_topic, *more_cameras]
        # One stream per camera; with several, each camera's outputs are under ~/<camera>/.
        self.streams = [Stream(topic, *(f'{self.prefix}{sub}/{output}' for output in (
            'labels', 'latency', 'overlay')))
            for topic, sub in zip(topics, [''] if len(topics) == 1 else
                                  [f'/{n}' for n in camera_names(topics)])]
        if more_cameras:
            params = dict(params or {}, image_topics=f'[{", ".join(topics)}]')
        first = self.streams[0]
        self.labels_topic, self.latency_topic = first.labels_topic, first.latency_topic
        self.overlay_topic = first.overlay_topic
        self.outputs = [t for s in self.streams
                        for t in [s.labels_topic] + ([s.overlay_topic] if overlay else [])]
        self._options = dict(model=model, device=device, backend=backend, external=external,
                             overlay=overlay,
                             publish=publish, name=name, params=params)
        self.node: Optional[NodeProcess] = None
        self.camera = None
        self.node_log = ''

    def __enter__(self) -> 'NodeRun':
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
        options = self._options
        self._folder = tempfile.TemporaryDirectory()
        try:
            if not options['external']:
                self.node = NodeProcess.for_camera(self._folder.name, self.image_topic,
                                                   options['model'], options['device'],
                                                   f'{options["name"]}_node',
                                                   backend=options['backend'],
                                                   params=options['params'])
            self.client = Client(f'farsee_{options["name"]}')
            for stream in self.streams:
                self.client.collect(Image, stream.labels_topic, depth=RECORD_DEPTH)
                self.client.collect(DiagnosticArray, stream.latency_topic, depth=RECORD_DEPTH)
                if options['overlay']:
                    self.client.collect(Image, stream.overlay_topic, depth=RECORD_DEPTH)
                if options['publish']:
                    stream.publisher = self.client.publisher(Image, stream.image_topic, depth=10)
            self.camera = self.streams[0].publisher
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._close()

    def _close(self) -> None:
        if self.node is not None:
            self.node_log = self.node.log()
        if getattr(self, 'client', None) is not None:
            self.client.close()
        if self.node is not None:
            self.node.stop()
        self._folder.cleanup()

    @property
    def node_line(self) -> str:
        """Return the node's start-up line naming its model, or 'external'."""
        if self.node is None:
            return 'external'
        return model_line(self.node_log or self.node.log())

    def check_alive(self) -> None:
        """Raise RuntimeError with the node's last log line if its process has ended."""
        if self.node is not None and not self.node.alive():
            last = self.node.log().strip().splitlines()[-1:] or ['(no output)']
            raise RuntimeError(f'segment_node exited with code {self.node.process.returncode}: '
                               f'{last[0]}')

    def wait_until_subscribed(self, timeout: float = 180.0) -> None:
        """Wait until the node subscribes to every camera topic and publishes its labels."""
        def subscribed() -> bool:
            self.check_alive()
            return all(s.publisher.get_subscription_count() > 0 for s in self.streams)

        if not self.client.wait_for(subscribed, timeout):
            log = self.node.log()[-2000:] if self.node else ''
            raise RuntimeError(f'no segment_node subscribed to {self.image_topic}\n{log}')
        self.client.wait_for(lambda: all(self.client.node.count_publishers(s.labels_topic) > 0
                                         for s in self.streams), 30)
        time.sleep(1.0)   # let the output subscriptions match too

    def publish(self, pixels: np.ndarray, encoding: str, stamp: int,
                frame_id: str = 'camera') -> Any:
        """Publish one frame stamped `stamp` (ns); return the message."""
        msg = image_message(pixels, encoding, stamp, frame_id)
        self.camera.publish(msg)
        return msg

    def warm_up(self, frame: Any, count: int) -> None:
        """Send `count` copies of `frame` (BagFrame-like) to each camera, after each round trip."""
        for _ in range(count):
            for stream in self.streams:
                stamp = self.client.now_ns()
                stream.publisher.publish(image_message(frame.pixels, frame.encoding, stamp,
                                                       frame.frame_id))
                outputs = [t for t in self.outputs if t.startswith(
                    stream.labels_topic.rsplit('/', 1)[0] + '/')]
                self.client.wait_for(lambda s=stamp, o=outputs: self.arrived(s, o), 30)

    def arrived(self, stamp: int, topics: Optional[Sequence[str]] = None) -> bool:
        """Return whether every one of `topics` (default: the outputs) carried `stamp`."""
        return all(any(stamp_ns(m.header) == stamp for m in self.client.messages(t)[-5:])
                   for t in (topics or self.outputs))

    def returned(self, topic: str, sent: Dict[int, Any]) -> int:
        """Return how many of the `sent` stamps came back on `topic`."""
        return sum(stamp_ns(m.header) in sent for m in self.client.messages(topic))

    def recorded(self, topic: str, keep: Callable[[int], bool] = lambda stamp: True
                 ) -> List[Tuple[int, Any]]:
        """Return (receive time, message) pairs recorded on `topic` whose stamp `keep` accepts."""
        return [(t, m) for t, m in self.client.timed_messages(topic) if keep(stamp_ns(m.header))]


def play(frames: Sequence[Any], image_topic: str, *, model: Optional[str] = None,
         device: str = 'auto', backend: str = 'auto', rate: Optional[float] = None,
         max_rate: bool = False,
         keep_stamps: bool = False, external: bool = False, node_name: str = 'farsee',
         overlay: bool = False, keep_inputs: bool = False, drain: float = 10.0,
         warmup: int = 1, desc: str = 'replay',
         params: Optional[Dict[str, Any]] = None) -> Playback:
    """
    Publish `frames` (BagFrame-like: stamp_ns, frame_id, encoding, pixels) through segment_node.

    Starts the node (unless `external`), waits until it subscribes, then publishes at `rate`
    Hz, at the frames' own stamps' timing, or (`max_rate`) each frame once the previous
    one's labels came back. Frames are re-stamped with the publish time unless `keep_stamps`.
    `warmup` copies of the first frame go through first, each waiting for its round trip, and
    are not reported. `params`: more node parameters (name -> value).
    """
    from tqdm import tqdm

    sent: Dict[int, Dict[str, Any]] = {}
    published: List[Tuple[int, bytes]] = []
    with NodeRun(image_topic, model=model, device=device, backend=backend, external=external,
                 node_name=node_name, overlay=overlay, name=desc, params=params) as run:
        run.wait_until_subscribed()
        # Warm-up, not reported: the node's first forward pass is slow, and one full round
        # trip (labels, and the overlay when recorded) shows every output matched. It does not
        # prevent DDS's reliable repair delaying the next frames by seconds on the default
        # transports (measured; LARGE_DATA on both ends does, docs/qos.md).
        first = frames[0]
        run.warm_up(first, warmup)

        if keep_inputs:
            from rclpy.serialization import serialize_message
        origin = first.stamp_ns
        start = time.monotonic()
        for index, frame in enumerate(tqdm(frames, desc=desc, unit='frame', disable=None,
                                           leave=False)):
            if rate:
                due = start + index / rate
            elif not max_rate:
                due = start + (frame.stamp_ns - origin) / 1e9
            else:
                due = time.monotonic()
            time.sleep(max(0.0, due - time.monotonic()))
            stamp = frame.stamp_ns if keep_stamps else run.client.now_ns()
            msg = image_message(frame.pixels, frame.encoding, stamp, frame.frame_id)
            sent_ns = run.client.now_ns()
            run.camera.publish(msg)
            sent[stamp] = {'index': index, 'sent_ns': sent_ns, 'bag_stamp': frame.stamp_ns}
            if keep_inputs:
                published.append((sent_ns, serialize_message(msg)))
            if max_rate:
                run.client.wait_for(lambda s=stamp: run.arrived(s, [run.labels_topic]), 30)

        run.client.wait_for(lambda: run.returned(run.labels_topic, sent) >= len(sent), drain)
        # Each frame's overlay and then its ~/latency record are published after its labels.
        after = ([run.overlay_topic] if overlay else []) + [run.latency_topic]

        def caught_up() -> bool:
            labelled = run.returned(run.labels_topic, sent)
            return all(run.returned(topic, sent) >= labelled for topic in after)

        run.client.wait_for(caught_up, 5)
    played = sent.__contains__   # the warm-up's outputs left out
    return Playback(run.prefix, sent, run.recorded(run.labels_topic, played),
                    run.recorded(run.latency_topic, played),
                    run.recorded(run.overlay_topic, played), published, run.node_line)
