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
`farsee-ros evaluate`: mIoU, per-class IoU and pixel accuracy at the labels' full resolution.

Every frame goes through the engine (Segmenter.segment), exactly as the node runs it, so the
numbers describe what a robot gets. Writes a JSON report with a per-class IoU bar chart and a
confusion-matrix image beside it.
"""

import argparse
import json
import os
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..common import sha256_of
from ..model.classes import class_set_of, CLASS_SETS
from .datasets import build_dataset, DATASETS, SegmentationDataset
from .metrics import ConfusionMatrix, GridAlignment
from ..engine import add_backend_argument, add_device_argument, Segmenter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the evaluate command's options to `parser`."""
    parser.add_argument('--model', required=True, help='checkpoint (.pt) or engine ONNX file')
    parser.add_argument('--dataset', required=True, choices=DATASETS)
    parser.add_argument('--root', required=True, help='dataset root directory')
    parser.add_argument('--split', default='val', help="split spec: 'test', 'train+val', or "
                        "whole sequences 'train:0006R0' (docs/training.md)")
    parser.add_argument('--classes', default=None,
                        help="class set of a 'folders' dataset (default: the model's)")
    parser.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'),
                        help="network input size (default: the checkpoint's)")
    add_device_argument(parser)
    add_backend_argument(parser)
    parser.add_argument('--precision', default='auto', choices=['auto', 'fp32', 'fp16'])
    parser.add_argument('--report', help='write a JSON report here (figures beside it)')
    parser.add_argument('--limit', type=int, default=0, help='evaluate the first N images only')


def evaluate(segmenter: Segmenter, dataset: SegmentationDataset, *, limit: int = 0,
             progress: bool = True,
             grid: Optional[Tuple[GridAlignment, GridAlignment]] = None) -> ConfusionMatrix:
    """
    Segment every image of `dataset` through the engine; return the confusion matrix.

    `grid`: (predicted, truth) GridAlignment counters to update with the labels.
    """
    from tqdm import tqdm

    names = list(segmenter.class_names)
    if names != list(dataset.classes.class_names):
        raise ValueError(
            f'the model predicts {len(names)} classes ({", ".join(names[:4])}, ...) but the '
            f'{dataset.name} labels use class set {dataset.classes.name!r} '
            f'({dataset.classes.num_classes} classes); evaluate on matching data')
    confusion = ConfusionMatrix(dataset.classes.num_classes, dataset.classes.ignore_index)
    count = min(len(dataset), limit) if limit else len(dataset)
    for index in tqdm(range(count), desc='evaluate', disable=None if progress else True,
                      leave=False):
        image, label = dataset.load(index)
        frame = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        result = segmenter.segment(frame, 'rgb', overlay=False)
        confusion.update(torch.from_numpy(result.labels), label)
        if grid:
            predicted, truth = grid
            predicted.update(result.labels)
            truth.update(label.numpy())
    return confusion


def compare(reference: Segmenter, candidate: Segmenter, dataset: SegmentationDataset, *,
            limit: int = 0) -> Dict[str, Any]:
    """Segment `dataset` with both; return each mIoU and the share of equal labels."""
    confusions = [ConfusionMatrix(dataset.classes.num_classes, dataset.classes.ignore_index)
                  for _ in range(2)]
    count = min(len(dataset), limit) if limit else len(dataset)
    equal = total = 0
    for index in range(count):
        image, label = dataset.load(index)
        frame = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        results = [s.segment(frame, 'rgb', overlay=False).labels for s in (reference, candidate)]
        for confusion, labels in zip(confusions, results):
            confusion.update(torch.from_numpy(labels), label)
        equal += int((results[0] == results[1]).sum())
        total += results[0].size
    return {'frames': count, 'miou': [c.miou() for c in confusions],
            'agreement': equal / max(total, 1)}


def report_dict(confusion: ConfusionMatrix, class_names: Sequence[str], *, model_path: str,
                metadata: Dict[str, Any], input_size: Sequence[int], dataset: str, split: str,
                images: int) -> Dict[str, Any]:
    """Build the JSON report: miou, per_class_iou, pixel_accuracy, input_size, model, ..."""
    summary = confusion.summary(class_names)
    return {
        'miou': summary['miou'],
        'per_class_iou': summary['per_class_iou'],
        'pixel_accuracy': summary['pixel_accuracy'],
        'class_pixels': summary['class_pixels'],
        'class_images': summary['class_images'],
        'input_size': [int(s) for s in input_size],
        'model': {'path': os.path.abspath(model_path), 'sha256': sha256_of(model_path),
                  'variant': metadata.get('variant'), 'dataset': metadata.get('dataset')},
        'dataset': dataset,
        'split': split,
        'images': images,
        'class_names': list(class_names),
        'confusion_matrix': summary['confusion_matrix'],
        'confusion_matrix_axes': 'rows: ground truth, columns: prediction (pixels)',
    }


def write_figures(report: Dict[str, Any], stem: str) -> Sequence[str]:
    """Write <stem>_per_class_iou.png and <stem>_confusion.png; return their paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = report['class_names']
    ious = [report['per_class_iou'][n] for n in names]
    bar_path, matrix_path = f'{stem}_per_class_iou.png', f'{stem}_confusion.png'

    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names)), 4.5), dpi=100)
    ax.bar(range(len(names)), [v if v is not None else 0 for v in ious], color='tab:blue')
    ax.axhline(report['miou'] or 0, color='tab:red', linestyle='--',
               label=f'mIoU {report["miou"] or 0:.3f}')
    ax.set_xticks(range(len(names)), names, rotation=45, ha='right')
    ax.set_ylim(0, 1)
    ax.set_ylabel('IoU')
    ax.set_title(f'{report["dataset"]}/{report["split"]}: per-class IoU')
    ax.legend()
    fig.tight_layout()
    fig.savefig(bar_path)
    plt.close(fig)

    matrix = np.asarray(report['confusion_matrix'], dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(names) + 2),) * 2, dpi=100)
    image = ax.imshow(share, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha='right')
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel('predicted')
    ax.set_ylabel('ground truth')
    for i in range(len(names)):
        for j in range(len(names)):
            if share[i, j] >= 0.01:
                ax.text(j, i, f'{share[i, j]:.2f}', ha='center', va='center', fontsize=7,
                        color='white' if share[i, j] > 0.5 else 'black')
    fig.colorbar(image, fraction=0.046, pad=0.04, label='share of the ground-truth row')
    ax.set_title('confusion matrix (row-normalised)')
    fig.tight_layout()
    fig.savefig(matrix_path)
    plt.close(fig)
    return bar_path, matrix_path


def run(args: argparse.Namespace) -> int:
    """Evaluate; print the per-class table and `mIoU: <value>`."""
    segmenter = Segmenter.from_checkpoint(args.model, backend=args.backend, device=args.device,
                                          precision=args.precision, input_size=args.input_size)
    classes = args.classes
    if classes is None:   # a 'folders' dataset's labels: the model's class set if built in
        classes = class_set_of(segmenter.metadata).name
        classes = classes if classes in CLASS_SETS else 'camvid'
    dataset = build_dataset(args.dataset, args.root, args.split, classes=classes)
    predicted, truth = GridAlignment(segmenter.input_size), GridAlignment(segmenter.input_size)
    confusion = evaluate(segmenter, dataset, limit=args.limit, grid=(predicted, truth))
    images = min(len(dataset), args.limit) if args.limit else len(dataset)
    report = report_dict(confusion, segmenter.class_names, model_path=args.model,
                         metadata=segmenter.metadata, input_size=segmenter.input_size,
                         dataset=args.dataset, split=args.split, images=images)
    report['model']['backend'] = segmenter.description
    report['grid_boundary_share'] = predicted.share()
    report['grid_boundary_share_ground_truth'] = truth.share()
    report['grid_boundary_share_chance'] = predicted.chance()
    width = max(len(n) for n in segmenter.class_names)
    print(f'{args.dataset}/{args.split}: {images} images, input '
          f'{segmenter.input_size[0]}x{segmenter.input_size[1]}, {segmenter.description}, '
          f'model {args.model}')
    labelled = max(sum(report['class_pixels'].values()), 1)
    print(f'  {"class":<{width}}  IoU     ground truth: pixels (share), images')
    for name, value in report['per_class_iou'].items():
        pixels, seen = report['class_pixels'][name], report['class_images'][name]
        print(f'  {name:<{width}}  {"n/a   " if value is None else f"{value:.4f}"}  '
              f'{pixels:>12,} ({100 * pixels / labelled:5.2f}%), {seen} of {images}')
    print(f'pixel accuracy: {report["pixel_accuracy"]:.4f}')
    if predicted.share() is not None and truth.share() is not None:
        print(f'blockiness: {predicted.share():.3f} of label boundaries on the 8-pixel cell '
              f'grid of the network input (ground truth {truth.share():.3f}, grid-blind '
              f'{predicted.chance():.3f})')
    print(f'mIoU: {report["miou"]:.4f}')
    if args.report:
        os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
        with open(args.report, 'w') as f:
            json.dump(report, f, indent=2)
        figures = write_figures(report, os.path.splitext(args.report)[0])
        print(f'report: {args.report} ({", ".join(figures)})')
    return 0
