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

"""FarSee-Net: a front-end (ResNet-18 or EfficientNet-Lite) and a back-end by ablation variant."""

from typing import List, Optional

import torch
from torch import nn
import torch.nn.functional as F

from .frontends import BackboneWeights, build_frontend, FRONTENDS
from .layers import CascadedFactorizedASPP, DeepLabV3PlusHead
from .metadata import VARIANTS


class FarSeeNet(nn.Module):
    """Semantic segmentation network: image in, class logits out at any requested size."""

    def __init__(self, num_classes: int, variant: str = 'farseenet',
                 backbone_weights: BackboneWeights = None, subpixel_kernel: int = 1,
                 icnr: bool = False, frontend: str = 'resnet18'):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(
                f'unknown variant {variant!r}; accepted: {", ".join(VARIANTS)}')
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'num_classes must be a positive integer, not {num_classes!r}')
        if variant != 'farseenet' and (subpixel_kernel != 1 or icnr):
            raise ValueError(f'variant {variant!r} has no sub-pixel convolution: the sub-pixel '
                             'kernel size and ICNR apply to farseenet only')
        self.frontend, self.backbone_init = build_frontend(frontend, backbone_weights)
        spec = FRONTENDS[frontend]
        if variant in ('aspp', 'faspp'):
            self.backend = DeepLabV3PlusHead(spec.high_channels, spec.low_channels, num_classes,
                                             factorized=variant == 'faspp')
        else:
            self.backend = CascadedFactorizedASPP(
                spec.high_channels, spec.low_channels, num_classes,
                upsample='subpixel' if variant == 'farseenet' else 'bilinear',
                subpixel_kernel=subpixel_kernel, icnr=icnr)
        self.variant = variant
        self.frontend_name = frontend
        self.subpixel_kernel = subpixel_kernel
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor, output_size: Optional[List[int]] = None) -> torch.Tensor:
        """
        Return N-channel logits at `output_size` (H, W), by default the input's size.

        The input is the normalised, down-sampled image; the output size is the label
        resolution, which may be larger (feature-space super-resolution, III-C).
        """
        logits = self.native_logits(x)
        if output_size is None:
            size = [x.shape[2], x.shape[3]]
        else:
            size = output_size
        if logits.shape[2] != size[0] or logits.shape[3] != size[1]:
            logits = F.interpolate(logits, size=size, mode='bilinear', align_corners=False)
        return logits

    def native_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Return the back-end's logits at its own stride (2 for FarSee-Net), not resized."""
        features = self.frontend(x)
        return self.backend(features['high'], features['low'])

    def fold_batchnorm(self) -> 'FarSeeNet':
        """
        Fold every BatchNorm into the convolution before it, in place, for inference.

        Each conv followed directly by a BatchNorm in its parent's module order (ResNet's
        blocks and stem, EfficientNet-Lite's conv-BN(-ReLU6) units, the back-end's
        ConvBNReLU) becomes one conv with a bias, the norm an identity: fewer passes over
        memory, and fp16 on CUDA never normalises in half precision. Eval mode only (running
        statistics); the model stays in eval mode.
        """
        from torch.nn.utils.fusion import fuse_conv_bn_eval
        self.eval()
        for module in list(self.modules()):
            children = list(module.named_children())
            for (name, child), (next_name, following) in zip(children, children[1:]):
                if isinstance(child, nn.Conv2d) and isinstance(following, nn.BatchNorm2d):
                    setattr(module, name, fuse_conv_bn_eval(child, following))
                    setattr(module, next_name, nn.Identity())
        return self

    def logit_layer(self) -> nn.Conv2d:
        """Return the conv producing the class logits (N*t^2 channels before a shuffle)."""
        if isinstance(self.backend, DeepLabV3PlusHead):
            return self.backend.classifier
        return self.backend.up2.conv


def build_model(variant: str = 'farseenet', *, num_classes: int, frontend: str = 'resnet18',
                backbone_weights: BackboneWeights = None, subpixel_kernel: int = 1,
                icnr: bool = False) -> FarSeeNet:
    """Build a network by variant ('aspp', 'faspp', 'cfaspp', 'farseenet') and front-end."""
    return FarSeeNet(num_classes, variant, backbone_weights, subpixel_kernel, icnr, frontend)
