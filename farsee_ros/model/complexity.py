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

"""Parameter and multiply-add counts of a module, measured by running it (no formulas)."""

from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """
    Multiply-adds of one forward pass, counted per operator as it runs.

    Convolutions and matrix products are counted (FLOPs / 2); normalisation, activations
    and interpolation are not, as in the paper's cost formula (III-B).
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def count_parameters(module: nn.Module) -> int:
    """Count parameters (elements of learnable tensors)."""
    return sum(p.numel() for p in module.parameters())


def variant_complexity(num_classes: int, input_size: Sequence[int] = (512, 768),
                       ) -> List[Dict[str, object]]:
    """Parameters and multiply-adds of every variant, whole network and back-end alone."""
    from .network import build_model, VARIANTS
    rows = []
    x = torch.zeros(1, 3, *input_size)
    for variant, description in VARIANTS.items():
        model = build_model(variant, num_classes=num_classes).eval()
        with torch.no_grad():
            features = model.frontend(x)
        rows.append({
            'variant': variant,
            'description': description,
            'params': count_parameters(model),
            'backend_params': count_parameters(model.backend),
            'macs': count_macs(model, x),
            'backend_macs': count_macs(model.backend, features['high'], features['low']),
        })
    return rows


def complexity_markdown(num_classes: int, input_size: Tuple[int, int] = (512, 768)) -> str:
    """Return the per-variant table of docs/architecture.md, as markdown."""
    h, w = input_size
    lines = [
        f'| variant | parameters (M) | back-end parameters (M) | multiply-adds at {h}x{w} (G) '
        '| back-end multiply-adds (G) |',
        '| --- | ---: | ---: | ---: | ---: |',
    ]
    for row in variant_complexity(num_classes, input_size):
        lines.append(
            f"| `{row['variant']}` | {row['params'] / 1e6:.3f} | {row['backend_params'] / 1e6:.3f}"
            f" | {row['macs'] / 1e9:.3f} | {row['backend_macs'] / 1e9:.3f} |")
    return '\n'.join(lines)


def frontend_markdown(num_classes: int,
                      input_sizes: Sequence[Tuple[int, int]] = ((192, 256), (288, 384))) -> str:
    """Return docs/architecture.md's front-end table: farseenet (3x3 sub-pixel) per front-end."""
    from .frontends import FRONTENDS
    from .network import build_model
    sizes = ' | '.join(f'multiply-adds at {h}x{w} (G)' for h, w in input_sizes)
    lines = [f'| front-end | low, high channels | parameters (M) | front-end parameters (M) '
             f'| {sizes} |',
             '| --- | ---: | ---: | ---: |' + ' ---: |' * len(input_sizes)]
    for name, spec in FRONTENDS.items():
        model = build_model('farseenet', num_classes=num_classes, frontend=name,
                            subpixel_kernel=3).eval()
        macs = ' | '.join(f'{count_macs(model, torch.zeros(1, 3, *size)) / 1e9:.3f}'
                          for size in input_sizes)
        lines.append(f'| `{name}` | {spec.low_channels}, {spec.high_channels} | '
                     f'{count_parameters(model) / 1e6:.3f} | '
                     f'{count_parameters(model.frontend) / 1e6:.3f} | {macs} |')
    return '\n'.join(lines)
