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

"""The network against the paper: shapes, the 8.8x F-ASPP saving, variants, BN+ReLU placement."""

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from farsee_ros.model.complexity import count_macs
from farsee_ros.model.layers import (ASPP, BilinearUpsample, CascadedFactorizedASPP, ConvBNReLU,
                                     DeepLabV3PlusHead, FactorizedASPP, FactorizedAtrousConv,
                                     SubPixelUpsample)
from farsee_ros.model.network import build_model, FarSeeNet, VARIANTS


@pytest.fixture(scope='module')
def models():
    torch.manual_seed(0)
    return {v: build_model(v, num_classes=11).eval() for v in VARIANTS}


def test_variants_are_the_papers_four():
    assert list(VARIANTS) == ['aspp', 'faspp', 'cfaspp', 'farseenet']


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_output_shape_at_512x768_and_requested_size(models, variant):
    x = torch.randn(1, 3, 512, 768)
    with torch.no_grad():
        assert models[variant](x).shape == (1, 11, 512, 768)
        # Low-res input, full-res output: the label resolution of a 1024x2048 frame.
        assert models[variant](x, [1024, 2048]).shape == (1, 11, 1024, 2048)


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_output_shape_for_odd_input_sizes(models, variant):
    with torch.no_grad():
        assert models[variant](torch.randn(1, 3, 500, 700), [500, 700]).shape == \
            (1, 11, 500, 700)
        assert models[variant](torch.randn(1, 3, 333, 517), [721, 961]).shape == \
            (1, 11, 721, 961)


def test_front_end_features_are_conv3_x_and_conv5_x(models):
    net = models['farseenet']
    with torch.no_grad():
        features = net.frontend(torch.randn(1, 3, 512, 768))
    assert features['low'].shape == (1, 128, 64, 96)      # conv3_x (layer2), stride 8
    assert features['high'].shape == (1, 512, 16, 24)     # conv5_x (layer4), stride 32


def test_factorized_aspp_saves_8_8x_against_a_plain_atrous_conv(models):
    """III-B: F_i=512, F_o=256: h*w*9*F_i*F_o vs h*w*(F_i*F_o + 9*F_o), counted by running."""
    branch = models['farseenet'].backend.faspp1.branches[1]
    assert isinstance(branch, FactorizedAtrousConv)
    pointwise, depthwise = branch[0][0], branch[1][0]
    assert (pointwise.in_channels, pointwise.out_channels, pointwise.kernel_size) == \
        (512, 256, (1, 1))
    assert depthwise.groups == depthwise.in_channels == depthwise.out_channels == 256
    assert depthwise.kernel_size == (3, 3)
    rate = depthwise.dilation[0]
    plain = nn.Conv2d(512, 256, 3, padding=rate, dilation=rate, bias=False)
    x = torch.randn(1, 512, 16, 24)
    ratio = count_macs(plain, x) / count_macs(branch, x)
    assert round(ratio, 1) == 8.8, ratio


def test_atrous_rates_and_cascade_narrows(models):
    backend = models['farseenet'].backend
    assert isinstance(backend, CascadedFactorizedASPP)
    rates = [b[1][0].dilation[0] for b in backend.faspp1.branches
             if isinstance(b, FactorizedAtrousConv)]
    assert rates == [6, 12, 18]   # Fig. 3 names r = 18
    assert backend.faspp2.project[0].out_channels < backend.faspp1.project[0].out_channels


def test_variant_structure(models):
    aspp, faspp = models['aspp'].backend, models['faspp'].backend
    assert isinstance(aspp, DeepLabV3PlusHead) and isinstance(faspp, DeepLabV3PlusHead)
    assert type(aspp.context) is ASPP and type(faspp.context) is FactorizedASPP
    assert not any(isinstance(m, FactorizedAtrousConv) for m in aspp.modules())
    cfaspp, full = models['cfaspp'].backend, models['farseenet'].backend
    for backend in (cfaspp, full):
        assert isinstance(backend.faspp1, FactorizedASPP)
        assert isinstance(backend.faspp2, FactorizedASPP)
    assert isinstance(cfaspp.up1, BilinearUpsample) and isinstance(cfaspp.up2, BilinearUpsample)
    assert not any(isinstance(m, nn.PixelShuffle) for m in cfaspp.modules())
    # Sub-pixel convolution used twice, the last producing the N class channels.
    assert isinstance(full.up1, SubPixelUpsample) and isinstance(full.up2, SubPixelUpsample)
    assert full.up2.conv.out_channels == 11 * full.up2.factor ** 2
    shuffles = [m for m in full.modules() if isinstance(m, nn.PixelShuffle)]
    assert [s.upscale_factor for s in shuffles] == [4, 4]


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_every_back_end_conv_but_the_logits_is_followed_by_bn_and_relu(models, variant):
    net = models[variant]
    logit = net.logit_layer()
    convs = [m for m in net.backend.modules() if isinstance(m, nn.Conv2d)]
    wrapped = {id(m[0]) for m in net.backend.modules() if isinstance(m, ConvBNReLU)}
    for block in (m for m in net.backend.modules() if isinstance(m, ConvBNReLU)):
        conv, bn, relu = block
        assert isinstance(conv, nn.Conv2d) and conv.bias is None
        assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == conv.out_channels
        assert isinstance(relu, nn.ReLU)
    unwrapped = [c for c in convs if id(c) not in wrapped]
    assert unwrapped == [logit], 'only the class-logit conv may lack BN + ReLU'
    assert logit.bias is not None


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_forward_and_backward(variant):
    torch.manual_seed(1)
    net = build_model(variant, num_classes=5).train()
    x = torch.randn(2, 3, 96, 128)
    target = torch.randint(0, 5, (2, 192, 256))
    loss = nn.functional.cross_entropy(net(x, [192, 256]), target)
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net.logit_layer().weight.grad.abs().sum() > 0
    assert next(net.frontend.parameters()).grad.abs().sum() > 0


def test_backbone_init_recorded(tmp_path):
    assert build_model(num_classes=3).backbone_init == 'none'
    resnet = resnet18(weights=None)
    path = tmp_path / 'resnet18.pth'
    torch.save(resnet.state_dict(), path)
    net = build_model(num_classes=3, backbone_weights=str(path))
    assert net.backbone_init.startswith('file:resnet18.pth sha256:')
    assert torch.equal(net.frontend.conv1.weight, resnet.conv1.weight)
    assert torch.equal(net.frontend.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)


def test_backbone_init_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='backbone weights file not found'):
        build_model(num_classes=3, backbone_weights=str(tmp_path / 'nope.pth'))
    wrong = tmp_path / 'wrong.pth'
    torch.save({'conv.weight': torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match='not a ResNet-18 state dict'):
        build_model(num_classes=3, backbone_weights=str(wrong))


def test_bad_arguments_name_accepted_values():
    with pytest.raises(ValueError, match="unknown variant 'deeplab'.*aspp, faspp, cfaspp"):
        build_model('deeplab', num_classes=3)
    with pytest.raises(ValueError, match='num_classes'):
        FarSeeNet(0)
