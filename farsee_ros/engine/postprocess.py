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
Postprocessing: low-resolution logits to exact full-resolution labels, and the overlay blend.

CPU path (numpy + OpenCV, no full-resolution logits):
`full_resolution_labels(logits, size)` -> HxW uint8 labels: for a tensor, bit-exact against
F.interpolate(bilinear, align_corners=False) + argmax; for a numpy array (the ONNX Runtime
engine, which runs without PyTorch), exact against `bilinear_labels`, the same resize in
numpy's plain float32 arithmetic; and
`colorize_blend(base, labels, palette, alpha)` -> HxWx3 uint8 overlay, the same bytes as
`blend`. Device path (torch, any device): `class_argmax`, `upsampled_argmax` (which hands
float32 CPU logits to `full_resolution_labels`) and `blend`.
"""

from __future__ import annotations

import threading
from typing import Dict, NamedTuple, Optional, Sequence, Tuple, TYPE_CHECKING, Union

import cv2
import numpy as np

if TYPE_CHECKING:   # the torch functions import it when called: the numpy path needs none
    import torch

# Above this share of class-boundary cells, upsampled_argmax's torch path interpolates
# everything instead.
BOUNDARY_FALLBACK = 0.15
# full_resolution_labels takes the boundary path whenever at most this share of the cells
# are boundary cells. Above it, it estimates both costs in units of one interpolated value
# (classes x H x W for the whole map): a boundary cell costs _CELL_COST plus
# _CANDIDATE_COST per pixel and class that may lead there. Measured on a 2-core Zen 5 (stop
# 28): about 5 ns an interpolated value, 2 us a boundary cell, 6 ns a pixel and candidate in
# pixel-by-pixel cells. A trained net's hard frames (random pixels: two thirds of its 30x40
# cells on boundaries, three candidates each) stay on the boundary path (2.4 ms at 480x360,
# 7 ms at 2048x1024, against 6-11 and 120 ms interpolated); noise logits (ten of eleven
# classes in every cell) are interpolated.
CPU_BOUNDARY_FALLBACK = 0.5
_CELL_COST = 400.0
_CANDIDATE_COST = 1.5

# Labels are decided in float32 without torch's exact arithmetic only where the two best
# classes are further apart than this share of the largest |logit| at the cell's corners:
# any bilinear arithmetic (fused or not, and this module's own approximations) stays within
# about 2^-19 of that.
_TOLERANCE = 2.0 ** -16
# Rows whose weight lies this close to a crossing are recomputed too (torch rounds weights).
_LAMBDA_MARGIN = 2.0 ** -12
# Logits beyond this magnitude (or non-finite) go to the full interpolation, and so do maps
# of at most _SMALL output values (classes x H x W).
_HUGE = 1e20
_SMALL = 1 << 18
# A difference that stands for "one class all along the column"; its negative is the corner
# value of the padding class.
_CERTAIN = 1e30

_F32 = np.float32
_F64 = np.float64

# Per resize case (see _reference_arithmetic): (fused source index, lerp mode), or None where
# no emulation matched torch's kernel.
_ARITHMETIC: Dict[tuple, Optional[Tuple[bool, str]]] = {}
_LERP_MODES = ('fused_first', 'fused_second', 'plain')
_GEOMETRY: Dict[Tuple[int, int, int, int, bool], '_Geometry'] = {}
_GEOMETRY_CACHE_SIZE = 8
_SCRATCH = threading.local()
# The arithmetic of numpy logits (no PyTorch kernel to match): unfused source index, plain lerp.
_NUMPY_ARITHMETIC = (False, 'plain')


def class_argmax(logits: torch.Tensor) -> torch.Tensor:
    """
    Return the class id (uint8) of the largest of N logits at every pixel of an NxHxW map.

    On the CPU torch's argmax over the channel dimension of a full-resolution map is very
    slow (350 ms for 11x1024x2048 on 2 cores); a running maximum over the classes gives
    the same ids, ties to the lower id as argmax does, in about a tenth of the time.
    """
    import torch
    if logits.device.type != 'cpu':
        return logits.argmax(dim=0).to(torch.uint8)
    best = logits[0].clone()
    labels = torch.zeros(best.shape, dtype=torch.uint8)
    greater = torch.empty(best.shape, dtype=torch.bool)
    for index in range(1, logits.shape[0]):
        torch.gt(logits[index], best, out=greater)
        torch.maximum(best, logits[index], out=best)
        labels.masked_fill_(greater, index)
    return labels


def _source_index(out_size: int, in_size: int, device: torch.device):
    """Return PyTorch's bilinear (align_corners=False) source rows i0, i1 and weight of i1."""
    import torch
    scale = in_size / out_size
    src = ((torch.arange(out_size, device=device, dtype=torch.float32) + 0.5) * scale
           - 0.5).clamp_(min=0.0)
    i0 = src.long().clamp_(max=in_size - 1)
    i1 = (i0 + 1).clamp_(max=in_size - 1)
    return i0, i1, src - i0


def upsampled_argmax(logits: torch.Tensor, size: Sequence[int],
                     argmax=class_argmax) -> torch.Tensor:
    """
    Return argmax over classes of the NxHxW bilinear upsampling of NxhxW `logits`, as uint8.

    Float32 logits on the CPU with the default `argmax` go to `full_resolution_labels`
    (exact, bit for bit). Elsewhere (CUDA) the torch version below: where the four source
    pixels of an output pixel share one argmax, the interpolated logits are a convex
    combination of theirs, so that class stays the argmax (up to rounding in near-ties). Only
    the other (class-boundary) pixels are interpolated. With more than BOUNDARY_FALLBACK of
    them (an untrained net's noise, say), everything is interpolated instead.
    """
    import torch
    import torch.nn.functional as F
    if logits.device.type == 'cpu' and logits.dtype == torch.float32 and \
            argmax is class_argmax:
        return torch.from_numpy(full_resolution_labels(logits, size))
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


def blend(base: torch.Tensor, colours: torch.Tensor, alpha: float) -> torch.Tensor:
    """Return base * (1 - alpha) + colours * alpha for HxWx3 uint8 images, in uint8."""
    # Fixed-point blend, alpha in 1/128 steps: 255 * 128 still fits in int16.
    import torch
    weight = int(round(alpha * 128))
    mixed = base.to(torch.int16) * (128 - weight) + colours.to(torch.int16) * weight
    return ((mixed + 64) >> 7).to(torch.uint8)


# ---------------------------------------------------------------------------------------------
# CPU path: exact labels with numpy, the overlay with OpenCV.
#
# PyTorch's CPU kernel (upsample_bilinear2d, align_corners=False, NCHW) computes per output
# pixel and class, with float32 row/column weights l1 = src - i0 and l0 = 1 - l1,
#   top = a * lx0 + b * lx1,  bottom = c * lx0 + d * lx1,  out = top * ly0 + bottom * ly1
# over the corners a, b (source row y0) and c, d (row y1); the compiler may fuse each
# `p * q + r * s` into an fma. Which variant a kernel runs is found once per resize case by
# comparing a probe with the emulations below (`_reference_arithmetic`). Only pixels
# within rounding of a tie need that exact arithmetic; everything else is decided with
# margins far above rounding, from per-cell and per-column bounds.


class _Axis(NamedTuple):
    """One axis of the resize: source indices i0, i1 and weights w0, w1 per output index."""

    i0: np.ndarray
    i1: np.ndarray
    w0: np.ndarray
    w1: np.ndarray
    start: np.ndarray   # per source index: the first output index with it as i0
    count: np.ndarray   # per source index: how many output indices have it as i0


class _Geometry(NamedTuple):
    """Both axes of one (h, w) -> (H, W) resize, and what the row searches need."""

    rows: _Axis
    cols: _Axis
    rank: np.ndarray        # HxW uint8: each output row's index among its source row's rows
    row_scale: float        # H / h: output rows per unit of the row weight
    row_offset: np.ndarray  # per source row i: (i + 0.5) * H / h - 0.5 - rows.start[i]
    row_count: np.ndarray   # rows.count as float32


def _axis(in_size: int, out_size: int, fused: bool) -> _Axis:
    """Return PyTorch's source indices and float32 weights for one axis (float32 arithmetic)."""
    scale = _F32(in_size) / _F32(out_size)
    centre = np.arange(out_size, dtype=_F32) + _F32(0.5)
    if fused:   # fma(scale, centre, -0.5): the product is exact in float64
        src = (_F64(scale) * centre.astype(_F64) - 0.5).astype(_F32)
    else:
        src = scale * centre - _F32(0.5)
    src = np.maximum(src, _F32(0.0))
    i0 = np.minimum(src.astype(np.intp), in_size - 1)
    w1 = np.clip(src - i0.astype(_F32), _F32(0.0), _F32(1.0))
    w0 = _F32(1.0) - w1
    i1 = np.minimum(i0 + 1, in_size - 1)
    count = np.bincount(i0, minlength=in_size)
    return _Axis(i0, i1, w0, w1, np.cumsum(count) - count, count)


def _geometry(h: int, w: int, height: int, width: int, fused: bool) -> _Geometry:
    """Return the (cached) index maps and weights of an (h, w) -> (height, width) resize."""
    key = (h, w, height, width, fused)
    cached = _GEOMETRY.get(key)
    if cached is not None:
        return cached
    rows, cols = _axis(h, height, fused), _axis(w, width, fused)
    rank = np.minimum(np.arange(height) - rows.start[rows.i0], 255).astype(np.uint8)
    row_scale = height / h
    row_offset = ((np.arange(h) + 0.5) * row_scale - 0.5 - rows.start).astype(_F32)
    geometry = _Geometry(rows, cols, np.repeat(rank[:, None], width, axis=1),
                         _F32(row_scale), row_offset, rows.count.astype(_F32))
    if len(_GEOMETRY) >= _GEOMETRY_CACHE_SIZE:
        _GEOMETRY.clear()
    _GEOMETRY[key] = geometry
    return geometry


def _buffer(name: str, shape: Tuple[int, ...], dtype) -> np.ndarray:
    """Return this thread's scratch array `name` (kept between frames: no page faults)."""
    cache = _SCRATCH.__dict__.setdefault('arrays', {})
    array = cache.get(name)
    if array is None or array.shape != shape or array.dtype != dtype:
        array = cache[name] = np.empty(shape, dtype)
    return array


def _scratch(name: str, size: int, dtype) -> np.ndarray:
    """Return `size` elements of this thread's 1-D scratch array `name` (grown as needed)."""
    cache = _SCRATCH.__dict__.setdefault('vectors', {})
    array = cache.get(name)
    if array is None or array.size < size or array.dtype != dtype:
        grown = 0 if array is None or array.dtype != dtype else array.size * 3 // 2
        array = cache[name] = np.empty(max(size, grown, 4096), dtype)
    return array[:size]


def _arange(size: int) -> np.ndarray:
    """Return np.arange(size) from a cached array."""
    array = _SCRATCH.__dict__.get('arange')
    if array is None or array.size < size:
        array = _SCRATCH.arange = np.arange(max(size, 4096))
    return array[:size]


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Return float32 a * b + c rounded once, as a fused multiply-add does."""
    product = a.astype(_F64) * b       # exact: 24 + 24 bits
    addend = c.astype(_F64)
    total = product + addend
    # The float64 sum's own rounding error (Knuth's two-sum); rounding it to odd first makes
    # the final rounding to float32 the correct one (float64 has over 24 + 2 bits).
    back = total - product
    error = (product - (total - back)) + (addend - back)
    nudge = (error != 0) & ((total.view(np.int64) & 1) == 0)
    if nudge.any():
        total = np.where(nudge, np.nextafter(total, np.where(error > 0, np.inf, -np.inf)),
                         total)
    return total.astype(_F32)


def _lerp(a: np.ndarray, b: np.ndarray, w0: np.ndarray, w1: np.ndarray,
          mode: str) -> np.ndarray:
    """Return a * w0 + b * w1 in float32 with the given rounding (see _LERP_MODES)."""
    if mode == 'fused_first':
        return _fma(a, w0, b * w1)
    if mode == 'fused_second':
        return _fma(b, w1, a * w0)
    return a * w0 + b * w1


def _interpolate_at(values: np.ndarray, geometry: _Geometry, ys: np.ndarray, xs: np.ndarray,
                    mode: str) -> np.ndarray:
    """Return the KxP bilinear values of Kxhxw `values` at output pixels (ys, xs), bit-exact."""
    rows, cols = geometry.rows, geometry.cols
    y0, y1, x0, x1 = rows.i0[ys], rows.i1[ys], cols.i0[xs], cols.i1[xs]
    wx0, wx1 = cols.w0[xs], cols.w1[xs]
    top = _lerp(values[:, y0, x0], values[:, y0, x1], wx0, wx1, mode)
    bottom = _lerp(values[:, y1, x0], values[:, y1, x1], wx0, wx1, mode)
    return _lerp(top, bottom, rows.w0[ys], rows.w1[ys], mode)


def _reference_arithmetic(logits: torch.Tensor, height: int,
                          width: int) -> Optional[Tuple[bool, str]]:
    """
    Return (fused source index, lerp mode) that reproduces F.interpolate bit for bit.

    Torch picks its kernel by the layout, the number of channels, the thread count and the
    output size (this build: a channels-last kernel for channels-last input with over 3
    channels, for one thread and 3 channels, and for outputs with H + W <= 128; the generic
    kernel otherwise), and the compiler fuses differently in each. So the answer is found
    once per case, from a random probe of the same layout, size and (up to 4) channels,
    compared with every emulation on all rows and columns and some random pixels. None when
    none matches: then the caller takes F.interpolate itself.
    """
    import torch
    import torch.nn.functional as F
    classes, h, w = logits.shape
    channels_last = not logits.is_contiguous() and \
        logits[None].is_contiguous(memory_format=torch.channels_last)
    probe_classes = min(classes, 4)     # the kernels only tell 1-3 channels from more
    key = (h, w, height, width, channels_last, probe_classes, torch.get_num_threads() == 1)
    cached = _ARITHMETIC.get(key, ())
    if cached != ():
        return cached
    rng = np.random.default_rng(0)
    probe = rng.standard_normal((probe_classes, h, w)).astype(_F32) * 4
    tensor = torch.from_numpy(probe)[None]
    if channels_last:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    reference = F.interpolate(tensor, size=(height, width), mode='bilinear',
                              align_corners=False)[0].reshape(probe_classes, -1).numpy()
    ys = np.concatenate([np.repeat(np.arange(height), 3), np.tile([0, height // 2, height - 1],
                                                                  width),
                         rng.integers(0, height, 4096)])
    xs = np.concatenate([np.tile([0, width // 2, width - 1], height),
                         np.repeat(np.arange(width), 3), rng.integers(0, width, 4096)])
    expected = reference[:, ys * width + xs]
    found = None
    for fused in (False, True):
        geometry = _geometry(h, w, height, width, fused)
        for mode in _LERP_MODES:
            if np.array_equal(_interpolate_at(probe, geometry, ys, xs, mode), expected):
                found = (fused, mode)
                break
        if found:
            break
    if len(_ARITHMETIC) >= 64:
        _ARITHMETIC.clear()
    _ARITHMETIC[key] = found
    return found


def _reference_labels(logits: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Return argmax of F.interpolate(logits[None]) (ties to the lower id), as HxW uint8."""
    import torch.nn.functional as F
    full = F.interpolate(logits[None], size=(height, width), mode='bilinear',
                         align_corners=False)[0]
    return class_argmax(full).numpy()


def bilinear_labels(values: np.ndarray, size: Sequence[int], rows_per_chunk: int = 64,
                    out: Optional[np.ndarray] = None) -> np.ndarray:
    """
    Return argmax over classes of the bilinear upsampling of Nxhxw float32 `values` (numpy).

    The reference of full_resolution_labels for numpy logits: PyTorch's geometry
    (align_corners=False) in numpy's plain float32 arithmetic, top = a*w0 + b*w1 and bottom
    likewise along x, then top*w0 + bottom*w1 along y; ties to the lower id. It interpolates
    every pixel, `rows_per_chunk` output rows at a time (some 100 ms at 11x1024x2048 here).
    """
    height, width = int(size[0]), int(size[1])
    classes, h, w = values.shape
    if out is None:
        out = np.empty((height, width), np.uint8)
    geometry = _geometry(h, w, height, width, _NUMPY_ARITHMETIC[0])
    rows, cols = geometry.rows, geometry.cols
    mode = _NUMPY_ARITHMETIC[1]
    # Along x once per source row: Nxhxwidth, each value as _interpolate_at computes it.
    across = _lerp(values[:, :, cols.i0], values[:, :, cols.i1], cols.w0, cols.w1, mode)
    for start in range(0, height, rows_per_chunk):
        ys = slice(start, min(start + rows_per_chunk, height))
        full = _lerp(across[:, rows.i0[ys]], across[:, rows.i1[ys]], rows.w0[ys, None],
                     rows.w1[ys, None], mode)
        out[ys] = full.argmax(axis=0)
    return out


def _cell_reduce(array: np.ndarray, reduce) -> np.ndarray:
    """Return `reduce` (np.maximum/np.minimum) over the four corners of every cell of hxw."""
    h, w = array.shape
    padded = np.empty((h + 1, w + 1), array.dtype)
    padded[:h, :w] = array
    padded[h, :w] = array[h - 1]
    padded[:, w] = padded[:, w - 1]
    top = reduce(padded[:-1, :-1], padded[:-1, 1:])
    return reduce(top, reduce(padded[1:, :-1], padded[1:, 1:]), out=top)


def full_resolution_labels(logits: Union[np.ndarray, torch.Tensor], size: Sequence[int],
                           out: Optional[np.ndarray] = None) -> np.ndarray:
    """
    Return argmax over classes of the bilinear upsampling of Nxhxw `logits`, as HxW uint8.

    Exactly F.interpolate(logits[None], size, mode='bilinear', align_corners=False)[0]
    .argmax(0), ties to the lower class id, bit for bit, without the full-resolution logits.
    A cell is the block of output pixels between four source pixels; in each output column
    of it a class's value is a line in the row weight lambda (which grows down the column):

    * a cell whose four corners share one argmax, beating every lower class there by more
      than rounding could close, keeps that class: the interpolated logits combine the
      corners' with non-negative weights, and every rounded step is monotonic;
    * in the other cells only the classes that can still win are kept (largest corner value
      at least the best smallest one); mostly two remain, whose lines cross at most once per
      column: each column is cut there (the split row from the crossing's lambda). Cells
      where a third class may lead take per-column leaders, or pixel-by-pixel values;
    * pixels within rounding of a tie (about 2^-16 of the largest |logit| around) are
      recomputed with torch's own float32 arithmetic, found once per size, layout and class
      count (a probe of up to 4 classes interpolated once: some 50 ms at 2048x1024), see
      `_reference_arithmetic`.

    The whole map is interpolated instead (F.interpolate, exact by definition) where torch's
    kernel is not one emulated here (channels-last logits with over 3 classes, 3 classes
    with one thread, outputs with H + W <= 128), for small maps, where more than
    CPU_BOUNDARY_FALLBACK of the cells are on class boundaries and labelling them is
    estimated to cost more (an untrained net's noise: nearly every class may lead in every
    cell), with non-finite or huge (over 1e20) logits, or past 255 output rows per source
    row.

    `logits`: a tensor, float32 on the CPU (other dtypes and devices are converted first:
    exact against the float32 reference), or a numpy array: then the reference is
    `bilinear_labels` (numpy's own float32 arithmetic, no probe, no PyTorch) and the whole-map
    cases above use it; at most 256 classes. Index maps are cached per size
    (_GEOMETRY_CACHE_SIZE sizes), scratch arrays per thread (about 12 MB at 2048x1024).
    `out`: a C-contiguous HxW uint8 array to write into (else a new one, whose first touch
    costs page faults).
    """
    height, width = int(size[0]), int(size[1])
    numpy = isinstance(logits, np.ndarray)
    if numpy:
        logits = np.ascontiguousarray(logits, dtype=_F32)
    else:
        import torch
        logits = logits.detach().to('cpu', torch.float32)
    if logits.ndim != 3 or not 0 < logits.shape[0] <= 256:
        raise ValueError(f'logits must be Nxhxw with 1 to 256 classes, not {tuple(logits.shape)}')
    if out is None:
        out = np.empty((max(height, 0), max(width, 0)), np.uint8)
    elif out.shape != (height, width) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f'out must be a C-contiguous {height}x{width} uint8 array')
    classes, h, w = logits.shape
    if out.size == 0:
        return out
    if h * w == 0:
        out.fill(0)
        return out
    # Small maps: the full interpolation is cheap (and torch's kernel for H + W <= 128 is
    # one this module does not emulate).
    if classes * height * width <= _SMALL or height + width <= 128:
        arithmetic = None
    else:
        arithmetic = _NUMPY_ARITHMETIC if numpy else \
            _reference_arithmetic(logits, height, width)
    if arithmetic is None:
        return _whole_map_labels(logits, height, width, out)
    values = logits if numpy else logits.contiguous().numpy()
    geometry = _geometry(h, w, height, width, arithmetic[0])
    rows, cols = geometry.rows, geometry.cols
    low = _low_resolution(values, geometry)
    if low is None:
        return _whole_map_labels(logits, height, width, out)
    low, tolerance, safe = low
    cell_rows, cell_cols = np.nonzero(~safe & (rows.count[:, None] > 0) &
                                      (cols.count[None, :] > 0))
    tolerance = tolerance[cell_rows, cell_cols]
    cells = _cell_corners(values, low, cell_rows, cell_cols, tolerance)
    if cell_rows.size > CPU_BOUNDARY_FALLBACK * safe.size and \
            not _boundary_pays(cells[2], rows.count[cell_rows] * cols.count[cell_cols],
                               classes * height * width):
        return _whole_map_labels(logits, height, width, out)

    # Per source row and output column: the label of the column's upper run, of its lower
    # run, and the upper run's length in rows. Outside the boundary cells: the cell's class.
    first = _buffer('first', (h, width), np.uint8)
    first[...] = np.repeat(low, cols.count, axis=1)
    if cell_rows.size == 0:
        return np.take(first, rows.i0, axis=0, out=out)
    second = _buffer('second', (h, width), np.uint8)
    second[...] = first
    split = _buffer('split', (h, width), np.uint8)
    split.fill(0)
    positions, labels, doubtful = _label_boundary(values, geometry, cell_rows, cell_cols,
                                                  tolerance, cells, first, second, split)
    # out = first where the row's rank in its source row is below split, else second.
    np.take(second, rows.i0, axis=0, out=out)
    upper = np.take(first, rows.i0, axis=0, out=_buffer('upper', out.shape, np.uint8))
    above = np.take(split, rows.i0, axis=0, out=_buffer('above', out.shape, np.uint8))
    mask = cv2.compare(above, geometry.rank, cv2.CMP_GT,
                       dst=_buffer('mask', out.shape, np.uint8))
    cv2.copyTo(upper, mask, out)
    flat = out.reshape(-1)
    flat[positions] = labels        # columns with more than two runs
    if doubtful.size:
        ys, xs = np.divmod(doubtful, width)
        flat[doubtful] = _interpolate_at(values, geometry, ys, xs, arithmetic[1]).argmax(axis=0)
    return out


def _whole_map_labels(logits: Union[np.ndarray, torch.Tensor], height: int, width: int,
                      out: np.ndarray) -> np.ndarray:
    """Write the labels of every pixel interpolated (each kind's reference) into `out`."""
    if isinstance(logits, np.ndarray):
        return bilinear_labels(logits, (height, width), out=out)
    out[...] = _reference_labels(logits, height, width)
    return out


def _low_resolution(values: np.ndarray, geometry: _Geometry):
    """
    Return the source argmax (hxw uint8), each cell's tolerance and which cells are settled.

    A cell's tolerance is _TOLERANCE times the largest |logit| at its corners; it is settled
    when its corners share the argmax and that class beats every lower class there by more.
    None where the map must be interpolated in full instead (see full_resolution_labels).
    """
    classes, h, w = values.shape
    # Argmax (ties to the lower id) from the running maximum over the lower ids: class k is
    # the argmax where it beats that and no later class does.
    flat = values.reshape(classes, h * w)
    running = _buffer('running', flat.shape, _F32)
    running[0] = -np.inf
    low = np.zeros(h * w, np.uint8)
    least = flat[0].copy()
    for index in range(1, classes):
        np.maximum(running[index - 1], flat[index - 1], out=running[index])
        np.maximum(low, (flat[index] > running[index]).view(np.uint8) * np.uint8(index),
                   out=low)
        np.minimum(least, flat[index], out=least)
    best = np.maximum(running[-1], flat[-1])
    scale = np.maximum(best, -least)            # NaN/inf anywhere end up here
    if not np.all(scale < _HUGE) or geometry.rows.count.max() > 255:
        return None
    lower = np.take(running.reshape(-1), low * np.intp(h * w) + _arange(h * w))
    tolerance = _cell_reduce(scale.reshape(h, w), np.maximum)
    tolerance *= _F32(_TOLERANCE)
    low = low.reshape(h, w)
    safe = (_cell_reduce(low, np.maximum) == _cell_reduce(low, np.minimum)) & \
        (_cell_reduce((best - lower).reshape(h, w), np.minimum) > tolerance)
    return low, tolerance, safe


def _cell_corners(values: np.ndarray, low: np.ndarray, cell_rows: np.ndarray,
                  cell_cols: np.ndarray,
                  tolerance: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Return the given cells' corner values (4 x K x n), corner argmaxes (4 x n) and candidates.

    A candidate (K x n, bool) is a class that can win somewhere in its cell: the bilinear
    value lies between the class's smallest and largest corner value (up to rounding).
    """
    classes, h, w = values.shape
    below, right = np.minimum(cell_rows + 1, h - 1), np.minimum(cell_cols + 1, w - 1)
    where = np.stack([cell_rows * w + cell_cols, cell_rows * w + right,
                      below * w + cell_cols, below * w + right])
    corners = np.take(values.reshape(classes, h * w), where, axis=1).transpose(1, 0, 2)
    winners = np.take(low.reshape(-1), where)
    candidate = corners.max(axis=0) >= corners.min(axis=0).max(axis=0) - tolerance
    return corners, winners, candidate


def _boundary_pays(candidate: np.ndarray, pixels: np.ndarray, whole: int) -> bool:
    """Return whether labelling these boundary cells should beat interpolating `whole` values."""
    work = pixels.astype(_F64) @ candidate.sum(axis=0).astype(_F64)
    return candidate.shape[1] * _CELL_COST + _CANDIDATE_COST * work < whole


def _label_boundary(values: np.ndarray, geometry: _Geometry, cell_rows: np.ndarray,
                    cell_cols: np.ndarray, tolerance: np.ndarray,
                    cells: Tuple[np.ndarray, np.ndarray, np.ndarray], first: np.ndarray,
                    second: np.ndarray, split: np.ndarray):
    """
    Write `first`, `second` and `split` for the columns of the given (boundary) cells.

    `cells` is what _cell_corners returns for them. Returns the labels of the columns
    that hold more than two runs, as flat output indices and labels, and the flat output
    indices of the pixels left in doubt (for the exact arithmetic).
    """
    corners, winners, candidate = cells
    # Most cells have two classes that matter: the corners' winners a <= b (or, with one
    # winner, the candidate coming closest to it), when every other candidate stays below
    # max(a, b) throughout the cell.
    cells = np.arange(cell_rows.size)
    a, b = winners.min(axis=0), winners.max(axis=0)
    duo = ((winners == a) | (winners == b)).all(axis=0)
    alone = np.nonzero(a == b)[0]
    if alone.size:
        closeness = corners[:, :, alone] - corners[:, a[alone], alone][:, None]
        closeness[:, a[alone], np.arange(alone.size)] = -np.inf
        closeness = np.where(candidate[:, alone], closeness.max(axis=0), -np.inf)
        runner = closeness.argmax(axis=0)
        b[alone] = np.where(closeness[runner, np.arange(alone.size)] > -np.inf, runner,
                            b[alone])
    a, b = np.minimum(a, b), np.maximum(a, b)
    others = candidate.copy()
    others[a, cells] = False
    others[b, cells] = False
    duo &= _below_both(corners, a, b, others, tolerance)

    doubtful = [np.empty(0, np.intp)]
    direct = [(np.empty(0, np.intp), np.empty(0, np.uint8))]
    general = np.nonzero(~duo)[0]
    if general.size:
        # Three or more classes may lead: each column's two leaders, or pixel by pixel.
        counts = candidate[:, general].sum(axis=0)
        for group in (general[counts <= 4], general[counts > 4]):
            if group.size:
                _label_general(values, geometry, corners[:, :, group], candidate[:, group],
                               cell_rows[group], cell_cols[group], tolerance[group], first,
                               second, split, direct, doubtful)
    two = np.nonzero(duo)[0]
    if two.size:
        # Per cell the difference b - a at its corners; one class alone: certain.
        gap = corners[:, b[two], two] - corners[:, a[two], two]
        gap[:, a[two] == b[two]] = _CERTAIN
        columns = _two_class_columns(gap, cell_rows[two], cell_cols[two], tolerance[two],
                                     a[two].astype(np.uint8), b[two].astype(np.uint8),
                                     geometry.cols)
        doubtful.append(_split_columns(*columns, geometry, first, second, split))
    positions, labels = (np.concatenate(p) for p in zip(*direct))
    return positions, labels, np.concatenate(doubtful)


def _label_general(values: np.ndarray, geometry: _Geometry, corners: np.ndarray,
                   candidate: np.ndarray, cell_rows: np.ndarray, cell_cols: np.ndarray,
                   tolerance: np.ndarray, first: np.ndarray, second: np.ndarray,
                   split: np.ndarray, direct: list, doubtful: list) -> None:
    """
    Label cells where three or more classes may lead, column by column (see _leaders).

    Their candidate lists are padded with class `classes`, of corner values -_CERTAIN.
    Appends to `direct` the (positions, labels) of columns labelled pixel by pixel, and to
    `doubtful` the pixels left in doubt.
    """
    classes = values.shape[0]
    width = first.shape[1]
    counts = candidate.sum(axis=0)
    count = int(counts.max())
    padded = np.full((4, classes + 1, cell_rows.size), -_CERTAIN, _F32)
    padded[:, :classes] = corners
    order = np.argsort(~candidate, axis=0, kind='stable')[:count]
    ids = np.where(np.arange(count)[:, None] < counts, order, classes).T     # ascending
    xs, source, tol, top, bottom, column_ids = _candidate_columns(
        padded, ids, cell_rows, cell_cols, tolerance, geometry.cols)
    rows = geometry.rows
    lo_id, hi_id, top_gap, bottom_gap, settled = _leaders(
        top, bottom, column_ids, rows.w1[rows.start[source]],
        rows.w1[rows.start[source] + rows.count[source] - 1], tol)
    if not settled.all():
        unsettled = ~settled
        positions, labels, doubt = _label_pixels(
            top[:, unsettled], bottom[:, unsettled], column_ids[unsettled],
            source[unsettled], xs[unsettled], tol[unsettled], geometry, width)
        direct.append((positions, labels))
        doubtful.append(doubt)
    doubtful.append(_split_columns(xs[settled], source[settled], tol[settled], lo_id[settled],
                                   hi_id[settled], top_gap[settled], bottom_gap[settled],
                                   geometry, first, second, split))


def _below_both(corners: np.ndarray, a: np.ndarray, b: np.ndarray, others: np.ndarray,
                tolerance: np.ndarray) -> np.ndarray:
    """
    Return per cell whether every class in `others` stays below max(a, b) by over tol.

    min(c - a, c - b) <= t (c - a) + (1 - t) (c - b) for any t in [0, 1], a bilinear
    function, so largest at a corner: c is out if some t keeps that below -tol at all four.
    The best t is where two corners' lines in t cross, or 0 or 1.
    """
    klass, cell = np.nonzero(others)
    ok = np.ones(a.size, bool)
    if klass.size == 0:
        return ok
    at_b = corners[:, b[cell], cell]
    p = corners[:, klass, cell] - at_b                   # c - b: the value at t = 0
    q = corners[:, a[cell], cell] - at_b                 # its decrease per unit of t
    bound = np.full(cell.size, np.inf, _F32)
    value = np.empty(cell.size, _F32)
    most = np.empty(cell.size, _F32)
    with np.errstate(divide='ignore', invalid='ignore'):
        ts = [_F32(0.0), _F32(1.0)] + [(p[j] - p[k]) / (q[j] - q[k])
                                       for j in range(4) for k in range(j + 1, 4)]
    for t in ts:
        if not np.isscalar(t):
            t = np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0, out=t)
        np.subtract(p[0], np.multiply(q[0], t, out=value), out=most)
        for j in range(1, 4):
            np.maximum(most, np.subtract(p[j], np.multiply(q[j], t, out=value), out=value),
                       out=most)
        np.minimum(bound, most, out=bound)
    ok[cell[bound >= -tolerance[cell]]] = False
    return ok


def _two_class_columns(gap: np.ndarray, cell_rows: np.ndarray, cell_cols: np.ndarray,
                       tolerance: np.ndarray, lo_id: np.ndarray, hi_id: np.ndarray,
                       cols: _Axis):
    """
    Expand two-class cells (corner differences `gap`, 4 x n) to their output columns.

    Returns scratch arrays (valid until the next call): x, source row, tolerance, the two
    ids and the difference at lambda 0 and 1, per column.
    """
    widths = cols.count[cell_cols]
    ends = np.cumsum(widths)
    total = int(ends[-1])
    cell = _scratch('cell', total, np.intp)
    cell.fill(0)
    cell[ends[:-1]] = 1
    np.cumsum(cell, out=cell)

    def spread(per_cell, name, dtype=_F32):
        return np.take(per_cell, cell, out=_scratch(name, total, dtype), mode='clip')

    xs = spread(cols.start[cell_cols] - (ends - widths), 'xs', np.intp)
    xs += _arange(total)
    weight = _scratch('weight', total, _F32)
    top_gap, bottom_gap = spread(gap[0], 'top_gap'), spread(gap[2], 'bottom_gap')
    for line, start, end in ((top_gap, gap[0], gap[1]), (bottom_gap, gap[2], gap[3])):
        np.take(cols.w1, xs, out=weight, mode='clip')
        weight *= spread(end - start, 'step')
        line += weight
    return (xs, spread(cell_rows, 'source', np.intp), spread(tolerance, 'tol'),
            spread(lo_id, 'lo_id', np.uint8), spread(hi_id, 'hi_id', np.uint8), top_gap,
            bottom_gap)


def _split_columns(xs: np.ndarray, source: np.ndarray, tol: np.ndarray, lo_id: np.ndarray,
                   hi_id: np.ndarray, top_gap: np.ndarray, bottom_gap: np.ndarray,
                   geometry: _Geometry, first: np.ndarray, second: np.ndarray,
                   split: np.ndarray) -> np.ndarray:
    """
    Split two-class columns at the crossing; return the flat indices of the doubtful rows.

    The difference (hi_id - lo_id) is top_gap + (bottom_gap - top_gap) * lambda, lambda
    growing down the column: above the crossing one class wins, below it the other. Rows
    within tol (in value) of the crossing stay in doubt; lambda is searched with a margin
    of _LAMBDA_MARGIN for the float32 rounding of torch's row weights. Works in scratch
    arrays (this runs on every boundary column).
    """
    width = first.shape[1]
    n = xs.size
    slope = np.subtract(bottom_gap, top_gap, out=_scratch('slope', n, _F32))
    slope += _F32(0.0)                                   # no -0.0: its sign would flip
    falling = np.less(slope, 0, out=_scratch('falling', n, np.bool_))
    upper = _scratch('upper', n, np.uint8)
    upper[...] = lo_id
    np.copyto(upper, hi_id, where=falling, casting='unsafe')      # ids below 256
    lower = _scratch('lower', n, np.uint8)
    lower[...] = hi_id
    np.copyto(lower, lo_id, where=falling, casting='unsafe')
    # Clear of the crossing by tol: lambda below (-top - tol') / slope goes to the upper
    # class, above (-top + tol') / slope to the lower one (tol' = tol with slope's sign).
    signed = np.copysign(tol, slope, out=_scratch('signed', n, _F32))
    start = np.negative(top_gap, out=_scratch('start', n, _F32))
    above = np.subtract(start, signed, out=_scratch('above', n, _F32))
    below = np.add(start, signed, out=_scratch('below', n, _F32))
    with np.errstate(divide='ignore', invalid='ignore'):
        above /= slope
        below /= slope
    np.fmax(above, -np.inf, out=above)                    # 0 / 0: all in doubt
    np.fmin(below, np.inf, out=below)
    above -= _F32(_LAMBDA_MARGIN)
    below += _F32(_LAMBDA_MARGIN)
    offset = np.take(geometry.row_offset, source, out=_scratch('offset', n, _F32),
                     mode='clip')
    count = np.take(geometry.row_count, source, out=_scratch('count', n, _F32), mode='clip')
    upper_rows = _rows_below(above, offset, count, geometry.row_scale,
                             _scratch('upper_rows', n, np.uint8))
    clear_rows = _rows_below(below, offset, count, geometry.row_scale,
                             _scratch('clear_rows', n, np.uint8))
    positions = np.multiply(source, width, out=_scratch('positions', n, np.intp))
    positions += xs
    first.reshape(-1)[positions] = upper
    second.reshape(-1)[positions] = lower
    split.reshape(-1)[positions] = upper_rows
    doubt = np.flatnonzero(clear_rows != upper_rows)
    if doubt.size == 0:
        return np.empty(0, np.intp)
    spans = clear_rows[doubt].astype(np.intp) - upper_rows[doubt]
    offsets = np.arange(int(spans.sum())) - np.repeat(np.cumsum(spans) - spans, spans)
    out_rows = np.repeat(geometry.rows.start[source[doubt]] + upper_rows[doubt], spans)
    return (out_rows + offsets) * width + np.repeat(xs[doubt], spans)


def _rows_below(threshold: np.ndarray, offset: np.ndarray, count: np.ndarray, scale: float,
                out: np.ndarray) -> np.ndarray:
    """
    Return, per column, how many rows of its source row have lambda below `threshold`.

    From the continuous source coordinate (i + lambda = (Y + 0.5) * h / H - 0.5): exact up
    to the float32 rounding of torch's lambdas, which _LAMBDA_MARGIN covers; a row whose
    coordinate rounds down onto source row i from exactly i + 1 has lambda just below 1, so
    thresholds from 1 up count all rows. No rows below a threshold at or under 0 (the first
    source row's clamped rows have lambda 0).
    `offset`, `count`: the source row's row_offset and row count. Overwrites `threshold`.
    """
    positive = np.greater(threshold, 0, out=_scratch('positive', threshold.size, np.bool_))
    np.minimum(threshold, _F32(2.0), out=threshold)    # 1 itself: the row rounding to it
    threshold *= _F32(scale)
    threshold += offset
    np.ceil(threshold, out=threshold)
    np.clip(threshold, 0, count, out=threshold)
    threshold *= positive
    np.copyto(out, threshold, casting='unsafe')
    return out


def _candidate_columns(corners: np.ndarray, ids: np.ndarray, cell_rows: np.ndarray,
                       cell_cols: np.ndarray, tolerance: np.ndarray, cols: _Axis):
    """
    Expand cells with n candidates (`ids`, cells x n) to their output columns.

    Returns per column its x, source row and tolerance, per candidate and column its value
    on the top and on the bottom source row (n x columns each), and the ids (columns x n).
    """
    widths = cols.count[cell_cols]
    xs = np.repeat(cols.start[cell_cols] - (np.cumsum(widths) - widths), widths) + \
        np.arange(int(widths.sum()))
    weight = cols.w1[xs]
    # Lines across the cell in x, per candidate.
    picked = np.take_along_axis(corners, ids.T[None], axis=1)
    top = np.repeat(picked[0], widths, axis=1)
    top += np.repeat(picked[1] - picked[0], widths, axis=1) * weight
    bottom = np.repeat(picked[2], widths, axis=1)
    bottom += np.repeat(picked[3] - picked[2], widths, axis=1) * weight
    return (xs, np.repeat(cell_rows, widths), np.repeat(tolerance, widths), top, bottom,
            np.repeat(ids, widths, axis=0))


def _leaders(top: np.ndarray, bottom: np.ndarray, ids: np.ndarray, near: np.ndarray,
             far: np.ndarray, tol: np.ndarray):
    """
    Reduce n >= 3 candidate lines per column to the two that lead at its ends.

    `top`, `bottom`: n x columns values at lambda 0 and 1; `near`, `far`: lambda of the
    column's first and last row. Returns the two leaders' ids (lower, higher), their
    difference (higher minus lower) at lambda 0 and 1 (_CERTAIN where one class leads at
    both ends), and whether every other candidate stays more than tol below both leaders
    all along the column: the most a third line can rise above the leaders' upper envelope
    is at an end or where the leaders cross.
    """
    columns = np.arange(ids.shape[0])
    slope = bottom - top
    lead_near = (top + slope * near).argmax(axis=0)
    lead_far = (top + slope * far).argmax(axis=0)
    a_top, a_slope = top[lead_near, columns], slope[lead_near, columns]
    b_top, b_slope = top[lead_far, columns], slope[lead_far, columns]
    with np.errstate(divide='ignore', invalid='ignore'):
        cross = (a_top - b_top) / (b_slope - a_slope)
    cross = np.clip(np.nan_to_num(cross, nan=0.0), near, far)
    settled = np.ones(columns.size, bool)
    for weight in (near, far, cross):
        value = top + slope * weight
        envelope = np.maximum(value[lead_near, columns], value[lead_far, columns])
        value[lead_near, columns] = -np.inf
        value[lead_far, columns] = -np.inf
        settled &= value.max(axis=0) < envelope - tol
    a_id, b_id = ids[columns, lead_near], ids[columns, lead_far]
    sign = np.where(a_id > b_id, _F32(-1.0), _F32(1.0))
    top_gap = (b_top - a_top) * sign
    bottom_gap = (b_top + b_slope - a_top - a_slope) * sign
    same = a_id == b_id
    top_gap[same] = _CERTAIN
    bottom_gap[same] = _CERTAIN
    return np.minimum(a_id, b_id), np.maximum(a_id, b_id), top_gap, bottom_gap, settled


def _label_pixels(top: np.ndarray, bottom: np.ndarray, ids: np.ndarray, source: np.ndarray,
                  xs: np.ndarray, tol: np.ndarray, geometry: _Geometry, width: int):
    """
    Label the given columns pixel by pixel: the best of their n candidate lines.

    Returns the flat output indices, their labels, and the indices left in doubt (best two
    candidates within tol).
    """
    rows = geometry.rows
    lengths = rows.count[source]
    column = np.repeat(np.arange(source.size), lengths)
    out_rows = np.repeat(rows.start[source] - (np.cumsum(lengths) - lengths), lengths) + \
        np.arange(column.size)
    weight = rows.w1[out_rows]
    top, slope = top[:, column], (bottom - top)[:, column]
    best = top[0] + slope[0] * weight
    second = np.full_like(best, -np.inf)
    label = ids[column, 0]
    for index in range(1, ids.shape[1]):
        value = top[index] + slope[index] * weight
        np.maximum(second, np.minimum(value, best), out=second)
        greater = value > best
        label[greater] = ids[column[greater], index]
        np.maximum(best, value, out=best)
    positions = out_rows * width + xs[column]
    return positions, label, positions[best - second <= tol[column]]


def colorize_blend(base: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float,
                   out: Optional[np.ndarray] = None) -> np.ndarray:
    """
    Return base * (1 - alpha) + palette[labels] * alpha as HxWx3 uint8 (OpenCV, CPU).

    The same bytes as `blend`: alpha in 1/128 steps, weight = round(alpha * 128), then
    (base * (128 - weight) + colour * weight + 64) >> 7. `base`: uint8 HxW (mono, used for
    all three channels; also HxWx1, or HxWx3 with a zero channel stride as torch's expand
    gives), HxWx3, or HxWx4 (the fourth channel is dropped). Pass a 4-channel frame whole
    rather than as a [..., :3] view: a view is copied first (about 20 ms at 2048x1024).
    `palette`: Kx3 uint8 in the base's channel order, K <= 256; `labels`: HxW uint8 class
    ids, those from K up coloured black. `out`: a C-contiguous HxWx3 uint8 array to write
    into (else a new one).
    """
    weight = int(round(alpha * 128))
    if not 0 <= weight <= 128:
        raise ValueError(f'alpha must be within [0, 1], not {alpha}')
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if palette.shape[0] > 256:
        raise ValueError(f'at most 256 palette colours, not {palette.shape[0]}')
    if base.ndim == 3 and (base.shape[2] == 1 or base.strides[2] == 0):
        base = base[..., 0]
    if base.dtype != np.uint8 or base.ndim not in (2, 3) or \
            (base.ndim == 3 and base.shape[2] not in (3, 4)) or \
            base.shape[:2] != labels.shape:
        raise ValueError(f'base must be HxW, HxWx3 or HxWx4 uint8 matching labels '
                         f'{labels.shape}, not {base.dtype} {base.shape}')
    height, width = labels.shape
    if out is not None and (out.shape != (height, width, 3) or out.dtype != np.uint8 or
                            not out.flags.c_contiguous):
        raise ValueError(f'out must be a C-contiguous {height}x{width}x3 uint8 array')
    if base.ndim == 2:
        base = cv2.cvtColor(np.ascontiguousarray(base), cv2.COLOR_GRAY2BGR,
                            dst=_buffer('base', (height, width, 3), np.uint8))
    elif base.shape[2] == 4:
        base = cv2.cvtColor(np.ascontiguousarray(base), cv2.COLOR_BGRA2BGR,
                            dst=_buffer('base', (height, width, 3), np.uint8))
    else:
        base = np.ascontiguousarray(base)
    # Colours through a 32-bit table (one lookup per pixel), then BGRA -> BGR drops the pad.
    table = np.zeros((256, 4), np.uint8)
    table[:palette.shape[0], :3] = palette
    packed = cv2.LUT(np.ascontiguousarray(labels, dtype=np.uint8), table.view(np.int32),
                     dst=_buffer('packed', (height, width), np.int32))
    colours = cv2.cvtColor(packed.view(np.uint8).reshape(height, width, 4), cv2.COLOR_BGRA2BGR,
                           dst=_buffer('colours', (height, width, 3), np.uint8))
    # Exact in float: (base * (128 - weight) + colour * weight) / 128 is a multiple of 1/128
    # below 256; + 1/256 makes OpenCV's round-to-nearest the fixed point's + 64 >> 7.
    if out is None:
        return cv2.addWeighted(base, (128 - weight) / 128, colours, weight / 128, 1 / 256)
    return cv2.addWeighted(base, (128 - weight) / 128, colours, weight / 128, 1 / 256,
                           dst=out)
