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
import random
import tempfile
from typing import Any, Dict, List

import numpy as np

from ..ros.parameters import LATENCY_STAGES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', help='checkpoint (default: an untrained FarSee-Net, CamVid '
                        'classes, 512x768 input: speed only)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--size', type=int, nargs=2, default=[1024, 2048], metavar=('H', 'W'))
    parser.add_argument('--rate', type=float, default=30.0, help='frames per second sent')
    parser.add_argument('--frames', type=int, default=150, help='frames measured')
    parser.add_argument('--warmup', type=int, default=20, help='frames sent first, not counted')
    parser.add_argument('--no-overlay', action='store_true',
                        help='do not subscribe to the overlay (it is then not rendered)')
    parser.add_argument('--report', help='write the results as JSON here')


def _percentiles(values: List[float]) -> Dict[str, float]:
    if not values:
        return {'p50': float('nan'), 'p95': float('nan'), 'p99': float('nan'),
                'max': float('nan')}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {'p50': float(p50), 'p95': float(p95), 'p99': float(p99), 'max': float(max(values))}


def _untrained_checkpoint(folder: str) -> str:
    from ..model.classes import CAMVID
    from ..model.checkpoint import make_metadata, save_checkpoint
    from ..model.network import build_model
    model = build_model('farseenet', num_classes=CAMVID.num_classes)
    path = os.path.join(folder, 'untrained_farseenet.pt')
    save_checkpoint(path, model, make_metadata(model, CAMVID, input_size=[512, 768],
                                               dataset='untrained (speed only)'))
    return path


def measure(args: argparse.Namespace) -> Dict[str, Any]:
    """Start segment_node, send the frames, and return the summarised measurements."""
    # An own domain isolates the run; discovery stays at the ROS default (SUBNET) because
    # LOCALHOST makes rmw_fastrtps ignore FASTDDS_BUILTIN_TRANSPORTS (docs/qos.md).
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
    import time

    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from .harness import Client, image_message, NodeProcess, stamp_ns

    height, width = args.size
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or _untrained_checkpoint(folder)
        node = NodeProcess(folder, {'model_path': model, 'device': args.device,
                                    'image_topics': '[/bench/image_raw]'}, name='bench_node')
        client = Client('farsee_bench')
        try:
            client.collect(DiagnosticArray, '/farsee/latency', depth=100)
            client.collect(Image, '/farsee/labels', depth=100)
            if not args.no_overlay:
                client.collect(Image, '/farsee/overlay', depth=100)
            camera = client.publisher(Image, '/bench/image_raw', depth=10)
            if not client.wait_for(lambda: camera.get_subscription_count() > 0, 120):
                raise RuntimeError(f'segment_node did not subscribe:\n{node.log()[-2000:]}')
            time.sleep(2.0)
            rng = np.random.default_rng(0)
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            period = 1.0 / args.rate
            sent: List[int] = []
            next_time = time.monotonic()
            for index in range(args.warmup + args.frames):
                msg = image_message(pixels, 'bgr8', client.now_ns(), frame_id='bench')
                camera.publish(msg)
                if index >= args.warmup:
                    sent.append(stamp_ns(msg.header))
                next_time += period
                time.sleep(max(0.0, next_time - time.monotonic()))
            time.sleep(3.0)
            results = _summarise(client, sent, args)
            results['device_log'] = [ln for ln in node.log().splitlines() if 'model ' in ln][:1]
        finally:
            client.close()
            node.stop()
    return results


def run(args: argparse.Namespace) -> int:
    """Measure, print the tables and write the JSON report."""
    results = measure(args)
    _print(results)
    if args.report:
        with open(args.report, 'w') as f:
            json.dump(results, f, indent=2)
        print(f'wrote {args.report}')
    return 0


def _summarise(client: Any, sent: List[int], args: argparse.Namespace) -> Dict[str, Any]:
    from .harness import latency_stages, stamp_ns
    wanted = set(sent)
    stages: Dict[str, List[float]] = {k: [] for k in LATENCY_STAGES}
    inference_by_stamp = {}
    for _, msg in client.timed_messages('/farsee/latency'):
        stamp = stamp_ns(msg.header)
        values = latency_stages(msg)
        inference_by_stamp[stamp] = values['inference']
        if stamp in wanted:
            for key in LATENCY_STAGES:
                stages[key].append(values[key])
    seen, subscriber, subscriber_overhead = set(), [], []
    for received_ns, msg in client.timed_messages('/farsee/labels'):
        stamp = stamp_ns(msg.header)
        if stamp in wanted and stamp not in seen:
            seen.add(stamp)
            subscriber.append((received_ns - stamp) / 1e6)
            if stamp in inference_by_stamp:
                subscriber_overhead.append(subscriber[-1] - inference_by_stamp[stamp])
    node_overhead = [p - i for p, i in zip(stages['processing'], stages['inference'])]
    return {
        'frame': f'{args.size[0]}x{args.size[1]} bgr8', 'rate_hz': args.rate,
        'overlay_subscribed': not args.no_overlay, 'frames_sent': len(sent),
        'frames_processed': len(seen), 'dropped': len(sent) - len(seen),
        'stage_median_ms': {k: float(np.median(v)) if v else float('nan')
                            for k, v in stages.items()},
        'node_overhead_ms': _percentiles(node_overhead),
        'subscriber_latency_ms': _percentiles(subscriber),
        'subscriber_latency_minus_inference_ms': _percentiles(subscriber_overhead),
    }


def _print(results: Dict[str, Any]) -> None:
    print(f"segment_node, {results['frame']} at {results['rate_hz']:g} Hz, overlay "
          f"{'subscribed' if results['overlay_subscribed'] else 'not subscribed'}: "
          f"{results['frames_processed']}/{results['frames_sent']} frames processed, "
          f"{results['dropped']} dropped (latest-frame-only)")
    print('| stage | median (ms) |')
    print('| --- | ---: |')
    for key, value in results['stage_median_ms'].items():
        print(f'| {key} | {value:.1f} |')
    print('| measure | p50 | p95 | p99 | max |')
    print('| --- | ---: | ---: | ---: | ---: |')
    for key in ('node_overhead_ms', 'subscriber_latency_ms',
                'subscriber_latency_minus_inference_ms'):
        v = results[key]
        print(f"| {key} | {v['p50']:.1f} | {v['p95']:.1f} | {v['p99']:.1f} | {v['max']:.1f} |")
