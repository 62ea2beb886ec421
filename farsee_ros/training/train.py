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
`farsee-ros train`: the paper's recipe (IV-B) on CamVid, Cityscapes or folder pairs.

SGD (momentum 0.9), batch 16, lr 0.1 decayed x0.9 every 50 epochs, cross-entropy with the
ignore id; a poly schedule, warm-up and class weights as options. The network sees the
down-sampled crop (model_input, as the engine does); the loss is computed on logits up-sampled
to the label's full resolution. One process, or several under torchrun (DDP; gloo on the CPU,
nccl on CUDA). Every epoch writes <out>/last.pt (the whole training state; `--resume`
continues exactly: each epoch's shuffling and augmentation are seeded from (seed, epoch)),
<out>/best.pt (a model checkpoint, best on the validation split), <out>/metrics.csv and
<out>/training.png.
"""

import argparse
import csv
import json
import math
import os
import time
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .augment import TrainAugmentation
from ..common import atomic_write
from .datasets import build_dataset, DATASETS, SegmentationDataset
from .metrics import ConfusionMatrix
from ..model.checkpoint import IMAGENET_NORMALIZATION, make_metadata, save_checkpoint
from ..model.network import build_model, VARIANTS
from ..engine import model_input, resolve_device

STATE_FORMAT = 'farsee_ros.training_state'
# Settings a resumed run must share with the run it continues (else it would not be exact).
RECIPE_KEYS = ('dataset', 'train_split', 'variant', 'input_size', 'crop', 'epochs',
               'batch_size', 'lr', 'momentum', 'weight_decay', 'schedule', 'step_size', 'gamma',
               'poly_power', 'warmup_epochs', 'class_weights', 'backbone_weights', 'seed',
               'scale', 'degrees', 'colour_noise', 'amp', 'classes')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the train command's options to `parser`."""
    parser.add_argument('--dataset', required=True, choices=DATASETS)
    parser.add_argument('--root', required=True, help='dataset root directory')
    parser.add_argument('--classes', default='camvid',
                        help="class set of a 'folders' dataset (camvid or cityscapes)")
    parser.add_argument('--train-split', default='train')
    parser.add_argument('--val-split', default='val', help="validation split ('' for none)")
    parser.add_argument('--out', required=True, help='run directory (checkpoints, log, plot)')
    parser.add_argument('--resume', action='store_true', help='continue the run in --out')
    parser.add_argument('--variant', default='farseenet', choices=list(VARIANTS))
    parser.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'),
                        help="the network's input size (default: half the crop, rounded to 32)")
    parser.add_argument('--crop', type=int, nargs=2, metavar=('H', 'W'),
                        help='full-resolution training crop = label and loss resolution '
                        '(default: the size of the first training image)')
    parser.add_argument('--epochs', type=int, default=400)
    parser.add_argument('--batch-size', type=int, default=16, help='global batch size')
    parser.add_argument('--lr', type=float, default=0.1)
    parser.add_argument('--momentum', type=float, default=0.9)
    parser.add_argument('--weight-decay', type=float, default=5e-4)
    parser.add_argument('--schedule', default='step', choices=['step', 'poly'],
                        help='step: lr x gamma every step-size epochs (the paper); poly: '
                        'lr (1 - t/T)^power per iteration')
    parser.add_argument('--step-size', type=int, default=50)
    parser.add_argument('--gamma', type=float, default=0.9)
    parser.add_argument('--poly-power', type=float, default=0.9)
    parser.add_argument('--warmup-epochs', type=float, default=0.0,
                        help='linear learning-rate warm-up (epochs)')
    parser.add_argument('--class-weights', default='none',
                        help="none, median-frequency (computed on the training labels) or N "
                        'comma-separated numbers')
    parser.add_argument('--backbone-weights', default='none',
                        help="none (from scratch), imagenet (torchvision download) or a "
                        'ResNet-18 state-dict file')
    parser.add_argument('--scale', type=float, nargs=2, default=[0.5, 2.0], metavar=('MIN', 'MAX'),
                        help='random resize range')
    parser.add_argument('--degrees', type=float, default=10.0, help='random rotation range')
    parser.add_argument('--colour-noise', type=float, default=0.1)
    parser.add_argument('--amp', default='auto', choices=['auto', 'off', 'bf16', 'fp16'],
                        help='mixed precision (auto: bf16 or fp16 on CUDA, off on the CPU)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--workers', type=int, default=2, help='data-loading processes')
    parser.add_argument('--no-cache', action='store_true',
                        help='decode images on every read instead of keeping them in memory')
    parser.add_argument('--val-every', type=int, default=1, help='validate every N epochs')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=0, help='CPU threads (0: torch default)')
    parser.add_argument('--stop-after', type=int, default=0,
                        help='stop (resumably) after this many epochs in this run')
    parser.add_argument('--time-limit', type=float, default=0.0,
                        help='stop (resumably) before an epoch would end past this many minutes')


class TrainingError(ValueError):
    """A training run that cannot start or continue, said in one line."""


def default_input_size(crop: Sequence[int]) -> List[int]:
    """Half the crop, rounded to a multiple of 32 (the front-end's stride), at least 32."""
    return [max(32, int(round(c / 2 / 32)) * 32) for c in crop]


def lr_at(config: Dict[str, Any], epoch: int, step: int, steps_per_epoch: int) -> float:
    """Return the learning rate at iteration `step` of epoch `epoch` (both from 0)."""
    base = config['lr']
    t = epoch + step / steps_per_epoch
    if config['schedule'] == 'step':
        lr = base * config['gamma'] ** (epoch // config['step_size'])
    else:
        lr = base * max(0.0, 1.0 - t / config['epochs']) ** config['poly_power']
    if config['warmup_epochs'] and t < config['warmup_epochs']:
        lr *= (t + 1.0 / steps_per_epoch) / config['warmup_epochs']
    return lr


def parse_class_weights(spec: str, dataset: SegmentationDataset) -> Optional[List[float]]:
    """'none' -> None; 'median-frequency' -> computed; 'a,b,...' -> those N numbers."""
    n = dataset.classes.num_classes
    if spec == 'none':
        return None
    if spec == 'median-frequency':
        return median_frequency_weights(dataset)
    try:
        weights = [float(v) for v in spec.split(',')]
    except ValueError:
        weights = []
    if len(weights) != n or not all(w >= 0 and math.isfinite(w) for w in weights):
        raise TrainingError(f"--class-weights {spec!r}: expected none, median-frequency or {n} "
                            'comma-separated non-negative numbers')
    return weights


def median_frequency_weights(dataset: SegmentationDataset) -> List[float]:
    """
    Return median-frequency class weights (Eigen and Fergus; SegNet).

    w_c = median(f) / f_c, where f_c is class c's pixel count over the pixels of the images
    that contain c; 0 for a class that never occurs.
    """
    n = dataset.classes.num_classes
    pixels = torch.zeros(n, dtype=torch.float64)
    image_pixels = torch.zeros(n, dtype=torch.float64)
    for index in range(len(dataset)):
        _, label = dataset.load(index)
        counts = torch.bincount(label.reshape(-1).long(), minlength=256)[:n].double()
        pixels += counts
        image_pixels += (counts > 0).double() * label.numel()
    freq = torch.where(image_pixels > 0, pixels / image_pixels.clamp(min=1), torch.nan)
    median = freq.nanmedian()
    return [float(median / f) if f > 0 else 0.0 for f in freq.tolist()]


def _distributed():
    """Return (rank, world size, local rank); initialise the process group under torchrun."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world == 1:
        return 0, 1, 0
    import torch.distributed as dist
    backend = 'nccl' if torch.cuda.is_available() and \
        os.environ.get('FARSEE_DDP_BACKEND', '') != 'gloo' else 'gloo'
    dist.init_process_group(backend)
    return dist.get_rank(), world, int(os.environ.get('LOCAL_RANK', '0'))


def _amp_dtype(amp: str, device: torch.device) -> Optional[torch.dtype]:
    if amp == 'off' or (amp == 'auto' and device.type != 'cuda'):
        return None
    if device.type != 'cuda':
        raise TrainingError(f'--amp {amp} needs a CUDA device; use off or auto on the CPU')
    if amp == 'fp16' or (amp == 'auto' and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def _collate(batch):
    images, labels = zip(*batch)
    return torch.stack(images), torch.stack(labels)


def _config(args: argparse.Namespace, crop: Sequence[int], input_size: Sequence[int]) -> Dict:
    config = {k: getattr(args, k) for k in RECIPE_KEYS if hasattr(args, k)}
    config.update(crop=[int(c) for c in crop], input_size=[int(s) for s in input_size],
                  scale=[float(s) for s in args.scale])
    return config


def _save_atomic(obj: Any, path: str) -> None:
    with atomic_write(path, 'wb') as f:
        torch.save(obj, f)


def _write_log(path: str, history: List[Dict[str, Any]]) -> None:
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


@torch.inference_mode()
def validate(model: torch.nn.Module, dataset: SegmentationDataset, *, device: torch.device,
             input_size: Sequence[int], mean255: torch.Tensor, inv_std255: torch.Tensor,
             amp: Optional[torch.dtype], rank: int = 0, world: int = 1) -> ConfusionMatrix:
    """Confusion matrix of `model` on `dataset` at the labels' full resolution (all ranks)."""
    classes = dataset.classes
    confusion = ConfusionMatrix(classes.num_classes, classes.ignore_index)
    was_training = model.training
    model.eval()
    for index in range(rank, len(dataset), world):
        image, label = dataset.load(index)
        pixels = image.unsqueeze(0).to(device)
        x = model_input(pixels, input_size, mean255, inv_std255)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(x, [label.shape[0], label.shape[1]])
        confusion.update(logits[0].float().argmax(0).cpu(), label)
    model.train(was_training)
    if world > 1:
        confusion.all_reduce()
    return confusion


def run(args: argparse.Namespace) -> int:
    """Train; return 0 when the run finished or stopped resumably."""
    started = time.monotonic()
    rank, world, local_rank = _distributed()
    try:
        return _train(args, rank, world, local_rank, started)
    finally:
        if world > 1:
            import torch.distributed as dist
            dist.destroy_process_group()


def _train(args, rank: int, world: int, local_rank: int, started: float) -> int:
    from tqdm import tqdm

    main_process = rank == 0
    say = print if main_process else (lambda *a, **k: None)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, _ = resolve_device(args.device)
    if device.type == 'cuda' and world > 1:
        device = torch.device('cuda', local_rank)
        torch.cuda.set_device(device)
    amp = _amp_dtype(args.amp, device)
    if args.batch_size % world:
        raise TrainingError(f'--batch-size {args.batch_size} is not divisible by the '
                            f'{world} processes')
    per_process_batch = args.batch_size // world

    cache = not args.no_cache
    train_set = build_dataset(args.dataset, args.root, args.train_split, classes=args.classes,
                              cache=cache)
    val_set = (build_dataset(args.dataset, args.root, args.val_split, classes=args.classes,
                             cache=cache) if args.val_split else None)
    classes = train_set.classes
    crop = args.crop or train_set.frame_size()
    input_size = args.input_size or default_input_size(crop)
    config = _config(args, crop, input_size)
    config['classes'] = classes.name

    os.makedirs(args.out, exist_ok=True)
    state_path = os.path.join(args.out, 'last.pt')
    state = None
    if args.resume:
        if not os.path.isfile(state_path):
            raise TrainingError(f'--resume: no training state at {state_path}')
        state = torch.load(state_path, map_location='cpu', weights_only=True)
        if state.get('format') != STATE_FORMAT:
            raise TrainingError(f'{state_path} is not a farsee_ros training state')
        changed = [f'{k}: {state["config"].get(k)!r} -> {config.get(k)!r}'
                   for k in RECIPE_KEYS if state['config'].get(k) != config.get(k)]
        if changed:
            raise TrainingError('--resume with a different recipe would not continue the run '
                                'exactly: ' + '; '.join(changed))
    elif os.path.exists(state_path):
        raise TrainingError(f'{state_path} exists: pass --resume to continue that run, or '
                            'choose another --out')

    if cache:   # decode once, before data-loading processes fork
        for index in range(len(train_set)):
            train_set.load(index)
    weights = parse_class_weights(args.class_weights, train_set)
    config['class_weight_values'] = weights

    torch.manual_seed(args.seed)
    model = build_model(args.variant, num_classes=classes.num_classes,
                        backbone_weights=args.backbone_weights)
    backbone_init = model.backbone_init
    model = model.to(device, memory_format=torch.channels_last)
    if world > 1:
        if device.type == 'cuda':   # batch statistics over all GPUs (SyncBN is CUDA-only)
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None)
    net = model.module if world > 1 else model
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    history: List[Dict[str, Any]] = []
    start_epoch, best_miou, best_epoch = 0, -1.0, -1
    if state is not None:
        net.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        if state.get('scaler'):
            scaler.load_state_dict(state['scaler'])
        start_epoch, history = state['epoch'], list(state['history'])
        best_miou, best_epoch = state['best_miou'], state['best_epoch']
        say(f'resuming {args.out} after epoch {start_epoch}/{args.epochs}')
    if main_process:
        with open(os.path.join(args.out, 'config.json'), 'w') as f:
            json.dump({**config, 'world_size': world, 'device': str(device)}, f, indent=2)

    norm = IMAGENET_NORMALIZATION
    mean255 = torch.tensor(norm['mean'], device=device).view(1, 3, 1, 1) * 255.0
    inv_std255 = 1.0 / (torch.tensor(norm['std'], device=device).view(1, 3, 1, 1) * 255.0)
    loss_weight = torch.tensor(weights, device=device) if weights else None
    ignore = classes.ignore_index if classes.ignore_index is not None else -100
    train_set.transform = TrainAugmentation(
        crop, ignore if ignore >= 0 else 0, scale=tuple(args.scale), degrees=args.degrees,
        colour_noise=args.colour_noise)

    samples = len(train_set)
    drop_last = samples >= args.batch_size
    steps_per_epoch = (samples // args.batch_size if drop_last
                       else math.ceil(samples / args.batch_size))
    say(f'training {args.variant} on {args.dataset}/{args.train_split} ({samples} images, '
        f'{classes.num_classes} classes), crop {crop[0]}x{crop[1]} -> input '
        f'{input_size[0]}x{input_size[1]}, batch {args.batch_size} on {world} x {device}, '
        f'amp {amp or "off"}, backbone init {backbone_init}')
    epochs_this_run = 0
    for epoch in range(start_epoch, args.epochs):
        epoch_start = time.monotonic()
        # Everything random in an epoch derives from (seed, epoch): a resumed run repeats it.
        torch.manual_seed(args.seed * 100_003 + epoch)
        order = torch.randperm(samples).tolist()
        used = steps_per_epoch * args.batch_size if drop_last else samples
        order = (order * 2)[:max(used, world)][rank::world]
        loader = DataLoader(train_set, batch_size=per_process_batch, sampler=order,
                            num_workers=args.workers, collate_fn=_collate,
                            pin_memory=device.type == 'cuda', drop_last=False,
                            persistent_workers=False)
        model.train()
        loss_sum = torch.zeros(2, dtype=torch.float64, device=device)
        bar = tqdm(loader, desc=f'epoch {epoch + 1}/{args.epochs}', leave=False,
                   disable=None if main_process else True, dynamic_ncols=True)
        for step, (images, labels) in enumerate(bar):
            lr = lr_at(config, epoch, step, steps_per_epoch)
            for group in optimizer.param_groups:
                group['lr'] = lr
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True).long()
            x = model_input(images, input_size, mean255, inv_std255).contiguous(
                memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                logits = model(x, [labels.shape[1], labels.shape[2]])
            loss = F.cross_entropy(logits.float(), labels, weight=loss_weight,
                                   ignore_index=ignore)
            if not torch.isfinite(loss):   # before the step, so the weights stay finite
                raise TrainingError(f'the loss became {loss.item()} at epoch {epoch + 1} step '
                                    f'{step + 1}; lower --lr or use --warmup-epochs')
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += torch.stack([loss.detach().double() * len(images),
                                     torch.tensor(len(images), dtype=torch.float64,
                                                  device=device)])
            bar.set_postfix(loss=f'{loss.item():.3f}', lr=f'{lr:.4g}')
        bar.close()
        if world > 1:
            import torch.distributed as dist
            dist.all_reduce(loss_sum)
        row: Dict[str, Any] = {'epoch': epoch + 1, 'lr': lr,
                               'train_loss': float(loss_sum[0] / loss_sum[1])}
        last = epoch + 1 == args.epochs
        if val_set is not None and ((epoch + 1) % args.val_every == 0 or last):
            confusion = validate(net, val_set, device=device, input_size=input_size,
                                 mean255=mean255, inv_std255=inv_std255, amp=amp,
                                 rank=rank, world=world)
            summary = confusion.summary(classes.class_names)
            row.update(val_miou=summary['miou'], val_pixel_accuracy=summary['pixel_accuracy'],
                       val_pixels=int(confusion.matrix.sum()))
            row.update({f'iou_{name}': v for name, v in summary['per_class_iou'].items()})
            if main_process and summary['miou'] is not None and summary['miou'] > best_miou:
                best_miou, best_epoch = summary['miou'], epoch + 1
                metrics = {'val_split': args.val_split, 'val_miou': summary['miou'],
                           'val_pixel_accuracy': summary['pixel_accuracy'],
                           'val_per_class_iou': summary['per_class_iou'], 'epoch': epoch + 1}
                metadata = make_metadata(net, classes, input_size=input_size,
                                         dataset=f'{args.dataset}/{args.train_split}',
                                         metrics=metrics, training=config)
                save_checkpoint(os.path.join(args.out, 'best.pt'), net, metadata)
        row['epoch_seconds'] = round(time.monotonic() - epoch_start, 2)
        history.append(row)
        epochs_this_run += 1
        if main_process:
            _save_atomic({'format': STATE_FORMAT, 'format_version': 1, 'epoch': epoch + 1,
                          'config': config, 'model': net.state_dict(),
                          'optimizer': optimizer.state_dict(), 'scaler': scaler.state_dict(),
                          'best_miou': best_miou, 'best_epoch': best_epoch,
                          'history': history}, state_path)
            _write_log(os.path.join(args.out, 'metrics.csv'), history)
            plot_history(history, os.path.join(args.out, 'training.png'))
            val_text = (f' val mIoU {row["val_miou"]:.4f} (best {best_miou:.4f} @ {best_epoch})'
                        if row.get('val_miou') is not None else '')
            say(f'epoch {epoch + 1}/{args.epochs} loss {row["train_loss"]:.4f} lr {lr:.4g}'
                f'{val_text} {row["epoch_seconds"]:.1f} s', flush=True)
        elapsed_min = (time.monotonic() - started) / 60
        epoch_min = (time.monotonic() - epoch_start) / 60
        out_of_time = args.time_limit and elapsed_min + epoch_min > args.time_limit
        if not last and ((args.stop_after and epochs_this_run >= args.stop_after)
                         or out_of_time):
            say(f'stopped after epoch {epoch + 1}/{args.epochs}; continue with the same '
                f'command and --resume')
            return 0
    say(f'done: {args.epochs} epochs; best val mIoU {best_miou:.4f} at epoch {best_epoch} '
        f'-> {os.path.join(args.out, "best.pt")}')
    return 0
