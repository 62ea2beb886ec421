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
segment_node: camera images in; full-resolution labels, overlays and latency out.

The ROS wiring: model loading, topics, subscriptions, timers. The parameters' declaration lives
in declare.py, the latest-frame hand-off and counters in mailbox.py, the worker threads in
pipeline.py, the QoS matching in qos.py, the diagnostics messages in diagnostics.py; decisions
about pixels in the Segmenter (engine/) and the message conversion (conversions.py).
"""

import os
import time
from typing import Any, Mapping, Optional

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from .cameras import Camera, make_cameras
from .conversions import check_compressed, check_image, compressed_to_frame, image_to_frame, \
    InvalidImage
from .declare import ConfigError, declare_parameters, validate_parameters
from .diagnostics import camera_status
from .mailbox import Mailbox
from .pipeline import FramePipeline
from .parameters import NODE_NAME
from .qos import incompatible_qos_warning, reliability_to_subscribe, subscription_qos
from .resources import default_model_path


class SegmentNode(Node):
    """Segments every camera's newest frame in a two-thread pipeline and publishes the results."""

    def __init__(self, **kwargs: Any):
        super().__init__(NODE_NAME, **kwargs)
        self._pipeline: Optional[FramePipeline] = None
        self.fatal_error: Optional[str] = None   # set when the node must exit with code 1
        try:
            self._set_up()
        except BaseException:   # a ConfigError, or Ctrl-C while the model loads
            # main() never receives a half-built node: release its rcl handles here, before
            # the context shuts down (left to garbage collection at exit, they can crash it).
            self.close()
            raise

    def _set_up(self) -> None:
        self.params = declare_parameters(self)
        self.segmenter = self._load_segmenter()
        if self.params['image_transport'] == 'compressed':
            self._msg_type, self._check, self.decode = \
                CompressedImage, check_compressed, compressed_to_frame
        else:
            self._msg_type, self._check, self.decode = Image, check_image, image_to_frame
        self.cameras = {camera.name: camera for camera in make_cameras(self, self._msg_type)}
        self.mailbox = Mailbox(list(self.cameras))
        self._period_started = time.monotonic()
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.add_on_set_parameters_callback(validate_parameters)
        self.add_post_set_parameters_callback(
            lambda changed: self.params.update({p.name: p.value for p in changed
                                                if p.name in self.params}))
        self._try_subscribe()
        self.create_timer(0.5, self._try_subscribe)
        self.create_timer(self.params['diagnostics_period'], self._publish_diagnostics)
        self._pipeline = FramePipeline(self, pipelined=self.params['pipeline'])
        self._pipeline.start()

    def _load_segmenter(self):
        # The engine (and PyTorch, for backend torch) imported here, where Ctrl-C is handled,
        # and after the parameters are checked. ONNX Runtime on the CPU imports no PyTorch.
        from ..engine import Segmenter
        from ..model.metadata import CheckpointError

        path = self.params['model_path'] or default_model_path()
        size = None
        if self.params['input_height'] or self.params['input_width']:
            if not (self.params['input_height'] and self.params['input_width']):
                raise ConfigError('set both input_height and input_width, or neither (0 = the '
                                  "checkpoint's input size)")
            size = [self.params['input_height'], self.params['input_width']]
        if not os.path.isfile(path):
            hint = '' if self.params['model_path'] else ' (the default model; set model_path)'
            raise ConfigError(f'model_path: model file not found: {path}{hint}')
        try:
            segmenter = Segmenter.from_checkpoint(path, backend=self.params['backend'],
                                                  device=self.params['device'],
                                                  precision=self.params['precision'],
                                                  input_size=size,
                                                  threads=self.params['inference_threads'],
                                                  pipelined=self.params['pipeline'])
        except (CheckpointError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        if segmenter.device_warning:
            self.get_logger().warning(segmenter.device_warning)
        self.model_path = path
        self._engine_values = {   # for /diagnostics
            'device': str(segmenter.device), 'precision': segmenter.precision, 'model': path,
            'backend': segmenter.description,
            'input_size': f'{segmenter.input_size[0]}x{segmenter.input_size[1]}',
            'pipeline': 'two threads' if self.params['pipeline'] else 'one thread',
            'inference_threads': str(self.params['inference_threads'] or 'auto')}
        segmenter.use_threads()
        meta = segmenter.metadata
        self.get_logger().info(
            f"model {path} ({meta['variant']}, {len(meta['class_names'])} classes, "
            f"{meta['dataset']}), {segmenter.device} {segmenter.precision}, input "
            f'{segmenter.input_size[0]}x{segmenter.input_size[1]}; runs on '
            f'{segmenter.description} (backend {self.params["backend"]}: {segmenter.why})')
        return segmenter

    # ---------------------------------------------------------------- QoS and subscriptions
    def _try_subscribe(self) -> None:
        """Create (or, in auto mode, re-create) subscriptions once the camera's QoS is known."""
        wanted = self.params['qos_reliability']
        for camera in self.cameras.values():
            publishers = self.get_publishers_info_by_topic(camera.topic) \
                if wanted == 'auto' else []
            reliability = reliability_to_subscribe(wanted, publishers, camera.reliability)
            if reliability is None:
                if wanted == 'auto' and not publishers and camera.subscription is None:
                    self.get_logger().info(
                        f'waiting for a publisher on {camera.topic} to match its QoS '
                        '(qos_reliability: auto)', once=True)
                continue
            if camera.subscription is not None:
                self.destroy_subscription(camera.subscription)
            self._subscribe(camera, reliability)

    def _subscribe(self, camera: Camera, reliability: str) -> None:
        qos = subscription_qos(reliability, self.params['qos_depth'])
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda event, c=camera: self._on_incompatible_qos(c, event),
            message_lost=lambda event, c=camera: self.mailbox.count_reported_lost(
                c.name, event.total_count_change))
        camera.subscription = self.create_subscription(
            self._msg_type, camera.topic,
            lambda msg, info, c=camera: self._on_image(c, msg, info), qos,
            event_callbacks=events)
        camera.reliability = reliability
        self.get_logger().info(f'subscribed to {camera.topic} ({self._msg_type.__name__}, '
                               f'{reliability}, depth {qos.depth})')

    def _on_incompatible_qos(self, camera: Camera, event: Any) -> None:
        self.get_logger().warning(incompatible_qos_warning(
            camera.topic, event.last_policy_kind.name, camera.reliability,
            self.get_publishers_info_by_topic(camera.topic)), throttle_duration_sec=5.0)

    # ---------------------------------------------------------------- frames
    def _on_image(self, camera: Camera, msg: Any, info: Mapping[str, Any]) -> None:
        """
        Keep only the newest valid frame per camera; a frame replaced before it ran is a drop.

        Malformed messages are rejected here by a metadata check (microseconds), so each one
        is counted as invalid and none displaces a valid frame waiting for the worker. The
        publisher's sequence numbers count the frames that never arrived (lost).
        """
        gid = info.get('publisher_gid')
        self.mailbox.arrived(camera.name, bytes(gid['data']) if gid else None,
                             info.get('publication_sequence_number'))
        try:
            self._check(msg, self.params['max_pixels'])
        except InvalidImage as exc:
            self.mailbox.put_invalid(camera.name, str(exc))
            self.warn_invalid(camera, exc)
            return
        self.mailbox.put(camera.name, msg, time.perf_counter())

    def warn_invalid(self, camera: Camera, exc: InvalidImage) -> None:
        self.get_logger().warning(f'{camera.topic}: invalid frame: {exc}',
                                  throttle_duration_sec=5.0)

    # ---------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        elapsed = max(now - self._period_started, 1e-6)
        self._period_started = now
        periods = self.mailbox.period()
        array = DiagnosticArray(status=[
            camera_status(self.get_name(), self.get_fully_qualified_name(), camera.topic,
                          periods[name], elapsed, expected_rate_hz=self.params['expected_rate_hz'],
                          reliability=camera.reliability, engine=self._engine_values)
            for name, camera in self.cameras.items()])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    @staticmethod
    def is_fatal(exc: BaseException) -> bool:
        from ..engine import is_fatal_device_error
        return is_fatal_device_error(exc)

    def fail(self, error: str) -> None:
        """End the node on an error every later frame would repeat (a sticky CUDA error)."""
        self.fatal_error = error
        self.get_logger().fatal(f'{error}: the device is unusable until the process restarts; '
                                'exiting with code 1 (launch respawn=True restarts the node)')
        self.context.try_shutdown()

    def close(self) -> None:
        """Stop the pipeline (each thread finishes at most the frame in hand); destroy the node."""
        if self._pipeline is not None:
            self._pipeline.close(timeout=1.0)
        self.destroy_node()
