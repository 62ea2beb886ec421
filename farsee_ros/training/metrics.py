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

"""Confusion matrix, per-class IoU, mIoU and pixel accuracy; label blockiness (grid share)."""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch


class ConfusionMatrix:
    """
    An NxN count matrix: rows are ground-truth classes, columns predicted classes.

    Pixels whose ground truth is the ignore id are not counted; any other ground-truth value
    outside 0..N-1, or a prediction outside it, is an error.

    Beside the matrix it counts, per class, the images whose ground truth has the class
    (`images_with_class`, out of `images`): a class's IoU on a few images is a noisy number.
    """

    def __init__(self, num_classes: int, ignore_index: Optional[int]):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = torch.zeros((self.num_classes, self.num_classes), dtype=torch.int64)
        self.images_with_class = torch.zeros(self.num_classes, dtype=torch.int64)
        self.images = 0

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """
        Count a prediction against its target (same shape, integer class ids).

        A target of up to two dimensions is one image; (B, H, W) is B images.
        """
        if prediction.shape != target.shape:
            raise ValueError(f'prediction shape {tuple(prediction.shape)} differs from the '
                             f'target shape {tuple(target.shape)}')
        count = target.shape[0] if target.dim() > 2 else 1
        image = (torch.arange(count, device=target.device).repeat_interleave(target[0].numel())
                 if count > 1 else None)
        target = target.reshape(-1).long()
        prediction = prediction.reshape(-1).long()
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            target, prediction = target[keep], prediction[keep]
            image = image[keep] if image is not None else None
        n = self.num_classes
        if target.numel():
            if int(target.min()) < 0 or int(target.max()) >= n:
                bad = target[(target < 0) | (target >= n)][0].item()
                raise ValueError(f'label value {bad} is not a class id 0..{n - 1} or the ignore '
                                 f'id {self.ignore_index}')
            if int(prediction.min()) < 0 or int(prediction.max()) >= n:
                raise ValueError(f'predicted class outside 0..{n - 1}')
        counts = torch.bincount(target * n + prediction, minlength=n * n)
        self.matrix += counts.reshape(n, n).to(self.matrix.device, torch.int64)
        ids = target if image is None else image * n + target
        present = torch.bincount(ids, minlength=count * n).reshape(count, n) > 0
        self.images_with_class += present.sum(0).to(self.images_with_class.device, torch.int64)
        self.images += count

    def merge(self, other: 'ConfusionMatrix') -> None:
        self.matrix += other.matrix
        self.images_with_class += other.images_with_class
        self.images += other.images

    def all_reduce(self) -> None:
        """Sum the matrix over the processes of a torch.distributed group."""
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            backend = dist.get_backend()
            n = self.num_classes
            tensor = torch.cat([self.matrix.reshape(-1), self.images_with_class,
                                torch.tensor([self.images])])
            tensor = tensor.cuda() if backend == 'nccl' else tensor
            dist.all_reduce(tensor)
            tensor = tensor.cpu()
            self.matrix = tensor[:n * n].reshape(n, n).clone()
            self.images_with_class = tensor[n * n:n * n + n].clone()
            self.images = int(tensor[-1])

    def iou(self) -> List[Optional[float]]:
        """Per-class IoU = TP / (TP + FP + FN); None for a class absent from both."""
        m = self.matrix.double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        return [float(tp[i] / union[i]) if union[i] > 0 else None for i in range(len(tp))]

    def miou(self) -> Optional[float]:
        """Mean IoU over the classes present in the ground truth or the predictions."""
        values = [v for v in self.iou() if v is not None]
        return sum(values) / len(values) if values else None

    def pixel_accuracy(self) -> Optional[float]:
        total = int(self.matrix.sum())
        return int(self.matrix.diag().sum()) / total if total else None

    def summary(self, class_names: Sequence[str]) -> Dict[str, object]:
        """
        Return the scores, the matrix and each class's support.

        Keys: miou, per_class_iou (by name), pixel_accuracy, confusion_matrix (lists), and
        class_pixels and class_images (by name): ground-truth pixels and the images with them.
        """
        return {
            'miou': self.miou(),
            'per_class_iou': dict(zip(class_names, self.iou())),
            'pixel_accuracy': self.pixel_accuracy(),
            'confusion_matrix': self.matrix.tolist(),
            'class_pixels': dict(zip(class_names, self.matrix.sum(1).tolist())),
            'class_images': dict(zip(class_names, self.images_with_class.tolist())),
        }


class GridAlignment:
    """
    How blocky labels are: the share of their boundaries that lie on the network's cell grid.

    FarSee-Net's last sub-pixel convolution turns each stride-8 feature vector into a 4x4
    cell of stride-2 logits, i.e. an 8x8-pixel cell of the network input. Labels that follow
    those cells have their class boundaries where two cells meet: between the last stride-2
    pixel of one cell and the first of the next, a band of 2 of every 8 input pixels. A
    boundary between output pixels x and x+1 (frame width W, input width w) lies at input
    position t = (x + 1) * w / W; it is on the grid when (t + 1) mod 8 < 2 (likewise for rows).
    Boundaries that ignore the grid fall there as often as edge positions do (`chance`: about
    a quarter; 0.30 for 480-pixel frames at a 384-pixel input, where 3 of every 10 frame
    columns map into the band); a share well above it is the staircase of blocks seen on real
    frames, while the ground truth's boundaries stay near chance.
    """

    PERIOD, BAND = 8, 2   # input pixels per stride-8 cell; the band where two cells meet

    def __init__(self, input_size: Sequence[int]):
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.on_grid = 0
        self.boundaries = 0
        self.expected = 0.0   # on-grid boundaries expected if their positions ignored the grid
        self._masks: Dict[Tuple[int, int], np.ndarray] = {}

    def _mask(self, length: int, axis: int) -> np.ndarray:
        key = (length, axis)
        if key not in self._masks:
            t = np.arange(1, length) * (self.input_size[axis] / length)
            self._masks[key] = np.mod(t + 1.0, self.PERIOD) < self.BAND
        return self._masks[key]

    def update(self, labels: np.ndarray) -> None:
        """Count the class boundaries of one HxW label map (at the frame's resolution)."""
        labels = np.asarray(labels)
        height, width = labels.shape
        across = (labels[:, 1:] != labels[:, :-1]).sum(axis=0)    # per column edge
        down = (labels[1:, :] != labels[:-1, :]).sum(axis=1)      # per row edge
        columns, rows = self._mask(width, 1), self._mask(height, 0)
        self.on_grid += int(across[columns].sum() + down[rows].sum())
        self.boundaries += int(across.sum() + down.sum())
        self.expected += float(across.sum() * columns.mean() + down.sum() * rows.mean())

    def share(self) -> Optional[float]:
        """Return the share of boundaries on the grid (None before any boundary)."""
        return self.on_grid / self.boundaries if self.boundaries else None

    def chance(self) -> Optional[float]:
        """Return the share expected of boundaries placed without regard to the grid."""
        return self.expected / self.boundaries if self.boundaries else None
