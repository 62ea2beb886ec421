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
rosbag2 files without a ROS install (rosbags): write a bag from a dataset, read frames back.

Bags are written in rosbag2's own format (metadata.yaml version 9 + mcap or sqlite3 storage),
so `ros2 bag info|play`, rviz2 and Foxglove open them. No ROS imports here.
"""

import argparse
import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

STORAGES = ('mcap', 'sqlite3')
IMAGE_TYPE = 'sensor_msgs/msg/Image'
BAG_ENCODINGS = ('rgb8', 'bgr8')


class BagError(ValueError):
    """A bag that cannot be written or read as asked, said in one line."""


def _require_rosbags() -> None:
    try:
        import rosbags  # noqa: F401
    except ImportError:
        raise BagError('reading and writing bags needs the rosbags package (pip install '
                       'rosbags); it is in requirements.txt') from None


def typestore():
    """Return the ROS 2 Kilted message definitions of rosbags."""
    _require_rosbags()
    from rosbags.typesys import get_typestore, Stores
    return get_typestore(Stores.ROS2_KILTED)


def image_msg(store, pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
    """Build a rosbags sensor_msgs/Image from an HxW or HxWxC uint8 array."""
    types = store.types
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec), frame_id=frame_id)
    pixels = np.ascontiguousarray(pixels)
    return types[IMAGE_TYPE](header=header, height=pixels.shape[0], width=pixels.shape[1],
                             encoding=encoding, is_bigendian=0, step=pixels.strides[0],
                             data=pixels.reshape(-1).view(np.uint8))


class BagWriter:
    """A rosbag2 writer taking typed rosbags messages or raw CDR bytes, topic by topic."""

    def __init__(self, path: str, storage: str = 'mcap'):
        _require_rosbags()
        from rosbags.rosbag2 import StoragePlugin, Writer
        if storage not in STORAGES:
            raise BagError(f'unknown storage {storage!r}; accepted: {", ".join(STORAGES)}')
        if os.path.exists(path):
            raise BagError(f'{path} exists; rosbag2 writes a new directory (choose another)')
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self.store = typestore()
        self._writer = Writer(path, version=9, storage_plugin=plugin)
        self._writer.open()
        self._connections: Dict[str, object] = {}

    def topic(self, name: str, msgtype: str) -> None:
        """Declare a topic of type `msgtype` (e.g. sensor_msgs/msg/Image)."""
        if name not in self._connections:
            self._connections[name] = self._writer.add_connection(name, msgtype,
                                                                  typestore=self.store)

    def write(self, name: str, timestamp_ns: int, msg) -> None:
        """Write a typed message (serialised here) to a declared topic."""
        connection = self._connections[name]
        self._writer.write(connection, int(timestamp_ns),
                           self.store.serialize_cdr(msg, connection.msgtype))

    def write_cdr(self, name: str, timestamp_ns: int, data: bytes) -> None:
        """Write an already CDR-serialised message (e.g. rclpy's serialize_message)."""
        self._writer.write(self._connections[name], int(timestamp_ns), data)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_bag(dataset, out: str, *, storage: str = 'mcap', rate: float = 1.0,
             image_topic: str = '/camera/image_raw',
             labels_topic: Optional[str] = '/camera/labels_gt', encoding: str = 'rgb8',
             frame_id: str = 'camera', limit: int = 0,
             start_ns: int = 1_700_000_000_000_000_000) -> int:
    """
    Write `dataset`'s frames (file order) as Images and its labels as mono8 Images.

    Frame i is stamped start_ns + i/rate s, in its header and as the bag's receive time;
    its label carries the same stamp. Return the number of frames written.
    """
    if encoding not in BAG_ENCODINGS:
        raise BagError(f'unknown encoding {encoding!r}; accepted: {", ".join(BAG_ENCODINGS)}')
    if not rate > 0:
        raise BagError(f'rate must be positive, not {rate}')
    count = min(len(dataset), limit) if limit else len(dataset)
    period_ns = int(round(1e9 / rate))
    with BagWriter(out, storage) as writer:
        writer.topic(image_topic, IMAGE_TYPE)
        if labels_topic:
            writer.topic(labels_topic, IMAGE_TYPE)
        for index in range(count):
            image, label = dataset.load(index)
            pixels = image.permute(1, 2, 0).numpy()
            if encoding == 'bgr8':
                pixels = pixels[..., ::-1]
            stamp = start_ns + index * period_ns
            writer.write(image_topic, stamp,
                         image_msg(writer.store, pixels, encoding, stamp, frame_id))
            if labels_topic:
                writer.write(labels_topic, stamp,
                             image_msg(writer.store, label.numpy(), 'mono8', stamp, frame_id))
    return count


@dataclass
class BagFrame:
    """One image message of a bag: its header stamp, frame id, encoding and pixels."""

    stamp_ns: int
    frame_id: str
    encoding: str
    pixels: np.ndarray


def _pixels(msg) -> np.ndarray:
    channels = {'mono8': 1, 'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4}.get(msg.encoding)
    if channels is None:
        raise BagError(f'image encoding {msg.encoding!r} is not replayable; accepted: '
                       'mono8, rgb8, bgr8, rgba8, bgra8')
    rows = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, :msg.width * channels].reshape(msg.height, msg.width, channels)
    return pixels[..., 0] if channels == 1 else pixels


def read_images(path: str, topic: str) -> Iterator[BagFrame]:
    """Yield the sensor_msgs/Image messages of `topic` in bag order."""
    _require_rosbags()
    from rosbags.highlevel import AnyReader
    from pathlib import Path
    if not os.path.isdir(path) and not os.path.isfile(path):
        raise BagError(f'bag {path} not found')
    store = typestore()
    with AnyReader([Path(path)], default_typestore=store) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            topics = sorted({f'{c.topic} ({c.msgtype})' for c in reader.connections})
            raise BagError(f'bag {path} has no topic {topic!r}; it has: {", ".join(topics)}')
        if connections[0].msgtype != IMAGE_TYPE:
            raise BagError(f'topic {topic!r} in {path} is {connections[0].msgtype}; '
                           f'replay takes {IMAGE_TYPE}')
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            yield BagFrame(stamp, msg.header.frame_id, msg.encoding, _pixels(msg))


def bag_topics(path: str) -> List[Tuple[str, str, int]]:
    """Return (topic, type, message count) for every topic of a bag."""
    from rosbags.highlevel import AnyReader
    from pathlib import Path
    with AnyReader([Path(path)], default_typestore=typestore()) as reader:
        return [(c.topic, c.msgtype, c.msgcount) for c in reader.connections]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the make-bag command's options to `parser`."""
    from ..training.datasets import DATASETS
    parser.add_argument('--dataset', required=True, choices=DATASETS)
    parser.add_argument('--root', required=True, help='dataset root directory')
    parser.add_argument('--split', default='val', help="split spec, e.g. 'val' or "
                        "'train:0006R0' (docs/training.md)")
    parser.add_argument('--classes', default='camvid',
                        help="class set of a 'folders' dataset")
    parser.add_argument('--out', required=True, help='bag directory to create')
    parser.add_argument('--storage', default='mcap', choices=STORAGES)
    parser.add_argument('--rate', type=float, default=10.0, help='frames per second (stamps)')
    parser.add_argument('--image-topic', default='/camera/image_raw')
    parser.add_argument('--labels-topic', default='/camera/labels_gt',
                        help="ground-truth mono8 labels topic ('' for none)")
    parser.add_argument('--encoding', default='rgb8', choices=BAG_ENCODINGS)
    parser.add_argument('--frame-id', default='camera')
    parser.add_argument('--limit', type=int, default=0, help='first N frames only')


def run(args: argparse.Namespace) -> int:
    """Write the bag and print what it holds."""
    from ..training.datasets import build_dataset
    dataset = build_dataset(args.dataset, args.root, args.split, classes=args.classes)
    count = make_bag(dataset, args.out, storage=args.storage, rate=args.rate,
                     image_topic=args.image_topic, labels_topic=args.labels_topic or None,
                     encoding=args.encoding, frame_id=args.frame_id, limit=args.limit)
    print(f'wrote {args.out} ({args.storage}): {count} frames at {args.rate:g} Hz')
    for topic, msgtype, messages in bag_topics(args.out):
        print(f'  {topic}  {msgtype}  {messages} messages')
    return 0
