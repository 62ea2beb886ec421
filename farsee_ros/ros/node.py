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

The ROS edge: parameters, QoS, topics, the latest-frame worker and diagnostics. Decisions
about pixels live in the Segmenter (segmenter.py) and the message conversion
(conversions.py).
"""

from dataclasses import dataclass, field
import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)
import rclpy
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from .conversions import check_compressed, check_image, compressed_to_frame, image_to_frame, \
    InvalidImage, labels_to_image, overlay_to_image
from ..model.checkpoint import CheckpointError
from .parameters import camera_names, invalid_reason, LATENCY_STAGES, NODE_NAME, \
    OUTPUT_TOPICS, PARAMETERS
from .resources import default_model_path
from ..engine import Segmenter

_TYPES = {'bool': ParameterType.PARAMETER_BOOL, 'int': ParameterType.PARAMETER_INTEGER,
          'double': ParameterType.PARAMETER_DOUBLE, 'string': ParameterType.PARAMETER_STRING,
          'string[]': ParameterType.PARAMETER_STRING_ARRAY}
_RELIABILITY = {'reliable': ReliabilityPolicy.RELIABLE,
                'best_effort': ReliabilityPolicy.BEST_EFFORT}


class ConfigError(Exception):
    """A start-up problem (parameter, model, device) reported as one line, then exit 1."""


@dataclass
class Camera:
    """One input stream: its topics, publishers, newest pending frame and counters."""

    name: str
    topic: str
    subscription: Any = None
    reliability: Optional[str] = None
    pending: Any = None
    pending_since: float = 0.0
    camera_info: Optional[CameraInfo] = None
    received: int = 0
    processed: int = 0
    dropped: int = 0
    invalid: int = 0
    errors: int = 0
    lost: int = 0
    last_invalid: str = ''
    last_error: str = ''
    latencies_ms: List[float] = field(default_factory=list)   # end to end, this period
    period_start: Dict[str, int] = field(default_factory=dict)
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
        try:
            self.params = self._declare_parameters()
            self.segmenter = self._load_segmenter()
        except ConfigError:
            # main() never receives a half-built node: release its rcl handles here, before
            # the context shuts down (left to garbage collection at exit, they can crash it).
            self.destroy_node()
            raise
        if self.params['image_transport'] == 'compressed':
            self._msg_type, self._check, self._decode = \
                CompressedImage, check_compressed, compressed_to_frame
        else:
            self._msg_type, self._check, self._decode = Image, check_image, image_to_frame
        self.cameras = self._make_cameras()
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._next_camera = 0
        self._period_started = time.monotonic()
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._try_subscribe()
        self.create_timer(0.5, self._try_subscribe)
        self.create_timer(self.params['diagnostics_period'], self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name='farsee-worker', daemon=True)
        self._worker.start()

    # ---------------------------------------------------------------- set-up
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

    def _load_segmenter(self) -> Segmenter:
        path = self.params['model_path'] or default_model_path()
        size = None
        if self.params['input_height'] or self.params['input_width']:
            if not (self.params['input_height'] and self.params['input_width']):
                raise ConfigError('set both input_height and input_width, or neither (0 = the '
                                  "checkpoint's input size)")
            size = [self.params['input_height'], self.params['input_width']]
        if not os.path.isfile(path):
            hint = '' if self.params['model_path'] else ' (the default model; set model_path)'
            raise ConfigError(f'model_path: checkpoint not found: {path}{hint}')
        try:
            segmenter = Segmenter.from_checkpoint(path, device=self.params['device'],
                                                  precision=self.params['precision'],
                                                  input_size=size)
        except (CheckpointError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        if segmenter.device_warning:
            self.get_logger().warning(segmenter.device_warning)
        segmenter.warmup()
        self.model_path = path
        meta = segmenter.metadata
        self.get_logger().info(
            f"model {path} ({meta['variant']}, {len(meta['class_names'])} classes, "
            f"{meta['dataset']}), {segmenter.device} {segmenter.precision}, input "
            f'{segmenter.input_size[0]}x{segmenter.input_size[1]}')
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
    def _offered_reliability(self, topic: str) -> Optional[str]:
        publishers = self.get_publishers_info_by_topic(topic)
        if not publishers:
            return None
        if all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers):
            return 'reliable'
        return 'best_effort'   # compatible with every publisher, as ros2 topic echo chooses

    def _try_subscribe(self) -> None:
        """Create (or, in auto mode, re-create) subscriptions once the camera's QoS is known."""
        wanted = self.params['qos_reliability']
        for camera in self.cameras:
            if wanted == 'auto':
                offered = self._offered_reliability(camera.topic)
                if offered is None or (camera.subscription is not None
                                       and offered == camera.reliability):
                    if offered is None and camera.subscription is None:
                        self.get_logger().info(
                            f'waiting for a publisher on {camera.topic} to match its QoS '
                            '(qos_reliability: auto)', once=True)
                    continue
                reliability = offered
            elif camera.subscription is None:
                reliability = wanted
            else:
                continue
            if camera.subscription is not None:
                self.destroy_subscription(camera.subscription)
            self._subscribe(camera, reliability)

    def _subscribe(self, camera: Camera, reliability: str) -> None:
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.params['qos_depth'],
                         reliability=_RELIABILITY[reliability],
                         durability=DurabilityPolicy.VOLATILE)
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda event, c=camera: self._on_incompatible_qos(c, event),
            message_lost=lambda event, c=camera: self._on_message_lost(c, event))
        camera.subscription = self.create_subscription(
            self._msg_type, camera.topic, lambda msg, c=camera: self._on_image(c, msg), qos,
            event_callbacks=events)
        camera.reliability = reliability
        self.get_logger().info(f'subscribed to {camera.topic} ({self._msg_type.__name__}, '
                               f'{reliability}, depth {qos.depth})')

    def _on_incompatible_qos(self, camera: Camera, event: Any) -> None:
        offers = sorted({f'{p.node_namespace.rstrip("/")}/{p.node_name} offers '
                         f'{p.qos_profile.reliability.name.lower()}'
                         for p in self.get_publishers_info_by_topic(camera.topic)})
        self.get_logger().warning(
            f'incompatible QoS on {camera.topic} ({event.last_policy_kind.name}): this '
            f'subscription requests {camera.reliability}, but '
            f'{"; ".join(offers) or "a publisher offers otherwise"}; set qos_reliability to '
            'auto or best_effort', throttle_duration_sec=5.0)

    def _on_message_lost(self, camera: Camera, event: Any) -> None:
        """Count frames the middleware reports lost before they reached this node."""
        with self._lock:
            camera.lost += event.total_count_change

    # ---------------------------------------------------------------- frames
    def _on_image(self, camera: Camera, msg: Any) -> None:
        """
        Keep only the newest valid frame per camera; a frame replaced before it ran is a drop.

        Malformed messages are rejected here by a metadata check (microseconds), so each one
        is counted as invalid and none displaces a valid frame waiting for the worker.
        """
        try:
            self._check(msg, self.params['max_pixels'])
        except InvalidImage as exc:
            self._count_invalid(camera, exc)
            return
        with self._lock:
            camera.received += 1
            if camera.pending is not None:
                camera.dropped += 1
            camera.pending = msg
            camera.pending_since = time.perf_counter()
            self._lock.notify()

    def _count_invalid(self, camera: Camera, exc: InvalidImage) -> None:
        with self._lock:
            camera.received += 1
            camera.invalid += 1
            camera.last_invalid = str(exc)
        self.get_logger().warning(f'{camera.topic}: invalid frame: {exc}',
                                  throttle_duration_sec=5.0)

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                camera = self._take_pending()
                while camera is None and not self._stop.is_set():
                    self._lock.wait(timeout=0.2)
                    camera = self._take_pending()
                if camera is None:
                    return
                msg, since = camera.pending, camera.pending_since
                camera.pending = None
            self._process(camera, msg, since)

    def _take_pending(self) -> Optional[Camera]:
        count = len(self.cameras)
        for i in range(count):
            camera = self.cameras[(self._next_camera + i) % count]
            if camera.pending is not None:
                self._next_camera = (self._next_camera + i + 1) % count
                return camera
        return None

    def _process(self, camera: Camera, msg: Any, since: float) -> None:
        start = time.perf_counter()
        try:
            frame = self._decode(msg, self.params['max_pixels'])
        except InvalidImage as exc:
            self._count_invalid(camera, exc)
            return
        decode_ms = (time.perf_counter() - start) * 1e3
        want_overlay = (self.params['publish_overlay']
                        and camera.overlay_pub.get_subscription_count() > 0)
        try:
            result = self.segmenter.segment(frame.pixels, frame.color_order,
                                            overlay_alpha=self.params['overlay_alpha'],
                                            overlay=want_overlay)
        except Exception as exc:  # noqa: B902 - report any inference failure, keep running
            with self._lock:
                camera.errors += 1
                camera.last_error = f'{type(exc).__name__}: {exc}'
            self.get_logger().error(f'{camera.topic}: inference failed: {camera.last_error}',
                                    throttle_duration_sec=5.0)
            return
        publish_start = time.perf_counter()
        if self.params['publish_labels']:
            camera.labels_pub.publish(labels_to_image(result.labels, msg.header))
        if want_overlay:
            camera.overlay_pub.publish(
                overlay_to_image(result.overlay, result.overlay_order, msg.header))
        if camera.camera_info is not None:
            info = camera.camera_info
            info.header = msg.header   # outputs keep the input's size: no rescaling needed
            camera.info_pub.publish(info)
        done = time.perf_counter()
        stages = dict(result.timings_ms, decode=decode_ms,
                      publish=(done - publish_start) * 1e3)
        stages['processing'] = (done - start) * 1e3
        stages['queue'] = (start - since) * 1e3
        end_to_end = (self.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds / 1e6
        stages['end_to_end'] = end_to_end
        with self._lock:
            camera.processed += 1
            camera.latencies_ms.append(end_to_end)
        if self.params['publish_latency']:
            camera.latency_pub.publish(self._latency_message(camera, msg.header, stages))

    def _latency_message(self, camera: Camera, header: Any,
                         stages: Dict[str, float]) -> DiagnosticArray:
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK, name=f'{self.get_name()}: latency {camera.topic}',
            message='per-frame latency, ms', hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=f'{k}_ms', value=f'{stages[k]:.3f}') for k in LATENCY_STAGES])
        return DiagnosticArray(header=header, status=[status])

    # ---------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        elapsed = max(now - self._period_started, 1e-6)
        self._period_started = now
        statuses = []
        with self._lock:
            snapshots = []
            for camera in self.cameras:
                counts = {k: getattr(camera, k) for k in
                          ('received', 'processed', 'dropped', 'invalid', 'errors', 'lost')}
                delta = {k: v - camera.period_start.get(k, 0) for k, v in counts.items()}
                camera.period_start = counts
                latencies, camera.latencies_ms = camera.latencies_ms, []
                snapshots.append((camera, counts, delta, latencies))
        for camera, counts, delta, latencies in snapshots:
            statuses.append(self._camera_status(camera, counts, delta, latencies, elapsed))
        array = DiagnosticArray(status=statuses)
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    def _camera_status(self, camera: Camera, counts: Dict[str, int], delta: Dict[str, int],
                       latencies: List[float], elapsed: float) -> DiagnosticStatus:
        input_rate, output_rate = delta['received'] / elapsed, delta['processed'] / elapsed
        expected = self.params['expected_rate_hz']
        level, problems = DiagnosticStatus.OK, []
        if delta['errors']:
            level = DiagnosticStatus.ERROR
            problems.append(f'{delta["errors"]} inference failures ({camera.last_error})')
        if delta['invalid']:
            level = max(level, DiagnosticStatus.WARN)
            problems.append(f'{delta["invalid"]} invalid frames ({camera.last_invalid})')
        if expected > 0 and output_rate < expected:
            level = max(level, DiagnosticStatus.WARN)
            problems.append(f'output {output_rate:.1f} Hz below expected {expected:g} Hz')
        if counts['received'] == 0:
            level = max(level, DiagnosticStatus.WARN)
            problems.append(f'no frames received on {camera.topic}'
                            + ('' if camera.subscription else ' (no publisher yet)'))
        values = {
            'topic': camera.topic,
            'input_rate_hz': f'{input_rate:.2f}', 'output_rate_hz': f'{output_rate:.2f}',
            'expected_rate_hz': f'{expected:g}',
        }
        if latencies:
            p50, p95 = np.percentile(latencies, [50, 95])
            values.update(latency_p50_ms=f'{p50:.2f}', latency_p95_ms=f'{p95:.2f}',
                          latency_max_ms=f'{max(latencies):.2f}')
        else:
            values.update(latency_p50_ms='nan', latency_p95_ms='nan', latency_max_ms='nan')
        values.update({f'frames_{k}': str(v) for k, v in counts.items()})
        values.update({f'period_{k}': str(v) for k, v in delta.items()})
        values.update(
            qos_reliability=str(camera.reliability), device=str(self.segmenter.device),
            precision=self.segmenter.precision, model=self.model_path,
            input_size=f'{self.segmenter.input_size[0]}x{self.segmenter.input_size[1]}',
            last_invalid_reason=camera.last_invalid, last_error=camera.last_error)
        message = '; '.join(problems) or (f'{output_rate:.1f} Hz, p50 {values["latency_p50_ms"]}'
                                          ' ms')
        return DiagnosticStatus(level=level, name=f'{self.get_name()}: {camera.topic}',
                                message=message, hardware_id=self.get_fully_qualified_name(),
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

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

    def close(self) -> None:
        """Stop the worker (it finishes at most the frame in hand) and destroy the node."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._worker.join(timeout=1.0)
        self.destroy_node()


def main(args: Optional[List[str]] = None) -> int:
    """Run the node until SIGINT / shutdown; exit 0, or 1 with one error line."""
    rclpy.init(args=args)
    node = None
    try:
        node = SegmentNode()
        rclpy.spin(node)
    except ConfigError as exc:
        rclpy.logging.get_logger(NODE_NAME).error(str(exc))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.close()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
