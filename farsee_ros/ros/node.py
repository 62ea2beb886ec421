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

The ROS wiring: parameters, model loading, topics, timers and the worker thread. The
latest-frame hand-off and counters live in mailbox.py, the QoS matching in qos.py, the
diagnostics messages in diagnostics.py; decisions about pixels in the Segmenter (engine/)
and the message conversion (conversions.py).
"""

from dataclasses import dataclass
import os
import threading
import time
from typing import Any, Dict, List, Mapping, Optional

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from .conversions import check_compressed, check_image, compressed_to_frame, image_to_frame, \
    InvalidImage, labels_to_image, overlay_to_image
from .diagnostics import camera_status, latency_record
from .mailbox import Mailbox
from ..model.checkpoint import CheckpointError
from .parameters import camera_names, invalid_reason, NODE_NAME, OUTPUT_TOPICS, PARAMETERS
from .qos import incompatible_qos_warning, reliability_to_subscribe, subscription_qos
from .resources import default_model_path

_TYPES = {'bool': ParameterType.PARAMETER_BOOL, 'int': ParameterType.PARAMETER_INTEGER,
          'double': ParameterType.PARAMETER_DOUBLE, 'string': ParameterType.PARAMETER_STRING,
          'string[]': ParameterType.PARAMETER_STRING_ARRAY}


class ConfigError(Exception):
    """A start-up problem (parameter, model, device) reported as one line, then exit 1."""


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


def _descriptor(spec) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(
        name=spec.name, type=_TYPES[spec.type_name], description=spec.description,
        read_only=spec.read_only, additional_constraints=f'accepted: {spec.accepted}')
    if spec.int_range:
        descriptor.integer_range = [IntegerRange(from_value=spec.int_range[0],
                                                 to_value=spec.int_range[1], step=0)]
    if spec.float_range:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=spec.float_range[0], to_value=spec.float_range[1], step=0.0)]
    return descriptor


class SegmentNode(Node):
    """Segments every camera's newest frame with one worker thread and publishes the results."""

    def __init__(self, **kwargs: Any):
        super().__init__(NODE_NAME, **kwargs)
        self._worker: Optional[threading.Thread] = None
        self.fatal_error: Optional[str] = None   # set when the node must exit with code 1
        try:
            self._set_up()
        except BaseException:   # a ConfigError, or Ctrl-C while the model loads
            # main() never receives a half-built node: release its rcl handles here, before
            # the context shuts down (left to garbage collection at exit, they can crash it).
            self.close()
            raise

    def _set_up(self) -> None:
        self.params = self._declare_parameters()
        self.segmenter = self._load_segmenter()
        if self.params['image_transport'] == 'compressed':
            self._msg_type, self._check, self._decode = \
                CompressedImage, check_compressed, compressed_to_frame
        else:
            self._msg_type, self._check, self._decode = Image, check_image, image_to_frame
        self.cameras = {camera.name: camera for camera in self._make_cameras()}
        self.mailbox = Mailbox(list(self.cameras))
        self._period_started = time.monotonic()
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._try_subscribe()
        self.create_timer(0.5, self._try_subscribe)
        self.create_timer(self.params['diagnostics_period'], self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name='farsee-worker', daemon=True)
        self._worker.start()

    def _declare_parameters(self) -> Dict[str, Any]:
        values = {}
        for spec in PARAMETERS:
            try:
                value = self.declare_parameter(spec.name, spec.default,
                                               _descriptor(spec)).value
            except Exception as exc:  # noqa: B902 - rclpy raises several kinds here
                raise ConfigError(f'invalid parameter {spec.name}: {exc}; accepted: '
                                  f'{spec.accepted}') from None
            if spec.type_name == 'string[]':
                value = list(value)
            reason = invalid_reason(spec.name, value)
            if reason:
                raise ConfigError(f'invalid parameter {reason}')
            values[spec.name] = value
        return values

    def _load_segmenter(self):
        from ..engine import Segmenter   # torch: imported here, where Ctrl-C is handled

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
                                                  input_size=size)
        except (CheckpointError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        if segmenter.device_warning:
            self.get_logger().warning(segmenter.device_warning)
        self.model_path = path
        self._engine_values = {   # for /diagnostics
            'device': str(segmenter.device), 'precision': segmenter.precision, 'model': path,
            'backend': segmenter.description,
            'input_size': f'{segmenter.input_size[0]}x{segmenter.input_size[1]}'}
        meta = segmenter.metadata
        self.get_logger().info(
            f"model {path} ({meta['variant']}, {len(meta['class_names'])} classes, "
            f"{meta['dataset']}), {segmenter.device} {segmenter.precision}, input "
            f'{segmenter.input_size[0]}x{segmenter.input_size[1]}; runs on '
            f'{segmenter.description} (backend {self.params["backend"]}: {segmenter.why})')
        return segmenter

    def _make_cameras(self) -> List[Camera]:
        sources = self.params['image_topics']
        single = len(sources) == 1
        depth = self.params['qos_depth']
        outputs = {'labels': (Image, depth), 'overlay': (Image, depth),
                   'latency': (DiagnosticArray, 10), 'camera_info': (CameraInfo, depth)}
        assert set(outputs) == {topic[0] for topic in OUTPUT_TOPICS}
        cameras = []
        for name, source in zip(camera_names(sources), sources):
            base = source.rstrip('/')
            topic = base + '/compressed' if self._msg_type is CompressedImage \
                and not base.endswith('/compressed') else base
            prefix = '~' if single else f'~/{name}'
            camera = Camera(name=name, topic=self.resolve_topic_name(topic))
            camera.labels_pub, camera.overlay_pub, camera.latency_pub, camera.info_pub = [
                self.create_publisher(kind, f'{prefix}/{output}', qos_depth)
                for output, (kind, qos_depth) in outputs.items()]
            info_topic = base.rsplit('/', 1)[0] + '/camera_info' if '/' in base.strip('/') \
                else 'camera_info'
            self.create_subscription(
                CameraInfo, info_topic, lambda msg, c=camera: setattr(c, 'camera_info', msg),
                QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
            self.get_logger().info(f'camera {name!r}: {camera.topic} -> '
                                   f'{self.resolve_topic_name(prefix + "/labels")}, '
                                   f'{self.resolve_topic_name(prefix + "/overlay")}')
            cameras.append(camera)
        return cameras

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
            self._warn_invalid(camera, exc)
            return
        self.mailbox.put(camera.name, msg, time.perf_counter())

    def _warn_invalid(self, camera: Camera, exc: InvalidImage) -> None:
        self.get_logger().warning(f'{camera.topic}: invalid frame: {exc}',
                                  throttle_duration_sec=5.0)

    def _work(self) -> None:
        # Warm up here, in the thread that runs every frame (CUDA state is per thread); frames
        # arriving meanwhile wait in the mailbox (newest wins).
        self._warm_sizes = set()
        try:
            self.segmenter.warmup()
        except Exception as exc:  # noqa: B902 - a device that fails here fails every frame
            self._fail(f'warm-up failed: {type(exc).__name__}: {exc}')
            return
        while True:
            taken = self.mailbox.take()
            if taken is None:   # closed
                return
            name, msg, since = taken
            try:
                self._process(self.cameras[name], msg, since)
            except Exception as exc:  # noqa: B902 - the worker must outlive any one frame
                if not self.context.ok():
                    return   # Ctrl-C or shutdown: the publishers' context is gone
                if self._is_fatal(exc):
                    self._fail(f'{type(exc).__name__}: {exc}')
                    return
                error = f'{type(exc).__name__}: {exc}'
                self.mailbox.count_error(name, error)
                self.get_logger().error(f'{self.cameras[name].topic}: {error}',
                                        throttle_duration_sec=5.0)

    def _process(self, camera: Camera, msg: Any, since: float) -> None:
        start = time.perf_counter()
        try:
            frame = self._decode(msg, self.params['max_pixels'])
        except InvalidImage as exc:
            self.mailbox.count_invalid(camera.name, str(exc))
            self._warn_invalid(camera, exc)
            return
        decode_ms = (time.perf_counter() - start) * 1e3
        want_overlay = (self.params['publish_overlay']
                        and camera.overlay_pub.get_subscription_count() > 0)
        size = frame.pixels.shape[:2]
        if self.segmenter.device.type == 'cuda' and size not in self._warm_sizes:
            self._warm_sizes.add(size)   # cuDNN picks its kernels for this frame size once
            self.segmenter.warmup(runs=1, frame_size=size)
        publish_ms = []

        def publish_labels(labels: Any) -> None:   # before the overlay is rendered
            started = time.perf_counter()
            if self.params['publish_labels']:
                camera.labels_pub.publish(labels_to_image(labels, msg.header))
            if camera.camera_info is not None:
                info = camera.camera_info
                info.header = msg.header   # outputs keep the input's size: no rescaling needed
                camera.info_pub.publish(info)
            publish_ms.append((time.perf_counter() - started) * 1e3)

        try:
            result = self.segmenter.segment(frame.pixels, frame.color_order,
                                            overlay_alpha=self.params['overlay_alpha'],
                                            overlay=want_overlay, on_labels=publish_labels)
        except Exception as exc:  # noqa: B902 - report any inference failure, keep running
            if self._is_fatal(exc) or not self.context.ok():
                raise   # a dead device, or shutdown while the labels were being published
            error = f'{type(exc).__name__}: {exc}'
            self.mailbox.count_error(camera.name, error)
            self.get_logger().error(f'{camera.topic}: inference failed: {error}',
                                    throttle_duration_sec=5.0)
            return
        if not result.finite:
            error = 'the model produced NaN or inf logits; nothing published for this frame'
            self.mailbox.count_error(camera.name, error, non_finite=True)
            self.get_logger().error(f'{camera.topic}: {error}', throttle_duration_sec=5.0)
            return
        publish_start = time.perf_counter()
        if want_overlay:
            camera.overlay_pub.publish(
                overlay_to_image(result.overlay, result.overlay_order, msg.header))
        done = time.perf_counter()
        stages = dict(result.timings_ms, decode=decode_ms,
                      publish=sum(publish_ms) + (done - publish_start) * 1e3)
        stages['processing'] = (done - start) * 1e3
        stages['queue'] = (start - since) * 1e3
        end_to_end = (self.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds / 1e6
        stages['end_to_end'] = end_to_end
        self.mailbox.count_processed(camera.name, end_to_end)
        if self.params['publish_latency']:
            camera.latency_pub.publish(latency_record(
                self.get_name(), self.get_fully_qualified_name(), camera.topic, msg.header,
                stages))

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

    # ---------------------------------------------------------------- parameters at runtime
    def _validate_parameters(self, parameters: List[Any]) -> SetParametersResult:
        for parameter in parameters:
            reason = invalid_reason(parameter.name, parameter.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: List[Any]) -> None:
        for parameter in parameters:
            if parameter.name in self.params:
                self.params[parameter.name] = parameter.value

    @staticmethod
    def _is_fatal(exc: BaseException) -> bool:
        from ..engine import is_fatal_device_error
        return is_fatal_device_error(exc)

    def _fail(self, error: str) -> None:
        """End the node on an error every later frame would repeat (a sticky CUDA error)."""
        self.fatal_error = error
        self.get_logger().fatal(f'{error}: the device is unusable until the process restarts; '
                                'exiting with code 1 (launch respawn=True restarts the node)')
        self.context.try_shutdown()

    def close(self) -> None:
        """Stop the worker (it finishes at most the frame in hand) and destroy the node."""
        if self._worker is not None:
            self.mailbox.close()
            self._worker.join(timeout=1.0)
        self.destroy_node()
