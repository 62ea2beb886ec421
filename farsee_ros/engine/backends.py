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
What runs the network's forward pass: PyTorch or ONNX Runtime, behind one call.

A backend takes the normalised 1x3xHxW input and returns logits: the network's native
(stride-2) logits on the CPU, which the engine upsamples exactly, or, for PyTorch on CUDA,
logits already at the frame's size on the GPU. PyTorch's take and give tensors; ONNX
Runtime's take and give numpy arrays and never import PyTorch (the engine's stages around it
are numpy, Pillow and OpenCV: segmenter.py). Which one runs (`choose`):
- 'torch': the checkpoint in PyTorch (fp32, or fp16 on CUDA).
- 'onnxruntime': an engine ONNX file (model/onnx_file.py): the one named as the model, or the
  INT8 file beside the checkpoint ('<stem>.int8.onnx'), whose source_sha256 must be the
  checkpoint's. On CUDA it uses ONNX Runtime's TensorRT/CUDA execution providers, present
  with the onnxruntime-gpu package only.
- 'auto': ONNX Runtime for an ONNX model; for a checkpoint, its INT8 file on the CPU when
  there is one (and the input size is the file's), PyTorch otherwise (always on CUDA).
"""

import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..common import sha256_of
from ..model.metadata import CheckpointError
from ..model.onnx_file import INPUT_NAME, quantized_path, read_onnx
from .device import cpu_threads, Device

BACKENDS = ('auto', 'torch', 'onnxruntime')
# Tried in this order; ONNX Runtime falls back to the next one for operators a provider lacks.
GPU_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')


def add_backend_argument(parser: Any) -> None:
    """Add the one --backend option of the tools that run the engine (or the node)."""
    parser.add_argument('--backend', default='auto', choices=BACKENDS,
                        help='what runs the network: auto (CPU: the INT8 ONNX model beside the '
                        'checkpoint if there is one, else PyTorch; PyTorch on CUDA), torch, '
                        'onnxruntime')


def missing_onnx_packages() -> List[str]:
    """Return which of onnx and onnxruntime cannot be imported here."""
    import importlib.util
    return [name for name in ('onnx', 'onnxruntime') if importlib.util.find_spec(name) is None]


def _load_checkpoint(path: str):
    from ..model.checkpoint import load_checkpoint   # PyTorch: for the torch backend only
    return load_checkpoint(path)


def is_onnx(path: str) -> bool:
    """Say whether a model path names an ONNX file (by its extension)."""
    return str(path).lower().endswith('.onnx')


class TorchBackend:
    """The checkpoint's network in PyTorch, on the CPU or a CUDA device."""

    name = 'torch'

    def __init__(self, model: Any, device: Device, precision: str, threads: int = 0):
        import torch
        self.device, self.precision = device, precision
        self.torch_device = torch.device(str(device))
        self.dtype = torch.float16 if precision == 'fp16' else torch.float32
        # PyTorch runs the network on its own pool: at its size, or `threads` on the CPU.
        self.torch_threads = threads if threads and device.type == 'cpu' else None
        self.model = model.to(self.torch_device, self.dtype).eval()
        self.native = device.type == 'cpu'
        if device.type == 'cuda':   # the node's input size is fixed: let cuDNN pick kernels
            torch.backends.cudnn.benchmark = True

    @property
    def description(self) -> str:
        import torch
        return f'PyTorch {torch.__version__} {self.precision} on {self.device}'

    def __call__(self, x: Any, size: Tuple[int, int], share_cpu: bool = False) -> Any:
        """Return NxHxW logits: native on the CPU, at `size` on CUDA (the model resizes)."""
        if self.native:
            return self.model.native_logits(x)[0]
        return self.model(x, list(size))[0]


class OnnxRuntimeBackend:
    """An engine ONNX file (fp32 or INT8) in ONNX Runtime."""

    name = 'onnxruntime'
    native = True

    def __init__(self, data: bytes, metadata: Mapping[str, Any], device: Device,
                 source: str, threads: int = 0, pipelined: bool = False):
        import onnxruntime
        self.device = device
        self.precision = str(metadata['precision'])
        self.source = source
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or cpu_threads()
        options.log_severity_level = 3
        self.providers = providers_for(device)
        self.torch_threads = None   # the stages around it run without PyTorch
        try:
            self.session = onnxruntime.InferenceSession(data, options, providers=self.providers)
            # For a pipeline on the CPU, a second session whose pool threads sleep between
            # operators instead of spinning: used while another stage works, it leaves that
            # stage the cores (spinning: 74 frames/s pipelined on 2 cores, sleeping: 87), while
            # the spinning one keeps a lone frame fast (15.8 ms vs 21.7; docs/benchmarks.md).
            self.quiet_session = None
            if pipelined and device.type == 'cpu':
                options.add_session_config_entry('session.intra_op.allow_spinning', '0')
                self.quiet_session = onnxruntime.InferenceSession(data, options,
                                                                  providers=self.providers)
        except Exception as exc:  # noqa: B902 - ONNX Runtime raises its own exception types
            raise CheckpointError(f'{source}: ONNX Runtime cannot load it ({type(exc).__name__}'
                                  f': {str(exc).strip()[:300]})') from None
        self.providers = self.session.get_providers()

    @property
    def description(self) -> str:
        import onnxruntime
        return (f'ONNX Runtime {onnxruntime.__version__} {self.precision} '
                f"({', '.join(p.replace('ExecutionProvider', '') for p in self.providers)})")

    def __call__(self, x: np.ndarray, size: Tuple[int, int],
                 share_cpu: bool = False) -> np.ndarray:
        """Return native Nxhxw float32 logits of 1x3xHxW input (`share_cpu`: others work)."""
        session = self.quiet_session if share_cpu and self.quiet_session else self.session
        return session.run(None, {INPUT_NAME: x})[0][0]


def providers_for(device: Device) -> List[str]:
    """ONNX Runtime execution providers for `device` (CUDA ones only with onnxruntime-gpu)."""
    import onnxruntime
    if device.type != 'cuda':
        return ['CPUExecutionProvider']
    available = onnxruntime.get_available_providers()
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if not gpu:
        raise ValueError(f'backend onnxruntime on {device}: this ONNX Runtime has no CUDA '
                         f"execution provider (it has {', '.join(available)}); install "
                         "onnxruntime-gpu (Jetson: NVIDIA's wheel), or use backend torch")
    index = device.index or 0
    return [(p, {'device_id': index}) for p in gpu] + ['CPUExecutionProvider']


def _quantized_for(checkpoint: str) -> Tuple[Optional[Tuple[bytes, Dict[str, Any]]], str]:
    """Return (the INT8 file's bytes and metadata, or None if absent) and its path."""
    path = quantized_path(checkpoint)
    if not os.path.isfile(path):
        return None, path
    data, metadata = read_onnx(path)
    expected = sha256_of(checkpoint)
    if metadata.get('source_sha256') != expected:
        raise CheckpointError(
            f'{path} was quantized from another checkpoint (source_sha256 '
            f"{str(metadata.get('source_sha256'))[:12]}..., but {checkpoint} is "
            f'{expected[:12]}...): export it again with farsee-ros export --model '
            f'{checkpoint} --format onnx-int8 --out {path} ..., or delete it, or use backend '
            'torch')
    return (data, metadata), path


def choose(path: str, backend: str, device: Device, precision: str,
           input_size: Optional[Tuple[int, int]], threads: int = 0,
           pipelined: bool = False) -> Tuple[Any, Dict[str, Any], str]:
    """
    Return (backend object, metadata, a line saying why it was chosen) for model `path`.

    `threads`: the forward pass's CPU threads (0 = every core); `pipelined`: other stages
    will run beside the forward pass (ONNX Runtime then keeps a second, non-spinning session).
    """
    if backend not in BACKENDS:
        raise ValueError(f'invalid backend {backend!r}; accepted: {" | ".join(BACKENDS)}')
    if is_onnx(path):
        if backend == 'torch':
            raise ValueError(f'backend torch needs a checkpoint (.pt), not the ONNX file {path}')
        missing = missing_onnx_packages()
        if missing:
            raise ValueError(f'{path}: an ONNX model needs the Python packages '
                             f'{", ".join(missing)} (pip install {" ".join(missing)})')
        data, metadata = read_onnx(path)
        _check_size(path, metadata, input_size)
        runner = OnnxRuntimeBackend(data, metadata, device, path, threads, pipelined)
        return runner, metadata, 'an ONNX model'
    if backend == 'torch' or (backend == 'auto' and device.type == 'cuda'):
        model, metadata = _load_checkpoint(path)
        why = 'asked for' if backend == 'torch' else 'on CUDA'
        return TorchBackend(model, device, precision, threads), metadata, why
    missing = missing_onnx_packages()
    if missing and backend == 'auto':
        model, metadata = _load_checkpoint(path)
        return (TorchBackend(model, device, precision, threads), metadata,
                f'{" and ".join(missing)} not installed (pip install {" ".join(missing)} '
                'for the faster INT8 model)')
    if missing:
        raise ValueError(f'backend onnxruntime needs the Python packages {", ".join(missing)} '
                         f'(pip install {" ".join(missing)}; onnxruntime-gpu for CUDA)')
    found, onnx_path = _quantized_for(path)
    if found is None:
        if backend == 'onnxruntime':
            raise CheckpointError(
                f'backend onnxruntime: no INT8 model beside {path} (looked for {onnx_path}); '
                f'make it with farsee-ros export --model {path} --format onnx-int8 --out '
                f'{onnx_path} ..., or set model_path to an engine .onnx file')
        model, metadata = _load_checkpoint(path)
        return (TorchBackend(model, device, precision, threads), metadata,
                f'no INT8 model at {onnx_path}')
    data, metadata = found
    if backend == 'auto' and input_size and tuple(input_size) != tuple(metadata['input_size']):
        model, metadata = _load_checkpoint(path)
        return (TorchBackend(model, device, precision, threads), metadata,
                f'input size {input_size[0]}x{input_size[1]} differs from the INT8 '
                f"model's {metadata['input_size'][0]}x{metadata['input_size'][1]}")
    _check_size(onnx_path, metadata, input_size)
    why = 'asked for' if backend == 'onnxruntime' else 'INT8 model beside the checkpoint'
    return OnnxRuntimeBackend(data, metadata, device, onnx_path, threads, pipelined), metadata, why


def _check_size(path: str, metadata: Mapping[str, Any],
                input_size: Optional[Tuple[int, int]]) -> None:
    fixed = tuple(metadata['input_size'])
    if input_size and tuple(input_size) != fixed:
        raise ValueError(f'{path} runs at input size {fixed[0]}x{fixed[1]} only, not '
                         f'{input_size[0]}x{input_size[1]}: export the ONNX model again with '
                         '--input-size, or use backend torch')
