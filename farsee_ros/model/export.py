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

"""Export to TorchScript and ONNX, each checked against the eager model on random input."""

import json
import warnings
import os
from typing import Any, Callable, Dict, Mapping, Sequence

import torch

from .network import FarSeeNet

# Relative L2 error of exported against eager fp32 logits; fp32 re-orderings land near 1e-6.
PARITY_TOLERANCE = 1e-4


class ExportError(Exception):
    """An export that failed or does not reproduce the eager model's output."""


class _FixedSize(torch.nn.Module):
    """The network with its output size fixed, so the exported graph has one input."""

    def __init__(self, model: FarSeeNet, output_size: Sequence[int]):
        super().__init__()
        self.model = model
        self.output_size = [int(s) for s in output_size]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.output_size)


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref||, in float64."""
    out, ref = out.detach().double(), ref.detach().double()
    return float(torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref))


def _check_parity(path: str, eager: torch.nn.Module, run: Callable[[torch.Tensor], Any],
                  input_size: Sequence[int]) -> float:
    x = torch.randn(1, 3, *input_size)
    with torch.no_grad():
        ref = eager(x)
    out = torch.as_tensor(run(x))
    if out.shape != ref.shape:
        raise ExportError(f'{path}: exported output shape {tuple(out.shape)} differs from '
                          f'eager {tuple(ref.shape)}')
    error = relative_error(out, ref)
    if not error <= PARITY_TOLERANCE:
        raise ExportError(f'{path}: exported output differs from eager by {error:.2e} '
                          f'(relative L2; tolerance {PARITY_TOLERANCE:.0e})')
    return error


def export_torchscript(model: FarSeeNet, path: str, input_size: Sequence[int],
                       output_size: Sequence[int], metadata: Mapping[str, Any]) -> float:
    """
    Trace `model` at a fixed input/output size to `path`; return the parity error.

    The metadata travels inside the archive as the extra file 'metadata.json'.
    """
    wrapped = _FixedSize(model.eval(), output_size).eval()
    example = torch.randn(1, 3, *input_size)
    with warnings.catch_warnings():
        # torch >= 2.9 marks torch.jit deprecated; the shape tests are constant at a fixed size.
        warnings.simplefilter('ignore', FutureWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        with torch.no_grad():
            traced = torch.jit.trace(wrapped, example, check_trace=False)
        torch.jit.save(traced, path, _extra_files={'metadata.json': json.dumps(dict(metadata))})
        loaded = torch.jit.load(path, map_location='cpu')
    with torch.no_grad():
        return _check_parity(path, wrapped, loaded, input_size)


def export_onnx(model: FarSeeNet, path: str, input_size: Sequence[int],
                output_size: Sequence[int], metadata: Mapping[str, Any],
                opset: int = 18) -> float:
    """
    Export `model` to ONNX at a fixed size; check it with onnxruntime; return the error.

    Input 'image' (1x3xHxW, normalised RGB), output 'logits' (1xNxH'xW'); the metadata is
    stored as the model's metadata_props (JSON values).
    """
    import onnx
    import onnxruntime

    wrapped = _FixedSize(model.eval(), output_size).eval()
    example = torch.randn(1, 3, *input_size)
    with torch.no_grad():
        torch.onnx.export(wrapped, (example,), path, input_names=['image'],
                          output_names=['logits'], opset_version=opset, dynamo=True,
                          external_data=False, verbose=False)
    proto = onnx.load(path)
    for key, value in _metadata_props(metadata).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, path)
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    return _check_parity(path, wrapped, lambda x: session.run(None, {'image': x.numpy()})[0],
                         input_size)


def _metadata_props(metadata: Mapping[str, Any]) -> Dict[str, str]:
    return {key: json.dumps(value) for key, value in metadata.items()}


EXPORTERS = {'torchscript': export_torchscript, 'onnx': export_onnx}


def export(model: FarSeeNet, fmt: str, path: str, input_size: Sequence[int],
           output_size: Sequence[int], metadata: Mapping[str, Any]) -> float:
    """Export in format `fmt` ('torchscript' or 'onnx') and return the parity error."""
    if fmt not in EXPORTERS:
        raise ValueError(f'unknown export format {fmt!r}; accepted: {", ".join(EXPORTERS)}')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return EXPORTERS[fmt](model, path, input_size, output_size, metadata)
