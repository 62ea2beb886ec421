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
Joint image + label augmentation (paper IV-B): random resize, crop, rotation, flip, colour noise.

Geometry is applied to both with torchvision.transforms.v2 (bilinear for the image, nearest for
the tv_tensors.Mask label, so labels stay class ids); colour-channel noise touches the image only.
The output stays at full resolution: the network's down-sampled input is made from it later
(model_input), while the label and the loss keep this resolution.
"""

from typing import Sequence, Tuple

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


class TrainAugmentation:
    """
    Augment an image and its label together for training.

    Random scale (ScaleJitter), crop to `crop_size` (padding with the ignore id), rotation,
    horizontal flip, then per-channel gain and offset noise on the image.
    """

    def __init__(self, crop_size: Sequence[int], ignore_index: int, *,
                 scale: Tuple[float, float] = (0.5, 2.0), degrees: float = 10.0,
                 flip: float = 0.5, colour_noise: float = 0.1):
        crop = (int(crop_size[0]), int(crop_size[1]))
        fill = {tv_tensors.Image: 0, tv_tensors.Mask: int(ignore_index)}
        steps = []
        if scale != (1.0, 1.0):
            steps.append(v2.ScaleJitter(crop, scale_range=scale, antialias=True))
        steps.append(v2.RandomCrop(crop, pad_if_needed=True, fill=fill))
        if degrees:
            steps.append(v2.RandomRotation(degrees, fill=fill))
        if flip:
            steps.append(v2.RandomHorizontalFlip(flip))
        self.geometry = v2.Compose(steps)
        self.crop_size = crop
        self.colour_noise = float(colour_noise)

    def __call__(self, image: torch.Tensor,
                 label: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Augment a 3xHxW uint8 image and its HxW label; both come back crop-sized."""
        image, mask = self.geometry(tv_tensors.Image(image), tv_tensors.Mask(label[None]))
        image = image.as_subclass(torch.Tensor)
        if self.colour_noise:
            image = colour_channel_noise(image, self.colour_noise)
        return image, mask.as_subclass(torch.Tensor)[0]


def colour_channel_noise(image: torch.Tensor, strength: float) -> torch.Tensor:
    """Scale each colour channel by 1 +- `strength` and shift it by +-`strength`*64 levels."""
    gain = 1.0 + (torch.rand(3, 1, 1) * 2 - 1) * strength
    offset = (torch.rand(3, 1, 1) * 2 - 1) * strength * 64
    return (image.float() * gain + offset).round_().clamp_(0, 255).to(torch.uint8)
