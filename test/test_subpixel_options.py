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

"""The sub-pixel convolution's options: kernel size 1 (the paper's) or 3, ICNR initialisation."""

import pytest
import torch

from farsee_ros.model import CheckpointError, load_checkpoint, make_metadata
from farsee_ros.model.checkpoint import save_checkpoint
from farsee_ros.model.classes import CAMVID
from farsee_ros.model.network import build_model


def test_icnr_starts_as_nearest_neighbour_upsampling():
    torch.manual_seed(0)
    model = build_model('farseenet', num_classes=11, icnr=True).eval()
    for layer, channels in ((model.backend.up1, 256), (model.backend.up2, 128)):
        out = layer(torch.randn(1, channels, 6, 8))
        cells = out.unfold(2, 4, 4).unfold(3, 4, 4)          # N x C x 6 x 8 x 4 x 4
        assert torch.allclose(cells, cells[..., :1, :1].expand_as(cells), atol=1e-6)
    plain = build_model('farseenet', num_classes=11).eval()
    out = plain.backend.up2(torch.randn(1, 128, 6, 8))
    cells = out.unfold(2, 4, 4).unfold(3, 4, 4)
    assert not torch.allclose(cells, cells[..., :1, :1].expand_as(cells), atol=1e-3)


def test_kernel_3_round_trips_through_a_checkpoint(tmp_path):
    model = build_model('farseenet', num_classes=11, subpixel_kernel=3).eval()
    assert model.logit_layer().kernel_size == (3, 3)
    path = str(tmp_path / 'k3.pt')
    save_checkpoint(path, model, make_metadata(model, CAMVID, input_size=(96, 128)))
    loaded, metadata = load_checkpoint(path)
    assert metadata['subpixel_kernel'] == 3 and loaded.subpixel_kernel == 3
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)
        # each 4x4 cell of the stride-2 logits now depends on its neighbours' features
        assert loaded.native_logits(x).shape == (1, 11, 48, 64)


def test_wrong_options_are_named(tmp_path):
    with pytest.raises(ValueError, match='must be 1 or 3'):
        build_model('farseenet', num_classes=11, subpixel_kernel=5)
    with pytest.raises(ValueError, match='farseenet only'):
        build_model('aspp', num_classes=11, subpixel_kernel=3)
    model = build_model('farseenet', num_classes=11)
    metadata = make_metadata(model, CAMVID, input_size=(96, 128))
    metadata['subpixel_kernel'] = 2
    with pytest.raises(CheckpointError, match="'subpixel_kernel' = 2; expected 1 or 3"):
        save_checkpoint(str(tmp_path / 'bad.pt'), model, metadata)
