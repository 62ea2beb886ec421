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
What a model file must say about itself, checked without PyTorch.

Shared by the checkpoint (.pt, model/checkpoint.py) and the engine ONNX file
(model/onnx_file.py), so that running an ONNX file never imports PyTorch.
"""

import math
from typing import Any, Dict, Mapping

# Paper Table I, methods 1-4, by name (each on any front-end).
VARIANTS: Dict[str, str] = {
    'aspp': 'ASPP + DeepLabV3+ decoder (method 1)',
    'faspp': 'one F-ASPP + DeepLabV3+ decoder (method 2)',
    'cfaspp': 'CF-ASPP, bilinear instead of sub-pixel, no decoder (method 3)',
    'farseenet': 'CF-ASPP + feature-space super-resolution (method 4, FarSee-Net)',
}
# The feature extractors (model/frontends.py builds them).
FRONTEND_NAMES = ('resnet18', 'efficientnet-lite0', 'efficientnet-lite1', 'efficientnet-lite2')

REQUIRED_METADATA = ('variant', 'class_names', 'palette', 'ignore_index', 'input_size',
                     'normalization', 'dataset', 'metrics', 'backbone_init', 'versions')


class CheckpointError(Exception):
    """A model file that cannot be used; the message names the file and what is wrong."""


def validate_metadata(metadata: Mapping[str, Any], path: str) -> None:
    """Raise CheckpointError naming the first missing or invalid metadata entry."""
    def bad(key: str, accepted: str) -> CheckpointError:
        return CheckpointError(
            f'{path}: invalid metadata {key!r} = {metadata.get(key)!r}; expected {accepted}')

    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise CheckpointError(f'{path}: metadata is missing {", ".join(missing)}')
    if metadata['variant'] not in VARIANTS:
        raise bad('variant', f'one of {", ".join(VARIANTS)}')
    if metadata.get('frontend', 'resnet18') not in FRONTEND_NAMES:
        raise bad('frontend', f'one of {", ".join(FRONTEND_NAMES)}; absent means resnet18')
    if metadata.get('subpixel_kernel', 1) not in (1, 3) or (
            metadata['variant'] != 'farseenet' and metadata.get('subpixel_kernel', 1) != 1):
        raise bad('subpixel_kernel', '1 or 3 (3 for farseenet only); absent means 1')
    names = metadata['class_names']
    if (not isinstance(names, (list, tuple)) or not names
            or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names)):
        raise bad('class_names', 'a non-empty list of distinct non-empty strings')
    palette = metadata['palette']
    if (not isinstance(palette, (list, tuple)) or len(palette) != len(names)
            or not all(isinstance(c, (list, tuple)) and len(c) == 3
                       and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
                       for c in palette)):
        raise bad('palette', f'{len(names)} [R, G, B] triples of integers 0-255, one per class')
    ignore = metadata['ignore_index']
    if ignore is not None and not (isinstance(ignore, int) and ignore >= 0):
        raise bad('ignore_index', 'null or a non-negative integer')
    size = metadata['input_size']
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(s, int) and s >= 32 for s in size)):
        raise bad('input_size', '[height, width], integers of at least 32')
    norm = metadata['normalization']
    if (not isinstance(norm, dict) or any(
            not isinstance(norm.get(k), (list, tuple)) or len(norm[k]) != 3
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in norm[k])
            for k in ('mean', 'std')) or not all(v > 0 for v in norm['std'])):
        raise bad('normalization', "{'mean': [3 numbers], 'std': [3 positive numbers]}")
    if not isinstance(metadata['dataset'], str):
        raise bad('dataset', 'a string')
    if not isinstance(metadata['metrics'], dict):
        raise bad('metrics', 'a dict')
    if not isinstance(metadata['backbone_init'], str):
        raise bad('backbone_init', 'a string')
    if not isinstance(metadata['versions'], dict):
        raise bad('versions', 'a dict')
