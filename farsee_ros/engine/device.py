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

"""Device and precision choice for inference and training: auto | cpu | cuda | cuda:N."""

import argparse
from typing import Optional, Tuple

import torch

DEVICES = 'auto, cpu, cuda or cuda:N'
PRECISIONS = ('auto', 'fp32', 'fp16')


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """Add the one --device option every tool shares."""
    parser.add_argument('--device', default='auto', help=DEVICES)


# Messages of errors after which a CUDA context stays broken: every later call fails too.
STICKY_DEVICE_ERRORS = ('illegal memory access', 'device-side assert', 'unspecified launch '
                        'failure', 'misaligned address', 'illegal instruction',
                        'CUDA error: an illegal', 'CUDA failure', 'CUDNN failure',
                        'ECC error', 'device not ready', 'GPU has fallen off the bus')


def is_fatal_device_error(exc: BaseException) -> bool:
    """
    Say whether `exc` is a sticky device error: the process must restart to use the GPU again.

    PyTorch raises them as torch.AcceleratorError (older: RuntimeError 'CUDA error: ...'),
    ONNX Runtime's CUDA provider as 'CUDA failure N: ...'. Out-of-memory is not sticky.
    """
    if isinstance(exc, torch.cuda.OutOfMemoryError) or 'out of memory' in str(exc):
        return False
    accelerator_error = getattr(torch, 'AcceleratorError', None)
    if accelerator_error is not None and isinstance(exc, accelerator_error):
        return True
    message = str(exc)
    return any(marker.lower() in message.lower() for marker in STICKY_DEVICE_ERRORS)


def bf16_supported(device: torch.device) -> bool:
    """Say whether bf16 matmuls/convolutions are native here (AVX512-BF16 or AMX on the CPU)."""
    if device.type == 'cuda':
        return torch.cuda.is_bf16_supported()
    try:
        flags = open('/proc/cpuinfo').read()
    except OSError:
        return False
    return ' avx512_bf16' in flags or ' amx_bf16' in flags


def resolve_device(device: str) -> Tuple[torch.device, Optional[str]]:
    """Map 'auto' | 'cpu' | 'cuda' | 'cuda:N' to a torch device; also return a warning or None."""
    name = str(device).strip().lower()
    if name == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda'), None
        return torch.device('cpu'), 'device auto: CUDA is not available, running on the CPU'
    if name == 'cpu':
        return torch.device('cpu'), None
    if name == 'cuda' or name.startswith('cuda:'):
        index = 0
        if name != 'cuda':
            suffix = name[len('cuda:'):]
            if not suffix.isdigit():
                raise ValueError(f'invalid device {device!r}; accepted: {DEVICES}')
            index = int(suffix)
        if not torch.cuda.is_available():
            raise ValueError(f'device {device!r} requested but CUDA is not available here; '
                             "use 'auto' or 'cpu'")
        if index >= torch.cuda.device_count():
            raise ValueError(f'device {device!r}: only {torch.cuda.device_count()} CUDA '
                             'device(s) present')
        return torch.device('cuda', index), None
    raise ValueError(f'invalid device {device!r}; accepted: {DEVICES}')


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """'auto' is fp16 on CUDA and fp32 on the CPU; fp16 needs CUDA."""
    if precision not in PRECISIONS:
        raise ValueError(f'invalid precision {precision!r}; accepted: {", ".join(PRECISIONS)}')
    if precision == 'auto':
        return torch.float16 if device.type == 'cuda' else torch.float32
    if precision == 'fp16' and device.type != 'cuda':
        raise ValueError("precision 'fp16' needs a CUDA device; use 'fp32' or 'auto' on the CPU")
    return torch.float16 if precision == 'fp16' else torch.float32
