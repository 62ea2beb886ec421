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

"""`farsee-ros demo`: segment one frame and write the overlay, labels and timings."""

import argparse
import json
import os
from typing import Optional, Tuple

import cv2
import numpy as np

from .classes import CAMVID
from .model.checkpoint import make_metadata
from .model.network import build_model
from .resources import existing_default_model
from .segmenter import Segmenter


def synthetic_street_frame(height: int = 720, width: int = 960, seed: int = 0) -> np.ndarray:
    """
    Draw a SYNTHETIC street-like RGB frame procedurally (not a camera image).

    Sky gradient, building blocks, a road with lane marks, a pavement and a car-like box:
    enough structure to exercise the pipeline when no real frame is at hand.
    """
    rng = np.random.default_rng(seed)
    frame = np.zeros((height, width, 3), np.uint8)
    horizon = int(height * 0.45)
    sky = np.linspace(235, 150, horizon)[:, None]
    frame[:horizon] = np.stack([sky * 0.75, sky * 0.85, sky], axis=-1).astype(np.uint8)
    x = 0
    while x < width:
        w = int(rng.integers(width // 12, width // 5))
        top = int(rng.integers(height // 10, horizon - height // 20))
        frame[top:horizon, x:x + w] = rng.integers(60, 160, 3)
        x += w
    frame[horizon:] = (105, 100, 100)
    rows = np.arange(horizon, height)
    half = ((rows - horizon) / (height - horizon) * width * 0.6 + width * 0.05).astype(int)
    for row, h in zip(rows, half):
        frame[row, :max(0, width // 2 - h)] = (150, 140, 120)
        frame[row, min(width, width // 2 + h):] = (150, 140, 120)
        if (row // 12) % 2 == 0:
            frame[row, width // 2 - 3:width // 2 + 3] = (235, 235, 220)
    cx, cy = int(width * 0.3), int(height * 0.68)
    frame[cy - height // 12:cy + height // 12, cx - width // 10:cx + width // 10] = (40, 45, 120)
    noise = rng.normal(0.0, 4.0, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def load_segmenter(model: Optional[str], device: str) -> Tuple[Segmenter, str]:
    """Return a segmenter for `model`, the default weights, or, lacking both, an untrained net."""
    path = model or existing_default_model()
    if path:
        return Segmenter.from_checkpoint(path, device=device), path
    net = build_model('farseenet', num_classes=CAMVID.num_classes)
    metadata = make_metadata(net, CAMVID, input_size=[512, 768], dataset='untrained')
    return Segmenter(net, metadata, device=device), 'UNTRAINED (random weights)'


def colorize(labels: np.ndarray, palette) -> np.ndarray:
    """Class ids -> RGB image through `palette`."""
    return np.asarray(palette, np.uint8)[labels]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--image', help='an image file to segment (default: a synthetic frame)')
    parser.add_argument('--model', help='checkpoint (default: the installed default model)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--alpha', type=float, default=0.5, help='overlay opacity, 0-1')
    parser.add_argument('--out', default='demo_output', help='output folder')


def run(args: argparse.Namespace) -> int:
    if args.image:
        bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f'cannot read image {args.image!r}')
        frame, order, source = bgr, 'bgr', args.image
    else:
        frame, order = synthetic_street_frame(), 'rgb'
        source = 'SYNTHETIC street-like frame (procedurally drawn, not a camera image)'
    segmenter, model_name = load_segmenter(args.model, args.device)
    if segmenter.device_warning:
        print(f'note: {segmenter.device_warning}')
    segmenter.warmup()
    result = segmenter.segment(frame, order, overlay_alpha=args.alpha)
    os.makedirs(args.out, exist_ok=True)
    overlay = result.overlay if result.overlay_order == 'bgr' else result.overlay[..., ::-1]
    overlay_path = os.path.join(args.out, 'overlay.png')
    labels_path = os.path.join(args.out, 'labels_color.png')
    cv2.imwrite(overlay_path, overlay)
    cv2.imwrite(labels_path, colorize(result.labels, segmenter.metadata['palette'])[..., ::-1])
    summary = {
        'source': source, 'model': model_name, 'device': str(segmenter.device),
        'precision': segmenter.precision, 'frame_size': list(frame.shape[:2]),
        'input_size': list(segmenter.input_size), 'timings_ms': result.timings_ms,
        'class_pixels': {segmenter.class_names[i]: int(n) for i, n in
                         enumerate(np.bincount(result.labels.ravel(),
                                               minlength=len(segmenter.class_names)))},
    }
    with open(os.path.join(args.out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(f'frame:   {source} ({frame.shape[1]}x{frame.shape[0]})')
    print(f'model:   {model_name}')
    if model_name.startswith('UNTRAINED'):
        print('         no trained weights in models/ yet: the labels are not meaningful')
    print(f'device:  {segmenter.device} {segmenter.precision}, model input '
          f'{segmenter.input_size[1]}x{segmenter.input_size[0]}')
    print('times:   ' + ', '.join(f'{k} {v:.1f} ms' for k, v in result.timings_ms.items()))
    print(f'wrote:   {overlay_path}, {labels_path}, {os.path.join(args.out, "summary.json")}')
    return 0
