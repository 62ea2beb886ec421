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

"""The ONNX Runtime backend: engine ONNX files (fp32, INT8), how auto picks, and bad files."""

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from farsee_ros.common import sha256_of
from farsee_ros.engine import Segmenter
from farsee_ros.model.checkpoint import CheckpointError, load_checkpoint
from farsee_ros.model.onnx_file import (add_metadata, export_fp32, quantize_int8,
                                        quantized_path, read_onnx)


def _train_briefly(tmp_path_factory, camvid_root, *options, epochs=10):
    from farsee_ros.tools.cli import main
    out = str(tmp_path_factory.mktemp('onnx_train'))
    assert main(['train', '--dataset', 'camvid', '--root', camvid_root, '--out', out,
                 '--epochs', str(epochs), '--val-every', str(epochs), '--input-size', '64', '96',
                 '--crop', '48', '64', '--batch-size', '4', '--workers', '0', '--lr', '0.05',
                 '--scale', '1', '1', '--degrees', '0', *options]) == 0
    path = str(tmp_path_factory.mktemp('onnx_model') / 'scenes.pt')
    shutil.copy(os.path.join(out, 'best.pt'), path)
    return path


@pytest.fixture(scope='module')
def trained(tmp_path_factory, camvid_root):
    """
    Train a checkpoint briefly on generated scenes: trained statistics, not random weights.

    Ten epochs of eight frames do not make a good model (val mIoU about 0.01), but BatchNorm
    statistics and weights have moved from their initialisation, as in a real checkpoint.
    """
    return _train_briefly(tmp_path_factory, camvid_root)


def _frames(count, size=(120, 160), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


def _inputs(path, count=8):
    """Network inputs (model_input of random frames) for calibration in these tests."""
    from farsee_ros.tools.export import calibration_inputs

    class Frames:
        def __init__(self, frames):
            self.frames = frames

        def __len__(self):
            return len(self.frames)

        def load(self, index):
            return torch.from_numpy(self.frames[index]).permute(2, 0, 1).contiguous(), None

    _, metadata = load_checkpoint(path)
    return calibration_inputs(Frames(_frames(count, seed=5)), count, metadata['input_size'],
                              metadata['normalization'])


def test_fp32_onnx_gives_the_labels_of_pytorch(tmp_path, small_checkpoint):
    model, metadata = load_checkpoint(small_checkpoint)
    path = str(tmp_path / 'small.onnx')
    error = export_fp32(model, path, metadata, source_sha256=sha256_of(small_checkpoint))
    assert error < 1e-4
    onnx_engine = Segmenter.from_checkpoint(path, device='cpu')
    torch_engine = Segmenter.from_checkpoint(small_checkpoint, device='cpu', backend='torch')
    assert onnx_engine.backend.name == 'onnxruntime' and onnx_engine.precision == 'fp32'
    assert 'ONNX Runtime' in onnx_engine.description and 'CPU' in onnx_engine.description
    for frame in _frames(3, (181, 243)):
        a = onnx_engine.segment(frame, 'bgr')
        b = torch_engine.segment(frame, 'bgr')
        assert a.labels.shape == (181, 243) and a.finite
        assert (a.labels == b.labels).mean() > 0.999
        assert a.overlay.shape == (181, 243, 3) and a.overlay_order == 'bgr'
        assert set(a.timings_ms) == {'preprocess', 'inference', 'postprocess', 'overlay'}
    # The stages around ONNX Runtime are numpy, Pillow and OpenCV: PyTorch's pool is left be.
    assert onnx_engine.host and not torch_engine.host
    threads, seen = torch.get_num_threads(), []
    onnx_engine.segment(frame, on_labels=lambda labels: seen.append(torch.get_num_threads()))
    assert seen == [threads] and torch.get_num_threads() == threads


def test_onnx_runtime_on_the_cpu_never_imports_pytorch(repo):
    """The default weights' INT8 file on the CPU runs without PyTorch (500 MiB, 1.5 s less)."""
    model = os.path.join(repo, 'models', 'farseenet_camvid.pt')
    script = '\n'.join([
        'import sys',
        'import numpy as np',
        'from farsee_ros.engine import Segmenter',
        'from farsee_ros.engine.device import cuda_may_exist',
        "for device in ['cpu'] + ([] if cuda_may_exist() else ['auto']):",
        f'    engine = Segmenter.from_checkpoint({model!r}, device=device, pipelined=True)',
        '    engine.use_threads()',
        '    frame = np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8)',
        "    for order in ('bgr', 'mono'):",
        '        image = frame[..., 0].copy() if order == "mono" else frame',
        '        staged = engine.infer(engine.prepare(image, order), share_cpu=True)',
        '        result = engine.finish(staged)',
        "        assert engine.backend.name == 'onnxruntime' and engine.precision == 'int8'",
        '        assert result.finite and result.labels.shape == (360, 480), result',
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))"])
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == '[]', out.stdout


def test_int8_beside_the_checkpoint_is_what_auto_runs_on_the_cpu(tmp_path, small_checkpoint):
    checkpoint = str(tmp_path / 'model.pt')
    shutil.copy(small_checkpoint, checkpoint)
    assert Segmenter.from_checkpoint(checkpoint, device='cpu').backend.name == 'torch'
    with pytest.raises(CheckpointError, match='no INT8 model beside .*onnx-int8'):
        Segmenter.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime')
    model, metadata = load_checkpoint(checkpoint)
    assert quantize_int8(model, quantized_path(checkpoint), metadata, _inputs(checkpoint),
                         source_sha256=sha256_of(checkpoint)) == 8
    data, stored = read_onnx(quantized_path(checkpoint))
    assert stored['precision'] == 'int8' and stored['class_names'] == metadata['class_names']
    assert stored['source_sha256'] == sha256_of(checkpoint)
    auto = Segmenter.from_checkpoint(checkpoint, device='cpu')
    assert auto.backend.name == 'onnxruntime' and auto.precision == 'int8'
    assert 'INT8 model beside' in auto.why
    forced = Segmenter.from_checkpoint(checkpoint, device='cpu', backend='torch')
    assert forced.backend.name == 'torch'
    # Another input size than the INT8 file's: auto says why it runs PyTorch; onnxruntime
    # refuses.
    other = Segmenter.from_checkpoint(checkpoint, device='cpu', input_size=[96, 128])
    assert other.backend.name == 'torch' and 'differs' in other.why
    with pytest.raises(ValueError, match='runs at input size 128x192 only'):
        Segmenter.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime',
                                  input_size=[96, 128])


def test_int8_keeps_a_trained_models_labels(tmp_path, trained):
    """On a trained checkpoint, INT8 labels match fp32's almost everywhere (measured: 99%)."""
    model, metadata = load_checkpoint(trained)
    path = str(tmp_path / 'scenes.int8.onnx')
    quantize_int8(model, path, metadata, _inputs(trained, 16), source_sha256=sha256_of(trained))
    int8 = Segmenter.from_checkpoint(path, device='cpu')
    fp32 = Segmenter.from_checkpoint(trained, device='cpu', backend='torch')
    agree = [(int8.segment(f).labels == fp32.segment(f).labels).mean()
             for f in _frames(4, (48, 64), seed=9)]
    assert np.mean(agree) > 0.97, agree


def test_int8_keeps_a_lite_front_ends_labels(tmp_path_factory, camvid_root):
    """
    EfficientNet-Lite0 (depthwise convs, ReLU6, its own normalisation) quantizes too.

    Calibrated on the generated training scenes and compared on the validation scenes, as a
    deployment is (training frames in, camera frames out); measured 97-98% equal labels after
    20 epochs, with one thread or two (the trained default's parity on CamVid is in
    docs/training.md). A broken graph or a wrong normalisation agrees on far fewer.
    """
    import cv2
    from farsee_ros.tools.export import calibration_inputs
    from farsee_ros.training.datasets import build_dataset

    checkpoint = _train_briefly(tmp_path_factory, camvid_root, '--frontend',
                                'efficientnet-lite0', epochs=20)
    model, metadata = load_checkpoint(checkpoint)
    path = quantized_path(checkpoint)
    train = build_dataset('camvid', camvid_root, 'train')
    quantize_int8(model, path, metadata, calibration_inputs(
        train, 8, metadata['input_size'], metadata['normalization']),
        source_sha256=sha256_of(checkpoint))
    assert read_onnx(path)[1]['frontend'] == 'efficientnet-lite0'
    auto = Segmenter.from_checkpoint(checkpoint, device='cpu')
    fp32 = Segmenter.from_checkpoint(checkpoint, device='cpu', backend='torch')
    assert auto.precision == 'int8' and fp32.backend.name == 'torch'
    scenes = [cv2.imread(f) for f in sorted(glob.glob(os.path.join(camvid_root, 'val', '*')))]
    agree = [(auto.segment(f).labels == fp32.segment(f).labels).mean() for f in scenes]
    assert np.mean(agree) > 0.93, agree


def test_a_stale_int8_file_is_one_clear_error(tmp_path, small_checkpoint):
    checkpoint = str(tmp_path / 'model.pt')
    shutil.copy(small_checkpoint, checkpoint)
    model, metadata = load_checkpoint(checkpoint)
    quantize_int8(model, quantized_path(checkpoint), metadata, _inputs(checkpoint, 2),
                  source_sha256='0' * 64)
    for backend in ('auto', 'onnxruntime'):
        with pytest.raises(CheckpointError, match=r'quantized from another checkpoint .*'
                           r'source_sha256 000000000000.*export it again'):
            Segmenter.from_checkpoint(checkpoint, device='cpu', backend=backend)
    assert Segmenter.from_checkpoint(checkpoint, device='cpu', backend='torch')


def test_bad_onnx_files_are_one_clear_error(tmp_path, small_checkpoint):
    from farsee_ros.model.export import export_onnx
    model, metadata = load_checkpoint(small_checkpoint)
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'\x08\x07not an onnx model' * 50)
    with pytest.raises(CheckpointError, match='garbage.onnx is not a valid ONNX model'):
        Segmenter.from_checkpoint(str(garbage), device='cpu')
    with pytest.raises(CheckpointError, match='ONNX model not found'):
        Segmenter.from_checkpoint(str(tmp_path / 'missing.onnx'), device='cpu')
    foreign = str(tmp_path / 'foreign.onnx')   # a valid ONNX file, but not the engine's
    export_onnx(model, foreign, [128, 192], [128, 192], metadata)
    with pytest.raises(CheckpointError, match="not a farsee_ros engine ONNX file"):
        Segmenter.from_checkpoint(foreign, device='cpu')
    good = str(tmp_path / 'good.onnx')
    export_fp32(model, good, metadata, source_sha256='')
    with pytest.raises(ValueError, match='backend torch needs a checkpoint'):
        Segmenter.from_checkpoint(good, device='cpu', backend='torch')
    # Hand-edited metadata: a palette entry short, an input size the graph does not have.
    bad_palette = str(tmp_path / 'bad_palette.onnx')
    shutil.copy(good, bad_palette)
    add_metadata(bad_palette, palette=metadata['palette'][:-1])
    with pytest.raises(CheckpointError, match="bad_palette.onnx: invalid metadata 'palette'"):
        Segmenter.from_checkpoint(bad_palette, device='cpu')
    bad_size = str(tmp_path / 'bad_size.onnx')
    shutil.copy(good, bad_size)
    add_metadata(bad_size, input_size=[256, 384])
    with pytest.raises(CheckpointError, match=r"bad_size.onnx: graph inputs .* do not match"):
        Segmenter.from_checkpoint(bad_size, device='cpu')
    bad_classes = str(tmp_path / 'bad_classes.onnx')
    shutil.copy(good, bad_classes)
    add_metadata(bad_classes, class_names=[f'c{i}' for i in range(5)],
                 palette=[[0, 0, 0]] * 5)
    with pytest.raises(CheckpointError, match=r'graph outputs .* expected one output '
                       r"'logits' with 5 classes"):
        Segmenter.from_checkpoint(bad_classes, device='cpu')
    with pytest.raises(ValueError, match="invalid backend 'tflite'; accepted: auto"):
        Segmenter.from_checkpoint(good, device='cpu', backend='tflite')


def test_non_finite_logits_are_flagged(tmp_path, small_checkpoint):
    engine = Segmenter.from_checkpoint(small_checkpoint, device='cpu', backend='torch')
    frame = _frames(1)[0]
    assert engine.segment(frame).finite
    with torch.no_grad():
        engine.backend.model.logit_layer().bias.fill_(float('nan'))
    handed = []
    result = engine.segment(frame, on_labels=handed.append)
    assert not result.finite and handed == []   # the node publishes nothing for it


def test_fatal_device_errors_are_told_from_others():
    from farsee_ros.engine import is_fatal_device_error
    assert is_fatal_device_error(RuntimeError('CUDA error: an illegal memory access was '
                                              'encountered'))
    assert is_fatal_device_error(RuntimeError('CUDA error: device-side assert triggered'))
    assert is_fatal_device_error(RuntimeError('[ONNXRuntimeError] : 1 : FAIL : CUDA failure '
                                              '700: an illegal memory access'))
    assert not is_fatal_device_error(RuntimeError('CUDA out of memory. Tried to allocate'))
    assert not is_fatal_device_error(ValueError('frame must be an HxW or HxWxC uint8 array'))


def _cli(*args):
    return subprocess.run([sys.executable, '-m', 'farsee_ros.tools.cli', *args],
                          capture_output=True, text=True, timeout=600)


def test_cli_int8_export_calibrates_on_training_frames_and_reports_parity(
        tmp_path, trained, camvid_root):
    checkpoint = str(tmp_path / 'scenes.pt')
    shutil.copy(trained, checkpoint)
    refused = _cli('export', '--model', checkpoint, '--format', 'onnx-int8', '--dataset',
                   'camvid', '--root', camvid_root, '--calibration-split', 'train+val')
    assert refused.returncode == 2 and 'uses val: calibrate on a training split' in \
        refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    result = _cli('export', '--model', checkpoint, '--format', 'onnx-int8', '--dataset',
                  'camvid', '--root', camvid_root, '--calibration-frames', '6')
    assert result.returncode == 0, result.stderr[-2000:]
    out = quantized_path(checkpoint)
    assert f'wrote {out} (onnx int8' in result.stdout
    assert 'calibrated on 6 frames of camvid/train' in result.stdout
    assert 'parity on camvid/val (4 frames): mIoU fp32' in result.stdout
    _, metadata = read_onnx(out)
    assert metadata['calibration'] == {'split': 'camvid/train', 'frames': 6}
    parity = metadata['parity']
    assert parity['frames'] == 4 and parity['split'] == 'camvid/val'
    assert abs(parity['miou_delta']) < 0.05 and parity['pixel_agreement'] > 0.95
    assert parity['miou_delta'] == pytest.approx(parity['miou_int8'] - parity['miou_fp32'])
    assert Segmenter.from_checkpoint(checkpoint, device='cpu').precision == 'int8'
    info = json.loads(json.dumps(metadata))   # JSON all the way: an ONNX file runs no code
    assert info['source_sha256'] == sha256_of(checkpoint)
    assert os.path.getsize(out) < os.path.getsize(checkpoint)


def test_without_onnxruntime_auto_runs_pytorch_and_says_why(
        tmp_path, small_checkpoint, monkeypatch):
    """A robot installed by rosdep alone has no onnxruntime: auto still starts, on PyTorch."""
    from farsee_ros.engine import backends
    checkpoint = str(tmp_path / 'model.pt')
    shutil.copy(small_checkpoint, checkpoint)
    model, metadata = load_checkpoint(checkpoint)
    quantize_int8(model, quantized_path(checkpoint), metadata, _inputs(checkpoint, 2),
                  source_sha256=sha256_of(checkpoint))
    monkeypatch.setattr(backends, 'missing_onnx_packages', lambda: ['onnxruntime'])
    auto = Segmenter.from_checkpoint(checkpoint, device='cpu')
    assert auto.backend.name == 'torch' and 'pip install onnxruntime' in auto.why
    with pytest.raises(ValueError, match='needs the Python packages onnxruntime'):
        Segmenter.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime')
