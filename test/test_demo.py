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

"""`farsee-ros demo` and the CLI, run as a user runs them: separate processes, real files."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np

from farsee_ros.demo import synthetic_street_frame


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, '-m', 'farsee_ros.cli', *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_demo_writes_an_overlay_of_the_frames_size(tmp_path, small_checkpoint):
    image = tmp_path / 'street.png'
    frame = synthetic_street_frame(300, 401, seed=3)
    cv2.imwrite(str(image), frame[..., ::-1])
    out = tmp_path / 'out'
    result = _cli('demo', '--image', str(image), '--model', small_checkpoint, '--device', 'cpu',
                  '--out', str(out))
    assert result.returncode == 0, result.stderr
    overlay = cv2.imread(str(out / 'overlay.png'))
    assert overlay.shape == (300, 401, 3)
    assert cv2.imread(str(out / 'labels_color.png')).shape == (300, 401, 3)
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frame_size'] == [300, 401] and summary['input_size'] == [128, 192]
    assert sum(summary['class_pixels'].values()) == 300 * 401
    assert 'overlay.png' in result.stdout


def test_demo_without_arguments_says_what_it_used(tmp_path):
    result = _cli('demo', '--out', str(tmp_path / 'out'), '--device', 'cpu')
    assert result.returncode == 0, result.stderr
    assert 'SYNTHETIC' in result.stdout
    if 'UNTRAINED' in result.stdout:
        assert 'not meaningful' in result.stdout
    assert os.path.isfile(tmp_path / 'out' / 'overlay.png')


def test_synthetic_frame_is_deterministic_and_structured():
    a, b = synthetic_street_frame(120, 160, seed=1), synthetic_street_frame(120, 160, seed=1)
    assert np.array_equal(a, b) and a.shape == (120, 160, 3)
    assert a[:10].mean(axis=(0, 1))[2] > a[-10:].mean(axis=(0, 1))[2]   # bluish sky above road


def test_cli_errors_are_one_line(tmp_path):
    result = _cli('demo', '--model', str(tmp_path / 'missing.pt'), '--out', str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"farsee-ros demo: error: checkpoint not found: {tmp_path / 'missing.pt'}"]
    result = _cli('demo', '--device', 'cuda:7', '--out', str(tmp_path))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_cli_export_and_complexity(tmp_path, small_checkpoint):
    out = tmp_path / 'm.onnx'
    result = _cli('export', '--model', small_checkpoint, '--format', 'onnx', '--out', str(out),
                  '--output-size', '256', '384')
    assert result.returncode == 0, result.stderr
    assert out.is_file() and 'parity with eager' in result.stdout
    result = _cli('complexity', '--num-classes', '11', '--input-size', '128', '192')
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('\n| `') == 4
