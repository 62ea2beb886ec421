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
CPU post-processing: labels bit-exact against F.interpolate + argmax, overlay bytes.

Each case also runs the numpy logits of the ONNX Runtime engine: exact against
bilinear_labels, the same resize in numpy's float32 arithmetic.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from farsee_ros.engine import postprocess
from farsee_ros.engine.postprocess import (bilinear_labels, blend, colorize_blend,
                                           full_resolution_labels, upsampled_argmax)


def reference(logits, size):
    """Return the labels by definition: full bilinear interpolation, then argmax."""
    full = F.interpolate(logits[None], size=size, mode='bilinear', align_corners=False)[0]
    return full.argmax(0).to(torch.uint8).numpy()


def smooth(low_size, size, scale, seed, classes=11):
    """Return spatially coherent logits: a coarse random field, upsampled and scaled."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, classes, *low_size, generator=generator)
    return F.interpolate(noise, size=size, mode='bilinear', align_corners=False)[0] * scale


def assert_exact(logits, size):
    expected = reference(logits, size)
    labels = full_resolution_labels(logits, size)
    assert labels.dtype == np.uint8 and labels.shape == tuple(size)
    mismatch = int((labels != expected).sum())
    assert mismatch == 0, f'{mismatch} of {expected.size} labels differ'
    values = logits.numpy()
    expected = bilinear_labels(values, size)
    labels = full_resolution_labels(values, size)
    assert labels.dtype == np.uint8 and labels.shape == tuple(size)
    mismatch = int((labels != expected).sum())
    assert mismatch == 0, f'numpy logits: {mismatch} of {expected.size} labels differ'


@pytest.fixture
def no_fallback(monkeypatch):
    """Keep even noise and small maps on the boundary path, off the full interpolation."""
    monkeypatch.setattr(postprocess, 'CPU_BOUNDARY_FALLBACK', 1.0)
    monkeypatch.setattr(postprocess, '_SMALL', 0)


@pytest.mark.parametrize('low, size, coarse', [
    ((144, 192), (1024, 2048), (18, 24)),   # the default 288x384 input at 2048x1024
    ((144, 192), (1024, 2048), (6, 8)),
    ((256, 384), (1024, 2048), (16, 24)),   # 512x768 input
    ((37, 53), (480, 360), (5, 7)),         # odd sizes, non-integer scales
    ((37, 53), (360, 480), (5, 7)),
    ((120, 160), (240, 320), (10, 12)),     # exactly 2x
    ((97, 131), (181, 243), (8, 12)),
    ((13, 7), (1000, 3), (3, 2)),           # extreme aspect: a column, many rows per cell
    ((50, 60), (25, 31), (9, 11)),          # downsampling
    ((5, 9), (5, 9), (2, 3)),               # same size
    ((21, 16), (131, 256), (1, 8)),         # equal rows; rows rounding onto a source row
    ((16, 21), (256, 131), (8, 1)),         # equal columns
])
def test_labels_exact_on_smooth_logits(low, size, coarse, no_fallback):
    for seed, scale in ((0, 10.0), (1, 1e-3), (2, 1e4)):
        assert_exact(smooth(coarse, low, scale, seed), size)


@pytest.mark.parametrize('size', [(1024, 2048), (360, 480), (97, 131)])
def test_labels_exact_on_noise(size, no_fallback):
    """Every cell a boundary, many classes near each other: the per-column and pixel paths."""
    torch.manual_seed(sum(size))
    assert_exact(torch.randn(11, 30, 40), size)
    assert_exact(smooth((36, 48), (144, 192), 10.0, 3), size)


def test_labels_exact_through_the_fallback():
    torch.manual_seed(0)
    noise = torch.randn(11, 30, 40)
    assert_exact(noise, (400, 300))      # over CPU_BOUNDARY_FALLBACK: full interpolation
    assert_exact(smooth((18, 24), (144, 192), 10.0, 0), (1024, 2048))    # 29 % boundary


def test_only_noise_falls_back_to_the_full_interpolation(monkeypatch):
    """A trained net's hard frame (most cells on boundaries, few classes in each) is not."""
    whole = []
    real = postprocess._whole_map_labels
    monkeypatch.setattr(postprocess, '_whole_map_labels',
                        lambda *args: whole.append(args[1:3]) or real(*args))
    torch.manual_seed(0)
    noise = torch.randn(11, 30, 40)              # ten of eleven classes may lead in a cell
    busy = torch.full((11, 30, 40), -20.0)       # three classes in turn, the rest far below
    busy[:3] = torch.randn(3, 30, 40) * 3
    values = busy.numpy()
    geometry = postprocess._geometry(30, 40, 360, 480, postprocess._NUMPY_ARITHMETIC[0])
    boundary_share = 1 - postprocess._low_resolution(values, geometry)[2].mean()
    assert boundary_share > postprocess.CPU_BOUNDARY_FALLBACK, boundary_share
    for size in ((360, 480), (1024, 2048)):
        assert_exact(busy, size)
        assert whole == [], f'{size}: a busy trained-like map was interpolated in full'
        assert_exact(noise, size)
        assert whole == [size, size], whole     # torch and numpy logits
        whole.clear()


@pytest.mark.parametrize('size', [(1024, 2048), (360, 480), (181, 243)])
def test_numpy_reference_is_torchs_but_for_rounding(size):
    """bilinear_labels and F.interpolate differ only where two classes are a rounding apart."""
    for seed in range(3):
        logits = smooth((18, 24), (30, 40), 10.0, seed)
        equal = (bilinear_labels(logits.numpy(), size) == reference(logits, size)).mean()
        assert equal > 0.9999, equal
    logits = torch.randn(11, 30, 40) * 4
    logits[5, 3] = float('nan')
    labels = bilinear_labels(logits.numpy(), size)   # non-finite logits: some labels, no error
    assert labels.shape == size and labels.max() < 11


@pytest.mark.parametrize('size', [(1024, 2048), (480, 360), (181, 243)])
def test_labels_exact_with_ties(size, no_fallback):
    logits = smooth((6, 8), (144, 192), 10.0, 4)
    logits[7] = logits[3]                       # equal classes: the lower id wins
    logits[9, :40] = logits[2, :40]
    assert_exact(logits, size)
    assert_exact((logits * 2).round() / 2, size)     # many exact ties between all classes
    assert_exact(torch.zeros(11, 20, 30), size)      # all equal: class 0


@pytest.mark.parametrize('size', [(1024, 2048), (333, 517)])
def test_labels_exact_in_near_ties(size, no_fallback):
    """Two classes a rounding apart: only torch's exact float32 arithmetic decides those."""
    logits = smooth((6, 8), (144, 192), 10.0, 5)
    generator = torch.Generator().manual_seed(6)
    logits[4] = logits.max(0).values + torch.randn(144, 192, generator=generator) * 1e-6
    logits[1] = logits[4] + torch.randn(144, 192, generator=generator) * 1e-6
    assert_exact(logits, size)


@pytest.mark.parametrize('low, size', [((144, 192), (1024, 2048)), ((37, 53), (480, 360)),
                                       ((8, 12), (97, 131))])
def test_emulated_arithmetic_is_torchs(low, size):
    """The emulation used for near-ties reproduces F.interpolate bit for bit."""
    rng = np.random.default_rng(0)
    values = (rng.standard_normal((11, *low)) * 5).astype(np.float32)
    logits = torch.from_numpy(values)
    arithmetic = postprocess._reference_arithmetic(logits, *size)
    assert arithmetic is not None, 'no emulation matches torch\'s generic bilinear kernel'
    fused, mode = arithmetic
    expected = F.interpolate(logits[None], size=size, mode='bilinear',
                             align_corners=False)[0].numpy()
    geometry = postprocess._geometry(*low, *size, fused)
    ys = rng.integers(0, size[0], 20000)
    xs = rng.integers(0, size[1], 20000)
    got = postprocess._interpolate_at(values, geometry, ys, xs, mode)
    assert np.array_equal(got, expected[:, ys, xs])


def test_other_kernels_take_the_full_interpolation(monkeypatch, no_fallback):
    """Where torch runs a kernel not emulated here, the labels still match it exactly."""
    logits = smooth((6, 8), (60, 80), 10.0, 9)[:3].contiguous()
    logits[2] = logits[1]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)          # 3 channels, one thread: the channels-last kernel
    try:
        assert_exact(logits, (300, 400))
    finally:
        torch.set_num_threads(previous)
    assert_exact(smooth((6, 8), (60, 80), 10.0, 10), (50, 70))    # H + W <= 128


def test_channels_last_logits_are_exact(no_fallback):
    logits = smooth((6, 8), (144, 192), 10.0, 7)
    logits[5] = logits[2]
    channels_last = logits[None].contiguous(memory_format=torch.channels_last)[0]
    assert not channels_last.is_contiguous()
    assert_exact(channels_last, (480, 640))


def test_labels_other_inputs():
    logits = smooth((6, 8), (60, 80), 10.0, 8)
    expected = reference(logits, (300, 400))
    assert np.array_equal(full_resolution_labels(logits.double(), (300, 400)), expected)
    out = np.full((300, 400), 99, np.uint8)
    assert full_resolution_labels(logits, (300, 400), out=out) is out
    assert np.array_equal(out, expected)
    with pytest.raises(ValueError):
        full_resolution_labels(logits, (300, 400), out=np.empty((300, 401), np.uint8))
    with pytest.raises(ValueError):
        full_resolution_labels(logits[0], (300, 400))
    torch_labels = upsampled_argmax(logits, (300, 400))
    assert torch_labels.dtype == torch.uint8 and np.array_equal(torch_labels.numpy(), expected)
    broken = logits.clone()
    broken[3, 10, 10] = float('nan')
    broken[2, 20, 20] = float('inf')
    assert full_resolution_labels(broken, (300, 400)).shape == (300, 400)


def fixed_point_blend(base, labels, palette, alpha):
    """Return the torch path's overlay: `blend` on the palette's colours, as numpy."""
    colours = torch.from_numpy(palette)[torch.from_numpy(labels).long()]
    return blend(torch.from_numpy(np.ascontiguousarray(base)), colours, alpha).numpy()


@pytest.mark.parametrize('alpha', [0.0, 0.5, 0.37, 1.0, 0.7031, 0.004])
def test_overlay_bytes_equal_the_torch_blend(alpha):
    rng = np.random.default_rng(int(alpha * 1000))
    labels = rng.integers(0, 11, (181, 243), dtype=np.uint8)
    palette = rng.integers(0, 256, (11, 3), dtype=np.uint8)
    bgra = rng.integers(0, 256, (181, 243, 4), dtype=np.uint8)
    bgr = np.ascontiguousarray(bgra[..., :3])
    expected = fixed_point_blend(bgr, labels, palette, alpha)
    assert np.array_equal(colorize_blend(bgr, labels, palette, alpha), expected)
    assert np.array_equal(colorize_blend(bgra, labels, palette, alpha), expected)
    assert np.array_equal(colorize_blend(bgra[..., :3], labels, palette, alpha), expected)
    mono = bgra[..., 0].copy()
    expected = fixed_point_blend(np.repeat(mono[..., None], 3, axis=2), labels, palette, alpha)
    assert np.array_equal(colorize_blend(mono, labels, palette, alpha), expected)
    expanded = torch.from_numpy(mono)[..., None].expand(-1, -1, 3).numpy()   # stride 0
    assert np.array_equal(colorize_blend(expanded, labels, palette, alpha), expected)
    assert np.array_equal(colorize_blend(mono[..., None], labels, palette, alpha), expected)


def test_overlay_formula_exact_for_every_value_and_weight():
    """Every (base, colour) byte pair at every alpha step: OpenCV's float path is exact."""
    values = np.arange(256, dtype=np.uint8)
    base = np.repeat(values, 256).reshape(256, 256, 1).repeat(3, axis=2)
    labels = np.tile(values, 256).reshape(256, 256)
    palette = np.repeat(values[:, None], 3, axis=1)        # label v is colour (v, v, v)
    for weight in range(129):
        expected = ((base.astype(np.int32) * (128 - weight) +
                     palette[labels].astype(np.int32) * weight + 64) >> 7).astype(np.uint8)
        got = colorize_blend(base, labels, palette, weight / 128)
        assert np.array_equal(got, expected), weight


def test_overlay_edge_cases():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 14, (40, 50), dtype=np.uint8)
    palette = rng.integers(0, 256, (11, 3), dtype=np.uint8)
    base = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    overlay = colorize_blend(base, labels, palette, 1.0)
    assert np.array_equal(overlay[labels < 11], palette[labels[labels < 11]])
    assert not overlay[labels >= 11].any()          # ids past the palette: black
    out = np.empty((40, 50, 3), np.uint8)
    assert colorize_blend(base, labels, palette, 0.3, out=out) is out
    assert np.array_equal(out, colorize_blend(base, labels, palette, 0.3))
    with pytest.raises(ValueError):
        colorize_blend(base, labels, palette, 1.5)
    with pytest.raises(ValueError):
        colorize_blend(base[:39], labels, palette, 0.5)
