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


"""Datasets (CamVid, Cityscapes, folder pairs), joint augmentation and the metrics."""

import os

from conftest import write_labelled_scenes
import cv2
import numpy as np
import pytest
import torch

from farsee_ros.model.classes import CAMVID, CITYSCAPES
from farsee_ros.training.augment import TrainAugmentation
from farsee_ros.training.datasets import (build_dataset, CITYSCAPES_TRAIN_IDS, DatasetError,
                                          sequence_of)
from farsee_ros.training.metrics import ConfusionMatrix


def test_camvid_layout_loads_pairs_in_file_order(camvid_root):
    data = build_dataset('camvid', camvid_root, 'train')
    assert len(data) == 8
    assert [os.path.basename(p) for p, _ in data.pairs] == [f'seq_{i:03d}.png' for i in range(8)]
    image, label = data[0]
    assert image.shape == (3, 48, 64) and image.dtype == torch.uint8
    assert label.shape == (48, 64) and label.dtype == torch.uint8
    assert data.classes is CAMVID
    expected = cv2.imread(os.path.join(camvid_root, 'trainannot', 'seq_000.png'),
                          cv2.IMREAD_UNCHANGED)
    assert np.array_equal(label.numpy(), expected)
    rgb = cv2.imread(os.path.join(camvid_root, 'train', 'seq_000.png'))[..., ::-1]
    assert np.array_equal(image.permute(1, 2, 0).numpy(), rgb)


def test_camvid_errors_name_the_problem(camvid_root, tmp_path):
    with pytest.raises(DatasetError, match=r"split 'test' not found .*accepted: train, val"):
        build_dataset('camvid', camvid_root, 'test')
    with pytest.raises(DatasetError, match='is not a directory'):
        build_dataset('camvid', str(tmp_path / 'nowhere'), 'train')
    root = tmp_path / 'broken'
    write_labelled_scenes(root / 'train', root / 'trainannot', 3)
    os.remove(root / 'trainannot' / 'seq_001.png')
    with pytest.raises(DatasetError, match=r'unmatched files: 1 image\(s\) without a label'
                                           r'.*seq_001.png'):
        build_dataset('camvid', str(root), 'train')
    with pytest.raises(DatasetError, match="unknown dataset 'kitti'; accepted: camvid"):
        build_dataset('kitti', str(root), 'train')


def test_colour_label_file_is_refused(tmp_path):
    root = tmp_path / 'rgb_labels'
    write_labelled_scenes(root / 'train', root / 'trainannot', 1)
    label = cv2.imread(str(root / 'trainannot' / 'seq_000.png'), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(root / 'trainannot' / 'seq_000.png'), np.dstack([label] * 3))
    data = build_dataset('camvid', str(root), 'train')
    with pytest.raises(DatasetError, match='single-channel 8-bit image of class ids'):
        data[0]


def test_cityscapes_layout_maps_label_ids_to_train_ids(tmp_path):
    # Train id t is written as its labelId; the ignore rows as labelId 0 (unlabeled).
    to_label_id = {t: i for i, t in CITYSCAPES_TRAIN_IDS.items()}
    values = [to_label_id[t] for t in range(19)] + [0] * 237
    root = tmp_path / 'cityscapes'
    labels = []
    for city, seed in (('aachen', 1), ('bremen', 2)):
        names = (lambda i, c=city: f'{c}_000000_{i:06d}')
        labels += write_labelled_scenes(
            root / 'leftImg8bit' / 'train' / city, root / 'gtFine' / 'train' / city, 2,
            seed=seed, classes=CITYSCAPES, label_values=values,
            name=lambda i, n=names: n(i) + '_leftImg8bit')
    # The label files carry the gtFine suffix instead.
    for city in ('aachen', 'bremen'):
        folder = root / 'gtFine' / 'train' / city
        for f in os.listdir(folder):
            os.rename(folder / f, folder / f.replace('_leftImg8bit.png', '_gtFine_labelIds.png'))
        (folder / 'extra_gtFine_color.png').write_bytes(b'not read')
    data = build_dataset('cityscapes', str(root), 'train')
    assert len(data) == 4 and data.classes is CITYSCAPES
    for index, expected in enumerate(labels):
        _, label = data[index]
        expected = np.where(expected == CITYSCAPES.ignore_index, 255, expected)
        assert np.array_equal(label.numpy(), expected)
    with pytest.raises(DatasetError, match=r"cityscapes split 'val' not found .*accepted: train"):
        build_dataset('cityscapes', str(root), 'val')
    with pytest.raises(DatasetError, match='expected leftImg8bit/ and gtFine/'):
        build_dataset('cityscapes', str(tmp_path), 'train')


def test_folder_pairs_with_and_without_split(tmp_path):
    flat = tmp_path / 'flat'
    write_labelled_scenes(flat / 'images', flat / 'labels', 3, image_suffix='.jpg')
    data = build_dataset('folders', str(flat), None, classes='camvid')
    assert len(data) == 3 and data.classes is CAMVID
    split = tmp_path / 'split'
    write_labelled_scenes(split / 'images' / 'train', split / 'labels' / 'train', 2)
    assert len(build_dataset('folders', str(split), 'train')) == 2
    with pytest.raises(DatasetError, match="split 'val' not found .*accepted: train"):
        build_dataset('folders', str(split), 'val')
    with pytest.raises(ValueError, match="unknown class set 'kitti'"):
        build_dataset('folders', str(flat), None, classes='kitti')


def _quadrants(height=64, width=96):
    """Return a label of four quadrant classes and an image painted in their colours."""
    label = np.zeros((height, width), np.uint8)
    label[:height // 2, width // 2:] = 1
    label[height // 2:, :width // 2] = 3
    label[height // 2:, width // 2:] = 8
    image = np.array(CAMVID.palette, np.uint8)[label]
    return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(label)


def _agreement(image, label):
    """Share of labelled pixels whose colour is their class's palette colour (within 2)."""
    palette = torch.tensor(CAMVID.palette, dtype=torch.int16)
    keep = label != CAMVID.ignore_index
    expected = palette[label[keep].long()]
    actual = image.permute(1, 2, 0)[keep].to(torch.int16)
    return float(((expected - actual).abs().max(dim=1).values <= 2).float().mean())


def test_flip_moves_image_and_label_together():
    image, label = _quadrants()
    flip = TrainAugmentation((64, 96), CAMVID.ignore_index, scale=(1.0, 1.0), degrees=0,
                             flip=1.0, colour_noise=0)
    out_image, out_label = flip(image, label)
    assert torch.equal(out_image, image.flip(-1))
    assert torch.equal(out_label, label.flip(-1))
    # The check below would catch a flip applied to one of them only.
    assert _agreement(image.flip(-1), label) < 0.6


def test_random_augmentation_keeps_image_and_label_aligned():
    torch.manual_seed(0)
    image, label = _quadrants()
    augment = TrainAugmentation((48, 72), CAMVID.ignore_index, colour_noise=0)
    shares = []
    for _ in range(20):
        out_image, out_label = augment(image, label)
        assert out_image.shape == (3, 48, 72) and out_label.shape == (48, 72)
        assert out_label.dtype == torch.uint8
        assert set(out_label.unique().tolist()) <= {0, 1, 3, 8, CAMVID.ignore_index}
        # Bilinear image vs nearest label differ only along region borders (a flip or
        # rotation applied to one of them only gives well under 0.5 on these quadrants).
        shares.append(_agreement(out_image, out_label))
    assert min(shares) > 0.75 and sum(shares) / len(shares) > 0.85


def test_colour_noise_changes_the_image_only():
    torch.manual_seed(1)
    image, label = _quadrants()
    noisy = TrainAugmentation((64, 96), CAMVID.ignore_index, scale=(1.0, 1.0), degrees=0,
                              flip=0, colour_noise=0.2)
    out_image, out_label = noisy(image, label)
    assert torch.equal(out_label, label)
    assert not torch.equal(out_image, image)
    assert out_image.dtype == torch.uint8


def test_confusion_matrix_against_hand_computation():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 9]])
    prediction = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    confusion = ConfusionMatrix(3, ignore_index=9)
    confusion.update(prediction, target)
    # rows = ground truth, columns = prediction; the ignored pixel is not counted.
    assert confusion.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    iou = confusion.iou()
    assert iou == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert confusion.miou() == pytest.approx((1 / 3 + 2 / 3 + 2 / 3) / 3)
    assert confusion.pixel_accuracy() == pytest.approx(5 / 7)
    assert confusion.images == 1 and confusion.images_with_class.tolist() == [1, 1, 1]
    # A class absent from both ground truth and predictions is left out of the mean.
    four = ConfusionMatrix(4, ignore_index=9)
    four.update(prediction, target)
    assert four.iou()[3] is None and four.miou() == pytest.approx(confusion.miou())
    summary = four.summary(['a', 'b', 'c', 'd'])
    assert summary['per_class_iou']['d'] is None
    assert summary['class_pixels'] == {'a': 2, 'b': 2, 'c': 3, 'd': 0}
    assert summary['class_images'] == {'a': 1, 'b': 1, 'c': 1, 'd': 0}
    with pytest.raises(ValueError, match=r'label value 7 is not a class id 0..2 or the ignore '
                                         r'id 9'):
        confusion.update(torch.zeros(2, dtype=torch.long), torch.tensor([7, 0]))
    with pytest.raises(ValueError, match='differs from the target shape'):
        confusion.update(torch.zeros(3), torch.zeros(2))


def test_confusion_matrix_accumulates_over_updates():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, (3, 20, 30))
    prediction = rng.integers(0, 5, (3, 20, 30))
    whole = ConfusionMatrix(5, None)
    whole.update(torch.from_numpy(prediction), torch.from_numpy(target))
    parts = ConfusionMatrix(5, None)
    for p, t in zip(prediction, target):
        parts.update(torch.from_numpy(p), torch.from_numpy(t))
    assert torch.equal(whole.matrix, parts.matrix)
    assert whole.images == parts.images == 3
    assert torch.equal(whole.images_with_class, parts.images_with_class)
    for c in range(5):
        tp = np.sum((prediction == c) & (target == c))
        union = np.sum((prediction == c) | (target == c))
        assert whole.iou()[c] == pytest.approx(tp / union)


def test_confusion_matrix_counts_the_images_that_have_each_class():
    # Three 2x3 images; class 3 only in the second, the ignore id (9) fills the third but
    # one pixel: an image counts for a class only where its labelled pixels have the class.
    target = torch.tensor([[[0, 0, 1], [1, 2, 2]],
                           [[0, 3, 3], [9, 9, 1]],
                           [[9, 9, 9], [9, 9, 2]]])
    batch = ConfusionMatrix(5, ignore_index=9)
    batch.update(torch.zeros_like(target), target)
    single = ConfusionMatrix(5, ignore_index=9)
    for t in target:
        single.update(torch.zeros_like(t), t)
    for confusion in (batch, single):
        assert confusion.images == 3
        assert confusion.images_with_class.tolist() == [2, 2, 2, 1, 0]
        assert confusion.matrix.sum(1).tolist() == [3, 3, 3, 2, 0]
    merged = ConfusionMatrix(5, ignore_index=9)
    merged.merge(batch)
    merged.merge(single)
    assert merged.images == 6 and merged.images_with_class.tolist() == [4, 4, 4, 2, 0]


def test_class_set_of_a_checkpoint():
    from farsee_ros.model.classes import class_set_of
    assert class_set_of({'class_names': list(CAMVID.class_names)}) is CAMVID
    custom = class_set_of({'class_names': ['ground', 'obstacle'],
                           'palette': [[0, 255, 0], [255, 0, 0]], 'ignore_index': 255})
    assert custom.name == 'model' and custom.class_names == ('ground', 'obstacle')
    assert custom.palette == ((0, 255, 0), (255, 0, 0)) and custom.ignore_index == 255


def test_split_specs_join_splits_and_hold_out_whole_sequences(tmp_path):
    root = tmp_path / 'camvid'
    names = ['0001TP_000010', '0001TP_000020', '0006R0_000030', '0016E5_000040', '0016E5_000050']
    write_labelled_scenes(root / 'train', root / 'trainannot', 5, name=lambda i: names[i])
    write_labelled_scenes(root / 'val', root / 'valannot', 2, seed=3,
                          name=lambda i: f'0016E5_0800{i}')

    def stems(spec):
        return sorted(os.path.basename(label)[:-4]
                      for _, label in build_dataset('camvid', str(root), spec).pairs)

    assert stems('train') == names
    assert stems('train:0001TP,0016E5') == [n for n in names if not n.startswith('0006R0')]
    assert stems('train:0006R0') == ['0006R0_000030']
    assert stems('train+val') == sorted(names + ['0016E5_08000', '0016E5_08001'])
    assert stems('train:0006R0+val') == ['0006R0_000030', '0016E5_08000', '0016E5_08001']
    assert build_dataset('camvid', str(root), 'train:0006R0').split == 'train:0006R0'
    assert sequence_of('/x/Seq05VD_f00000.png') == 'Seq05VD'
    assert sequence_of('/g/aachen/aachen_000000_000019_gtFine_labelIds.png') == 'aachen'
    with pytest.raises(DatasetError, match=r"no sequence 0009XX; accepted: 0001TP, 0006R0, "
                                           r"0016E5"):
        build_dataset('camvid', str(root), 'train:0009XX')
    for bad in ('train:', '+val', 'train:,'):
        with pytest.raises(DatasetError, match='SPLIT\\[:SEQ,SEQ...\\]'):
            build_dataset('camvid', str(root), bad)
