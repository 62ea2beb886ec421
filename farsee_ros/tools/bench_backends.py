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
The backend rows of `farsee-ros bench`: one checkpoint's forward pass in every runtime we have.

At the checkpoint's input size, batch 1, in one run, each against PyTorch fp32 eager (the
ratio): PyTorch fp32 eager, with BatchNorm folded (what the engine runs), channels_last, bf16
autocast (CPUs with AVX512-BF16/AMX) or fp16 (CUDA); ONNX Runtime fp32 and INT8 (the INT8 file
beside the checkpoint; without one, quantized on the spot from random inputs: speed only). The
INT8 row carries the mIoU delta from the file's parity report (measured at export), and, given
a dataset, the delta and label agreement re-measured here through the engine.
"""

import copy
import os
import tempfile
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch

from ..common import percentiles, sha256_of
from ..engine.device import bf16_supported, resolve_device
from ..model.checkpoint import load_checkpoint
from ..model.onnx_file import export_fp32, quantize_int8, quantized_path, read_onnx


def _torch_rows(model: torch.nn.Module, x: torch.Tensor, device: torch.device,
                runs: int, warmup: int) -> Dict[str, Callable[[], Any]]:
    eager = copy.deepcopy(model).to(device).eval()
    folded = copy.deepcopy(model).to(device).eval().fold_batchnorm()
    last = copy.deepcopy(folded).to(memory_format=torch.channels_last)
    x_last = x.contiguous(memory_format=torch.channels_last)
    rows = {'torch fp32 eager': lambda: eager.native_logits(x),
            'torch fp32 BN folded (engine)': lambda: folded.native_logits(x),
            'torch fp32 BN folded channels_last': lambda: last.native_logits(x_last)}
    if device.type == 'cuda':
        half = copy.deepcopy(folded).half()
        rows['torch fp16 BN folded (engine)'] = lambda: half.native_logits(x.half())
    elif bf16_supported(device):
        def bf16():
            with torch.autocast('cpu', dtype=torch.bfloat16):
                return last.native_logits(x_last)
        rows['torch bf16 autocast channels_last'] = bf16
    return rows


def _onnx_rows(path: str, model: torch.nn.Module, metadata: Dict[str, Any], x: torch.Tensor,
               folder: str, device: torch.device) -> Dict[str, Any]:
    from ..engine.backends import OnnxRuntimeBackend
    from ..engine.device import Device
    size = tuple(x.shape[2:])
    array = x.contiguous().numpy()   # what ONNX Runtime takes
    rows: Dict[str, Any] = {}
    fp32 = os.path.join(folder, 'fp32.onnx')
    export_fp32(model, fp32, metadata, source_sha256='')
    int8 = quantized_path(path)
    note = 'the INT8 model beside the checkpoint'
    if not os.path.isfile(int8) or read_onnx(int8)[1].get('source_sha256') != sha256_of(path):
        int8 = os.path.join(folder, 'int8.onnx')
        rng = np.random.default_rng(0)
        quantize_int8(model, int8, metadata,
                      [rng.standard_normal((1, 3, *size)).astype(np.float32) for _ in range(4)],
                      source_sha256='')
        note = 'quantized here from random inputs: speed only, no accuracy'
    for name, file in (('onnxruntime fp32', fp32), ('onnxruntime int8', int8)):
        data, meta = read_onnx(file)
        backend = OnnxRuntimeBackend(data, meta, Device(device.type, device.index), file)
        rows[name] = (lambda b=backend: b(array, size)), meta, backend.description
    rows['onnxruntime int8'] += (note,)
    return rows


def measure(path: str, *, device: str = 'cpu', runs: int = 50, warmup: int = 5,
            dataset: Optional[Any] = None, limit: int = 0) -> Dict[str, Any]:
    """Time every backend on checkpoint `path`; with `dataset`, re-measure INT8's mIoU delta."""
    from .bench import time_forward   # bench imports this module when it runs
    torch_device, _ = resolve_device(device)
    model, metadata = load_checkpoint(path)
    size = tuple(metadata['input_size'])
    x = torch.randn(1, 3, *size, device=torch_device)
    rows = []
    with torch.inference_mode():
        for name, run in _torch_rows(model, x, torch_device, runs, warmup).items():
            rows.append({'backend': name, 'times': time_forward(run, torch_device, runs, warmup)})
    with tempfile.TemporaryDirectory() as folder:
        for name, entry in _onnx_rows(path, model, metadata, x.cpu(), folder,
                                      torch_device).items():
            row = {'backend': name, 'runtime': entry[2],
                   'times': time_forward(entry[0], torch.device('cpu'), runs, warmup)}
            if name.endswith('int8'):
                row['int8_model'] = entry[3]
                row['parity_at_export'] = entry[1].get('parity')
            rows.append(row)
    reference = percentiles(rows[0]['times'], ('p50',))['p50']
    for row in rows:
        stats = percentiles(row.pop('times'), ('p50', 'p90'))
        row.update(median_ms=stats['p50'], p90_ms=stats['p90'],
                   speedup_vs_torch_fp32=reference / stats['p50'])
    result = {'model': path, 'input': f'{size[0]}x{size[1]}', 'runs': runs, 'warmup': warmup,
              'threads': torch.get_num_threads(), 'rows': rows}
    if dataset is not None and rows[-1]['int8_model'].startswith('quantized here'):
        result['accuracy'] = None   # no INT8 model of this checkpoint to judge
    elif dataset is not None:
        result['accuracy'] = _accuracy(path, dataset, limit)
    return result


def _accuracy(path: str, dataset: Any, limit: int) -> Dict[str, Any]:
    from ..engine import Segmenter
    from ..training.evaluate import compare
    reference = Segmenter.from_checkpoint(path, backend='torch', device='cpu')
    int8 = Segmenter.from_checkpoint(path, backend='onnxruntime', device='cpu')
    result = compare(reference, int8, dataset, limit=limit)
    return {'split': f'{dataset.name}/{dataset.split}', 'frames': result['frames'],
            'miou_torch_fp32': result['miou'][0], 'miou_onnxruntime_int8': result['miou'][1],
            'miou_delta': result['miou'][1] - result['miou'][0],
            'pixel_agreement': result['agreement']}


def markdown(result: Dict[str, Any], machine: str) -> str:
    """Return the backend rows as a markdown table."""
    lines = [f'Model forward, {result["model"]}, input {result["input"]}, batch 1, '
             f'{result["threads"]} threads, median of {result["runs"]} runs after '
             f'{result["warmup"]} warm-up; {machine}.', '',
             '| backend | median (ms) | p90 (ms) | speed-up vs torch fp32 eager |',
             '| --- | ---: | ---: | ---: |']
    for row in result['rows']:
        lines.append(f'| {row["backend"]} | {row["median_ms"]:.2f} | {row["p90_ms"]:.2f} | '
                     f'{row["speedup_vs_torch_fp32"]:.2f}x |')
    int8 = result['rows'][-1]
    parity = int8.get('parity_at_export')
    lines.append('')
    lines.append(f'INT8 model: {int8["int8_model"]}.')
    if parity:
        lines.append(f'Parity at export ({parity["split"]}, {parity["frames"]} frames): mIoU '
                     f'{parity["miou_fp32"]:.4f} -> {parity["miou_int8"]:.4f} (delta '
                     f'{parity["miou_delta"]:+.4f}), equal labels '
                     f'{parity["pixel_agreement"]:.2%}.')
    accuracy = result.get('accuracy')
    if accuracy:
        lines.append(f'Re-measured here ({accuracy["split"]}, {accuracy["frames"]} frames): '
                     f'mIoU {accuracy["miou_torch_fp32"]:.4f} -> '
                     f'{accuracy["miou_onnxruntime_int8"]:.4f} (delta '
                     f'{accuracy["miou_delta"]:+.4f}), equal labels '
                     f'{accuracy["pixel_agreement"]:.2%}.')
    return '\n'.join(lines)
