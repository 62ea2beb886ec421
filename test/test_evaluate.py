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


"""`farsee-ros evaluate`: the engine's labels scored against the dataset at full resolution."""

import json
import os

import numpy as np
import pytest

from farsee_ros.tools.cli import main
from farsee_ros.training.datasets import build_dataset
from farsee_ros.training.metrics import GridAlignment
from farsee_ros.engine import Segmenter


def _independent_scores(checkpoint, root, split):
    """Compute per-class IoU and pixel accuracy with numpy from the engine's labels."""
    segmenter = Segmenter.from_checkpoint(checkpoint, device='cpu')
    data = build_dataset('camvid', root, split)
    inter, union = np.zeros(11), np.zeros(11)
    pixels, images = np.zeros(11, int), np.zeros(11, int)
    correct = total = 0
    for index in range(len(data)):
        image, label = data.load(index)
        frame = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        prediction = segmenter.segment(frame, overlay=False).labels
        truth = label.numpy()
        keep = truth != 11
        for c in range(11):
            p, t = (prediction == c) & keep, (truth == c) & keep
            inter[c] += np.sum(p & t)
            union[c] += np.sum(p | t)
            pixels[c] += np.sum(t)
            images[c] += bool(np.any(t))
        correct += np.sum((prediction == truth) & keep)
        total += np.sum(keep)
    ious = [i / u if u else None for i, u in zip(inter, union)]
    present = [v for v in ious if v is not None]
    return ious, sum(present) / len(present), correct / total, pixels, images


def test_report_matches_an_independent_computation(small_checkpoint, camvid_root, tmp_path,
                                                   capsys):
    report_path = str(tmp_path / 'reports' / 'val.json')
    assert main(['evaluate', '--model', small_checkpoint, '--dataset', 'camvid', '--root',
                 camvid_root, '--split', 'val', '--device', 'cpu',
                 '--report', report_path]) == 0
    printed = capsys.readouterr().out
    with open(report_path) as f:
        report = json.load(f)
    for key in ('miou', 'per_class_iou', 'pixel_accuracy', 'input_size', 'model'):
        assert key in report, key
    assert report['input_size'] == [128, 192]
    assert report['model']['variant'] == 'farseenet' and len(report['model']['sha256']) == 64
    assert report['images'] == 4
    ious, miou, accuracy, pixels, images = _independent_scores(small_checkpoint, camvid_root,
                                                               'val')
    assert report['miou'] == pytest.approx(miou, abs=1e-12)
    assert report['pixel_accuracy'] == pytest.approx(accuracy, abs=1e-12)
    assert list(report['per_class_iou'].values()) == pytest.approx(ious, abs=1e-12)
    assert f'mIoU: {miou:.4f}' in printed.splitlines()
    # Each class's support: ground-truth pixels and the images that have it, in the report
    # and in the printed table.
    assert list(report['class_pixels'].values()) == pixels.tolist()
    assert list(report['class_images'].values()) == images.tolist()
    assert report['class_pixels'].keys() == report['per_class_iou'].keys()
    sky = next(line for line in printed.splitlines() if line.split()[:1] == ['Sky'])
    assert sky.endswith(f'{pixels[0]:,} ({100 * pixels[0] / pixels.sum():5.2f}%), '
                        f'{images[0]} of 4'), sky
    assert 0 <= report['grid_boundary_share'] <= 1 and 'blockiness: ' in printed
    assert 0 < report['grid_boundary_share_chance'] < 0.5
    matrix = np.array(report['confusion_matrix'])
    assert matrix.shape == (11, 11) and matrix.sum() == 4 * 46 * 64   # 2 ignore rows each
    for suffix in ('_per_class_iou.png', '_confusion.png'):
        assert os.path.getsize(str(tmp_path / 'reports' / 'val') + suffix) > 1000


def test_grid_alignment_tells_blocks_from_free_boundaries():
    """Blockiness: labels made of the network's 8x8 input cells sit on the grid; others not."""
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 3, (36, 48)).astype(np.uint8)
    blocky = GridAlignment((288, 384))          # 480x360 frames: a cell is 10x10 frame pixels
    blocky.update(np.repeat(np.repeat(cells, 10, axis=0), 10, axis=1))
    assert blocky.share() == 1.0
    assert blocky.chance() == pytest.approx(0.3, abs=0.005)   # 3 of 10 frame edges: the band
    free = GridAlignment((288, 384))
    y, x = np.mgrid[0:360, 0:480]
    for k in range(30):
        a, b = rng.normal(size=2)
        free.update(((a * (x - 240) + b * (y - 180) + 37 * k) % 97 < 40).astype(np.uint8))
    assert abs(free.share() - free.chance()) < 0.03, (free.share(), free.chance())
    # Counting by hand on a tiny map: input 16 wide, frame 16 wide: column edges at
    # t = 1..15; on the grid where (t + 1) mod 8 < 2: t = 7, 8, 15 (3 of 15).
    tiny = GridAlignment((16, 16))
    labels = np.zeros((16, 16), np.uint8)
    labels[:, 7:] = 1     # one column boundary at t = 7 (on the grid), 16 rows long
    labels[:, 10:] = 2    # one at t = 10 (off)
    tiny.update(labels)
    assert (tiny.on_grid, tiny.boundaries) == (16, 32)
    assert tiny.chance() == pytest.approx(3 / 15)
    assert GridAlignment((16, 16)).share() is None


def test_input_size_override_is_reported(small_checkpoint, camvid_root, tmp_path):
    report_path = str(tmp_path / 'r.json')
    assert main(['evaluate', '--model', small_checkpoint, '--dataset', 'camvid', '--root',
                 camvid_root, '--split', 'val', '--device', 'cpu', '--input-size', '64', '96',
                 '--limit', '2', '--report', report_path]) == 0
    with open(report_path) as f:
        report = json.load(f)
    assert report['input_size'] == [64, 96] and report['images'] == 2


def test_class_set_mismatch_is_a_clear_error(small_checkpoint, tmp_path, capsys):
    from conftest import write_labelled_scenes
    from farsee_ros.model.classes import CITYSCAPES
    root = tmp_path / 'cs'
    write_labelled_scenes(root / 'images', root / 'labels', 1, classes=CITYSCAPES)
    assert main(['evaluate', '--model', small_checkpoint, '--dataset', 'folders', '--root',
                 str(root), '--split', '', '--classes', 'cityscapes', '--device', 'cpu']) == 2
    err = capsys.readouterr().err
    assert 'the model predicts 11 classes' in err and "class set 'cityscapes'" in err
    assert main(['evaluate', '--model', small_checkpoint, '--dataset', 'camvid', '--root',
                 str(tmp_path / 'missing'), '--device', 'cpu']) == 2
    assert 'is not a directory' in capsys.readouterr().err
