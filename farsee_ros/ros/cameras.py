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

"""The node's cameras: each input topic, its camera name, output publishers and CameraInfo."""

from dataclasses import dataclass
from typing import Any, List, Optional

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from .parameters import camera_names, OUTPUT_TOPICS


@dataclass
class Camera:
    """One input stream: its topics, subscription, publishers and newest CameraInfo."""

    name: str
    topic: str
    subscription: Any = None
    reliability: Optional[str] = None   # the subscription's; None before there is one
    camera_info: Optional[CameraInfo] = None
    labels_pub: Any = None
    overlay_pub: Any = None
    latency_pub: Any = None
    info_pub: Any = None


def make_cameras(node: Any, msg_type: Any) -> List[Camera]:
    """Make one Camera per image topic: its names, output publishers and CameraInfo feed."""
    sources = node.params['image_topics']
    single = len(sources) == 1
    depth = node.params['qos_depth']
    outputs = {'labels': (Image, depth), 'overlay': (Image, depth),
               'latency': (DiagnosticArray, 10), 'camera_info': (CameraInfo, depth)}
    assert set(outputs) == {topic[0] for topic in OUTPUT_TOPICS}
    cameras = []
    for name, source in zip(camera_names(sources), sources):
        base = source.rstrip('/')
        topic = base + '/compressed' if msg_type is CompressedImage \
            and not base.endswith('/compressed') else base
        prefix = '~' if single else f'~/{name}'
        camera = Camera(name=name, topic=node.resolve_topic_name(topic))
        camera.labels_pub, camera.overlay_pub, camera.latency_pub, camera.info_pub = [
            node.create_publisher(kind, f'{prefix}/{output}', qos_depth)
            for output, (kind, qos_depth) in outputs.items()]
        info_topic = base.rsplit('/', 1)[0] + '/camera_info' if '/' in base.strip('/') \
            else 'camera_info'
        node.create_subscription(
            CameraInfo, info_topic, lambda msg, c=camera: setattr(c, 'camera_info', msg),
            QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        node.get_logger().info(f'camera {name!r}: {camera.topic} -> '
                               f'{node.resolve_topic_name(prefix + "/labels")}, '
                               f'{node.resolve_topic_name(prefix + "/overlay")}')
        cameras.append(camera)
    return cameras
