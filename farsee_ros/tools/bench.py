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
`farsee-ros bench`: FarSee-Net against the networks a user would pick instead, in one run.

First the backend rows (bench_backends.py): the default model (or --model) in PyTorch and
ONNX Runtime, fp32 and INT8, with ratios and the INT8 mIoU delta. Then model-only latency
(median of many runs after warm-up; CUDA events on the GPU) of the four FarSee-Net variants
and torchvision's lraspp_mobilenet_v3_large, deeplabv3_mobilenet_v3_large, fcn_resnet50 and
deeplabv3_resnet50 (random weights: speed only, 19 classes), at 512x768 and 1024x2048, in fp32
and fp16, with and without channels_last, and with CUDA graphs and torch.compile where the
device has them. Every time is also given as a ratio to FarSee-Net's under the same input size
and configuration. Then the end-to-end node latency through DDS (publisher -> segment_node ->
subscriber; bench_node): 2048x1024 at 30 Hz, and the highest input rate with under 5% dropped
frames.
"""

import argparse
import json
import platform
import time
from typing import Any, Callable, Dict, List, Tuple

import torch

from ..common import percentiles
from ..engine import add_device_argument, resolve_device
from ..model.network import build_model, VARIANTS

PEERS = ('lraspp_mobilenet_v3_large', 'deeplabv3_mobilenet_v3_large', 'fcn_resnet50',
         'deeplabv3_resnet50')
SIZES = ((512, 768), (1024, 2048))
NUM_CLASSES = 19


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the bench command's options to `parser`."""
    add_device_argument(parser)
    parser.add_argument('--quick', action='store_true',
                        help='512x768 only, fp32, few runs, no node sweep (a smoke run)')
    parser.add_argument('--runs', type=int, default=0,
                        help='timed runs per cell (default 50 on CUDA, 10 on the CPU)')
    parser.add_argument('--warmup', type=int, default=0, help='untimed runs first')
    parser.add_argument('--models', nargs='+', help='subset of models to time')
    parser.add_argument('--compile', action='store_true',
                        help='also time torch.compile (CUDA; minutes of compilation)')
    parser.add_argument('--no-node', action='store_true',
                        help='skip the end-to-end node measurements')
    parser.add_argument('--node-frames', type=int, default=150,
                        help='frames per end-to-end measurement')
    parser.add_argument('--report', help='write JSON here and the markdown table beside it')
    backends = parser.add_argument_group('backend rows')
    backends.add_argument('--only-backends', action='store_true',
                          help='only the backend rows (PyTorch / ONNX Runtime, fp32 / INT8)')
    backends.add_argument('--no-backends', action='store_true', help='skip the backend rows')
    backends.add_argument('--model', help='checkpoint of the backend rows (default: the '
                          'installed default model)')
    backends.add_argument('--dataset', help='re-measure the INT8 mIoU delta on this dataset '
                          '(camvid, cityscapes, folders)')
    backends.add_argument('--root', help='its root directory')
    backends.add_argument('--split', default='val', help='its split spec')
    backends.add_argument('--limit', type=int, default=0, help='first N frames only (0: all)')


def peer(name: str) -> torch.nn.Module:
    """Build a torchvision segmentation network with random weights, 19 classes."""
    from torchvision.models import segmentation
    builder = getattr(segmentation, name)
    kwargs: Dict[str, Any] = {'weights': None, 'weights_backbone': None,
                              'num_classes': NUM_CLASSES}
    if name != 'lraspp_mobilenet_v3_large':
        kwargs['aux_loss'] = False
    return builder(**kwargs)


class _Logits(torch.nn.Module):
    """Return a torchvision segmentation model's 'out' tensor (the same job as FarSee-Net's)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)['out']


def build(name: str) -> torch.nn.Module:
    """Return the model called `name`: a FarSee-Net variant or a torchvision peer."""
    if name in VARIANTS:
        return build_model(name, num_classes=NUM_CLASSES)
    if name in PEERS:
        return _Logits(peer(name))
    raise _unknown(name)


def _unknown(name: str) -> ValueError:
    return ValueError(f'unknown model {name!r}; accepted: {", ".join((*VARIANTS, *PEERS))}')


def configurations(device: torch.device, compile_too: bool, quick: bool) -> List[str]:
    """Return the configurations timed on `device`."""
    if device.type != 'cuda':
        return ['fp32'] if quick else ['fp32', 'fp32+channels_last']
    configs = ['fp32', 'fp16', 'fp16+channels_last', 'fp16+channels_last+cuda_graph']
    if compile_too:
        configs.append('fp16+channels_last+compile')
    return configs[:2] if quick else configs


def _runner(model: torch.nn.Module, x: torch.Tensor, config: str) -> Callable[[], Any]:
    """Return a no-argument callable running one forward pass in `config`."""
    if 'cuda_graph' in config:
        static_x = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                model(static_x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(static_x)
        return graph.replay
    if 'compile' in config:
        compiled = torch.compile(model, mode='max-autotune')
        return lambda: compiled(x)
    return lambda: model(x)


def time_forward(run: Callable[[], Any], device: torch.device, runs: int,
                 warmup: int) -> List[float]:
    """Return `runs` forward times in ms after `warmup` untimed runs."""
    for _ in range(warmup):
        run()
    times = []
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(runs):
            start = time.perf_counter()
            run()
            times.append((time.perf_counter() - start) * 1e3)
    return times


@torch.inference_mode()
def time_model(name: str, size: Tuple[int, int], config: str, device: torch.device,
               runs: int, warmup: int) -> Dict[str, Any]:
    """Time one model, input size and configuration; return a result row."""
    torch.manual_seed(0)
    model = build(name).eval()
    params = sum(p.numel() for p in model.parameters())
    dtype = torch.float16 if config.startswith('fp16') else torch.float32
    memory = torch.channels_last if 'channels_last' in config else torch.contiguous_format
    model = model.to(device, dtype).to(memory_format=memory)
    x = torch.randn(1, 3, *size, device=device, dtype=dtype).contiguous(memory_format=memory)
    row = {'model': name, 'params_m': params / 1e6, 'input': f'{size[0]}x{size[1]}',
           'config': config}
    try:
        times = time_forward(_runner(model, x, config), device, runs, warmup)
    except Exception as exc:  # noqa: B902 - report the cell as failed, go on with the rest
        row.update(median_ms=None, error=f'{type(exc).__name__}: {str(exc)[:160]}')
        return row
    finally:
        del model, x
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    stats = percentiles(times, ('p50', 'p90'))
    row.update(median_ms=stats['p50'], p90_ms=stats['p90'],
               min_ms=min(times), runs=runs, warmup=warmup)
    return row


def add_ratios(rows: List[Dict[str, Any]]) -> None:
    """Add ratio_to_farseenet = median / FarSee-Net's median for the same input and config."""
    reference = {(r['input'], r['config']): r['median_ms'] for r in rows
                 if r['model'] == 'farseenet' and r.get('median_ms')}
    for row in rows:
        ref = reference.get((row['input'], row['config']))
        row['ratio_to_farseenet'] = (row['median_ms'] / ref
                                     if ref and row.get('median_ms') else None)


def markdown(rows: List[Dict[str, Any]], machine: str) -> str:
    """Return the model-only results as a markdown table."""
    lines = [f'Model-only forward latency, batch 1, 19 classes, random weights; {machine}.',
             '', '| model | params (M) | input | config | median (ms) | x FarSee-Net |',
             '| --- | ---: | --- | --- | ---: | ---: |']
    for r in rows:
        median = f'{r["median_ms"]:.2f}' if r.get('median_ms') else f'failed: {r.get("error")}'
        ratio = f'{r["ratio_to_farseenet"]:.2f}' if r.get('ratio_to_farseenet') else '-'
        lines.append(f'| {r["model"]} | {r["params_m"]:.2f} | {r["input"]} | {r["config"]} | '
                     f'{median} | {ratio} |')
    return '\n'.join(lines)


def machine_name(device: torch.device) -> str:
    """Describe the machine the numbers come from."""
    import os
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name'))
    except (OSError, StopIteration):
        pass
    text = f'{cpu}, {os.cpu_count()} cores, torch {torch.__version__}'
    if device.type == 'cuda':
        text = f'{torch.cuda.get_device_name(device)} ({text})'
    return text


def node_latency(device: str, frames: int) -> Dict[str, Any]:
    """End-to-end through DDS at 2048x1024: 30 Hz, then the highest rate with < 5% drops."""
    from .bench_node import max_rate, measure

    at30 = measure(device=device, size=(1024, 2048), rate=30.0, frames=frames,
                   warmup=max(5, frames // 10), overlay=False)
    search = max_rate(device=device, size=(1024, 2048), high=60.0, overlay=False)
    return {'at_30hz': at30, 'max_rate': search,
            'max_rate_under_5pct_drops_hz': search['max_rate_hz']}


def run(args: argparse.Namespace) -> int:
    """Time every model and configuration; print the table; write the report."""
    device, warning = resolve_device(args.device)
    if warning:
        print(warning)
    models = args.models or [*VARIANTS, *PEERS]
    for name in models:   # before any timing: a typo ends the run at once
        if name not in (*VARIANTS, *PEERS):
            raise _unknown(name)
    if 'farseenet' not in models:
        models = ['farseenet', *models]
    sizes = SIZES[:1] if args.quick else SIZES
    runs = args.runs or (3 if args.quick else 50 if device.type == 'cuda' else 10)
    warmup = args.warmup or (1 if args.quick else 10 if device.type == 'cuda' else 3)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    machine = machine_name(device)
    report: Dict[str, Any] = {'machine': machine, 'device': str(device)}
    if not args.no_backends:
        report['backends'] = backend_rows(args, device, machine)
        if args.only_backends:
            return _write(args, report, markdown_backends(report['backends'], machine))
    print(f'farsee-ros bench on {machine}: {runs} timed runs after {warmup} warm-up per cell')
    rows = []
    for size in sizes:
        for config in configurations(device, args.compile, args.quick):
            for name in models:
                row = time_model(name, size, config, device, runs, warmup)
                rows.append(row)
                median = f'{row["median_ms"]:.2f} ms' if row.get('median_ms') else row['error']
                print(f'  {name:<30} {row["input"]:>9} {config:<30} {median}', flush=True)
    add_ratios(rows)
    table = markdown(rows, machine)
    print()
    print(table)
    report.update(runs=runs, warmup=warmup, model_only=rows)
    if not args.quick and not args.no_node:
        report['node'] = node_latency(args.device, args.node_frames)
        at30 = report['node']['at_30hz']
        print(f'\nsegment_node 2048x1024 @ 30 Hz: subscriber latency p50 '
              f'{at30["subscriber_latency_ms"]["p50"]:.1f} ms, p99 '
              f'{at30["subscriber_latency_ms"]["p99"]:.1f} ms, dropped {at30["dropped"]}/'
              f'{at30["frames_sent"]}; highest rate with < 5% drops: '
              f'{report["node"]["max_rate_under_5pct_drops_hz"]} Hz')
    if 'backends' in report:
        table = markdown_backends(report['backends'], machine) + '\n\n' + table
    return _write(args, report, table)


def _write(args: argparse.Namespace, report: Dict[str, Any], table: str) -> int:
    if args.report:
        with open(args.report, 'w') as f:
            json.dump(report, f, indent=2)
        md = args.report.rsplit('.', 1)[0] + '.md'
        with open(md, 'w') as f:
            f.write(table + '\n')
        print(f'wrote {args.report} and {md}')
    return 0


def backend_rows(args: argparse.Namespace, device: torch.device, machine: str) -> Dict[str, Any]:
    """Time the checkpoint in every backend; print and return the rows."""
    from .bench_backends import markdown as markdown_backends_, measure as measure_backends
    from ..ros.resources import default_model_path
    path = args.model or default_model_path()
    dataset = None
    if args.dataset:
        if not args.root:
            raise ValueError('--dataset needs --root')
        from ..training.datasets import build_dataset
        dataset = build_dataset(args.dataset, args.root, args.split)
    runs = args.runs or (10 if args.quick else 50)
    warmup = args.warmup or (2 if args.quick else 5)
    print(f'backend rows: {path}, {runs} timed runs after {warmup} warm-up', flush=True)
    result = measure_backends(path, device=str(device), runs=runs, warmup=warmup,
                              dataset=dataset, limit=args.limit)
    print(markdown_backends_(result, machine), flush=True)
    print()
    return result


def markdown_backends(result: Dict[str, Any], machine: str) -> str:
    """Return the backend rows as markdown (bench_backends.markdown)."""
    from .bench_backends import markdown as markdown_backends_
    return markdown_backends_(result, machine)
