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


"""`farsee-ros make-bag`: rosbag2 written with rosbags, read back by rosbags and by mcap."""

import os

import numpy as np
import pytest
import yaml

from farsee_ros.tools.bag import BagError, make_bag, read_images, typestore
from farsee_ros.tools.cli import main
from farsee_ros.training.datasets import build_dataset


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_round_trip_keeps_every_message(camvid_root, tmp_path, storage):
    data = build_dataset('camvid', camvid_root, 'val')
    out = str(tmp_path / 'bag')
    assert make_bag(data, out, storage=storage, rate=4.0, start_ns=10**18) == 4
    with open(os.path.join(out, 'metadata.yaml')) as f:
        info = yaml.safe_load(f)['rosbag2_bagfile_information']
    assert info['version'] == 9 and info['storage_identifier'] == storage
    assert info['message_count'] == 8
    frames = list(read_images(out, '/camera/image_raw'))
    labels = list(read_images(out, '/camera/labels_gt'))
    assert [f.stamp_ns for f in frames] == [10**18 + i * 250_000_000 for i in range(4)]
    assert [f.stamp_ns for f in labels] == [f.stamp_ns for f in frames]
    for index, (frame, label) in enumerate(zip(frames, labels)):
        image, truth = data.load(index)
        assert frame.encoding == 'rgb8' and frame.frame_id == 'camera'
        assert np.array_equal(frame.pixels, image.permute(1, 2, 0).numpy())
        assert label.encoding == 'mono8' and np.array_equal(label.pixels, truth.numpy())


def test_mcap_reader_sees_ros2_messages(camvid_root, tmp_path):
    from mcap.reader import make_reader
    data = build_dataset('camvid', camvid_root, 'val')
    out = str(tmp_path / 'bag')
    make_bag(data, out, encoding='bgr8', labels_topic=None, frame_id='cam0')
    files = [f for f in os.listdir(out) if f.endswith('.mcap')]
    assert len(files) == 1
    store = typestore()
    seen = []
    with open(os.path.join(out, files[0]), 'rb') as f:
        reader = make_reader(f)
        assert reader.get_header().profile == 'ros2'
        for schema, channel, message in reader.iter_messages():
            assert schema.name == 'sensor_msgs/msg/Image' and schema.encoding == 'ros2msg'
            assert channel.topic == '/camera/image_raw' and channel.message_encoding == 'cdr'
            msg = store.deserialize_cdr(message.data, 'sensor_msgs/msg/Image')
            assert message.log_time == msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            seen.append(msg)
    assert len(seen) == 4
    image, _ = data.load(0)
    first = np.asarray(seen[0].data).reshape(seen[0].height, seen[0].width, 3)
    assert seen[0].encoding == 'bgr8' and seen[0].header.frame_id == 'cam0'
    assert np.array_equal(first, image.permute(1, 2, 0).numpy()[..., ::-1])


def test_errors_name_the_problem(camvid_root, tmp_path, capsys):
    data = build_dataset('camvid', camvid_root, 'val')
    out = str(tmp_path / 'bag')
    make_bag(data, out, limit=1)
    with pytest.raises(BagError, match='exists'):
        make_bag(data, out)
    with pytest.raises(BagError, match="has no topic '/nope'; it has: /camera/image_raw"):
        list(read_images(out, '/nope'))
    with pytest.raises(BagError, match="unknown encoding 'yuv'; accepted: rgb8, bgr8"):
        make_bag(data, str(tmp_path / 'b2'), encoding='yuv')
    assert main(['make-bag', '--dataset', 'camvid', '--root', camvid_root, '--split', 'val',
                 '--out', str(tmp_path / 'cli'), '--rate', '2', '--storage', 'sqlite3']) == 0
    printed = capsys.readouterr().out
    assert 'wrote' in printed and '/camera/labels_gt  sensor_msgs/msg/Image  4 messages' in printed
