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

from dataclasses import dataclass, field
import time
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from .model.checkpoint import load_checkpoint
from .model.network import FarSeeNet

COLOR_ORDERS = ('rgb', 'bgr', 'rgba', 'bgra', 'mono')
DEVICES = 'auto, cpu, cuda or cuda:N'
PRECISIONS = ('auto', 'fp32', 'fp16')
# Above this share of class-boundary pixels, upsampled_argmax interpolates everything.
BOUNDARY_FALLBACK = 0.15


def _source_index(out_size: int, in_size: int, device: torch.device):
    """Return PyTorch's bilinear (align_corners=False) source rows i0, i1 and weight of i1."""
    scale = in_size / out_size
    src = ((torch.arange(out_size, device=device, dtype=torch.float32) + 0.5) * scale
           - 0.5).clamp_(min=0.0)
    i0 = src.long().clamp_(max=in_size - 1)
    i1 = (i0 + 1).clamp_(max=in_size - 1)
    return i0, i1, src - i0


def upsampled_argmax(logits: torch.Tensor, size: Sequence[int],
                     argmax=lambda t: t.argmax(dim=0).to(torch.uint8)) -> torch.Tensor:
    """
    Return argmax over classes of the NxHxW bilinear upsampling of NxhxW `logits`, as uint8.

    Exact without building the full-resolution logits: where the four source pixels of an
    output pixel share one argmax, the interpolated logits are a convex combination of
    theirs, so that class stays the argmax. Only the other (class-boundary) pixels are
    interpolated. With more than BOUNDARY_FALLBACK of them (an untrained net's noise, say),
    everything is interpolated instead.
    """
    height, width = int(size[0]), int(size[1])
    classes, h, w = logits.shape
    low = argmax(logits)
    y0, y1, wy = _source_index(height, h, logits.device)
    x0, x1, wx = _source_index(width, w, logits.device)
    padded = F.pad(low[None, None].float(), (0, 1, 0, 1), mode='replicate')[0, 0].to(low.dtype)
    corner = padded[:-1, :-1]
    agree = (corner == padded[:-1, 1:]) & (corner == padded[1:, :-1]) & \
        (corner == padded[1:, 1:])
    # Every cell covers about the same number of output pixels, so the share of disagreeing
    # cells estimates the share of boundary pixels before any full-resolution work.
    if 1.0 - agree.float().mean().item() > BOUNDARY_FALLBACK:
        full = F.interpolate(logits[None], size=(height, width), mode='bilinear',
                             align_corners=False)[0]
        return argmax(full)
    # The cell of output pixel (Y, X) has its top-left source pixel at (y0[Y], x0[X]);
    # replicate padding matches the clamped i1 at the last row and column.
    labels = low.index_select(0, y0).index_select(1, x0)
    boundary = ~agree.index_select(0, y0).index_select(1, x0)
    rows, cols = boundary.nonzero(as_tuple=True)
    if rows.numel():
        # Gather whole logit vectors (rows of an h*w x N copy) rather than N strided planes.
        table = logits.permute(1, 2, 0).reshape(h * w, classes)
        ry0, ry1 = y0[rows] * w, y1[rows] * w
        cx0, cx1 = x0[cols], x1[cols]
        rwy, cwx = wy[rows, None].to(logits.dtype), wx[cols, None].to(logits.dtype)
        top = table[ry0 + cx0] * (1 - cwx) + table[ry0 + cx1] * cwx
        bottom = table[ry1 + cx0] * (1 - cwx) + table[ry1 + cx1] * cwx
        labels[rows, cols] = (top * (1 - rwy) + bottom * rwy).argmax(dim=1).to(torch.uint8)
    return labels


def model_input(pixels: torch.Tensor, size: Sequence[int], mean255: torch.Tensor,
                inv_std255: torch.Tensor, dtype: torch.dtype = torch.float32,
                color_order: str = 'rgb') -> torch.Tensor:
    """
    Turn Nx{1,3}xHxW uint8 pixels into the network's normalised input at `size` (H, W).

    The one preprocessing used by the engine, training and evaluation alike. The CPU resizes
    uint8 directly (its antialiased uint8 kernel is ~4x faster than float's); CUDA resizes
    float. Channel order is fixed after the resize, where it is cheap. `mean255` and
    `inv_std255` are Nx3x1x1-broadcastable, in 0-255 pixel units.
    """
    x = F.interpolate(pixels if pixels.device.type == 'cpu' else pixels.float(),
                      size=tuple(size), mode='bilinear', align_corners=False,
                      antialias=True).float()
    if color_order == 'mono':
        x = x.expand(-1, 3, -1, -1)
    elif color_order in ('bgr', 'bgra'):
        x = x.flip(1)
    return ((x - mean255) * inv_std255).to(dtype)


@dataclass
class Segmentation:
    """One frame's result: labels (HxW uint8 class ids), overlay (HxWx3 uint8) and times."""

    labels: np.ndarray
    overlay: Optional[np.ndarray]
    overlay_order: str
    timings_ms: Dict[str, float] = field(default_factory=dict)


def resolve_device(device: str) -> Tuple[torch.device, Optional[str]]:
    """Map 'auto' | 'cpu' | 'cuda' | 'cuda:N' to a torch device; also return a warning or None."""
    name = str(device).strip().lower()
    if name == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda'), None
        return torch.device('cpu'), 'device auto: CUDA is not available, running on the CPU'
    if name == 'cpu':
        return torch.device('cpu'), None
    if name == 'cuda' or name.startswith('cuda:'):
        index = 0
        if name != 'cuda':
            suffix = name[len('cuda:'):]
            if not suffix.isdigit():
                raise ValueError(f'invalid device {device!r}; accepted: {DEVICES}')
            index = int(suffix)
        if not torch.cuda.is_available():
            raise ValueError(f'device {device!r} requested but CUDA is not available here; '
                             "use 'auto' or 'cpu'")
        if index >= torch.cuda.device_count():
            raise ValueError(f'device {device!r}: only {torch.cuda.device_count()} CUDA '
                             'device(s) present')
        return torch.device('cuda', index), None
    raise ValueError(f'invalid device {device!r}; accepted: {DEVICES}')


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """'auto' is fp16 on CUDA and fp32 on the CPU; fp16 needs CUDA."""
    if precision not in PRECISIONS:
        raise ValueError(f'invalid precision {precision!r}; accepted: {", ".join(PRECISIONS)}')
    if precision == 'auto':
        return torch.float16 if device.type == 'cuda' else torch.float32
    if precision == 'fp16' and device.type != 'cuda':
        raise ValueError("precision 'fp16' needs a CUDA device; use 'fp32' or 'auto' on the CPU")
    return torch.float16 if precision == 'fp16' else torch.float32


class Segmenter:
    """Runs a FarSee-Net checkpoint on frames: resize on the device, forward, labels, overlay."""

    def __init__(self, model: FarSeeNet, metadata: Mapping[str, Any], *, device: str = 'auto',
                 precision: str = 'auto', input_size: Optional[Sequence[int]] = None):
        self.device, self.device_warning = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.metadata = dict(metadata)
        size = input_size or metadata['input_size']
        if len(size) != 2 or not all(isinstance(s, int) and s >= 32 for s in size):
            raise ValueError(f'invalid input size {size!r}; expected [height, width], '
                             'integers of at least 32')
        self.input_size = (int(size[0]), int(size[1]))
        self.model = model.to(self.device, self.dtype).eval()
        self.class_names = list(metadata['class_names'])
        norm = metadata['normalization']
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(norm['mean'], device=self.device).view(shape) * 255.0
        self._inv_std = 1.0 / (torch.tensor(norm['std'], device=self.device).view(shape) * 255.0)
        palette = torch.tensor(metadata['palette'], dtype=torch.uint8, device=self.device)
        self._palettes = {'rgb': palette, 'bgr': palette.flip(1).contiguous()}

    @classmethod
    def from_checkpoint(cls, path: str, **kwargs: Any) -> 'Segmenter':
        """Load a checkpoint file (see model.checkpoint) and wrap it."""
        model, metadata = load_checkpoint(path)
        return cls(model, metadata, **kwargs)

    @property
    def precision(self) -> str:
        return 'fp16' if self.dtype == torch.float16 else 'fp32'

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def segment(self, frame: np.ndarray, color_order: str = 'rgb', *,
                overlay_alpha: float = 0.5, overlay: bool = True) -> Segmentation:
        """Segment one HxWxC (or HxW mono) uint8 frame; labels come back at the frame's HxW."""
        if color_order not in COLOR_ORDERS:
            raise ValueError(f'invalid colour order {color_order!r}; accepted: '
                             f'{", ".join(COLOR_ORDERS)}')
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            raise ValueError(f'frame must be an HxW or HxWxC uint8 array, not {frame.dtype} '
                             f'with shape {frame.shape}')
        if not 0.0 <= overlay_alpha <= 1.0:
            raise ValueError(f'overlay_alpha must be within [0, 1], not {overlay_alpha}')
        height, width = frame.shape[:2]
        times: Dict[str, float] = {}

        start = time.perf_counter()
        pixels = torch.from_numpy(frame).to(self.device, non_blocking=True)  # the one H2D copy
        if color_order == 'mono':
            x = pixels.reshape(1, 1, height, width)
        else:   # HxWxC viewed as 1xCxHxW (channels-last memory, the resize's fast layout)
            x = pixels[..., :3].permute(2, 0, 1).unsqueeze(0)
        x = model_input(x, self.input_size, self._mean, self._inv_std, self.dtype, color_order)
        self._sync()
        times['preprocess'] = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        if self.device.type == 'cpu':   # logits at the network's own stride
            logits = self.model.native_logits(x)
        else:                           # logits at the frame's size (the model resizes)
            logits = self.model(x, [height, width])
        self._sync()
        times['inference'] = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        if self.device.type == 'cpu':
            labels = upsampled_argmax(logits[0].float(), (height, width), self._argmax)
        else:
            labels = self._argmax(logits[0])
        blended = None
        order = 'bgr' if color_order in ('bgr', 'bgra') else 'rgb'
        if overlay:   # blended in the frame's own colour order
            base = (pixels.reshape(height, width, 1).expand(-1, -1, 3) if color_order == 'mono'
                    else pixels[..., :3])
            colours = self._palettes[order][labels.long()]
            # Fixed-point blend, alpha in 1/128 steps: 255 * 128 still fits in int16.
            weight = int(round(overlay_alpha * 128))
            mixed = base.to(torch.int16) * (128 - weight) + colours.to(torch.int16) * weight
            blended = ((mixed + 64) >> 7).to(torch.uint8).cpu().numpy()
        labels_np = labels.cpu().numpy()
        times['postprocess'] = (time.perf_counter() - start) * 1e3
        return Segmentation(labels_np, blended, order, times)

    def _argmax(self, logits: torch.Tensor) -> torch.Tensor:
        """
        Return the class id (uint8) of the largest of N logits at every pixel of an NxHxW map.

        On the CPU torch's argmax over the channel dimension of a full-resolution map is very
        slow (350 ms for 11x1024x2048 on 2 cores); a running maximum over the classes gives
        the same ids, ties to the lower id as argmax does, in about a tenth of the time.
        """
        if self.device.type != 'cpu':
            return logits.argmax(dim=0).to(torch.uint8)
        best = logits[0].clone()
        labels = torch.zeros(best.shape, dtype=torch.uint8)
        greater = torch.empty(best.shape, dtype=torch.bool)
        for index in range(1, logits.shape[0]):
            torch.gt(logits[index], best, out=greater)
            torch.maximum(best, logits[index], out=best)
            labels.masked_fill_(greater, index)
        return labels

    def warmup(self, runs: int = 2, frame_size: Tuple[int, int] = (480, 640)) -> None:
        """Run a few frames so the first real frame does not pay for lazy initialisation."""
        frame = np.zeros((*frame_size, 3), np.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for _ in range(runs):
                self.segment(frame)
