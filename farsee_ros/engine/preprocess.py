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

from typing import Sequence

import torch
import torch.nn.functional as F


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
