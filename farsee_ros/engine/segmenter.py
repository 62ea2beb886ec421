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
The inference engine: a uint8 frame in; full-resolution labels, overlay and stage times out.

Used by the node, the tools and the benchmarks alike, so what is measured is what runs.
No ROS imports here.
"""

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple
import warnings

import numpy as np

from .backends import choose, TorchBackend
from .device import engine_device, precision_name
from .postprocess import blend, class_argmax, colorize_blend, full_resolution_labels, \
    upsampled_argmax
from .preprocess import host_model_input, model_input

COLOR_ORDERS = ('rgb', 'bgr', 'rgba', 'bgra', 'mono')


@contextmanager
def torch_threads(count: Optional[int]) -> Iterator[None]:
    """Run PyTorch's CPU ops on `count` threads inside the block (None: leave them be)."""
    if count is None:
        yield
        return
    import torch
    if count == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Staged:
    """A frame between the engine's stages: the frame, its input, its logits, stage clocks."""

    frame: np.ndarray
    color_order: str
    pixels: Any                       # the frame on the device (a tensor; None without PyTorch)
    x: Any                            # the network's input (None once inferred)
    logits: Any = None                # a tensor, or a numpy array from ONNX Runtime
    finite: Any = None                # 0-d bool: the logits held no NaN or inf
    clocks: List[Any] = field(default_factory=list)


@dataclass
class Segmentation:
    """One frame's result: labels (HxW uint8 class ids), overlay (HxWx3 uint8) and times."""

    labels: np.ndarray
    overlay: Optional[np.ndarray]
    overlay_order: str
    timings_ms: Dict[str, float] = field(default_factory=dict)
    finite: bool = True   # False: the logits held NaN or inf (labels then undefined)


class Segmenter:
    """
    Runs FarSee-Net on frames: resize, forward (PyTorch or ONNX Runtime), labels, overlay.

    Two stage sets, by backend: PyTorch's resize and tensors around the PyTorch backend (on
    the CPU or CUDA); numpy, Pillow and OpenCV around ONNX Runtime, so that a process running
    an ONNX model never imports PyTorch (some 500 MiB and 1.5 s less; docs/benchmarks.md).
    """

    def __init__(self, backend: Any, metadata: Mapping[str, Any], *,
                 input_size: Optional[Sequence[int]] = None, device_warning: Optional[str] = None,
                 why: str = ''):
        self.backend = backend
        self.device = backend.device
        self.host = not isinstance(backend, TorchBackend)   # the numpy stage set
        self.dtype = None if self.host else backend.dtype
        self.device_warning = device_warning
        self.metadata = dict(metadata)
        size = input_size or metadata['input_size']
        if len(size) != 2 or not all(isinstance(s, int) and s >= 32 for s in size):
            raise ValueError(f'invalid input size {size!r}; expected [height, width], '
                             'integers of at least 32')
        self.input_size = (int(size[0]), int(size[1]))
        self.why = why
        self.class_names = list(metadata['class_names'])
        norm = metadata['normalization']
        # In float32, as both stage sets compute it: (pixel - mean * 255) * (1 / (std * 255)).
        mean = np.asarray(norm['mean'], np.float32) * np.float32(255.0)
        inv_std = np.float32(1.0) / (np.asarray(norm['std'], np.float32) * np.float32(255.0))
        palette = np.asarray(metadata['palette'], np.uint8)
        self._palettes_np = {'rgb': palette, 'bgr': np.ascontiguousarray(palette[:, ::-1])}
        if self.host:
            self._mean, self._inv_std = mean, inv_std
        else:
            import torch
            where = backend.torch_device
            self._mean = torch.from_numpy(mean).to(where).view(1, 3, 1, 1)
            self._inv_std = torch.from_numpy(inv_std).to(where).view(1, 3, 1, 1)
            self._palettes = {order: torch.from_numpy(p).to(where)
                              for order, p in self._palettes_np.items()}
        self._events = self.device.type == 'cuda' and not backend.native

    @classmethod
    def from_checkpoint(cls, path: str, *, backend: str = 'auto', device: str = 'auto',
                        precision: str = 'auto', input_size: Optional[Sequence[int]] = None,
                        threads: int = 0, pipelined: bool = False) -> 'Segmenter':
        """
        Load a model file: a checkpoint (.pt) or an engine ONNX file (.onnx).

        `backend`: auto | torch | onnxruntime (see backends.py for what auto picks); `threads`:
        the forward pass's CPU threads (0 = every core); `pipelined`: the stages will run on
        threads of their own at once (see infer's `share_cpu`). Raises
        CheckpointError or ValueError with one line naming the file or value at fault.
        """
        where, warning = engine_device(device)
        size = tuple(input_size) if input_size else None
        runner, metadata, why = choose(path, backend, where, precision_name(precision, where),
                                       size, threads, pipelined)
        if isinstance(runner, TorchBackend):
            runner.model.fold_batchnorm()
        return cls(runner, metadata, input_size=input_size, device_warning=warning, why=why)

    def use_threads(self) -> None:
        """
        Size PyTorch's CPU pool for this engine once, for callers that run the stages.

        segment() sizes it around each call; a pipeline running prepare, infer and finish on
        several threads calls this once instead (the pool is the process's).
        """
        if self.backend.torch_threads is not None:
            import torch
            torch.set_num_threads(self.backend.torch_threads)

    @property
    def precision(self) -> str:
        """Say what the forward pass computes in: fp32 or fp16 (PyTorch), fp32 or int8 (ONNX)."""
        return self.backend.precision

    def _no_grad(self):
        """Return PyTorch's inference mode for the torch stage set; nothing for the numpy one."""
        if self.host:
            return nullcontext()
        import torch
        return torch.inference_mode()

    @property
    def description(self) -> str:
        """Say what runs the model, e.g. 'ONNX Runtime 1.32.0 int8 (CPU)'."""
        return self.backend.description

    def _stage(self):
        """Return a stage clock: wall time on the CPU, CUDA events on the GPU."""
        if not self._events:
            return time.perf_counter()
        import torch
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def segment(self, frame: np.ndarray, color_order: str = 'rgb', *,
                overlay_alpha: float = 0.5, overlay: bool = True,
                on_labels: Optional[Callable[[np.ndarray], None]] = None) -> Segmentation:
        """
        Segment one HxWxC (or HxW mono) uint8 frame; labels come back at the frame's HxW.

        `on_labels(labels)` is called as soon as the labels exist (and only if the logits were
        finite), before the overlay is rendered: the node publishes them there. Its own time
        is in no stage. The three stages (prepare, infer, finish) may also run on different
        threads, one frame in each, as the node's pipeline does.
        """
        # `threads`: PyTorch's pool at the engine's size around its stages (ONNX Runtime's
        # stages use none: numpy, Pillow and OpenCV).
        with torch_threads(self.backend.torch_threads):
            staged = self.infer(self.prepare(frame, color_order))
            return self.finish(staged, overlay_alpha=overlay_alpha, overlay=overlay,
                               on_labels=on_labels)

    def prepare(self, frame: np.ndarray, color_order: str = 'rgb') -> Staged:
        """Stage 1: check the frame and make the network's input (one host-to-device copy)."""
        if color_order not in COLOR_ORDERS:
            raise ValueError(f'invalid colour order {color_order!r}; accepted: '
                             f'{", ".join(COLOR_ORDERS)}')
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            raise ValueError(f'frame must be an HxW or HxWxC uint8 array, not {frame.dtype} '
                             f'with shape {frame.shape}')
        if color_order == 'mono' and frame.ndim == 3 and frame.shape[2] != 1:
            raise ValueError(f'a mono frame must be HxW or HxWx1, not shape {frame.shape}')
        start = self._stage()
        if self.host:
            x = host_model_input(frame, self.input_size, self._mean, self._inv_std, color_order)
            return Staged(frame, color_order, None, x, clocks=[start, self._stage()])
        import torch
        with torch.inference_mode():
            height, width = frame.shape[:2]
            pixels = torch.from_numpy(frame).to(self.backend.torch_device,
                                                non_blocking=True)  # the one H2D copy
            if color_order == 'mono':
                x = pixels.reshape(1, 1, height, width)
            else:   # HxWxC viewed as 1xCxHxW (channels-last memory, the resize's fast layout)
                x = pixels[..., :3].permute(2, 0, 1).unsqueeze(0)
            x = model_input(x, self.input_size, self._mean, self._inv_std, self.dtype,
                            color_order)
        return Staged(frame, color_order, pixels, x, clocks=[start, self._stage()])

    def infer(self, staged: Staged, share_cpu: bool = False) -> Staged:
        """
        Stage 2: the network's forward pass on a prepared frame.

        `share_cpu`: another stage is working meanwhile; a pipelined ONNX Runtime engine on the
        CPU then runs the session whose threads sleep between operators instead of spinning.
        """
        with self._no_grad():
            staged.logits = self.backend(staged.x, staged.frame.shape[:2], share_cpu)
            staged.x = None
            if self.host:
                staged.finite = np.isfinite(staged.logits).all()
            else:   # a 0-d tensor, read in finish: no GPU sync here
                import torch
                staged.finite = torch.isfinite(staged.logits).all()
        staged.clocks.append(self._stage())
        return staged

    def finish(self, staged: Staged, *, overlay_alpha: float = 0.5, overlay: bool = True,
               on_labels: Optional[Callable[[np.ndarray], None]] = None) -> Segmentation:
        """Stage 3: full-resolution labels (then `on_labels`), the overlay, and the times."""
        if not 0.0 <= overlay_alpha <= 1.0:
            raise ValueError(f'overlay_alpha must be within [0, 1], not {overlay_alpha}')
        with self._no_grad():
            return self._finish(staged, overlay_alpha, overlay, on_labels)

    def _finish(self, staged: Staged, overlay_alpha: float, overlay: bool,
                on_labels: Optional[Callable[[np.ndarray], None]]) -> Segmentation:
        frame, color_order, logits = staged.frame, staged.color_order, staged.logits
        height, width = frame.shape[:2]
        clocks = [self._stage()]   # its own start: time spent between stages is no stage's
        blended = None
        order = 'bgr' if color_order in ('bgr', 'bgra') else 'rgb'
        if self.host:             # numpy logits from ONNX Runtime, upsampled exactly
            labels_np = full_resolution_labels(logits, (height, width))
        elif self.backend.native:   # native logits on the CPU, upsampled exactly
            labels_np = upsampled_argmax(logits.float().cpu(), (height, width),
                                         class_argmax).numpy()
        else:                     # logits at the frame's size on the GPU
            labels = class_argmax(logits)
            labels_np = labels.cpu().numpy()
        clocks.append(self._stage())
        finite = bool(staged.finite)
        hook_ms = 0.0
        if on_labels is not None and finite:
            started = time.perf_counter()
            on_labels(labels_np)
            hook_ms = (time.perf_counter() - started) * 1e3
        if overlay and self.backend.native:   # OpenCV on the frame, in its own colour order
            blended = colorize_blend(frame, labels_np, self._palettes_np[order], overlay_alpha)
        elif overlay:
            pixels = staged.pixels
            base = (pixels.reshape(height, width, 1).expand(-1, -1, 3)
                    if color_order == 'mono' else pixels[..., :3])
            colours = self._palettes[order][labels.long()]
            blended = blend(base, colours, overlay_alpha).cpu().numpy()
        clocks.append(self._stage())
        spans = self._spans(staged.clocks) + self._spans(clocks)
        spans[-1] = max(spans[-1] - hook_ms, 0.0)
        times = dict(zip(('preprocess', 'inference', 'postprocess', 'overlay'), spans))
        return Segmentation(labels_np, blended, order, times, finite)

    def _spans(self, clocks: Sequence[Any]) -> List[float]:
        """Milliseconds between consecutive stage clocks."""
        if self._events:
            import torch
            torch.cuda.synchronize(self.backend.torch_device)
            return [a.elapsed_time(b) for a, b in zip(clocks, clocks[1:])]
        return [(b - a) * 1e3 for a, b in zip(clocks, clocks[1:])]

    def warmup(self, runs: int = 2, frame_size: Tuple[int, int] = (480, 640)) -> None:
        """Run a few frames so the first real frame does not pay for lazy initialisation."""
        frame = np.zeros((*frame_size, 3), np.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for _ in range(runs):
                self.segment(frame)
