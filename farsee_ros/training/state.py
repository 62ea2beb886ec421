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
What a training run keeps in its --out directory, and reading it back for --resume.

<out>/last.pt: the whole training state (model, optimizer, grad scaler, progress; loadable with
weights_only=True); <out>/best.pt: a model checkpoint, best on the validation split, with its
metrics and the recipe; <out>/final.pt: the model checkpoint of a finished run's last epoch;
<out>/metrics.csv and <out>/training.png: one row and one point per epoch; <out>/config.json:
the recipe as run. All but config.json are written atomically.
"""

import csv
import dataclasses
import json
import os
from typing import Any, Dict, List, Mapping, Optional

import torch

from ..common import atomic_write
from ..model.checkpoint import make_metadata, save_checkpoint
from ..model.classes import ClassSet

STATE_FORMAT = 'farsee_ros.training_state'
# Settings a resumed run must share with the run it continues (else it would not be exact).
RECIPE_KEYS = ('dataset', 'train_split', 'variant', 'input_size', 'crop', 'epochs',
               'batch_size', 'lr', 'momentum', 'weight_decay', 'schedule', 'step_size', 'gamma',
               'poly_power', 'warmup_epochs', 'class_weights', 'backbone_weights', 'seed',
               'scale', 'degrees', 'colour_noise', 'amp', 'classes', 'subpixel_kernel', 'icnr',
               'loss', 'ohem_threshold', 'ohem_min_kept', 'frontend', 'frontend_lr',
               'bn_momentum')
# Recipe keys added later: what a run started before them had.
RECIPE_DEFAULTS = {'subpixel_kernel': 1, 'icnr': False, 'loss': 'ce', 'ohem_threshold': 0.7,
                   'ohem_min_kept': 1 / 16, 'frontend': 'resnet18', 'frontend_lr': 1.0,
                   'bn_momentum': 0.1}


class TrainingError(ValueError):
    """A training run that cannot start or continue, said in one line."""


@dataclasses.dataclass
class Progress:
    """How far a run has got: epochs done, one history row each, the best validation mIoU."""

    epoch: int = 0
    history: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    best_miou: float = -1.0
    best_epoch: int = -1

    def record_best(self, miou: Optional[float], epoch: int) -> bool:
        """Keep `miou` (of 1-based `epoch`) as the best if it beats it; return whether it did."""
        if miou is None or miou <= self.best_miou:
            return False
        self.best_miou, self.best_epoch = miou, epoch
        return True


def resume_state(out: str, config: Mapping[str, Any], resume: bool) -> Optional[Dict[str, Any]]:
    """
    Return the training state in <out>/last.pt to continue (--resume), or None for a new run.

    Refuses a missing or foreign state, a state whose recipe differs from `config` (naming every
    changed setting) and, without --resume, an existing state (a run is never overwritten).
    """
    path = os.path.join(out, 'last.pt')
    if not resume:
        if os.path.exists(path):
            raise TrainingError(f'{path} exists: pass --resume to continue that run, or '
                                'choose another --out')
        return None
    if not os.path.isfile(path):
        raise TrainingError(f'--resume: no training state at {path}')
    state = torch.load(path, map_location='cpu', weights_only=True)
    if state.get('format') != STATE_FORMAT:
        raise TrainingError(f'{path} is not a farsee_ros training state')
    before = {k: state['config'].get(k, RECIPE_DEFAULTS.get(k)) for k in RECIPE_KEYS}
    changed = [f'{k}: {before[k]!r} -> {config.get(k)!r}'
               for k in RECIPE_KEYS if before[k] != config.get(k)]
    if changed:
        raise TrainingError('--resume with a different recipe would not continue the run '
                            'exactly: ' + '; '.join(changed))
    return state


def restore_state(state: Mapping[str, Any], net: torch.nn.Module,
                  optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> Progress:
    """Load a training state's weights, optimizer and scaler in place; return its progress."""
    net.load_state_dict(state['model'])
    optimizer.load_state_dict(state['optimizer'])
    if state.get('scaler'):
        scaler.load_state_dict(state['scaler'])
    return Progress(state['epoch'], list(state['history']), state['best_miou'],
                    state['best_epoch'])


def save_epoch(out: str, config: Mapping[str, Any], net: torch.nn.Module,
               optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               progress: Progress) -> None:
    """Write <out>/last.pt (the whole training state), metrics.csv and training.png."""
    _save_atomic({'format': STATE_FORMAT, 'format_version': 1, 'epoch': progress.epoch,
                  'config': config, 'model': net.state_dict(),
                  'optimizer': optimizer.state_dict(), 'scaler': scaler.state_dict(),
                  'best_miou': progress.best_miou, 'best_epoch': progress.best_epoch,
                  'history': progress.history}, os.path.join(out, 'last.pt'))
    write_log(os.path.join(out, 'metrics.csv'), progress.history)
    plot_history(progress.history, os.path.join(out, 'training.png'))


def save_best(out: str, net: torch.nn.Module, classes: ClassSet, config: Mapping[str, Any],
              summary: Mapping[str, Any], *, epoch: int, val_split: str) -> None:
    """Write <out>/best.pt: a model checkpoint with its validation metrics and the recipe."""
    metrics = {'val_split': val_split, 'val_miou': summary['miou'],
               'val_pixel_accuracy': summary['pixel_accuracy'],
               'val_per_class_iou': summary['per_class_iou'], 'epoch': epoch}
    _save_model(os.path.join(out, 'best.pt'), net, classes, config, metrics)


def save_final(out: str, net: torch.nn.Module, classes: ClassSet, config: Mapping[str, Any],
               progress: Progress) -> str:
    """
    Write <out>/final.pt: a model checkpoint of the last epoch; return its path.

    The model to export from a run without a validation split (train + val, the usual way to
    train the final weights once the recipe was chosen on held-out data): nothing selects an
    epoch there, so the schedule's end is the model. Its metrics say so, with the last loss.
    """
    last = progress.history[-1] if progress.history else {}
    metrics = {'epoch': progress.epoch, 'selection': 'last epoch',
               'train_loss': last.get('train_loss')}
    if last.get('val_miou') is not None:
        metrics['val_miou'] = last['val_miou']
    path = os.path.join(out, 'final.pt')
    _save_model(path, net, classes, config, metrics)
    return path


def _save_model(path: str, net: torch.nn.Module, classes: ClassSet, config: Mapping[str, Any],
                metrics: Mapping[str, Any]) -> None:
    """Write a model checkpoint of `net` with the run's recipe and `metrics`."""
    metadata = make_metadata(net, classes, input_size=config['input_size'],
                             dataset=f'{config["dataset"]}/{config["train_split"]}',
                             metrics=metrics, training=config)
    save_checkpoint(path, net, metadata)


def write_config(out: str, config: Mapping[str, Any], world: int, device: torch.device) -> None:
    """Write <out>/config.json: the recipe, the number of processes and the device."""
    with open(os.path.join(out, 'config.json'), 'w') as f:
        json.dump({**config, 'world_size': world, 'device': str(device)}, f, indent=2)


def write_log(path: str, history: List[Dict[str, Any]]) -> None:
    """Write the history as CSV, one row per epoch; the columns are every key seen, in order."""
    keys: List[str] = []
    for row in history:
        keys.extend(k for k in row if k not in keys)
    with atomic_write(path, newline='') as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for row in history:
            writer.writerow({k: ('' if row.get(k) is None else row.get(k)) for k in keys})


def plot_history(history: List[Dict[str, Any]], path: str) -> None:
    """Write the training loss and validation mIoU per epoch to a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, loss_ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    epochs = [r['epoch'] for r in history]
    loss_ax.plot(epochs, [r['train_loss'] for r in history], color='tab:red', label='train loss')
    loss_ax.set_xlabel('epoch')
    loss_ax.set_ylabel('train loss (cross-entropy)', color='tab:red')
    miou_ax = loss_ax.twinx()
    val = [(r['epoch'], r['val_miou']) for r in history if r.get('val_miou') is not None]
    if val:
        miou_ax.plot(*zip(*val), color='tab:blue', marker='.', label='val mIoU')
    miou_ax.set_ylabel('validation mIoU', color='tab:blue')
    miou_ax.set_ylim(0, 1)
    loss_ax.grid(alpha=0.3)
    fig.suptitle('farsee-ros train')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _save_atomic(obj: Any, path: str) -> None:
    with atomic_write(path, 'wb') as f:
        torch.save(obj, f)
