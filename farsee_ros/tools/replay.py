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
`farsee-ros replay`: play a rosbag2's frames to segment_node over real ROS topics and score it.

Starts the node (or talks to a running one with --external), publishes the bag's images,
records what the node publishes, joins outputs to inputs by stamp and reports frames
sent/received/dropped, latency percentiles and, with ground truth, mIoU and per-class IoU.
Frames are re-stamped with the publish time (the original stamp is kept for the ground-truth
join), so latency = a subscriber's receive time - header stamp, as any subscriber would
measure it; --keep-stamps publishes the bag's stamps and measures from the publish time.
"""

import argparse
import json
import os
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from .bag import BagWriter, IMAGE_TYPE, read_images
from ..common import percentiles
from ..engine import add_backend_argument, add_device_argument
from ..model.classes import CAMVID, class_set_of, ClassSet, get_class_set
from ..training.metrics import ConfusionMatrix
from ..model.checkpoint import read_checkpoint
from ..ros.resources import existing_default_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the replay command's options to `parser`."""
    parser.add_argument('bag', help='rosbag2 directory (mcap or sqlite3)')
    parser.add_argument('--image-topic', required=True, help='sensor_msgs/Image topic in the bag')
    parser.add_argument('--labels-topic', help='ground-truth mono8 labels topic in the bag')
    parser.add_argument('--model', help='checkpoint (default: the installed default model)')
    add_device_argument(parser)
    add_backend_argument(parser)
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument('--rate', type=float, help='publish at this rate (Hz); default: the '
                      "bag's own timing")
    pace.add_argument('--max-rate', action='store_true',
                      help='publish each frame as soon as the previous one came back')
    parser.add_argument('--keep-stamps', action='store_true',
                        help="publish the bag's header stamps instead of the publish time")
    parser.add_argument('--out-bag', help='write inputs, labels, overlay and latency here')
    parser.add_argument('--report', help='JSON report (latency plots beside it)')
    parser.add_argument('--external', action='store_true',
                        help='use a running segment_node instead of starting one')
    parser.add_argument('--node-name', default='farsee',
                        help='the node whose topics are read (/<name>/labels, ...)')
    parser.add_argument('--classes', help="class set of the ground truth (default: the "
                        "model's; camvid or cityscapes)")
    parser.add_argument('--limit', type=int, default=0, help='first N frames only')
    parser.add_argument('--drain', type=float, default=10.0,
                        help='seconds to wait for outputs after the last frame')


def plot_latency(rows: List[Dict[str, Any]], stem: str,
                 title: str = 'farsee-ros replay: end-to-end latency per frame') -> List[str]:
    """Write <stem>_latency.png (over time, drops marked) and <stem>_latency_hist.png."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    t0 = rows[0]['sent_s'] if rows else 0.0
    got = [(r['sent_s'] - t0, r['latency_ms']) for r in rows if r['latency_ms'] is not None]
    lost = [r['sent_s'] - t0 for r in rows if r['latency_ms'] is None]
    paths = [f'{stem}_latency.png', f'{stem}_latency_hist.png']
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    if got:
        ax.plot(*zip(*got), marker='.', linewidth=0.8, label='labels received')
    if lost:
        ax.scatter(lost, [0] * len(lost), marker='x', color='tab:red',
                   label=f'dropped ({len(lost)})')
    ax.set_xlabel('time since the first frame (s)')
    ax.set_ylabel('latency (ms): receive - stamp')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[0])
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if got:
        values = [v for _, v in got]
        ax.hist(values, bins=min(50, max(5, len(values) // 3)), color='tab:blue')
        for name, value in percentiles(values, ('p50', 'p95', 'p99')).items():
            ax.axvline(value, linestyle='--', color='tab:red')
            ax.text(value, ax.get_ylim()[1] * 0.9, f' {name}', color='tab:red')
    ax.set_xlabel('latency (ms)')
    ax.set_ylabel('frames')
    ax.set_title('latency histogram')
    fig.tight_layout()
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def run(args: argparse.Namespace) -> int:
    """Replay the bag; print the summary; write the report, plots and output bag."""
    from .node_run import play

    frames = list(read_images(args.bag, args.image_topic))
    if args.limit:
        frames = frames[:args.limit]
    if not frames:
        raise ValueError(f'bag {args.bag} has no frames on {args.image_topic}')
    truth = ({f.stamp_ns: f.pixels for f in read_images(args.bag, args.labels_topic)}
             if args.labels_topic else {})
    classes = ground_truth_classes(args.classes, args.model)
    if args.rate is not None and not args.rate > 0:
        raise ValueError(f'--rate must be positive, not {args.rate}')
    if args.out_bag and os.path.exists(args.out_bag):
        raise ValueError(f'--out-bag {args.out_bag} exists; choose a new directory')

    playback = play(frames, args.image_topic, model=args.model, device=args.device,
                    backend=args.backend,
                    rate=args.rate, max_rate=args.max_rate, keep_stamps=args.keep_stamps,
                    external=args.external, node_name=args.node_name,
                    overlay=bool(args.out_bag), keep_inputs=bool(args.out_bag),
                    drain=args.drain)
    report, rows = summarise(playback.sent, playback.labels, playback.latency, truth,
                             classes)
    report.update(bag=os.path.abspath(args.bag), image_topic=args.image_topic,
                  labels_topic=args.labels_topic, pacing=(
                      'max-rate' if args.max_rate else f'{args.rate:g} Hz' if args.rate
                      else 'bag timing'),
                  stamps='bag' if args.keep_stamps else 'publish time',
                  node=playback.node)
    print_summary(report)
    if args.out_bag:
        write_out_bag(args.out_bag, args.image_topic, playback.prefix, playback.published,
                      playback.labels, playback.overlays, playback.latency)
        print(f'output bag: {args.out_bag}')
    if args.report:
        os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
        with open(args.report, 'w') as f:
            json.dump(dict(report, frames=rows), f, indent=2)
        plots = plot_latency(rows, os.path.splitext(args.report)[0])
        print(f'report: {args.report} ({", ".join(plots)})')
    return 0


def ground_truth_classes(name: Optional[str], model: Optional[str]) -> ClassSet:
    """Return the class set named, else the model's (or the default model's), else CamVid."""
    if name:
        return get_class_set(name)
    path = model or existing_default_model()
    if path:
        return class_set_of(read_checkpoint(path)[1])
    return CAMVID


def summarise(sent: Dict[int, Dict[str, Any]], labels: List[Any], latency_msgs: List[Any],
              truth: Dict[int, np.ndarray], classes: ClassSet):
    """Join outputs to inputs by stamp; return the report and one row per frame sent."""
    from .harness import latency_stages, stamp_ns
    from .node_run import first_by_stamp
    received = first_by_stamp(sent, labels)
    node_stages: Dict[str, List[float]] = {}
    for _, msg in latency_msgs:
        if stamp_ns(msg.header) in sent:
            for stage, value in latency_stages(msg).items():
                node_stages.setdefault(stage, []).append(value)
    confusion = ConfusionMatrix(classes.num_classes, classes.ignore_index)
    evaluated = 0
    rows = []
    for stamp, info in sorted(sent.items(), key=lambda item: item[1]['index']):
        row = {'index': info['index'], 'stamp_ns': stamp, 'bag_stamp_ns': info['bag_stamp'],
               'sent_s': info['sent_ns'] / 1e9, 'latency_ms': None}
        if stamp in received:
            received_ns, msg = received[stamp]
            # Measured as any subscriber would: receive time - header stamp.
            row['latency_ms'] = (received_ns - stamp) / 1e6
            gt = truth.get(info['bag_stamp'])
            if gt is not None:
                predicted = np.frombuffer(bytes(msg.data), np.uint8).reshape(
                    msg.height, msg.step)[:, :msg.width]
                confusion.update(torch.from_numpy(predicted.copy()),
                                 torch.from_numpy(np.array(gt)))
                evaluated += 1
        rows.append(row)
    latencies = [r['latency_ms'] for r in rows if r['latency_ms'] is not None]
    report: Dict[str, Any] = {
        'frames_sent': len(sent),
        'frames_received': len(received),
        'dropped': len(sent) - len(received),
        'latency_ms': percentiles(latencies),
        'node_latency_ms': {k: percentiles(v) for k, v in node_stages.items()},
        'miou': None, 'per_class_iou': None, 'pixel_accuracy': None, 'frames_evaluated': 0,
    }
    if evaluated:
        summary = confusion.summary(classes.class_names)
        report.update(miou=summary['miou'], per_class_iou=summary['per_class_iou'],
                      pixel_accuracy=summary['pixel_accuracy'], frames_evaluated=evaluated,
                      confusion_matrix=summary['confusion_matrix'],
                      class_pixels=summary['class_pixels'], class_images=summary['class_images'])
    return report, rows


def print_summary(report: Dict[str, Any]) -> None:
    """Print the replay's headline numbers."""
    lat = report['latency_ms']
    print(f'frames sent {report["frames_sent"]}, received {report["frames_received"]}, '
          f'dropped {report["dropped"]} ({report["pacing"]})')
    if lat['p50'] is not None:
        print(f'latency ms (receive - stamp): p50 {lat["p50"]:.1f}  p95 {lat["p95"]:.1f}  '
              f'p99 {lat["p99"]:.1f}  max {lat["max"]:.1f}')
    if report['miou'] is not None:
        print(f'mIoU: {report["miou"]:.4f} over {report["frames_evaluated"]} frames '
              f'(pixel accuracy {report["pixel_accuracy"]:.4f})')
    else:
        print('mIoU: n/a (no ground truth)')


def write_out_bag(path: str, image_topic: str, prefix: str, published, labels, overlays,
                  latency_msgs) -> None:
    """Write the published frames and the node's outputs, each at its publish/receive time."""
    from rclpy.serialization import serialize_message
    with BagWriter(path, 'mcap') as writer:
        writer.topic(image_topic, IMAGE_TYPE)
        for sent_ns, data in published:
            writer.write_cdr(image_topic, sent_ns, data)
        for topic, msgtype, messages in (
                (f'{prefix}/labels', IMAGE_TYPE, labels),
                (f'{prefix}/overlay', IMAGE_TYPE, overlays),
                (f'{prefix}/latency', 'diagnostic_msgs/msg/DiagnosticArray', latency_msgs)):
            if messages:
                writer.topic(topic, msgtype)
                for received_ns, msg in messages:
                    writer.write_cdr(topic, received_ns, serialize_message(msg))
