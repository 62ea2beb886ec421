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
`farsee-ros export`: a checkpoint to TorchScript, ONNX (fp32 or INT8) or fp16, parity-checked.

- onnx: the engine's ONNX file (native logits, metadata inside; model/onnx_file.py), which the
  node runs with backend onnxruntime; with --output-size, a graph with logits resized to that
  size instead, for other runtimes (the engine does not run that one).
- onnx-int8: static INT8 quantization calibrated on frames of a training split (never val or
  test), written beside the checkpoint by default ('<stem>.int8.onnx', where backend auto finds
  it). Then both models segment a parity split through the engine: the mIoU of each, the delta
  and the share of equal labels are printed and stored in the file's metadata ('parity').
"""

import argparse
import os
from typing import Any, Dict, List

import numpy as np

EVAL_SPLITS = ('val', 'test')
FORMATS = ('torchscript', 'onnx', 'onnx-int8', 'fp16-checkpoint')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the export command's options to `parser`."""
    from ..model.frontends import FRONTENDS
    from ..model.network import VARIANTS
    from ..training.datasets import DATASETS

    parser.add_argument('--model', help='checkpoint to export')
    parser.add_argument('--variant', default='farseenet', choices=list(VARIANTS),
                        help='without --model: export an untrained network of this variant')
    parser.add_argument('--frontend', default='resnet18', choices=list(FRONTENDS),
                        help='without --model: the untrained network\'s front-end')
    parser.add_argument('--classes', default='camvid', help='without --model: class set')
    parser.add_argument('--format', required=True, choices=FORMATS)
    parser.add_argument('--out', help="output file (onnx-int8: default '<checkpoint stem>"
                        ".int8.onnx', where the engine looks for it)")
    parser.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--output-size', type=int, nargs=2, metavar=('H', 'W'),
                        help='torchscript/onnx: logits resized to this size in the graph')
    int8 = parser.add_argument_group('onnx-int8')
    int8.add_argument('--dataset', choices=DATASETS, help='dataset of the calibration frames')
    int8.add_argument('--root', help='dataset root directory')
    int8.add_argument('--calibration-split', default='train',
                      help='split spec of the calibration frames (a training split)')
    int8.add_argument('--calibration-frames', type=int, default=32,
                      help='frames, evenly spaced over the split')
    int8.add_argument('--parity-split', default='val',
                      help="split spec both models are compared on ('' to skip)")
    int8.add_argument('--parity-limit', type=int, default=0,
                      help='compare on the first N frames only (0: all)')


def run(args: argparse.Namespace) -> int:
    """Export; print what was written and its parity with the eager model."""
    from ..model.checkpoint import load_checkpoint, make_metadata
    from ..model.classes import get_class_set
    from ..model.network import build_model

    if args.model:
        model, metadata = load_checkpoint(args.model)
    elif args.format == 'onnx-int8':
        raise ValueError('--format onnx-int8 needs --model (a trained checkpoint)')
    else:
        classes = get_class_set(args.classes)
        model = build_model(args.variant, num_classes=classes.num_classes,
                            frontend=args.frontend)
        metadata = make_metadata(model, classes, input_size=args.input_size or [512, 768],
                                 dataset='untrained')
    if args.input_size and list(args.input_size) != list(metadata['input_size']):
        # Deploy at another input size (e.g. one chosen on the validation split).
        metadata = dict(metadata, input_size=list(args.input_size),
                        trained_input_size=metadata.get('trained_input_size',
                                                        metadata['input_size']))
    if args.format == 'onnx-int8':
        return _onnx_int8(args, model, metadata)
    if not args.out:
        raise ValueError(f'--format {args.format} needs --out')
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if args.format == 'fp16-checkpoint':
        return _fp16(args, model, metadata)
    input_size = metadata['input_size']
    if args.format == 'onnx' and not args.output_size:
        from ..common import sha256_of
        from ..model.onnx_file import export_fp32
        source = sha256_of(args.model) if args.model else ''
        error = export_fp32(model, args.out, metadata, source_sha256=source)
        print(f'wrote {args.out} (onnx fp32, input 1x3x{input_size[0]}x{input_size[1]}, '
              f'native logits for the engine); parity with eager: relative error {error:.1e}')
        return 0
    from ..model.export import export
    output_size = args.output_size or input_size
    error = export(model, args.format, args.out, input_size, output_size, metadata)
    print(f'wrote {args.out} ({args.format}, input 1x3x{input_size[0]}x{input_size[1]}, '
          f'output {output_size[0]}x{output_size[1]}); parity with eager: relative error '
          f'{error:.1e}')
    return 0


def _fp16(args: argparse.Namespace, model, metadata: Dict[str, Any]) -> int:
    import torch
    from ..model.checkpoint import load_checkpoint, save_checkpoint
    save_checkpoint(args.out, model, metadata, half=True)
    half, _ = load_checkpoint(args.out)
    x = torch.randn(1, 3, *metadata['input_size'])
    with torch.inference_mode():
        ref, out = model.eval()(x), half.eval()(x)
    error = float((out - ref).norm() / ref.norm())
    agree = float((out.argmax(1) == ref.argmax(1)).float().mean())
    print(f'wrote {args.out} (fp16 weights, {os.path.getsize(args.out) / 2**20:.1f} MiB); '
          f'vs fp32 logits: relative error {error:.1e}, argmax agreement {agree:.4%}')
    return 0


def check_training_split(spec: str) -> None:
    """Refuse calibration frames from an evaluation split (val, test)."""
    from ..training.datasets import parse_split
    used = [split for split, _ in parse_split(spec) if split in EVAL_SPLITS]
    if used:
        raise ValueError(f'--calibration-split {spec!r} uses {", ".join(used)}: calibrate on '
                         'a training split (e.g. train, or train:0001TP,0016E5), never on '
                         'the data the model is judged on')


def calibration_inputs(dataset, count: int, input_size, normalization) -> List[np.ndarray]:
    """Return `count` network inputs from frames evenly spaced over `dataset`."""
    import torch
    from ..engine import model_input
    mean = torch.tensor(normalization['mean']).view(1, 3, 1, 1) * 255.0
    inv_std = 1.0 / (torch.tensor(normalization['std']).view(1, 3, 1, 1) * 255.0)
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).astype(int))
    return [model_input(dataset.load(int(i))[0][None], input_size, mean, inv_std).numpy()
            for i in picks]


def _class_set_name(metadata: Dict[str, Any]) -> str:
    from ..model.classes import class_set_of, CLASS_SETS
    name = class_set_of(metadata).name
    return name if name in CLASS_SETS else 'camvid'


def _onnx_int8(args: argparse.Namespace, model, metadata: Dict[str, Any]) -> int:
    from ..common import sha256_of
    from ..model.onnx_file import add_metadata, quantize_int8, quantized_path
    from ..training.datasets import build_dataset

    if not (args.dataset and args.root):
        raise ValueError('--format onnx-int8 needs --dataset and --root (calibration frames)')
    if args.output_size:
        raise ValueError('--output-size does not apply to onnx-int8 (native logits)')
    if args.calibration_frames < 1:
        raise ValueError('--calibration-frames must be at least 1')
    check_training_split(args.calibration_split)
    out = args.out or quantized_path(args.model)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    calibration_set = build_dataset(args.dataset, args.root, args.calibration_split,
                                    classes=_class_set_name(metadata))
    inputs = calibration_inputs(calibration_set, args.calibration_frames,
                                metadata['input_size'], metadata['normalization'])
    quantize_int8(model, out, metadata, inputs, source_sha256=sha256_of(args.model))
    calibration = {'split': f'{args.dataset}/{args.calibration_split}', 'frames': len(inputs)}
    add_metadata(out, calibration=calibration)
    print(f'wrote {out} (onnx int8, input 1x3x{metadata["input_size"][0]}x'
          f'{metadata["input_size"][1]}; calibrated on {len(inputs)} frames of '
          f'{calibration["split"]}; {os.path.getsize(out) / 2**20:.1f} MiB)')
    if args.parity_split:
        parity = _parity(args, out, metadata)
        add_metadata(out, parity=parity)
    return 0


def _parity(args: argparse.Namespace, out: str, metadata: Dict[str, Any]) -> Dict[str, Any]:
    from ..engine import Segmenter
    from ..training.datasets import build_dataset
    from ..training.evaluate import compare

    dataset = build_dataset(args.dataset, args.root, args.parity_split,
                            classes=_class_set_name(metadata))
    reference = Segmenter.from_checkpoint(args.model, backend='torch', device='cpu')
    quantized = Segmenter.from_checkpoint(out, device='cpu')
    result = compare(reference, quantized, dataset, limit=args.parity_limit)
    parity = {'split': f'{args.dataset}/{args.parity_split}', 'frames': result['frames'],
              'miou_fp32': result['miou'][0], 'miou_int8': result['miou'][1],
              'miou_delta': result['miou'][1] - result['miou'][0],
              'pixel_agreement': result['agreement']}
    print(f'parity on {parity["split"]} ({parity["frames"]} frames): mIoU fp32 '
          f'{parity["miou_fp32"]:.4f}, int8 {parity["miou_int8"]:.4f} (delta '
          f'{parity["miou_delta"]:+.4f}); equal labels {parity["pixel_agreement"]:.2%}')
    return parity
