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

"""Built-in class sets: names, colour palettes and the ignore id of each dataset."""

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple


@dataclass(frozen=True)
class ClassSet:
    """The classes a model predicts, their display colours (RGB) and the label id to ignore."""

    name: str
    class_names: Tuple[str, ...]
    palette: Tuple[Tuple[int, int, int], ...]
    ignore_index: Optional[int]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# The 19 Cityscapes evaluation classes in train-id order, with the official colours
# (cityscapesScripts, helpers/labels.py). Label value 255 marks pixels to ignore.
CITYSCAPES = ClassSet(
    name='cityscapes',
    class_names=(
        'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
        'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck',
        'bus', 'train', 'motorcycle', 'bicycle',
    ),
    palette=(
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
        (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ),
    ignore_index=255,
)

# CamVid as in the SegNet tutorial: 11 classes, label value 11 ('Unlabelled') ignored.
CAMVID = ClassSet(
    name='camvid',
    class_names=(
        'Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree', 'SignSymbol', 'Fence', 'Car',
        'Pedestrian', 'Bicyclist',
    ),
    palette=(
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
        (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
    ),
    ignore_index=11,
)

CLASS_SETS: Dict[str, ClassSet] = {c.name: c for c in (CITYSCAPES, CAMVID)}


def get_class_set(name: str) -> ClassSet:
    """Return the built-in class set called `name`."""
    try:
        return CLASS_SETS[name]
    except KeyError:
        raise ValueError(
            f'unknown class set {name!r}; accepted: {", ".join(sorted(CLASS_SETS))}') from None


def class_set_of(metadata: Mapping[str, Any]) -> ClassSet:
    """Return the built-in class set a checkpoint's metadata predicts, else one built from it."""
    names = list(metadata['class_names'])
    for candidate in CLASS_SETS.values():
        if list(candidate.class_names) == names:
            return candidate
    return ClassSet('model', tuple(names), tuple(tuple(c) for c in metadata['palette']),
                    metadata['ignore_index'])
