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

"""Export: TorchScript and ONNX files reproduce the eager model and carry the metadata."""

import json

import pytest
import torch

from farsee_ros.model.checkpoint import load_checkpoint
from farsee_ros.model.export import _check_parity, export, ExportError, relative_error


@pytest.mark.parametrize('fmt', ['torchscript', 'onnx'])
def test_export_matches_eager(tmp_path, small_checkpoint, fmt):
    model, metadata = load_checkpoint(small_checkpoint)
    path = str(tmp_path / f'model.{fmt}')
    error = export(model, fmt, path, [128, 192], [256, 384], metadata)
    assert error < 1e-4
    # Independently of the exporter's own check: fresh input, load the file, compare.
    x = torch.randn(1, 3, 128, 192)
    with torch.no_grad():
        ref = model(x, [256, 384])
    if fmt == 'torchscript':
        loaded = torch.jit.load(path, _extra_files=(extra := {'metadata.json': ''}))
        with torch.no_grad():
            out = loaded(x)
        assert json.loads(extra['metadata.json'])['class_names'] == metadata['class_names']
    else:
        import onnx
        import onnxruntime
        props = {p.key: p.value for p in onnx.load(path).metadata_props}
        assert json.loads(props['palette']) == metadata['palette']
        session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
        out = torch.from_numpy(session.run(None, {'image': x.numpy()})[0])
    assert out.shape == (1, 11, 256, 384)
    assert relative_error(out, ref) < 1e-4


def test_parity_check_catches_a_different_model(small_checkpoint):
    model, _ = load_checkpoint(small_checkpoint)
    with pytest.raises(ExportError, match='differs from eager'):
        _check_parity('x.onnx', model, lambda x: model(x) * 1.01, [64, 96])
    with pytest.raises(ExportError, match='output shape'):
        _check_parity('x.onnx', model, lambda x: model(x)[:, :5], [64, 96])


def test_unknown_format(small_checkpoint, tmp_path):
    model, metadata = load_checkpoint(small_checkpoint)
    with pytest.raises(ValueError, match="unknown export format 'tflite'.*torchscript, onnx"):
        export(model, 'tflite', str(tmp_path / 'm'), [64, 96], [64, 96], metadata)


def test_fp16_checkpoint_export_keeps_labels_and_records_sizes(small_checkpoint, tmp_path,
                                                               capsys):
    from farsee_ros.tools.cli import main
    from farsee_ros.model.checkpoint import load_checkpoint, read_checkpoint
    out = str(tmp_path / 'half.pt')
    assert main(['export', '--model', small_checkpoint, '--format', 'fp16-checkpoint',
                 '--input-size', '96', '128', '--out', out]) == 0
    assert 'fp16 weights' in capsys.readouterr().out
    state, metadata = read_checkpoint(out)
    assert metadata['weights_dtype'] == 'float16'
    assert metadata['input_size'] == [96, 128] and metadata['trained_input_size'] == [128, 192]
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    model, _ = load_checkpoint(out)
    reference, _ = load_checkpoint(small_checkpoint)
    x = torch.randn(1, 3, 96, 128)
    with torch.inference_mode():
        agree = (model.eval()(x).argmax(1) == reference.eval()(x).argmax(1)).float().mean()
    assert agree > 0.99
