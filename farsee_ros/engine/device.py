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
from dataclasses import dataclass
import glob
import os
import sys
from typing import Optional, Tuple, TYPE_CHECKING

if TYPE_CHECKING:   # imported where a PyTorch device or dtype is asked for, not before
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
    torch = sys.modules.get('torch')   # only a process that imported PyTorch has its errors
    if (torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)) or \
            'out of memory' in str(exc):
        return False
    accelerator_error = getattr(torch, 'AcceleratorError', None)
    if accelerator_error is not None and isinstance(exc, accelerator_error):
        return True
    message = str(exc)
    return any(marker.lower() in message.lower() for marker in STICKY_DEVICE_ERRORS)


def bf16_supported(device: 'torch.device') -> bool:
    """Say whether bf16 matmuls/convolutions are native here (AVX512-BF16 or AMX on the CPU)."""
    if device.type == 'cuda':
        import torch
        return torch.cuda.is_bf16_supported()
    try:
        flags = open('/proc/cpuinfo').read()
    except OSError:
        return False
    return ' avx512_bf16' in flags or ' amx_bf16' in flags


@dataclass(frozen=True)
class Device:
    """Where the engine runs, named as PyTorch names devices ('cpu', 'cuda:1'), without it."""

    type: str
    index: Optional[int] = None

    def __str__(self) -> str:
        return self.type if self.index is None else f'{self.type}:{self.index}'


# Device nodes of NVIDIA's drivers: desktop and server (/dev/nvidia0), Jetson (nvgpu, nvhost),
# WSL 2 (dxg). Without any of them CUDA cannot be there, and 'auto' needs no PyTorch to say so.
CUDA_DEVICE_NODES = ('/dev/nvidia[0-9]*', '/dev/nvgpu', '/dev/nvhost-ctrl-gpu', '/dev/dxg')


def cuda_may_exist() -> bool:
    """Say whether this machine has a device node through which CUDA could run."""
    return any(glob.glob(pattern) for pattern in CUDA_DEVICE_NODES)


def engine_device(device: str) -> Tuple[Device, Optional[str]]:
    """
    Map 'auto' | 'cpu' | 'cuda' | 'cuda:N' to a Device; also return a warning or None.

    PyTorch is imported (to ask CUDA) only for a CUDA name, or for 'auto' on a machine with an
    NVIDIA device node: on a CPU-only machine the ONNX Runtime engine runs without PyTorch.
    """
    name = str(device).strip().lower()
    if name == 'cpu':
        return Device('cpu'), None
    if name == 'auto':
        if cuda_may_exist():
            import torch
            if torch.cuda.is_available():
                return Device('cuda'), None
        return Device('cpu'), 'device auto: CUDA is not available, running on the CPU'
    if name == 'cuda' or name.startswith('cuda:'):
        index = 0
        if name != 'cuda':
            suffix = name[len('cuda:'):]
            if not suffix.isdigit():
                raise ValueError(f'invalid device {device!r}; accepted: {DEVICES}')
            index = int(suffix)
        import torch
        if not torch.cuda.is_available():
            raise ValueError(f'device {device!r} requested but CUDA is not available here; '
                             "use 'auto' or 'cpu'")
        if index >= torch.cuda.device_count():
            raise ValueError(f'device {device!r}: only {torch.cuda.device_count()} CUDA '
                             'device(s) present')
        return Device('cuda', index), None
    raise ValueError(f'invalid device {device!r}; accepted: {DEVICES}')


def resolve_device(device: str) -> Tuple['torch.device', Optional[str]]:
    """Return engine_device as a torch.device, for the tools that run PyTorch themselves."""
    import torch
    found, warning = engine_device(device)
    return torch.device(str(found)), warning


def precision_name(precision: str, device: Device) -> str:
    """'auto' is fp16 on CUDA and fp32 on the CPU; fp16 needs CUDA. Returns 'fp32' or 'fp16'."""
    if precision not in PRECISIONS:
        raise ValueError(f'invalid precision {precision!r}; accepted: {", ".join(PRECISIONS)}')
    if precision == 'auto':
        return 'fp16' if device.type == 'cuda' else 'fp32'
    if precision == 'fp16' and device.type != 'cuda':
        raise ValueError("precision 'fp16' needs a CUDA device; use 'fp32' or 'auto' on the CPU")
    return precision


def resolve_precision(precision: str, device: 'torch.device') -> 'torch.dtype':
    """Return precision_name as a torch dtype."""
    import torch
    return torch.float16 if precision_name(precision, device) == 'fp16' else torch.float32


def cpu_threads() -> int:
    """
    Return the forward pass's default CPU thread count: PyTorch's (physical cores).

    Without PyTorch imported, the physical cores this process may run on are counted from
    sysfs (logical CPUs where it has no topology).
    """
    torch = sys.modules.get('torch')
    if torch is not None:
        return torch.get_num_threads()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else []
    cores = set()
    for cpu in cpus:
        topology = f'/sys/devices/system/cpu/cpu{cpu}/topology/'
        try:
            with open(topology + 'physical_package_id') as a, open(topology + 'core_id') as b:
                cores.add((a.read().strip(), b.read().strip()))
        except OSError:
            cores.add(('cpu', str(cpu)))
    return len(cores) or os.cpu_count() or 1
