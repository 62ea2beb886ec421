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
Image + label datasets: CamVid (SegNet layout), Cityscapes (official layout) and folder pairs.

Every dataset yields (image, label): a 3xHxW uint8 RGB tensor and an HxW uint8 tensor of
class ids at the image's full resolution, with the class set's ignore id where unlabelled.
"""

import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..model.classes import CAMVID, CITYSCAPES, ClassSet, get_class_set

DATASETS = ('camvid', 'cityscapes', 'folders')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm')

# Cityscapes labelIds -> the 19 train ids (cityscapesScripts, helpers/labels.py); others 255.
CITYSCAPES_TRAIN_IDS: Dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}


class DatasetError(ValueError):
    """A dataset root, split or file set that cannot be used, said in one line."""


def cityscapes_lookup() -> torch.Tensor:
    """Return a 256-entry uint8 table mapping Cityscapes labelIds to train ids (else 255)."""
    table = torch.full((256,), CITYSCAPES.ignore_index, dtype=torch.uint8)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        table[label_id] = train_id
    return table


def read_image(path: str) -> torch.Tensor:
    """Decode an image file to a 3xHxW uint8 RGB tensor."""
    pixels = cv2.imread(path, cv2.IMREAD_COLOR)
    if pixels is None:
        raise DatasetError(f'cannot decode image {path}')
    return torch.from_numpy(np.ascontiguousarray(pixels[..., ::-1].transpose(2, 0, 1)))


def read_label(path: str) -> torch.Tensor:
    """Decode a single-channel 8-bit label image to an HxW uint8 tensor of class ids."""
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if label is None:
        raise DatasetError(f'cannot decode label {path}')
    if label.dtype != np.uint8 or label.ndim != 2:
        channels = 1 if label.ndim == 2 else label.shape[2]
        raise DatasetError(
            f'label {path} must be a single-channel 8-bit image of class ids, not '
            f'{channels} channel(s) of {label.dtype} (colour-coded labels must be '
            'converted to ids first)')
    return torch.from_numpy(label)


class SegmentationDataset(Dataset):
    """
    Pairs of (image file, label file) with a class set, read on demand or cached in memory.

    `label_map`: an optional 256-entry uint8 table applied to raw label values (Cityscapes
    labelIds -> train ids). `transform(image, label) -> (image, label)` is applied last.
    """

    def __init__(self, pairs: Sequence[Tuple[str, str]], classes: ClassSet, *, name: str,
                 split: str, label_map: Optional[torch.Tensor] = None,
                 transform: Optional[Callable] = None, cache: bool = False):
        self.pairs = list(pairs)
        self.classes = classes
        self.name = name
        self.split = split
        self.label_map = label_map
        self.transform = transform
        self.cache = cache
        self._cached: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return the decoded, label-mapped pair `index` without the transform."""
        if index in self._cached:
            return self._cached[index]
        image_path, label_path = self.pairs[index]
        image, label = read_image(image_path), read_label(label_path)
        if image.shape[1:] != label.shape:
            raise DatasetError(f'{image_path} is {image.shape[2]}x{image.shape[1]} but its label '
                               f'{label_path} is {label.shape[1]}x{label.shape[0]}')
        if self.label_map is not None:
            label = self.label_map[label.long()]
        if self.cache:
            self._cached[index] = (image, label)
        return image, label

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        image, label = self.load(index)
        if self.transform is not None:
            image, label = self.transform(image, label)
        return image, label

    def frame_size(self) -> Tuple[int, int]:
        """Return (H, W) of the first image (read from the file)."""
        image, _ = self.load(0)
        return int(image.shape[1]), int(image.shape[2])


def _images_in(folder: str) -> List[str]:
    return sorted(f for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith('.'))


def _subfolders(root: str) -> List[str]:
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))


def _pair_by_stem(image_dir: str, label_dir: str, what: str) -> List[Tuple[str, str]]:
    """Pair the images of `image_dir` with the same-stem labels of `label_dir`, or fail."""
    images = {os.path.splitext(f)[0]: f for f in _images_in(image_dir)}
    labels = {os.path.splitext(f)[0]: f for f in _images_in(label_dir)}
    return _check_pairs(images, labels, image_dir, label_dir, what)


def _check_pairs(images: Dict[str, str], labels: Dict[str, str], image_dir: str,
                 label_dir: str, what: str) -> List[Tuple[str, str]]:
    no_label = sorted(set(images) - set(labels))
    no_image = sorted(set(labels) - set(images))
    if no_label or no_image:
        parts = []
        if no_label:
            parts.append(f'{len(no_label)} image(s) without a label in {label_dir} '
                         f'(first: {images[no_label[0]]})')
        if no_image:
            parts.append(f'{len(no_image)} label(s) without an image in {image_dir} '
                         f'(first: {labels[no_image[0]]})')
        raise DatasetError(f'{what}: unmatched files: ' + '; '.join(parts))
    if not images:
        raise DatasetError(f'{what}: no images in {image_dir}')
    return [(os.path.join(image_dir, images[k]), os.path.join(label_dir, labels[k]))
            for k in sorted(images)]


def _require_dir(path: str, what: str) -> None:
    if not os.path.isdir(path):
        raise DatasetError(f'{what}: {path} is not a directory')


def camvid(root: str, split: str, **kwargs) -> SegmentationDataset:
    """Open CamVid in the SegNet layout: <root>/<split>/*.png, labels in <root>/<split>annot/."""
    _require_dir(root, 'camvid root')
    splits = [d for d in _subfolders(root)
              if not d.endswith('annot') and os.path.isdir(os.path.join(root, d + 'annot'))]
    if split not in splits:
        raise DatasetError(
            f'camvid split {split!r} not found under {root} (it needs {split}/ and '
            f'{split}annot/); accepted: {", ".join(splits) or "none found"}')
    pairs = _pair_by_stem(os.path.join(root, split), os.path.join(root, split + 'annot'),
                          f'camvid {split}')
    return SegmentationDataset(pairs, CAMVID, name='camvid', split=split, **kwargs)


def cityscapes(root: str, split: str, **kwargs) -> SegmentationDataset:
    """Cityscapes: leftImg8bit/<split>/<city>/*_leftImg8bit.png, gtFine/..._gtFine_labelIds.png."""
    _require_dir(root, 'cityscapes root')
    image_root = os.path.join(root, 'leftImg8bit')
    label_root = os.path.join(root, 'gtFine')
    _require_dir(image_root, 'cityscapes root (expected leftImg8bit/ and gtFine/)')
    _require_dir(label_root, 'cityscapes root (expected leftImg8bit/ and gtFine/)')
    splits = sorted(set(_subfolders(image_root)) & set(_subfolders(label_root)))
    if split not in splits:
        raise DatasetError(f'cityscapes split {split!r} not found under {root}; accepted: '
                           f'{", ".join(splits) or "none found"}')
    images: Dict[str, str] = {}
    labels: Dict[str, str] = {}
    image_split, label_split = os.path.join(image_root, split), os.path.join(label_root, split)
    for city in _subfolders(image_split):
        for f in _images_in(os.path.join(image_split, city)):
            if f.endswith('_leftImg8bit.png'):
                images[f'{city}/{f[:-len("_leftImg8bit.png")]}'] = f'{city}/{f}'
    for city in (_subfolders(label_split) if os.path.isdir(label_split) else []):
        for f in _images_in(os.path.join(label_split, city)):
            if f.endswith('_gtFine_labelIds.png'):
                labels[f'{city}/{f[:-len("_gtFine_labelIds.png")]}'] = f'{city}/{f}'
    pairs = _check_pairs(images, labels, image_split, label_split, f'cityscapes {split}')
    return SegmentationDataset(pairs, CITYSCAPES, name='cityscapes', split=split,
                               label_map=cityscapes_lookup(), **kwargs)


def folders(root: str, split: Optional[str], classes: str = 'camvid',
            **kwargs) -> SegmentationDataset:
    """
    Open a generic pair of folders: <root>/images/ and <root>/labels/, same file stems.

    With a split, <root>/images/<split>/ and <root>/labels/<split>/ are used when present.
    Labels hold class ids of the class set `classes` (its ignore id where unlabelled).
    """
    _require_dir(root, 'folders root')
    image_dir, label_dir = os.path.join(root, 'images'), os.path.join(root, 'labels')
    _require_dir(image_dir, 'folders root (expected images/ and labels/)')
    _require_dir(label_dir, 'folders root (expected images/ and labels/)')
    if split and os.path.isdir(os.path.join(image_dir, split)):
        image_dir, label_dir = os.path.join(image_dir, split), os.path.join(label_dir, split)
        _require_dir(label_dir, f'folders split {split!r}')
    elif split and _subfolders(image_dir):
        raise DatasetError(f'folders split {split!r} not found under {image_dir}; accepted: '
                           f'{", ".join(_subfolders(image_dir))}')
    pairs = _pair_by_stem(image_dir, label_dir, f'folders {root}')
    return SegmentationDataset(pairs, get_class_set(classes), name='folders',
                               split=split or '', **kwargs)


def sequence_of(label_path: str) -> str:
    """
    Return the sequence (recording) a frame belongs to, from its label file's path.

    CamVid and folder pairs: the file stem up to its first '_' (0016E5_07959.png -> 0016E5,
    Seq05VD_f00000.png -> Seq05VD); Cityscapes: the city folder.
    """
    stem = os.path.basename(label_path)
    if stem.endswith('_gtFine_labelIds.png'):
        return os.path.basename(os.path.dirname(label_path))
    return stem.split('_', 1)[0] if '_' in stem else os.path.splitext(stem)[0]


def parse_split(spec: str) -> List[Tuple[str, Optional[List[str]]]]:
    """
    Parse a split spec 'SPLIT[:SEQ,SEQ...][+SPLIT[:SEQ,...]...]' into (split, sequences) parts.

    'train' is a split; 'train+val' two splits together; 'train:0001TP,0016E5' only those
    sequences of train (hold whole sequences out for validation: 'train:0006R0').
    """
    parts = []
    for part in (spec or '').split('+'):
        split, colon, sequences = part.partition(':')
        names = [s.strip() for s in sequences.split(',') if s.strip()] if colon else None
        if not split.strip() or (colon and not names):
            raise DatasetError(f'split {spec!r} is not SPLIT[:SEQ,SEQ...][+SPLIT...], e.g. '
                               "'train', 'train+val' or 'train:0001TP,0016E5'")
        parts.append((split.strip(), names))
    return parts


def build_dataset(name: str, root: str, split: str, *, classes: str = 'camvid',
                  **kwargs) -> SegmentationDataset:
    """
    Open dataset `name` ('camvid', 'cityscapes' or 'folders') at `root`, split spec `split`.

    See parse_split: several splits join with '+', and ':SEQ,SEQ' keeps only those sequences.
    """
    openers = {'camvid': camvid, 'cityscapes': cityscapes,
               'folders': lambda r, s, **kw: folders(r, s, classes=classes, **kw)}
    if name not in openers:
        raise DatasetError(f'unknown dataset {name!r}; accepted: {", ".join(DATASETS)}')
    parts = parse_split(split) if split else [(split, None)]
    pairs: List[Tuple[str, str]] = []
    dataset = None
    for part, sequences in parts:
        dataset = openers[name](root, part, **kwargs)
        if sequences is not None:
            found = sorted({sequence_of(label) for _, label in dataset.pairs})
            unknown = [s for s in sequences if s not in found]
            if unknown:
                raise DatasetError(f'{name} split {part!r} has no sequence '
                                   f'{", ".join(unknown)}; accepted: {", ".join(found)}')
            dataset.pairs = [p for p in dataset.pairs if sequence_of(p[1]) in sequences]
        pairs += dataset.pairs
    if len(parts) > 1 or parts[0][1] is not None:
        dataset.pairs, dataset.split = pairs, split
    return dataset
