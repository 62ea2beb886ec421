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


"""`farsee-ros replay`: a generated bag through a real segment_node process over DDS."""

import json
import os

import pytest

from farsee_ros.tools.bag import bag_topics, make_bag
from farsee_ros.tools.cli import main
from farsee_ros.training.datasets import build_dataset


@pytest.mark.timeout(600)
def test_replay_report_matches_evaluate(small_checkpoint, camvid_root, tmp_path, capsys):
    bag = str(tmp_path / 'val_bag')
    make_bag(build_dataset('camvid', camvid_root, 'val'), bag, rate=5.0)
    report_path = str(tmp_path / 'replay' / 'report.json')
    out_bag = str(tmp_path / 'out_bag')
    assert main(['replay', bag, '--image-topic', '/camera/image_raw', '--labels-topic',
                 '/camera/labels_gt', '--model', small_checkpoint, '--device', 'cpu',
                 '--max-rate', '--report', report_path, '--out-bag', out_bag]) == 0
    with open(report_path) as f:
        report = json.load(f)
    assert report['frames_sent'] == 4 and report['frames_received'] == 4
    assert report['dropped'] == 0
    for key in ('p50', 'p95', 'p99', 'max'):
        assert report['latency_ms'][key] > 0, key
    assert report['frames_evaluated'] == 4
    for suffix in ('_latency.png', '_latency_hist.png'):
        assert os.path.getsize(report_path[:-len('.json')] + suffix) > 1000
    # The same frames and model through `farsee-ros evaluate` give the same mIoU.
    eval_path = str(tmp_path / 'eval.json')
    assert main(['evaluate', '--model', small_checkpoint, '--dataset', 'camvid', '--root',
                 camvid_root, '--split', 'val', '--device', 'cpu', '--report', eval_path]) == 0
    with open(eval_path) as f:
        evaluated = json.load(f)
    assert report['miou'] == pytest.approx(evaluated['miou'], abs=1e-12)
    assert report['per_class_iou'] == evaluated['per_class_iou']
    topics = {topic: count for topic, _, count in bag_topics(out_bag)}
    assert topics['/camera/image_raw'] == 4 and topics['/farsee/labels'] == 4
    assert topics['/farsee/latency'] == 4 and topics.get('/farsee/overlay') == 4
    assert 'mIoU: ' in capsys.readouterr().out


@pytest.mark.timeout(600)
def test_dropped_frames_are_counted(small_checkpoint, tmp_path):
    from conftest import write_labelled_scenes
    root = tmp_path / 'burst'
    write_labelled_scenes(root / 'val', root / 'valannot', 12, size=(240, 320))
    bag = str(tmp_path / 'bag')
    make_bag(build_dataset('camvid', str(root), 'val'), bag, labels_topic=None)
    report_path = str(tmp_path / 'report.json')
    # 12 frames in about 12 ms: the node keeps only the newest frame while it works.
    assert main(['replay', bag, '--image-topic', '/camera/image_raw', '--model',
                 small_checkpoint, '--device', 'cpu', '--rate', '1000',
                 '--report', report_path, '--drain', '5']) == 0
    with open(report_path) as f:
        report = json.load(f)
    assert report['frames_sent'] == 12
    assert report['dropped'] > 0
    assert report['frames_received'] + report['dropped'] == 12
    assert report['miou'] is None
    missing = [row for row in report['frames'] if row['latency_ms'] is None]
    assert len(missing) == report['dropped']
