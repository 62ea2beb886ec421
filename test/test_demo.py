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
`farsee-ros demo` as a user runs it: a separate process, segment_node over real DDS, real files.

The CamVid download is served by a real HTTP server on loopback with generated frames (never
the dataset itself); the offline path uses a dead loopback port.
"""

import json
import os
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from conftest import write_labelled_scenes
from PIL import Image as PilImage
from test_fetch import dead_url, served  # noqa: F401 - a fixture used below

from farsee_ros.common import sha256_of
from farsee_ros.model.classes import CAMVID
from farsee_ros.tools.bag import BagWriter, image_msg, IMAGE_TYPE, typestore
from farsee_ros.tools.demo import (CAMVID_FRAMES, CAMVID_TEST_SEQUENCE, open_source,
                                   SYNTHETIC, synthetic_street_frame)
from farsee_ros.tools.fetch import read_sums, write_sums


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, '-m', 'farsee_ros.tools.cli', *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def _outputs(out, frames):
    """Check every file the demo promises and return its summary."""
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames_sent'] == frames and summary['frames_received'] == frames
    assert summary['dropped'] == 0 and summary['latency_ms']['p50'] > 0
    with PilImage.open(out / 'overlay.gif') as gif:
        assert gif.n_frames == frames
    mosaic = cv2.imread(str(out / 'mosaic.png'))
    assert mosaic is not None and mosaic.shape[1] >= 3 * 320
    for name in ('demo_latency.png', 'demo_latency_hist.png'):
        assert cv2.imread(str(out / name)) is not None
    assert sorted(os.listdir(out / 'labels')) == [f'{i:04d}.png' for i in range(frames)]
    markdown = (out / 'summary.md').read_text()
    assert 'latency p50' in markdown and 'overlay.gif' in markdown
    return summary


def test_demo_downloads_the_sequence_and_runs_the_pipeline(served, tmp_path,  # noqa: F811
                                                           small_checkpoint):
    base, root, requests = served
    names = [p.split('/')[1][:-4] for p in CAMVID_TEST_SEQUENCE.paths[:3]]
    truth = write_labelled_scenes(root / 'test', root / 'testannot', 3, size=(96, 128),
                                  name=lambda i: names[i])
    # Generated frames, not CamVid's: their own sums stand in for the pinned ones.
    sums = tmp_path / 'SHA256SUMS'
    write_sums(str(sums), {p: sha256_of(str(root / p)) for p in CAMVID_TEST_SEQUENCE.paths
                           if (root / p).is_file()})
    env = {'FARSEE_DEMO_BASE_URL': base, 'FARSEE_CACHE_DIR': str(tmp_path / 'cache'),
           'FARSEE_DEMO_SHA256SUMS': str(sums)}
    out = tmp_path / 'out'
    result = _cli('demo', '--frames', '3', '--model', small_checkpoint, '--device', 'cpu',
                  '--out', str(out), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'downloading' in result.stdout and 'SYNTHETIC' not in result.stdout
    assert sorted(requests) == sorted(f'/{p}' for p in CAMVID_TEST_SEQUENCE.paths
                                      if any(n in p for n in names))
    summary = _outputs(out, 3)
    assert summary['synthetic'] is False and 'CamVid test sequence' in summary['source']
    assert summary['frames_evaluated'] == 3 and 0 <= summary['miou'] <= 1
    assert cv2.imread(str(out / 'mosaic.png')).shape[1] == 4 * 320   # with ground truth
    labels = cv2.imread(str(out / 'labels' / '0000.png'), cv2.IMREAD_UNCHANGED)
    assert labels.shape == truth[0].shape and labels.max() < CAMVID.num_classes
    for line in ('latency: p50', 'overlay.gif', 'mosaic.png', 'summary.md'):
        assert line in result.stdout
    # Second run: from the cache, without the server.
    result = _cli('demo', '--frames', '3', '--model', small_checkpoint, '--device', 'cpu',
                  '--out', str(out), env=dict(env, FARSEE_DEMO_BASE_URL=dead_url()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'SYNTHETIC' not in result.stdout and 'downloading' not in result.stdout


def test_the_camvid_sums_are_pinned_for_every_file_the_demo_fetches(repo):
    assert set(CAMVID_TEST_SEQUENCE.sha256) == set(CAMVID_TEST_SEQUENCE.paths)
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in CAMVID_TEST_SEQUENCE.sha256.values())
    shared = os.path.join(repo, '..', 'shared', 'camvid_test_Seq05VD.sha256')
    if not os.path.isfile(shared):
        pytest.skip(f'{shared} not present: cannot compare with the published sums')
    assert read_sums(shared) == CAMVID_TEST_SEQUENCE.sha256


def test_demo_refuses_frames_that_differ_from_the_pinned_sums(served, tmp_path,  # noqa: F811
                                                              small_checkpoint):
    base, root, _ = served
    names = [p.split('/')[1][:-4] for p in CAMVID_TEST_SEQUENCE.paths[:2]]
    write_labelled_scenes(root / 'test', root / 'testannot', 2, size=(96, 128),
                          name=lambda i: names[i])      # same names, other (tampered) bytes
    cache = tmp_path / 'cache'
    result = _cli('demo', '--frames', '2', '--model', small_checkpoint, '--device', 'cpu',
                  '--out', str(tmp_path / 'out'),
                  env={'FARSEE_DEMO_BASE_URL': base, 'FARSEE_CACHE_DIR': str(cache)})
    assert result.returncode == 0, result.stdout + result.stderr
    refused = [line for line in result.stdout.splitlines() if 'not usable' in line]
    assert len(refused) == 1 and 'is not the pinned' in refused[0], result.stdout
    assert CAMVID_TEST_SEQUENCE.sha256[f'test/{names[0]}.png'] in refused[0]
    assert SYNTHETIC in refused[0]
    kept = [f for _, _, files in os.walk(cache) for f in files if f.endswith('.png')]
    assert kept == []


def test_demo_without_network_says_so_once_and_plays_synthetic_frames(tmp_path,
                                                                      small_checkpoint):
    out = tmp_path / 'out'
    result = _cli('demo', '--frames', '2', '--model', small_checkpoint, '--device', 'cpu',
                  '--out', str(out), env={'FARSEE_DEMO_BASE_URL': dead_url(),
                                          'FARSEE_CACHE_DIR': str(tmp_path / 'cache')})
    assert result.returncode == 0, result.stdout + result.stderr
    offline = [line for line in result.stdout.splitlines() if 'no network' in line]
    assert len(offline) == 1 and SYNTHETIC in offline[0]
    summary = _outputs(out, 2)
    assert summary['synthetic'] is True and summary['source'] == SYNTHETIC
    assert summary['miou'] is None
    assert 'SYNTHETIC' in (out / 'summary.md').read_text()


def test_demo_records_a_live_topic(tmp_path, small_checkpoint):
    from sensor_msgs.msg import Image

    from farsee_ros.tools.harness import Client, image_message
    client = Client('farsee_test_camera')
    camera = client.publisher(Image, '/live_cam/image_raw')
    stop = threading.Event()

    def publish():
        frame = synthetic_street_frame(120, 160)
        while not stop.is_set():
            camera.publish(image_message(frame, 'rgb8', client.now_ns()))
            time.sleep(0.2)
    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        out = tmp_path / 'out'
        result = _cli('demo', '--source', 'topic:/live_cam/image_raw', '--frames', '2',
                      '--model', small_checkpoint, '--device', 'cpu', '--timeout', '120',
                      '--out', str(out))
    finally:
        stop.set()
        thread.join()
        client.close()
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['source'] == 'live topic /live_cam/image_raw'
    assert summary['frames_received'] >= 2 and summary['latency_ms']['p50'] > 0
    assert cv2.imread(str(out / 'mosaic.png')) is not None
    labels = cv2.imread(str(out / 'labels' / sorted(os.listdir(out / 'labels'))[0]),
                        cv2.IMREAD_UNCHANGED)
    assert labels.shape == (120, 160)


def test_sources_folder_image_video_and_bag(tmp_path):
    folder = tmp_path / 'frames'
    write_labelled_scenes(folder, tmp_path / 'unused', 5, size=(40, 56))
    source = open_source(str(folder), 3)
    assert len(source.frames) == 3 and source.frames[0].pixels.shape == (40, 56, 3)
    assert source.frames[0].encoding == 'bgr8' and not source.synthetic
    first = cv2.imread(str(folder / 'seq_000.png'))
    assert np.array_equal(source.frames[0].pixels, first)
    assert len(open_source(str(folder / 'seq_001.png'), 3).frames) == 1

    video = str(tmp_path / 'clip.avi')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'MJPG'), 10.0, (64, 48))
    assert writer.isOpened()
    for i in range(6):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    source = open_source(video, 4)
    assert len(source.frames) == 4 and source.frames[0].pixels.shape == (48, 64, 3)
    assert source.frames[1].stamp_ns == 100_000_000   # the video's 10 fps

    bag = str(tmp_path / 'bag')
    store = typestore()
    with BagWriter(bag) as out:
        for topic in ('/front/image_raw', '/rear/image_raw'):
            out.topic(topic, IMAGE_TYPE)
        for i in range(3):
            pixels = np.full((8, 12, 3), i, np.uint8)
            for topic in ('/front/image_raw', '/rear/image_raw'):
                out.write(topic, i, image_msg(store, pixels, 'rgb8', 1000 + i, 'cam'))
    with pytest.raises(ValueError, match='--topic .* 2 sensor_msgs/msg/Image topics'):
        open_source(bag, 5)
    source = open_source(bag, 5, topic='/rear/image_raw')
    assert [f.stamp_ns for f in source.frames] == [1000, 1001, 1002]
    assert source.frames[2].pixels[0, 0, 0] == 2 and source.frames[0].encoding == 'rgb8'


def test_source_errors_name_the_accepted_forms(tmp_path):
    with pytest.raises(ValueError, match='accepted: camvid .* topic:/'):
        open_source(str(tmp_path / 'nothing_here'), 3)
    with pytest.raises(ValueError, match='a topic is absolute'):
        open_source('topic:camera', 3)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no images in the folder'):
        open_source(str(tmp_path / 'empty'), 3)
    said = []
    source = open_source('camvid', 3, offline=True, log=said.append)
    assert source.synthetic and len(source.frames) == 3 and len(said) == 1
    assert CAMVID_FRAMES == len(CAMVID_TEST_SEQUENCE.paths) // 2


def test_synthetic_frames_are_deterministic_moving_and_structured():
    a, b = synthetic_street_frame(120, 160, seed=1), synthetic_street_frame(120, 160, seed=1)
    assert np.array_equal(a, b) and a.shape == (120, 160, 3)
    assert a[:10].mean(axis=(0, 1))[2] > a[-10:].mean(axis=(0, 1))[2]   # bluish sky above road
    later = synthetic_street_frame(120, 160, seed=1, t=2.0)
    assert np.abs(later.astype(int) - a).mean() > 1.0                   # the scene moves


def test_cli_errors_are_one_line(tmp_path):
    result = _cli('demo', '--model', str(tmp_path / 'missing.pt'), '--out', str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"farsee-ros demo: error: checkpoint not found: {tmp_path / 'missing.pt'}"]
    result = _cli('demo', '--device', 'cuda:7', '--out', str(tmp_path))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    result = _cli('demo', '--source', str(tmp_path / 'nope'), '--out', str(tmp_path))
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
