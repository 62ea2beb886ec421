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
`farsee-ros bench-node`: the node's latency through real DDS, and its overhead.

A publisher (this process) sends frames at a fixed rate to segment_node (its own process);
this process also subscribes to the labels. Reported: per-stage medians from the node's
per-frame latency records, the node's overhead (everything but the model forward: decode,
preprocess, postprocess, publish), the end-to-end latency a subscriber sees (labels received
minus the frame's stamp) and that minus the model forward, and frames sent/processed/dropped.
"""

import argparse
import json
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .bag import BagFrame
from ..common import percentiles
from ..engine import add_device_argument
from ..ros.parameters import LATENCY_STAGES

STATISTICS = ('p50', 'p95', 'p99', 'max')
# --transport: the Fast DDS setting of both ends (the node and this process's subscriber).
TRANSPORTS = {
    'default': {},                                        # what a user has: the node's profile
    'default-no-profile': {'FARSEE_FASTDDS_PROFILE': '0'},   # Fast DDS defaults on both ends
    'large-data': {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the bench-node command's options to `parser`."""
    parser.add_argument('--model', help='checkpoint (default: an untrained FarSee-Net, CamVid '
                        'classes, 512x768 input: speed only)')
    add_device_argument(parser)
    parser.add_argument('--size', type=int, nargs=2, default=[1024, 2048], metavar=('H', 'W'))
    parser.add_argument('--rate', type=float, default=30.0, help='frames per second sent')
    parser.add_argument('--frames', type=int, default=150, help='frames measured')
    parser.add_argument('--warmup', type=int, default=20, help='frames sent first, not counted')
    parser.add_argument('--transport', nargs='+', default=['default'], choices=list(TRANSPORTS),
                        help='Fast DDS setting of both ends, one run each: default (what a '
                        "user who configured nothing has; the node applies its own profile), "
                        'default-no-profile (Fast DDS defaults everywhere), large-data')
    parser.add_argument('--no-overlay', action='store_true',
                        help='do not subscribe to the overlay (it is then not rendered)')
    parser.add_argument('--report', help='write the results as JSON here')


def _untrained_checkpoint(folder: str) -> str:
    from ..model.checkpoint import make_metadata, save_checkpoint
    from ..model.classes import CAMVID
    from ..model.network import build_model
    model = build_model('farseenet', num_classes=CAMVID.num_classes)
    path = os.path.join(folder, 'untrained_farseenet.pt')
    save_checkpoint(path, model, make_metadata(model, CAMVID, input_size=[512, 768],
                                               dataset='untrained (speed only)'))
    return path


def measure(*, model: Optional[str] = None, device: str = 'auto',
            size: Sequence[int] = (1024, 2048), rate: float = 30.0, frames: int = 150,
            warmup: int = 20, overlay: bool = True, transport: str = 'default') -> Dict[str, Any]:
    """Start segment_node, send `frames` bgr8 frames of `size` at `rate` Hz, summarise."""
    # Discovery stays at the ROS default (SUBNET) because LOCALHOST makes rmw_fastrtps ignore
    # FASTDDS_BUILTIN_TRANSPORTS (docs/qos.md); node_run gives the run its own domain.
    from .node_run import play

    if transport not in TRANSPORTS:
        raise ValueError(f'transport {transport!r}; accepted: {", ".join(TRANSPORTS)}')
    height, width = size
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    sequence = [BagFrame(0, 'bench', 'bgr8', pixels)] * frames
    saved = {k: os.environ.get(k) for settings in TRANSPORTS.values() for k in settings}
    try:   # both ends: the node process inherits this environment
        for key in saved:
            os.environ.pop(key, None)
        os.environ.update(TRANSPORTS[transport])
        with tempfile.TemporaryDirectory() as folder:
            playback = play(sequence, '/bench/image_raw',
                            model=model or _untrained_checkpoint(folder), device=device,
                            rate=rate, overlay=overlay, warmup=warmup, drain=10.0,
                            desc='bench_node')
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value
    results = summarise(playback, size=size, rate=rate, overlay=overlay)
    results.update(transport=transport, device_log=[playback.node])
    return results


def run(args: argparse.Namespace) -> int:
    """Measure, print the tables and write the JSON report."""
    runs = [measure(model=args.model, device=args.device, size=args.size, rate=args.rate,
                    frames=args.frames, warmup=args.warmup, overlay=not args.no_overlay,
                    transport=transport) for transport in args.transport]
    for results in runs:
        _print(results)
    results = runs[0] if len(runs) == 1 else {'runs': runs}
    if len(runs) > 1:
        print('| transport | frames | subscriber p50 | p99 | max | minus the node\'s own p50 |')
        print('| --- | ---: | ---: | ---: | ---: | ---: |')
        for r in runs:
            lat, extra = r['subscriber_latency_ms'], r['subscriber_minus_node_ms']
            print(f"| {r['transport']} | {r['frames_processed']}/{r['frames_sent']} | "
                  f"{_ms(lat['p50'])} | {_ms(lat['p99'])} | {_ms(lat['max'])} | "
                  f"{_ms(extra['p50'])} |")
    if args.report:
        with open(args.report, 'w') as f:
            json.dump(results, f, indent=2)
        print(f'wrote {args.report}')
    return 0


def summarise(playback, *, size: Sequence[int], rate: float, overlay: bool) -> Dict[str, Any]:
    """Join the node's outputs to the frames sent: stage medians, overhead, latency."""
    from .harness import latency_stages
    from .node_run import first_by_stamp

    stages: Dict[str, List[float]] = {k: [] for k in LATENCY_STAGES}
    node_by_stamp = {}
    for stamp, (_, msg) in first_by_stamp(playback.sent, playback.latency).items():
        values = latency_stages(msg)
        node_by_stamp[stamp] = values
        for key in LATENCY_STAGES:
            stages[key].append(values[key])
    subscriber, subscriber_overhead, after_node = [], [], []
    received = first_by_stamp(playback.sent, playback.labels)
    for stamp, (received_ns, _) in received.items():
        subscriber.append((received_ns - stamp) / 1e6)
        if stamp in node_by_stamp:
            subscriber_overhead.append(subscriber[-1] - node_by_stamp[stamp]['inference'])
            # The node's end_to_end is taken just after it published the frame's outputs.
            after_node.append(subscriber[-1] - node_by_stamp[stamp]['end_to_end'])
    node_overhead = [p - i for p, i in zip(stages['processing'], stages['inference'])]
    return {
        'frame': f'{size[0]}x{size[1]} bgr8', 'rate_hz': rate,
        'overlay_subscribed': overlay, 'frames_sent': len(playback.sent),
        'frames_processed': len(received), 'dropped': len(playback.sent) - len(received),
        'stage_median_ms': {k: percentiles(v, ('p50',))['p50'] for k, v in stages.items()},
        'node_overhead_ms': percentiles(node_overhead, STATISTICS),
        'subscriber_latency_ms': percentiles(subscriber, STATISTICS),
        'subscriber_latency_minus_inference_ms': percentiles(subscriber_overhead, STATISTICS),
        'subscriber_minus_node_ms': percentiles(after_node, STATISTICS),
    }


def _ms(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.1f}'


def _print(results: Dict[str, Any]) -> None:
    print(f"segment_node, {results['frame']} at {results['rate_hz']:g} Hz, Fast DDS "
          f"{results['transport']}, overlay "
          f"{'subscribed' if results['overlay_subscribed'] else 'not subscribed'}: "
          f"{results['frames_processed']}/{results['frames_sent']} frames processed, "
          f"{results['dropped']} dropped (latest-frame-only)")
    print('| stage | median (ms) |')
    print('| --- | ---: |')
    for key, value in results['stage_median_ms'].items():
        print(f'| {key} | {_ms(value)} |')
    print('| measure | p50 | p95 | p99 | max |')
    print('| --- | ---: | ---: | ---: | ---: |')
    for key in ('node_overhead_ms', 'subscriber_latency_ms',
                'subscriber_latency_minus_inference_ms', 'subscriber_minus_node_ms'):
        v = results[key]
        print(f"| {key} | {' | '.join(_ms(v[k]) for k in STATISTICS)} |")
