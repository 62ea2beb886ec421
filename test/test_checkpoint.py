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

"""Checkpoints: round trip, safety against pickled code, and one clear error per failure."""

import os
import random
import subprocess
import sys

import pytest
import torch

from farsee_ros.model.classes import CAMVID, CITYSCAPES
from farsee_ros.model.checkpoint import (CheckpointError, FORMAT, FORMAT_VERSION,
                                         load_checkpoint, make_metadata, read_checkpoint,
                                         save_checkpoint)
from farsee_ros.model.network import build_model


def _model_and_metadata(variant='farseenet', classes=CAMVID):
    torch.manual_seed(0)
    model = build_model(variant, num_classes=classes.num_classes).eval()
    return model, make_metadata(model, classes, input_size=[96, 128], metrics={'miou': 0.5})


def _write_raw(path, metadata, state_dict):
    torch.save({'format': FORMAT, 'format_version': FORMAT_VERSION, 'metadata': metadata,
                'state_dict': state_dict}, path)


@pytest.mark.parametrize('variant', ['aspp', 'farseenet'])
def test_round_trip_gives_the_same_outputs_and_metadata(tmp_path, variant):
    model, metadata = _model_and_metadata(variant)
    path = str(tmp_path / 'm.pt')
    save_checkpoint(path, model, metadata)
    loaded, meta = load_checkpoint(path)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        assert torch.equal(model(x, [192, 256]), loaded(x, [192, 256]))
    assert meta['variant'] == variant
    assert meta['class_names'] == list(CAMVID.class_names)
    assert meta['palette'][3] == [128, 64, 128]
    assert meta['ignore_index'] == 11
    assert meta['input_size'] == [96, 128]
    assert meta['metrics'] == {'miou': 0.5}
    assert meta['backbone_init'] == loaded.backbone_init == 'none'
    assert set(meta['versions']) == {'farsee_ros', 'torch', 'torchvision'}
    assert meta['normalization']['mean'] == [0.485, 0.456, 0.406]


def test_fp16_storage_halves_the_file_and_loads_as_fp32(tmp_path):
    model, metadata = _model_and_metadata()
    full, half = str(tmp_path / 'full.pt'), str(tmp_path / 'half.pt')
    save_checkpoint(full, model, metadata)
    save_checkpoint(half, model, metadata, half=True)
    assert os.path.getsize(half) < 0.55 * os.path.getsize(full)
    loaded, meta = load_checkpoint(half)
    assert meta['weights_dtype'] == 'float16'
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        ref, out = model(x), loaded(x)
    assert (torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref)) < 1e-2


class _RunsCode:
    """An object whose unpickling would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_a_pickled_callable_is_refused_and_never_runs(tmp_path):
    model, metadata = _model_and_metadata()
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pt')
    torch.save({'format': FORMAT, 'format_version': FORMAT_VERSION, 'metadata': metadata,
                'state_dict': model.state_dict(), 'hook': _RunsCode(marker)}, path)
    # Sanity: an unsafe load really would run it.
    evil = str(tmp_path / 'check.pt')
    torch.save(_RunsCode(tmp_path / 'proof'), evil)
    torch.load(evil, weights_only=False)
    assert (tmp_path / 'proof').exists()

    with pytest.raises(CheckpointError, match='refused to load .*never executed'):
        load_checkpoint(path)
    assert not marker.exists()


def test_missing_file(tmp_path):
    path = str(tmp_path / 'absent.pt')
    with pytest.raises(CheckpointError, match=f'checkpoint not found: {path}'):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match='not a file'):
        load_checkpoint(str(tmp_path))


@pytest.mark.parametrize('content', [b'', b'hello, not a checkpoint\n', b'PK\x03\x04broken zip'] +
                         [random.Random(seed).randbytes(4096) for seed in range(8)])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / 'junk.pt'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match='is not a checkpoint'):
        load_checkpoint(str(path))


def test_a_plain_state_dict_is_not_a_checkpoint(tmp_path):
    model, _ = _model_and_metadata()
    path = str(tmp_path / 'sd.pt')
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match='holds a plain state dict'):
        load_checkpoint(path)


def test_missing_metadata(tmp_path):
    model, metadata = _model_and_metadata()
    path = str(tmp_path / 'm.pt')
    torch.save({'format': FORMAT, 'format_version': FORMAT_VERSION,
                'state_dict': model.state_dict()}, path)
    with pytest.raises(CheckpointError, match="missing or invalid 'metadata'"):
        load_checkpoint(path)
    del metadata['palette'], metadata['variant']
    _write_raw(path, metadata, model.state_dict())
    with pytest.raises(CheckpointError, match='metadata is missing variant, palette'):
        load_checkpoint(path)


@pytest.mark.parametrize('key, value, message', [
    ('variant', 'unet', 'one of aspp, faspp, cfaspp, farseenet'),
    ('class_names', [], 'non-empty list of distinct'),
    ('class_names', ['a', 'a'] + list(CAMVID.class_names[2:]), 'non-empty list of distinct'),
    ('palette', [[0, 0, 0]] * 3, '11 \\[R, G, B\\] triples'),
    ('palette', [[0, 0, 300]] * 11, '11 \\[R, G, B\\] triples'),
    ('input_size', [512], '\\[height, width\\]'),
    ('input_size', [0, 768], '\\[height, width\\]'),
    ('normalization', {'mean': [0, 0, 0], 'std': [0, 1, 1]}, "'std': \\[3 positive"),
    ('ignore_index', -1, 'null or a non-negative integer'),
    ('metrics', 'good', 'a dict'),
])
def test_invalid_metadata_names_key_and_accepted_values(tmp_path, key, value, message):
    model, metadata = _model_and_metadata()
    metadata[key] = value
    path = str(tmp_path / 'm.pt')
    _write_raw(path, metadata, model.state_dict())
    with pytest.raises(CheckpointError, match=f"invalid metadata '{key}'.*{message}"):
        load_checkpoint(path)


def test_class_count_mismatch(tmp_path):
    model, _ = _model_and_metadata(classes=CITYSCAPES)      # weights for 19 classes
    _, camvid_metadata = _model_and_metadata(classes=CAMVID)  # metadata lists 11
    path = str(tmp_path / 'm.pt')
    _write_raw(path, camvid_metadata, model.state_dict())
    with pytest.raises(CheckpointError, match='class-count mismatch: metadata lists 11 classes '
                                              'but the weights predict 19'):
        load_checkpoint(path)


def test_key_mismatch(tmp_path):
    model, metadata = _model_and_metadata('farseenet')
    path = str(tmp_path / 'm.pt')
    metadata['variant'] = 'aspp'
    _write_raw(path, metadata, model.state_dict())
    with pytest.raises(CheckpointError, match="do not match variant 'aspp' on front-end "
                       "'resnet18': .* missing keys"):
        load_checkpoint(path)
    metadata['variant'], metadata['frontend'] = 'farseenet', 'efficientnet-lite0'
    _write_raw(path, metadata, model.state_dict())
    with pytest.raises(CheckpointError, match="on front-end 'efficientnet-lite0': .* missing"):
        load_checkpoint(path)
    metadata['frontend'] = 'vgg16'
    _write_raw(path, metadata, model.state_dict())
    with pytest.raises(CheckpointError, match="invalid metadata 'frontend' = 'vgg16'; expected "
                       'one of resnet18, efficientnet-lite0'):
        load_checkpoint(path)
    del metadata['frontend']
    state = model.state_dict()
    metadata['variant'] = 'cfaspp'   # same key names, other shapes
    _write_raw(path, metadata, state)
    with pytest.raises(CheckpointError, match="shape mismatch for backend.up1"):
        load_checkpoint(path)


def test_read_checkpoint_returns_tensors_only(small_checkpoint):
    state, metadata = read_checkpoint(small_checkpoint)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert metadata['input_size'] == [128, 192]


def test_cli_reports_a_bad_checkpoint_in_one_line(tmp_path):
    path = tmp_path / 'junk.pt'
    path.write_bytes(b'junk')
    result = subprocess.run([sys.executable, '-m', 'farsee_ros.tools.cli', 'info', '--model',
                             str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'is not a checkpoint' in lines[0] and str(path) in lines[0]
