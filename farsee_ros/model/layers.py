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

"""Back-end building blocks of FarSee-Net and of the paper's ablation baselines (pure PyTorch)."""

from functools import partial
from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F


class ConvBNReLU(nn.Sequential):
    """Convolution, batch normalisation, ReLU: every back-end conv but the logits (Fig. 3)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 dilation: int = 1, groups: int = 1):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding,
                      dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class FactorizedAtrousConv(nn.Sequential):
    """Factorised 3x3 atrous conv: 1x1 pointwise (F_i -> F_o), 3x3 depthwise atrous (III-B)."""

    def __init__(self, in_channels: int, out_channels: int, rate: int):
        super().__init__(
            ConvBNReLU(in_channels, out_channels, 1),
            ConvBNReLU(out_channels, out_channels, 3, dilation=rate, groups=out_channels),
        )


class ImagePooling(nn.Module):
    """ASPP's image-level branch: global average pool, 1x1 conv, broadcast to the map size."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.conv(x.mean(dim=(2, 3), keepdim=True))
        return pooled.expand(-1, -1, x.shape[2], x.shape[3])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling of DeepLabV3+ [4]: 1x1, atrous 3x3 branches, image pool."""

    def __init__(self, in_channels: int, out_channels: int, rates: Sequence[int] = (6, 12, 18)):
        super().__init__()
        branches = [ConvBNReLU(in_channels, out_channels, 1)]
        branches += [self.atrous_branch(in_channels, out_channels, r) for r in rates]
        branches.append(ImagePooling(in_channels, out_channels))
        self.branches = nn.ModuleList(branches)
        self.project = ConvBNReLU(len(branches) * out_channels, out_channels, 1)

    @staticmethod
    def atrous_branch(in_channels: int, out_channels: int, rate: int) -> nn.Module:
        return ConvBNReLU(in_channels, out_channels, 3, dilation=rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class FactorizedASPP(ASPP):
    """F-ASPP (III-B): ASPP whose atrous branches are factorised pointwise + depthwise atrous."""

    @staticmethod
    def atrous_branch(in_channels: int, out_channels: int, rate: int) -> nn.Module:
        return FactorizedAtrousConv(in_channels, out_channels, rate)


class SubPixelUpsample(nn.Module):
    """
    Sub-pixel convolution [30] (III-C): conv to C*t^2 channels, periodic shuffle by t.

    `kernel_size` 1 is the paper's "pixel-wise convolution" (each t x t output cell from one
    input vector); 3 lets every cell see its neighbours. `icnr`: ICNR initialisation (Aitken
    et al. 2017), the t^2 sub-pixel kernels of each output channel start equal, so the layer
    starts as a conv followed by nearest-neighbour upsampling (no checkerboard at init).
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int, logits: bool = False,
                 kernel_size: int = 1, icnr: bool = False):
        super().__init__()
        if kernel_size not in (1, 3):
            raise ValueError(f'sub-pixel kernel size must be 1 or 3, not {kernel_size!r}')
        channels = out_channels * factor * factor
        # The class-logit layer is the one conv not followed by BN + ReLU.
        self.conv = (nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2)
                     if logits else ConvBNReLU(in_channels, channels, kernel_size))
        self.shuffle = nn.PixelShuffle(factor)
        self.factor = factor
        if icnr:
            icnr_(self.conv if logits else self.conv[0], factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


@torch.no_grad()
def icnr_(conv: nn.Conv2d, factor: int) -> None:
    """
    Initialise a sub-pixel conv by ICNR (Aitken et al. 2017), in place.

    C/t^2 kernels are drawn as PyTorch draws them and each is repeated t^2 times in
    PixelShuffle's channel order (output channel c <- conv channels c*t^2 ... c*t^2 + t^2 - 1),
    so every sub-pixel of a cell starts with the same kernel and bias.
    """
    sub = factor * factor
    out_channels = conv.out_channels // sub
    seed = nn.Conv2d(conv.in_channels, out_channels, conv.kernel_size,
                     bias=conv.bias is not None)
    conv.weight.copy_(seed.weight.repeat_interleave(sub, dim=0))
    if conv.bias is not None:
        conv.bias.copy_(seed.bias.repeat_interleave(sub))


class BilinearUpsample(nn.Module):
    """The ablation's stand-in for sub-pixel conv: the same 1x1 conv to C, then bilinear x t."""

    def __init__(self, in_channels: int, out_channels: int, factor: int, logits: bool = False):
        super().__init__()
        self.conv = (nn.Conv2d(in_channels, out_channels, 1) if logits
                     else ConvBNReLU(in_channels, out_channels, 1))
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return F.interpolate(x, size=(x.shape[2] * self.factor, x.shape[3] * self.factor),
                             mode='bilinear', align_corners=False)


def resize_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize `x` to the spatial size of `like` when the two differ (odd inputs)."""
    if x.shape[2] == like.shape[2] and x.shape[3] == like.shape[3]:
        return x
    return F.interpolate(x, size=(like.shape[2], like.shape[3]), mode='bilinear',
                         align_corners=False)


class CascadedFactorizedASPP(nn.Module):
    """
    CF-ASPP with feature-space super-resolution: FarSee-Net's back-end (III-B, III-C, Fig. 3).

    F-ASPP on the high-level feature (stride 32), sub-pixel x4 to the low-level feature's stride
    (8), concatenation with the low-level feature, a narrower F-ASPP, and a last sub-pixel x4
    that outputs the N class channels (stride 2). With upsample='bilinear' each sub-pixel conv
    becomes the same 1x1 conv followed by bilinear interpolation (ablation method 3).
    """

    def __init__(self, high_channels: int, low_channels: int, num_classes: int,
                 channels: Sequence[int] = (256, 128), rates: Sequence[int] = (6, 12, 18),
                 factor: int = 4, upsample: str = 'subpixel', subpixel_kernel: int = 1,
                 icnr: bool = False):
        super().__init__()
        if upsample not in ('subpixel', 'bilinear'):
            raise ValueError(f"upsample must be 'subpixel' or 'bilinear', not {upsample!r}")
        if upsample == 'subpixel':
            up = partial(SubPixelUpsample, kernel_size=subpixel_kernel, icnr=icnr)
        else:
            up = BilinearUpsample
        first, second = channels
        self.faspp1 = FactorizedASPP(high_channels, first, rates)
        self.up1 = up(first, second, factor)
        self.faspp2 = FactorizedASPP(second + low_channels, second, rates)
        self.up2 = up(second, num_classes, factor, logits=True)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        context = resize_to(self.up1(self.faspp1(high)), low)
        return self.up2(self.faspp2(torch.cat([context, low], dim=1)))


class DeepLabV3PlusHead(nn.Module):
    """
    (F-)ASPP + the DeepLabV3+ decoder [4] (ablation methods 1 and 2).

    The low-level feature is reduced to 48 channels and concatenated with the context
    upsampled bilinearly to its stride; two 3x3 convs and a 1x1 classifier follow.
    """

    def __init__(self, high_channels: int, low_channels: int, num_classes: int,
                 factorized: bool, channels: int = 256, rates: Sequence[int] = (6, 12, 18),
                 low_reduced: int = 48):
        super().__init__()
        pyramid = FactorizedASPP if factorized else ASPP
        self.context = pyramid(high_channels, channels, rates)
        self.reduce = ConvBNReLU(low_channels, low_reduced, 1)
        self.fuse = nn.Sequential(
            ConvBNReLU(channels + low_reduced, channels, 3),
            ConvBNReLU(channels, channels, 3),
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        context = F.interpolate(self.context(high), size=(low.shape[2], low.shape[3]),
                                mode='bilinear', align_corners=False)
        return self.classifier(self.fuse(torch.cat([context, self.reduce(low)], dim=1)))
