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
The node's frame pipeline: two worker threads, one frame in each, so consecutive frames overlap.

- 'farsee-infer' takes the newest frame from the mailbox, decodes it, makes the network's input
  and runs the forward pass (ONNX Runtime and PyTorch release the GIL while they compute);
- 'farsee-publish' turns the logits into full-resolution labels, publishes them, renders and
  publishes the overlay, and writes the frame's latency record.

The hand-off between the two holds one frame. The infer thread takes the next frame only after
it handed the last one over, so frames wait in the mailbox (newest wins, a replaced one is a
drop) and never in a queue: the latest-frame-only semantics and every-frame accounting stay.
With `pipeline` false both stages run in one thread, one frame at a time (the reference).
"""

import queue
import threading
import time
from typing import Any, Callable, List, Optional

from rclpy.time import Time

from .conversions import InvalidImage, labels_to_image, overlay_to_image
from .diagnostics import latency_record

_STOP = object()


class FramePipeline:
    """Runs the node's frames through the Segmenter's stages on one or two threads."""

    def __init__(self, node: Any, pipelined: bool):
        self.node = node
        self.pipelined = pipelined
        self._handoff: 'queue.Queue[Any]' = queue.Queue(maxsize=1)
        self._stopping = False
        self._publishing = False   # the publish thread has a frame in hand
        self._threads: List[threading.Thread] = []

    def start(self) -> None:
        targets = [('farsee-infer', self._infer_loop)]
        if self.pipelined:
            targets.append(('farsee-publish', self._publish_loop))
        self._threads = [threading.Thread(target=target, name=name, daemon=True)
                         for name, target in targets]
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float = 1.0) -> None:
        """Stop both threads; each finishes at most the frame in hand."""
        self._stopping = True
        self.node.mailbox.close()
        self._put(_STOP, force=True)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0.05))

    # ---------------------------------------------------------------- threads
    def _infer_loop(self) -> None:
        node = self.node
        # Warm up here, in the thread that runs every forward pass (CUDA state is per thread);
        # frames arriving meanwhile wait in the mailbox (newest wins).
        self._warm_sizes = set()
        try:
            node.segmenter.warmup()
        except Exception as exc:  # noqa: B902 - a device that fails here fails every frame
            node.fail(f'warm-up failed: {type(exc).__name__}: {exc}')
            return
        while True:
            taken = node.mailbox.take()
            if taken is None:   # closed
                self._put(_STOP, force=True)
                return
            name, msg, since = taken
            work = self._guarded(name, lambda: self._infer(node.cameras[name], msg, since))
            if work is _STOP:
                return
            if work is None:
                continue
            if not self.pipelined:
                if self._guarded(name, lambda: self._publish(*work)) is _STOP:
                    return
            elif not self._put(work):
                return

    def _publish_loop(self) -> None:
        while True:
            work = self._handoff.get()
            if work is _STOP or self._stopping:
                return
            self._publishing = True
            try:
                done = self._guarded(work[0].name, lambda: self._publish(*work))
            finally:
                self._publishing = False
            if done is _STOP:
                self._stopping = True
                self.node.mailbox.close()
                return

    def _put(self, work: Any, force: bool = False) -> bool:
        """Hand `work` to the publish thread, waiting while it is busy; False when stopping."""
        if not self.pipelined:
            return True
        while force or not self._stopping:
            try:
                self._handoff.put(work, timeout=0.1)
                return True
            except queue.Full:
                if force:
                    try:   # make room for the stop mark: a frame left now is shutdown's
                        self._handoff.get_nowait()
                    except queue.Empty:
                        pass
        return False

    def _guarded(self, camera: str, step: Callable[[], Any]) -> Any:
        """Run one frame's step; count its failure, or return _STOP when the node must end."""
        node = self.node
        try:
            return step()
        except Exception as exc:  # noqa: B902 - the threads must outlive any one frame
            if not node.context.ok():
                return _STOP   # Ctrl-C or shutdown: the publishers' context is gone
            error = f'{type(exc).__name__}: {exc}'
            if node.is_fatal(exc):
                node.fail(error)
                return _STOP
            node.mailbox.count_error(camera, error)
            node.get_logger().error(f'{node.cameras[camera].topic}: {error}',
                                    throttle_duration_sec=5.0)
            return None

    # ---------------------------------------------------------------- the two stages
    def _infer(self, camera: Any, msg: Any, since: float) -> Optional[tuple]:
        """Decode, prepare and run the network on one frame; None when it was not usable."""
        node = self.node
        start = time.perf_counter()
        try:
            frame = node.decode(msg, node.params['max_pixels'])
        except InvalidImage as exc:
            node.mailbox.count_invalid(camera.name, str(exc))
            node.warn_invalid(camera, exc)
            return None
        decode_ms = (time.perf_counter() - start) * 1e3
        segmenter = node.segmenter
        size = frame.pixels.shape[:2]
        if segmenter.device.type == 'cuda' and size not in self._warm_sizes:
            self._warm_sizes.add(size)   # cuDNN picks its kernels for this frame size once
            segmenter.warmup(runs=1, frame_size=size)
        staged = segmenter.infer(segmenter.prepare(frame.pixels, frame.color_order),
                                 share_cpu=self._publishing)
        times = {'queue': (start - since) * 1e3, 'decode': decode_ms}
        return camera, msg, staged, times, start, time.perf_counter()

    def _publish(self, camera: Any, msg: Any, staged: Any, times: dict, start: float,
                 handed: float) -> None:
        """Labels, overlay and their messages for one inferred frame; count it processed."""
        node = self.node
        taken = time.perf_counter()
        want_overlay = (node.params['publish_overlay']
                        and camera.overlay_pub.get_subscription_count() > 0)
        publish_ms = []

        def publish_labels(labels: Any) -> None:   # before the overlay is rendered
            started = time.perf_counter()
            if node.params['publish_labels']:
                camera.labels_pub.publish(labels_to_image(labels, msg.header))
            if camera.camera_info is not None:
                info = camera.camera_info
                info.header = msg.header   # outputs keep the input's size: no rescaling needed
                camera.info_pub.publish(info)
            publish_ms.append((time.perf_counter() - started) * 1e3)

        result = node.segmenter.finish(staged, overlay_alpha=node.params['overlay_alpha'],
                                       overlay=want_overlay, on_labels=publish_labels)
        if not result.finite:
            error = 'the model produced NaN or inf logits; nothing published for this frame'
            node.mailbox.count_error(camera.name, error, non_finite=True)
            node.get_logger().error(f'{camera.topic}: {error}', throttle_duration_sec=5.0)
            return
        publish_start = time.perf_counter()
        if want_overlay:
            camera.overlay_pub.publish(
                overlay_to_image(result.overlay, result.overlay_order, msg.header))
        done = time.perf_counter()
        stages = dict(result.timings_ms, **times, handoff=(taken - handed) * 1e3,
                      publish=sum(publish_ms) + (done - publish_start) * 1e3,
                      processing=(done - start) * 1e3)
        stages['end_to_end'] = \
            (node.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds / 1e6
        node.mailbox.count_processed(camera.name, stages['end_to_end'], stages)
        if node.params['publish_latency']:
            camera.latency_pub.publish(latency_record(
                node.get_name(), node.get_fully_qualified_name(), camera.topic, msg.header,
                stages))
