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

from contextlib import contextmanager
from dataclasses import dataclass, field
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple
import warnings

import numpy as np
import torch

from .backends import choose, TorchBackend
from .device import resolve_device, resolve_precision
from .postprocess import blend, class_argmax, colorize_blend, upsampled_argmax
from .preprocess import model_input

COLOR_ORDERS = ('rgb', 'bgr', 'rgba', 'bgra', 'mono')


@contextmanager
def torch_threads(count: Optional[int]) -> Iterator[None]:
    """Run PyTorch's CPU ops on `count` threads inside the block (None: leave them be)."""
    if count is None or count == torch.get_num_threads():
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
    pixels: torch.Tensor              # the frame on the device
    x: Optional[torch.Tensor]         # the network's input (None once inferred)
    logits: Optional[torch.Tensor] = None
    finite: Any = None                # a 0-d bool tensor: the logits held no NaN or inf
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
    """Runs FarSee-Net on frames: resize, forward (PyTorch or ONNX Runtime), labels, overlay."""

    def __init__(self, backend: Any, metadata: Mapping[str, Any], *,
                 input_size: Optional[Sequence[int]] = None, device_warning: Optional[str] = None,
                 why: str = ''):
        self.backend = backend
        self.device, self.dtype = backend.device, backend.dtype
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
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(norm['mean'], device=self.device).view(shape) * 255.0
        self._inv_std = 1.0 / (torch.tensor(norm['std'], device=self.device).view(shape) * 255.0)
        palette = torch.tensor(metadata['palette'], dtype=torch.uint8, device=self.device)
        self._palettes = {'rgb': palette, 'bgr': palette.flip(1).contiguous()}
        self._palettes_np = {order: p.cpu().numpy() for order, p in self._palettes.items()}
        self._events = backend.device.type == 'cuda' and not backend.native

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
        torch_device, warning = resolve_device(device)
        dtype = resolve_precision(precision, torch_device)
        size = tuple(input_size) if input_size else None
        runner, metadata, why = choose(path, backend, torch_device, dtype, size, threads,
                                       pipelined)
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
            torch.set_num_threads(self.backend.torch_threads)

    @property
    def precision(self) -> str:
        if self.backend.name == 'onnxruntime':
            return self.backend.precision
        return 'fp16' if self.dtype == torch.float16 else 'fp32'

    @property
    def description(self) -> str:
        """Say what runs the model, e.g. 'ONNX Runtime 1.32.0 int8 (CPU)'."""
        return self.backend.description

    def _stage(self):
        """Return a stage clock: wall time on the CPU, CUDA events on the GPU."""
        if not self._events:
            return time.perf_counter()
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
        # ONNX Runtime on the CPU has its own thread pool for the network; PyTorch's pool, left
        # at its size, would spin beside it on a small CPU (measured here: the forward 28 ms
        # instead of 17-20 ms at 288x384 on 2 cores), so PyTorch resizes on one thread.
        with torch_threads(self.backend.torch_threads):
            staged = self.infer(self.prepare(frame, color_order))
            return self.finish(staged, overlay_alpha=overlay_alpha, overlay=overlay,
                               on_labels=on_labels)

    @torch.inference_mode()
    def prepare(self, frame: np.ndarray, color_order: str = 'rgb') -> Staged:
        """Stage 1: check the frame and make the network's input (one host-to-device copy)."""
        if color_order not in COLOR_ORDERS:
            raise ValueError(f'invalid colour order {color_order!r}; accepted: '
                             f'{", ".join(COLOR_ORDERS)}')
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            raise ValueError(f'frame must be an HxW or HxWxC uint8 array, not {frame.dtype} '
                             f'with shape {frame.shape}')
        start = self._stage()
        height, width = frame.shape[:2]
        pixels = torch.from_numpy(frame).to(self.device, non_blocking=True)  # the one H2D copy
        if color_order == 'mono':
            x = pixels.reshape(1, 1, height, width)
        else:   # HxWxC viewed as 1xCxHxW (channels-last memory, the resize's fast layout)
            x = pixels[..., :3].permute(2, 0, 1).unsqueeze(0)
        x = model_input(x, self.input_size, self._mean, self._inv_std, self.dtype, color_order)
        return Staged(frame, color_order, pixels, x, clocks=[start, self._stage()])

    @torch.inference_mode()
    def infer(self, staged: Staged, share_cpu: bool = False) -> Staged:
        """
        Stage 2: the network's forward pass on a prepared frame.

        `share_cpu`: another stage is working meanwhile; a pipelined ONNX Runtime engine on the
        CPU then runs the session whose threads sleep between operators instead of spinning.
        """
        staged.logits = self.backend(staged.x, staged.frame.shape[:2], share_cpu)
        staged.x = None
        staged.finite = torch.isfinite(staged.logits).all()   # read in finish: no GPU sync here
        staged.clocks.append(self._stage())
        return staged

    @torch.inference_mode()
    def finish(self, staged: Staged, *, overlay_alpha: float = 0.5, overlay: bool = True,
               on_labels: Optional[Callable[[np.ndarray], None]] = None) -> Segmentation:
        """Stage 3: full-resolution labels (then `on_labels`), the overlay, and the times."""
        if not 0.0 <= overlay_alpha <= 1.0:
            raise ValueError(f'overlay_alpha must be within [0, 1], not {overlay_alpha}')
        frame, color_order, logits = staged.frame, staged.color_order, staged.logits
        height, width = frame.shape[:2]
        clocks = [self._stage()]   # its own start: time spent between stages is no stage's
        blended = None
        order = 'bgr' if color_order in ('bgr', 'bgra') else 'rgb'
        if self.backend.native:   # native logits on the CPU, upsampled exactly
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
            torch.cuda.synchronize(self.device)
            return [a.elapsed_time(b) for a, b in zip(clocks, clocks[1:])]
        return [(b - a) * 1e3 for a, b in zip(clocks, clocks[1:])]

    def warmup(self, runs: int = 2, frame_size: Tuple[int, int] = (480, 640)) -> None:
        """Run a few frames so the first real frame does not pay for lazy initialisation."""
        frame = np.zeros((*frame_size, 3), np.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for _ in range(runs):
                self.segment(frame)
