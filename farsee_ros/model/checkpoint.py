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
The checkpoint file: a state dict plus the metadata needed to run it, never executable.

Layout (a dict saved by torch.save, read back with torch.load(weights_only=True)):
    {'format': 'farsee_ros.checkpoint', 'format_version': 1,
     'metadata': {...}, 'state_dict': {name: tensor}}
"""

import datetime
import importlib.metadata
import os
import pickle
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch

from .. import __version__
from ..common import atomic_write
from .classes import ClassSet
from .frontends import FRONTENDS
from .metadata import CheckpointError, validate_metadata
from .network import build_model, FarSeeNet

FORMAT = 'farsee_ros.checkpoint'
FORMAT_VERSION = 1


def make_metadata(model: FarSeeNet, classes: ClassSet, *, input_size: Sequence[int],
                  dataset: Optional[str] = None,
                  metrics: Optional[Mapping[str, Any]] = None,
                  normalization: Optional[Mapping[str, Sequence[float]]] = None,
                  **extra: Any) -> Dict[str, Any]:
    """Metadata for `model` trained on `classes` at model input size `input_size` (H, W)."""
    if model.num_classes != classes.num_classes:
        raise ValueError(f'the model predicts {model.num_classes} classes but class set '
                         f'{classes.name!r} has {classes.num_classes}')
    norm = normalization or FRONTENDS[model.frontend_name].normalization
    metadata = {
        'variant': model.variant,
        'frontend': model.frontend_name,
        'subpixel_kernel': model.subpixel_kernel,
        'class_names': list(classes.class_names),
        'palette': [list(c) for c in classes.palette],
        'ignore_index': classes.ignore_index,
        'input_size': [int(s) for s in input_size],
        'normalization': {'mean': [float(v) for v in norm['mean']],
                          'std': [float(v) for v in norm['std']], 'color_order': 'rgb'},
        'dataset': dataset or classes.name,
        'metrics': dict(metrics or {}),
        'backbone_init': model.backbone_init,
        'versions': {'farsee_ros': __version__, 'torch': str(torch.__version__),
                     'torchvision': importlib.metadata.version('torchvision')},
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    }
    metadata.update(extra)
    validate_metadata(metadata, '<new checkpoint>')
    return metadata


def save_checkpoint(path: str, model: FarSeeNet, metadata: Mapping[str, Any],
                    half: bool = False) -> None:
    """Write `model`'s weights and `metadata` to `path` (floats stored as fp16 if `half`)."""
    validate_metadata(metadata, path)
    state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu()
             for k, v in model.state_dict().items()}
    meta = dict(metadata)
    meta['weights_dtype'] = 'float16' if half else 'float32'
    with atomic_write(path, 'wb') as f:   # a crash never leaves a truncated checkpoint
        torch.save({'format': FORMAT, 'format_version': FORMAT_VERSION, 'metadata': meta,
                    'state_dict': state}, f)


def read_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read and validate a checkpoint file; return (state_dict, metadata). Runs no code."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f'checkpoint not found: {path}')
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint path is not a file: {path}')
    try:
        blob = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: B902 - torch raises many types for a non-torch file
        message = str(exc)
        refused = [ln.strip() for ln in message.splitlines() if 'unsupported global' in ln.lower()]
        if isinstance(exc, pickle.UnpicklingError) and refused:
            raise CheckpointError(
                f'refused to load {path}: it holds objects other than tensors and plain data, '
                f"which are never executed ({refused[0].split('. Please')[0]})") from None
        first = message.strip().splitlines()[0] if message.strip() else ''
        raise CheckpointError(f'{path} is not a checkpoint (torch.load failed: '
                              f'{type(exc).__name__}: {first})') from None
    if not isinstance(blob, dict) or blob.get('format') != FORMAT:
        kind = ('a plain state dict' if isinstance(blob, dict)
                and all(isinstance(v, torch.Tensor) for v in blob.values())
                else f'a {type(blob).__name__}')
        raise CheckpointError(
            f"{path} is not a farsee_ros checkpoint: it holds {kind}, not a dict with "
            f"format '{FORMAT}', metadata and state_dict")
    if blob.get('format_version') != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: unsupported format_version {blob.get('format_version')!r}; "
            f'accepted: {FORMAT_VERSION}')
    metadata, state = blob.get('metadata'), blob.get('state_dict')
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: missing or invalid 'metadata' (expected a dict)")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise CheckpointError(f"{path}: missing or invalid 'state_dict' (expected name -> "
                              'tensor)')
    validate_metadata(metadata, path)
    return state, metadata


def load_checkpoint(path: str, map_location: Any = 'cpu') -> Tuple[FarSeeNet, Dict[str, Any]]:
    """Build the network a checkpoint describes and load its weights (float32, eval mode)."""
    state, metadata = read_checkpoint(path)
    num_classes = len(metadata['class_names'])
    model = build_model(metadata['variant'], num_classes=num_classes,
                        frontend=metadata.get('frontend', 'resnet18'),
                        subpixel_kernel=metadata.get('subpixel_kernel', 1))
    model.backbone_init = metadata['backbone_init']
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match variant {metadata['variant']!r} on front-end "
            f"{metadata.get('frontend', 'resnet18')!r}: "
            f'{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys '
            f'{unexpected[:3]}')
    logit = model.logit_layer()
    logit_prefix = _state_key(model, logit) + '.'
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape and not key.startswith(logit_prefix):
            raise CheckpointError(
                f'{path}: shape mismatch for {key}: checkpoint {tuple(tensor.shape)}, '
                f"variant {metadata['variant']!r} expects {tuple(expected[key].shape)}")
    found = state[logit_prefix + 'weight'].shape[0]
    if found != logit.out_channels:
        per_class = logit.out_channels // num_classes   # t^2 outputs per class (sub-pixel)
        raise CheckpointError(
            f'{path}: class-count mismatch: metadata lists {num_classes} classes but the '
            f'weights predict {found / per_class:g} ({logit_prefix}weight has {found} outputs)')
    model.load_state_dict(state)
    return model.to(map_location).eval(), metadata


def _state_key(model: torch.nn.Module, module: torch.nn.Module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise KeyError(module)
