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
The engine's ONNX file: the network's native logits, fp32 or INT8, with its metadata inside.

Graph: input 'image' (1x3xHxW float32, normalised RGB at the model's input size), output
'logits' (1xNx(H/2)x(W/2) float32: the network's own stride; the engine upsamples them to the
frame exactly, as it does for PyTorch). The checkpoint's metadata is stored as metadata_props
(JSON values), plus 'farsee_format', 'logits' = 'native', 'precision' (fp32 | int8) and
'source_sha256' (the checkpoint it came from, checked by the engine when it picks the file for
that checkpoint). An ONNX file is data: it is parsed as protobuf and its metadata as JSON;
nothing in it is executed but the operators of the graph.

INT8: static post-training quantization (ONNX Runtime, QDQ format; weights int8 per output
channel, activations uint8 with min-max ranges from calibration frames of a training split).
uint8 x int8 is the layout ONNX Runtime's x86 kernels run fastest with VNNI.
"""

import json
import os
import tempfile
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, TYPE_CHECKING

import numpy as np

from .metadata import CheckpointError, validate_metadata

if TYPE_CHECKING:   # PyTorch is imported by the export functions only
    from .network import FarSeeNet

ONNX_FORMAT = 'farsee_ros.onnx'
PRECISIONS = ('fp32', 'int8')
INPUT_NAME, OUTPUT_NAME = 'image', 'logits'
QUANTIZED_SUFFIX = '.int8.onnx'
# Relative L2 error of the fp32 file's logits against eager PyTorch.
FP32_TOLERANCE = 1e-4


def quantized_path(checkpoint: str) -> str:
    """Return where the INT8 model of `checkpoint` lives: beside it, '<stem>.int8.onnx'."""
    stem, _ = os.path.splitext(checkpoint)
    return stem + QUANTIZED_SUFFIX


def _props(metadata: Mapping[str, Any], precision: str, source_sha256: str) -> Dict[str, str]:
    props = {key: json.dumps(value) for key, value in metadata.items()}
    props.update(farsee_format=json.dumps(ONNX_FORMAT), logits=json.dumps('native'),
                 precision=json.dumps(precision), source_sha256=json.dumps(source_sha256))
    return props


def _write_props(path: str, props: Mapping[str, str]) -> None:
    import onnx
    proto = onnx.load(path)
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, path)


def _export_fp32(model: 'FarSeeNet', path: str, input_size: Tuple[int, int]) -> None:
    import warnings
    import torch

    class NativeLogits(torch.nn.Module):
        def __init__(self, model: 'FarSeeNet'):
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model.native_logits(x)

    example = torch.randn(1, 3, *input_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(NativeLogits(model.eval()), (example,), path,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          opset_version=18, dynamo=True, external_data=False, verbose=False)


def export_fp32(model: 'FarSeeNet', path: str, metadata: Mapping[str, Any], *,
                source_sha256: str) -> float:
    """Write the fp32 engine file for `model` at its metadata's input size; return its error."""
    import onnxruntime
    import torch

    from .export import ExportError, relative_error
    size = tuple(metadata['input_size'])
    _export_fp32(model, path, size)
    _write_props(path, _props(metadata, 'fp32', source_sha256))
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        ref = model.eval().native_logits(x)
    error = relative_error(torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0]), ref)
    if not error <= FP32_TOLERANCE:
        raise ExportError(f'{path}: ONNX Runtime logits differ from eager by {error:.2e} '
                          f'(relative L2; tolerance {FP32_TOLERANCE:.0e})')
    return error


def quantize_int8(model: 'FarSeeNet', path: str, metadata: Mapping[str, Any],
                  calibration: Iterable[np.ndarray], *, source_sha256: str) -> int:
    """
    Write the INT8 engine file for `model`; return the number of calibration inputs used.

    `calibration` yields 1x3xHxW float32 network inputs (model_input of training frames).
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          quantize_static, QuantFormat, QuantType)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .export import ExportError

    inputs = [np.ascontiguousarray(x, dtype=np.float32) for x in calibration]
    size = tuple(metadata['input_size'])
    if not inputs:
        raise ExportError('INT8 quantization needs at least one calibration frame')
    if any(x.shape != (1, 3, *size) for x in inputs):
        raise ExportError(f'calibration inputs must be 1x3x{size[0]}x{size[1]} float32')

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._inputs = iter(inputs)

        def get_next(self):
            x = next(self._inputs, None)
            return None if x is None else {INPUT_NAME: x}

    with tempfile.TemporaryDirectory() as folder:
        fp32, prepared = os.path.join(folder, 'fp32.onnx'), os.path.join(folder, 'pre.onnx')
        _export_fp32(model, fp32, size)
        quant_pre_process(fp32, prepared)   # shape inference and graph folding (BN into conv)
        quantize_static(prepared, path, Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    _write_props(path, _props(metadata, 'int8', source_sha256))
    return len(inputs)


def add_metadata(path: str, **entries: Any) -> None:
    """Add (or replace) JSON metadata entries of an engine ONNX file, e.g. its parity report."""
    import onnx
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    props.update({key: json.dumps(value) for key, value in entries.items()})
    _write_props(path, props)


def read_onnx(path: str) -> Tuple[bytes, Dict[str, Any]]:
    """
    Read and check an engine ONNX file; return (its bytes, its metadata).

    Raises CheckpointError naming the file and what is wrong: missing, not ONNX, not a
    farsee_ros engine file, metadata missing or invalid, input/output not as described.
    """
    import onnx

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'ONNX model not found: {path}')
    with open(path, 'rb') as f:
        data = f.read()
    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # noqa: B902 - protobuf's DecodeError, or onnx's own errors
        raise CheckpointError(f'{path} is not a valid ONNX model ({type(exc).__name__}: '
                              f'{str(exc).strip()[:200]})') from None
    if not proto.graph.node:
        raise CheckpointError(f'{path} is not a valid ONNX model (no graph)')
    metadata = {}
    for entry in proto.metadata_props:
        try:
            metadata[entry.key] = json.loads(entry.value)
        except ValueError:
            metadata[entry.key] = entry.value
    if metadata.get('farsee_format') != ONNX_FORMAT:
        raise CheckpointError(
            f"{path}: not a farsee_ros engine ONNX file (metadata 'farsee_format' is "
            f"{metadata.get('farsee_format')!r}, expected {ONNX_FORMAT!r}); export one with "
            'farsee-ros export --format onnx-int8 (or onnx)')
    if metadata.get('logits') != 'native' or metadata.get('precision') not in PRECISIONS:
        raise CheckpointError(f"{path}: invalid metadata 'logits'/'precision' = "
                              f"{metadata.get('logits')!r}/{metadata.get('precision')!r}; "
                              f"expected 'native' and one of {', '.join(PRECISIONS)}")
    validate_metadata(metadata, path)
    _check_signature(proto, path, metadata)
    return data, metadata


def _dims(value_info) -> Tuple[Optional[int], ...]:
    return tuple(d.dim_value if d.HasField('dim_value') else None
                 for d in value_info.type.tensor_type.shape.dim)


def _check_signature(proto, path: str, metadata: Mapping[str, Any]) -> None:
    inputs = [i for i in proto.graph.input
              if i.name not in {init.name for init in proto.graph.initializer}]
    outputs = list(proto.graph.output)
    height, width = metadata['input_size']
    expected_in = (1, 3, height, width)
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME or _dims(inputs[0]) != expected_in:
        found = [(i.name, _dims(i)) for i in inputs]
        raise CheckpointError(f'{path}: graph inputs {found} do not match the metadata; '
                              f"expected one input '{INPUT_NAME}' of shape {expected_in}")
    classes = len(metadata['class_names'])
    if len(outputs) != 1 or outputs[0].name != OUTPUT_NAME or \
            _dims(outputs[0])[:2] not in ((1, classes), (1, None)):
        found = [(o.name, _dims(o)) for o in outputs]
        raise CheckpointError(f'{path}: graph outputs {found} do not match the metadata; '
                              f"expected one output '{OUTPUT_NAME}' with {classes} classes")
