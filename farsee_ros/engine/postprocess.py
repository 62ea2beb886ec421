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

"""Postprocessing: low-resolution logits to exact full-resolution labels, and the overlay blend."""

from typing import Sequence

import torch
import torch.nn.functional as F

# Above this share of class-boundary pixels, upsampled_argmax interpolates everything.
BOUNDARY_FALLBACK = 0.15


def class_argmax(logits: torch.Tensor) -> torch.Tensor:
    """
    Return the class id (uint8) of the largest of N logits at every pixel of an NxHxW map.

    On the CPU torch's argmax over the channel dimension of a full-resolution map is very
    slow (350 ms for 11x1024x2048 on 2 cores); a running maximum over the classes gives
    the same ids, ties to the lower id as argmax does, in about a tenth of the time.
    """
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


def blend(base: torch.Tensor, colours: torch.Tensor, alpha: float) -> torch.Tensor:
    """Return base * (1 - alpha) + colours * alpha for HxWx3 uint8 images, in uint8."""
    # Fixed-point blend, alpha in 1/128 steps: 255 * 128 still fits in int16.
    weight = int(round(alpha * 128))
    mixed = base.to(torch.int16) * (128 - weight) + colours.to(torch.int16) * weight
    return ((mixed + 64) >> 7).to(torch.uint8)
