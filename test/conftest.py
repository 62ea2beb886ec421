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

# Each test run gets its own ROS_DOMAIN_ID so parallel runs never hear each other; discovery
# stays on this machine. Set FARSEE_TEST_DOMAIN_ID to choose one.
os.environ['ROS_DOMAIN_ID'] = os.environ.get(
    'FARSEE_TEST_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
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

    from farsee_ros.classes import CAMVID
    from farsee_ros.model.checkpoint import make_metadata, save_checkpoint
    from farsee_ros.model.network import build_model

    torch.manual_seed(0)
    model = build_model('farseenet', num_classes=CAMVID.num_classes).eval()
    path = str(tmp_path_factory.mktemp('ckpt') / 'small.pt')
    save_checkpoint(path, model, make_metadata(model, CAMVID, input_size=[128, 192],
                                               metrics={'note': 'untrained test model'}))
    return path
