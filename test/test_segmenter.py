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
The Segmenter engine: full-resolution labels, overlay in the frame's colour order, errors.

Most tests run both stage sets: PyTorch's (backend torch) and numpy/Pillow/OpenCV's around
ONNX Runtime (an fp32 ONNX file of the same checkpoint).
"""

import queue
import threading
import time

import numpy as np
import pytest
import torch

from farsee_ros.common import sha256_of
from farsee_ros.engine import (resolve_device, resolve_precision, Segmenter,
                               upsampled_argmax)
from farsee_ros.engine.device import Device, engine_device, precision_name
from farsee_ros.engine.postprocess import class_argmax
from farsee_ros.engine.preprocess import host_model_input, model_input, pillow_resize


@pytest.fixture(scope='module')
def torch_segmenter(small_checkpoint):
    return Segmenter.from_checkpoint(small_checkpoint, device='cpu')


@pytest.fixture(scope='module')
def onnx_segmenter(small_checkpoint, tmp_path_factory):
    from farsee_ros.model.checkpoint import load_checkpoint
    from farsee_ros.model.onnx_file import export_fp32
    model, metadata = load_checkpoint(small_checkpoint)
    path = str(tmp_path_factory.mktemp('segmenter_onnx') / 'small.onnx')
    export_fp32(model, path, metadata, source_sha256=sha256_of(small_checkpoint))
    return Segmenter.from_checkpoint(path, device='cpu')


@pytest.fixture(scope='module', params=['torch', 'onnxruntime'])
def segmenter(request, torch_segmenter, onnx_segmenter):
    engine = torch_segmenter if request.param == 'torch' else onnx_segmenter
    assert engine.backend.name == request.param and engine.host == (request.param != 'torch')
    return engine


@pytest.fixture(scope='module')
def frame():
    return np.random.default_rng(0).integers(0, 256, (181, 243, 3), dtype=np.uint8)


def test_labels_at_the_frames_own_size(segmenter, frame):
    result = segmenter.segment(frame, 'rgb')
    assert result.labels.shape == (181, 243) and result.labels.dtype == np.uint8
    assert result.labels.max() < 11
    assert result.overlay.shape == (181, 243, 3) and result.overlay.dtype == np.uint8
    assert set(result.timings_ms) == {'preprocess', 'inference', 'postprocess', 'overlay'}
    assert all(t >= 0 for t in result.timings_ms.values())


def test_the_stages_on_two_threads_give_what_segment_gives(segmenter):
    """Run prepare + infer on one thread, finish on another, two frames in flight: same results."""
    frames = [np.random.default_rng(i).integers(0, 256, (120 + i, 161, 3), dtype=np.uint8)
              for i in range(6)]
    expected = [segmenter.segment(f, 'bgr', overlay_alpha=0.3) for f in frames]
    handoff = queue.Queue(maxsize=1)
    results = []

    def publish_thread():
        while (staged := handoff.get()) is not None:
            results.append(segmenter.finish(staged, overlay_alpha=0.3))

    thread = threading.Thread(target=publish_thread)
    thread.start()
    for f in frames:
        handoff.put(segmenter.infer(segmenter.prepare(f, 'bgr')))
    handoff.put(None)
    thread.join(timeout=60)
    assert len(results) == len(frames)
    for got, want in zip(results, expected):
        assert np.array_equal(got.labels, want.labels)
        assert np.array_equal(got.overlay, want.overlay) and got.overlay_order == 'bgr'
        assert set(got.timings_ms) == set(want.timings_ms) and got.finite


def test_labels_are_handed_over_before_the_overlay(segmenter, frame):
    """on_labels gets the frame's labels once; its own time is in no stage."""
    handed = []

    def slow_publisher(labels):
        handed.append((labels.copy(), torch.get_num_threads()))
        time.sleep(0.3)

    threads = torch.get_num_threads()
    result = segmenter.segment(frame, 'rgb', on_labels=slow_publisher)
    assert len(handed) == 1 and np.array_equal(handed[0][0], result.labels)
    assert handed[0][1] == threads   # PyTorch's pool is left alone (or unused: ONNX Runtime)
    assert result.overlay is not None
    assert result.timings_ms['overlay'] < 200, result.timings_ms


def test_labels_equal_the_models_argmax(torch_segmenter, frame):
    """The engine is the model: same labels as resizing + normalising + forward by hand."""
    segmenter = torch_segmenter
    x = torch.from_numpy(frame).permute(2, 0, 1)[None]     # the CPU path resizes uint8
    x = torch.nn.functional.interpolate(x, size=(128, 192), mode='bilinear',
                                        align_corners=False, antialias=True).float() / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = segmenter.backend.model((x - mean) / std, [181, 243]).argmax(1)[0].numpy()
    agreement = (segmenter.segment(frame, 'rgb').labels == expected).mean()
    assert agreement > 0.999, agreement


def test_cpu_argmax_equals_torch_argmax():
    logits = torch.randn(11, 97, 131)
    logits[3, :5, :5] = logits[7, :5, :5]          # ties go to the lower id, as argmax does
    assert torch.equal(class_argmax(logits).long(), logits.argmax(0))


@pytest.mark.parametrize('size', [(1024, 2048), (181, 243), (97, 131), (400, 300)])
def test_upsampled_argmax_equals_argmax_of_the_upsampled_logits(size):
    torch.manual_seed(sum(size))
    # Smooth class maps, as a trained network gives: few boundary pixels.
    smooth = torch.nn.functional.interpolate(torch.randn(1, 11, 8, 12), size=(97, 131),
                                             mode='bilinear', align_corners=False)[0] * 4
    reference = torch.nn.functional.interpolate(smooth[None], size=size, mode='bilinear',
                                                align_corners=False)[0].argmax(0)
    fast = upsampled_argmax(smooth, size).long()
    assert fast.shape == reference.shape
    assert (fast == reference).float().mean() > 0.99999
    noise = torch.randn(11, 30, 40)     # every pixel a boundary: the full interpolation path
    reference = torch.nn.functional.interpolate(noise[None], size=size, mode='bilinear',
                                                align_corners=False)[0].argmax(0)
    assert torch.equal(upsampled_argmax(noise, size).long(), reference)


def test_colour_orders_agree(segmenter, frame):
    rgb = segmenter.segment(frame, 'rgb', overlay_alpha=0.4)
    bgr = segmenter.segment(np.ascontiguousarray(frame[..., ::-1]), 'bgr', overlay_alpha=0.4)
    assert np.array_equal(rgb.labels, bgr.labels)
    assert rgb.overlay_order == 'rgb' and bgr.overlay_order == 'bgr'
    assert np.array_equal(rgb.overlay, bgr.overlay[..., ::-1])
    rgba = np.concatenate([frame, np.full(frame.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert np.array_equal(segmenter.segment(rgba, 'rgba').labels, rgb.labels)
    bgra = np.ascontiguousarray(rgba[..., [2, 1, 0, 3]])
    assert np.array_equal(segmenter.segment(bgra, 'bgra').labels, rgb.labels)


def test_mono_and_strided_frames(segmenter, frame):
    mono = frame[..., 1].copy()
    result = segmenter.segment(mono, 'mono')
    assert result.labels.shape == mono.shape and result.overlay.shape == mono.shape + (3,)
    padded = np.zeros((181, 256, 3), np.uint8)   # a padded row step, viewed without copying
    padded[:, :243] = frame
    view = padded[:, :243]
    assert not view.flags.c_contiguous
    assert np.array_equal(segmenter.segment(view, 'rgb').labels,
                          segmenter.segment(frame, 'rgb').labels)


def test_overlay_alpha(segmenter, frame):
    clear = segmenter.segment(frame, 'bgr', overlay_alpha=0.0)
    assert np.array_equal(clear.overlay, frame)
    solid = segmenter.segment(frame, 'bgr', overlay_alpha=1.0)
    palette_bgr = np.array(segmenter.metadata['palette'], np.uint8)[:, ::-1]
    assert np.array_equal(solid.overlay, palette_bgr[solid.labels])
    assert segmenter.segment(frame, 'rgb', overlay=False).overlay is None


def test_bad_frames_and_options_are_named(segmenter, frame):
    with pytest.raises(ValueError, match="colour order 'yuv'.*rgb, bgr, rgba, bgra, mono"):
        segmenter.segment(frame, 'yuv')
    with pytest.raises(ValueError, match='uint8'):
        segmenter.segment(frame.astype(np.float32), 'rgb')
    with pytest.raises(ValueError, match='overlay_alpha'):
        segmenter.segment(frame, 'rgb', overlay_alpha=1.5)


@pytest.mark.parametrize('frame_size, input_size, identical', [
    ((360, 480), (240, 320), True),     # CamVid to the default model's input
    ((181, 243), (128, 192), False),
    ((1024, 2048), (288, 384), False),
    ((100, 150), (128, 192), False),    # upsampling
])
def test_both_preprocessings_agree(torch_segmenter, frame_size, input_size, identical):
    """Pillow's antialiased bilinear resize and PyTorch's: the same bytes or within 2 levels."""
    rng = np.random.default_rng(sum(frame_size))
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 16) * 255, size=frame_size,
                                             mode='bilinear', align_corners=False)
    noise = torch.from_numpy(rng.integers(-20, 21, (1, 3, *frame_size))).float()
    frame = (smooth + noise).clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    mean = torch_segmenter._mean.numpy().reshape(3)
    inv_std = torch_segmenter._inv_std.numpy().reshape(3)
    for order in ('rgb', 'bgr', 'mono'):
        image = frame[..., 0].copy() if order == 'mono' else frame
        pixels = torch.from_numpy(image)
        pixels = pixels[None, None] if order == 'mono' else pixels.permute(2, 0, 1)[None]
        expected = model_input(pixels, input_size, torch_segmenter._mean,
                               torch_segmenter._inv_std, color_order=order).numpy()
        got = host_model_input(image, input_size, mean, inv_std, order)
        assert got.shape == expected.shape == (1, 3, *input_size) and got.dtype == np.float32
        levels = np.abs(got - expected) / inv_std.reshape(1, 3, 1, 1)
        if identical:
            assert np.array_equal(got, expected), (order, levels.max())
        else:
            assert levels.max() < 2.01 and (levels > 0.5).mean() < 0.1, (order, levels.max())


@pytest.mark.parametrize('frame_size, size', [
    ((1024, 2048), (240, 320)), ((1081, 1921), (240, 320)), ((301, 401), (288, 384)),
    ((720, 960), (240, 960)), ((240, 1000), (240, 320)), ((50, 3000), (100, 200))])
@pytest.mark.parametrize('channels', [3, 1])
def test_the_resize_split_over_two_threads_gives_one_calls_bytes(frame_size, size, channels):
    """Large frames: horizontal pass on two halves of rows at once, then vertical; same bytes."""
    from PIL import Image
    rng = np.random.default_rng(frame_size[0] + channels)
    shape = frame_size if channels == 1 else (*frame_size, 3)
    frame = rng.integers(0, 256, shape, dtype=np.uint8)
    whole = np.asarray(Image.fromarray(frame).resize(size[::-1], Image.Resampling.BILINEAR))
    split = pillow_resize(frame, size, split_pixels=0)
    assert split.shape == whole.shape and split.dtype == np.uint8
    assert np.array_equal(split, whole)
    assert np.array_equal(pillow_resize(frame, size), whole)   # the default threshold


def test_engine_device_without_pytorch():
    assert engine_device('cpu') == (Device('cpu'), None)
    assert str(Device('cuda', 1)) == 'cuda:1' and str(Device('cpu')) == 'cpu'
    assert precision_name('auto', Device('cpu')) == 'fp32'
    assert precision_name('auto', Device('cuda', 0)) == 'fp16'
    with pytest.raises(ValueError, match="invalid device 'tpu'; accepted: auto, cpu, cuda"):
        engine_device('tpu')


def test_device_and_precision_resolution():
    assert resolve_device('cpu') == (torch.device('cpu'), None)
    with pytest.raises(ValueError, match="invalid device 'gpu'; accepted: auto, cpu, cuda"):
        resolve_device('gpu')
    with pytest.raises(ValueError, match='invalid device'):
        resolve_device('cuda:x')
    if torch.cuda.is_available():
        assert resolve_device('auto')[0].type == 'cuda'
    else:
        device, warning = resolve_device('auto')
        assert device.type == 'cpu' and 'CUDA is not available' in warning
        with pytest.raises(ValueError, match="'cuda' requested but CUDA is not available"):
            resolve_device('cuda')
    assert resolve_precision('auto', torch.device('cpu')) == torch.float32
    assert resolve_precision('auto', torch.device('cuda')) == torch.float16
    with pytest.raises(ValueError, match="'fp16' needs a CUDA device"):
        resolve_precision('fp16', torch.device('cpu'))
    with pytest.raises(ValueError, match="invalid precision 'int8'; accepted: auto, fp32, fp16"):
        resolve_precision('int8', torch.device('cpu'))


def test_input_size_override(small_checkpoint, frame):
    engine = Segmenter.from_checkpoint(small_checkpoint, device='cpu', input_size=[96, 160])
    assert engine.input_size == (96, 160)
    assert engine.segment(frame).labels.shape == (181, 243)
    with pytest.raises(ValueError, match='invalid input size'):
        Segmenter.from_checkpoint(small_checkpoint, device='cpu', input_size=[16, 16])
