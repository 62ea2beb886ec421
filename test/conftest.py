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

"""Test session set-up: an own ROS domain per run, on loopback, and shared fixtures."""

import os
import random

import pytest


def _domain_id() -> str:
    """
    Return this test process's ROS_DOMAIN_ID: FARSEE_TEST_DOMAIN_ID, else one of its own.

    Under pytest-xdist the workers of one run take consecutive ids from a base drawn from the
    run's id, so they never hear each other either.
    """
    chosen = os.environ.get('FARSEE_TEST_DOMAIN_ID')
    worker = os.environ.get('PYTEST_XDIST_WORKER', '')   # gw0, gw1, ...
    if worker.startswith('gw'):
        base = int(os.environ.get('PYTEST_XDIST_TESTRUNUID', '0') or '0', 16) % 60
        return str((int(chosen) if chosen else 1 + base) + int(worker[2:]))
    return chosen or str(random.SystemRandom().randint(1, 100))


# Under pytest-xdist each worker (and every process it starts) computes on one thread: two
# workers with two threads each would oversubscribe a 2-core machine, and the threads' spin
# waits then cost more CPU than the work itself.
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ.setdefault('OMP_NUM_THREADS', '1')

# Each test run gets its own ROS_DOMAIN_ID so parallel runs never hear each other; discovery
# stays on this machine. Set FARSEE_TEST_DOMAIN_ID to choose one (with pytest-xdist: the first
# of consecutive ones, one per worker).
os.environ['ROS_DOMAIN_ID'] = _domain_id()
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session')
def repo():
    """Return the repository root."""
    return REPO


@pytest.fixture(scope='session')
def small_checkpoint(tmp_path_factory):
    """Write a small untrained CamVid FarSee-Net checkpoint (input 128x192) and return its path."""
    import torch

    from farsee_ros.model.classes import CAMVID
    from farsee_ros.model.checkpoint import make_metadata, save_checkpoint
    from farsee_ros.model.network import build_model

    torch.manual_seed(0)
    model = build_model('farseenet', num_classes=CAMVID.num_classes).eval()
    path = str(tmp_path_factory.mktemp('ckpt') / 'small.pt')
    save_checkpoint(path, model, make_metadata(model, CAMVID, input_size=[128, 192],
                                               metrics={'note': 'untrained test model'}))
    return path


@pytest.fixture(scope='session')
def node_checkpoint(tmp_path_factory):
    """
    Write a small untrained FarSee-Net on Lite0 (input 128x192) for node tests; return its path.

    EfficientNet-Lite0 is the default model's front-end; building it needs no torchvision, so
    each node starts in about half the time a ResNet-18 checkpoint takes (1.6 s against 3.1 s
    here).
    """
    import torch

    from farsee_ros.model.classes import CAMVID
    from farsee_ros.model.checkpoint import make_metadata, save_checkpoint
    from farsee_ros.model.network import build_model

    torch.manual_seed(0)
    model = build_model('farseenet', num_classes=CAMVID.num_classes,
                        frontend='efficientnet-lite0', backbone_weights=None).eval()
    path = str(tmp_path_factory.mktemp('ckpt') / 'small_lite0.pt')
    save_checkpoint(path, model, make_metadata(model, CAMVID, input_size=[128, 192],
                                               metrics={'note': 'untrained test model'}))
    return path


def write_labelled_scenes(image_dir, label_dir, count, *, size=(48, 64), seed=0,
                          label_values=None, classes=None, image_suffix='.png',
                          name=lambda i: f'seq_{i:03d}'):
    """
    Write `count` generated image/label pairs and return the label arrays.

    Random class rectangles; each image pixel is its class's palette colour plus noise, so
    colour predicts class.

    `label_values` maps class index -> the value written in the label file (Cityscapes
    labelIds, say); the last rows are left to the ignore value.
    """
    import cv2
    import numpy as np

    from farsee_ros.model.classes import CAMVID
    classes = classes or CAMVID
    rng = np.random.default_rng(seed)
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(label_dir, exist_ok=True)
    height, width = size
    labels = []
    palette = np.array(classes.palette, np.float64)
    for i in range(count):
        label = np.full((height, width), rng.integers(0, classes.num_classes), np.uint8)
        for _ in range(4):
            y, x = rng.integers(0, height - 8), rng.integers(0, width - 8)
            h, w = rng.integers(6, height // 2), rng.integers(6, width // 2)
            label[y:y + h, x:x + w] = rng.integers(0, classes.num_classes)
        image = palette[label] + rng.normal(0, 6, (height, width, 3))
        label[-2:] = classes.ignore_index
        image = np.clip(image, 0, 255).astype(np.uint8)
        written = label if label_values is None else np.asarray(label_values, np.uint8)[label]
        cv2.imwrite(os.path.join(image_dir, name(i) + image_suffix), image[..., ::-1])
        cv2.imwrite(os.path.join(label_dir, name(i) + '.png'), written)
        labels.append(label)
    return labels


@pytest.fixture(scope='session')
def camvid_root(tmp_path_factory):
    """Write a generated dataset in CamVid's SegNet layout: train (8) and val (4), 48x64."""
    root = tmp_path_factory.mktemp('camvid')
    write_labelled_scenes(root / 'train', root / 'trainannot', 8, seed=1)
    write_labelled_scenes(root / 'val', root / 'valannot', 4, seed=2)
    return str(root)


# Workers that run the suite at once (pytest-xdist, when installed): most tests wait on DDS,
# subprocesses and sleeps, so two workers halve the wall time on a 2-core machine. Set
# FARSEE_TEST_WORKERS (0 = one process) or pass -n to choose.
DEFAULT_WORKERS = 2


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Run the suite on DEFAULT_WORKERS pytest-xdist workers unless told otherwise."""
    if not config.pluginmanager.hasplugin('xdist') or os.environ.get('PYTEST_XDIST_WORKER'):
        return None
    if config.option.numprocesses is None and not config.option.collectonly:
        workers = int(os.environ.get('FARSEE_TEST_WORKERS', DEFAULT_WORKERS))
        if workers > 1:
            config.option.numprocesses = workers
            config.option.dist = 'worksteal'
    return None
