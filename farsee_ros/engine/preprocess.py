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

"""Preprocessing: uint8 frames to the network's normalised input (engine, training, evaluation)."""

from concurrent.futures import ThreadPoolExecutor
import threading
from typing import Optional, Sequence, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image as PILImage

# From this many pixels a frame's horizontal pass is split over two threads (the same bytes):
# 2048x1024 8.7 -> 7.2 ms, 1600x1200 11.1 -> 7.4, 3840x2160 48.3 -> 20.7; 960x720 would
# lose 0.4 ms (docs/benchmarks.md, "At 2048x1024").
SPLIT_PIXELS = 1_500_000
_POOL: Optional[ThreadPoolExecutor] = None
_POOL_LOCK = threading.Lock()


def model_input(pixels: 'torch.Tensor', size: Sequence[int], mean255: 'torch.Tensor',
                inv_std255: 'torch.Tensor', dtype: 'torch.dtype' = None,
                color_order: str = 'rgb') -> 'torch.Tensor':
    """
    Turn Nx{1,3}xHxW uint8 pixels into the network's normalised input at `size` (H, W).

    The one preprocessing used by the engine (PyTorch backend), training and evaluation alike.
    The CPU resizes uint8 directly (its antialiased uint8 kernel is ~4x faster than float's);
    CUDA resizes float. Channel order is fixed after the resize, where it is cheap. `mean255`
    and `inv_std255` are Nx3x1x1-broadcastable, in 0-255 pixel units; `dtype`: float32 if
    None. host_model_input is the same without PyTorch.
    """
    import torch
    import torch.nn.functional as F
    x = F.interpolate(pixels if pixels.device.type == 'cpu' else pixels.float(),
                      size=tuple(size), mode='bilinear', align_corners=False,
                      antialias=True).float()
    if color_order == 'mono':
        x = x.expand(-1, 3, -1, -1)
    elif color_order in ('bgr', 'bgra'):
        x = x.flip(1)
    return ((x - mean255) * inv_std255).to(dtype or torch.float32)


def host_model_input(frame: np.ndarray, size: Sequence[int], mean255: np.ndarray,
                     inv_std255: np.ndarray, color_order: str = 'rgb') -> np.ndarray:
    """
    Turn an HxWxC (or HxW mono) uint8 frame into the 1x3xHxW float32 input, without PyTorch.

    model_input's preprocessing for the ONNX Runtime engine: Pillow's antialiased bilinear
    resize of the uint8 frame (the algorithm PyTorch's antialias=True kernel was taken from:
    the same bytes at 480x360 -> 240x320, within 2 levels elsewhere; docs/benchmarks.md), then
    the channel order and the normalisation in float32, as model_input computes them.
    `mean255` and `inv_std255` are 3-vectors in 0-255 pixel units.
    """
    height, width = int(size[0]), int(size[1])
    if color_order == 'mono':
        frame = frame.reshape(frame.shape[0], frame.shape[1])
    else:
        frame = frame[..., :3]
    small = pillow_resize(frame, (height, width))
    if color_order == 'mono':
        small = small[..., None]
    elif color_order in ('bgr', 'bgra'):
        small = small[..., ::-1]
    x = np.empty((1, 3, height, width), np.float32)
    np.subtract(small.transpose(2, 0, 1), mean255.reshape(3, 1, 1), out=x[0], dtype=np.float32)
    x *= inv_std255.reshape(1, 3, 1, 1)
    return x


def _pillow(frame: np.ndarray) -> 'PILImage.Image':
    from PIL import Image
    return Image.fromarray(np.ascontiguousarray(frame))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(1, thread_name_prefix='farsee-resize')
        return _POOL


def pillow_resize(frame: np.ndarray, size: Sequence[int],
                  split_pixels: int = SPLIT_PIXELS) -> np.ndarray:
    """
    Pillow's antialiased bilinear resize of an HxW or HxWx3 uint8 frame to `size` (H, W).

    Pillow resizes in two passes, horizontal then vertical, through a uint8 image. From
    `split_pixels` pixels up the horizontal pass runs on the frame's two halves of rows at
    once, the second on a helper thread (Pillow lets go of the GIL), then the vertical pass on
    the joined result: each pass keeps its in and out sizes, so its coefficients and the bytes
    are one call's.
    """
    from PIL import Image
    height, width = int(size[0]), int(size[1])
    rows, cols = frame.shape[:2]
    if (rows, cols) == (height, width):
        return np.ascontiguousarray(frame)
    bilinear = Image.Resampling.BILINEAR
    if rows * cols < split_pixels or rows < 2 or cols == width:
        return np.asarray(_pillow(frame).resize((width, height), bilinear), dtype=np.uint8)
    half = rows // 2

    def across(part: np.ndarray) -> np.ndarray:   # the horizontal pass only
        return np.asarray(_pillow(part).resize((width, part.shape[0]), bilinear))

    lower = _pool().submit(across, frame[half:])
    joined = np.concatenate([across(frame[:half]), lower.result()], axis=0)
    if rows == height:
        return joined
    return np.asarray(Image.fromarray(joined).resize((width, height), bilinear), dtype=np.uint8)
