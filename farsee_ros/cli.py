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

"""`farsee-ros`: the one command-line entry; each tool is a subcommand."""

import argparse
import json
import sys
from typing import List, Optional

from . import __version__


def _export(args: argparse.Namespace) -> int:
    from .classes import get_class_set
    from .model.checkpoint import load_checkpoint, make_metadata
    from .model.export import export
    from .model.network import build_model

    if args.model:
        model, metadata = load_checkpoint(args.model)
    else:
        classes = get_class_set(args.classes)
        model = build_model(args.variant, num_classes=classes.num_classes)
        metadata = make_metadata(model, classes, input_size=args.input_size or [512, 768],
                                 dataset='untrained')
    input_size = args.input_size or metadata['input_size']
    output_size = args.output_size or input_size
    if args.format == 'fp16-checkpoint':   # the project's checkpoint, weights stored in fp16
        import os
        import torch
        from .model.checkpoint import save_checkpoint
        if args.input_size and list(args.input_size) != list(metadata['input_size']):
            # Deploy at another input size (e.g. one chosen on the validation split).
            metadata = dict(metadata, input_size=list(args.input_size),
                            trained_input_size=metadata.get('trained_input_size',
                                                            metadata['input_size']))
        save_checkpoint(args.out, model, metadata, half=True)
        half, _ = load_checkpoint(args.out)
        x = torch.randn(1, 3, *input_size)
        with torch.inference_mode():
            ref, out = model.eval()(x), half.eval()(x)
        error = float((out - ref).norm() / ref.norm())
        agree = float((out.argmax(1) == ref.argmax(1)).float().mean())
        print(f'wrote {args.out} (fp16 weights, {os.path.getsize(args.out) / 2**20:.1f} MiB); '
              f'vs fp32 logits: relative error {error:.1e}, argmax agreement {agree:.4%}')
        return 0
    error = export(model, args.format, args.out, input_size, output_size, metadata)
    print(f'wrote {args.out} ({args.format}, input 1x3x{input_size[0]}x{input_size[1]}, '
          f'output {output_size[0]}x{output_size[1]}); parity with eager: relative error '
          f'{error:.1e}')
    return 0


def _info(args: argparse.Namespace) -> int:
    from .model.checkpoint import read_checkpoint
    _, metadata = read_checkpoint(args.model)
    print(json.dumps(metadata, indent=2))
    return 0


def _complexity(args: argparse.Namespace) -> int:
    from .model.complexity import complexity_markdown
    print(complexity_markdown(args.num_classes, tuple(args.input_size)))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run
    return run(args)


def _bench_node(args: argparse.Namespace) -> int:
    from .bench_node import run
    return run(args)


def _train(args: argparse.Namespace) -> int:
    from .train import run
    return run(args)


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import run
    return run(args)


def _make_bag(args: argparse.Namespace) -> int:
    from .bag import run_make_bag
    return run_make_bag(args)


def _replay(args: argparse.Namespace) -> int:
    from .replay import run
    return run(args)


def _bench(args: argparse.Namespace) -> int:
    from .bench import run
    return run(args)


def _qos_matrix(args: argparse.Namespace) -> int:
    from .qos_matrix import run
    return run(args)


def build_parser() -> argparse.ArgumentParser:
    from .demo import add_arguments as add_demo_arguments
    from .model.network import VARIANTS

    parser = argparse.ArgumentParser(prog='farsee-ros', description=__doc__)
    parser.add_argument('--version', action='version', version=f'farsee_ros {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)

    demo = sub.add_parser('demo', help='segment one frame and write an overlay image')
    add_demo_arguments(demo)
    demo.set_defaults(func=_demo)

    exp = sub.add_parser('export', help='export a model to TorchScript or ONNX, parity-checked')
    exp.add_argument('--model', help='checkpoint to export')
    exp.add_argument('--variant', default='farseenet', choices=list(VARIANTS),
                     help='without --model: export an untrained network of this variant')
    exp.add_argument('--classes', default='camvid', help='without --model: class set')
    exp.add_argument('--format', required=True,
                     choices=['torchscript', 'onnx', 'fp16-checkpoint'])
    exp.add_argument('--out', required=True, help='output file')
    exp.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'))
    exp.add_argument('--output-size', type=int, nargs=2, metavar=('H', 'W'),
                     help='label resolution (default: the input size)')
    exp.set_defaults(func=_export)

    info = sub.add_parser('info', help="print a checkpoint's metadata")
    info.add_argument('--model', required=True)
    info.set_defaults(func=_info)

    cx = sub.add_parser('complexity', help='parameters and multiply-adds of every variant')
    cx.add_argument('--num-classes', type=int, default=19)
    cx.add_argument('--input-size', type=int, nargs=2, default=[512, 768], metavar=('H', 'W'))
    cx.set_defaults(func=_complexity)
    bench_models = sub.add_parser('bench', help='model-only latency of FarSee-Net and peers, '
                                  'and the node end to end')
    from .bench import add_arguments as add_bench_model_arguments
    add_bench_model_arguments(bench_models)
    bench_models.set_defaults(func=_bench)

    bench = sub.add_parser('bench-node', help="segment_node's latency and overhead through DDS")
    from .bench_node import add_arguments as add_bench_arguments
    add_bench_arguments(bench)
    bench.set_defaults(func=_bench_node)

    train = sub.add_parser('train', help="train a network with the paper's recipe "
                           '(torchrun for several GPUs)')
    from .train import add_arguments as add_train_arguments
    add_train_arguments(train)
    train.set_defaults(func=_train)

    evaluate = sub.add_parser('evaluate', help='mIoU, per-class IoU and pixel accuracy of a '
                              'checkpoint on a dataset split')
    from .evaluate import add_arguments as add_evaluate_arguments
    add_evaluate_arguments(evaluate)
    evaluate.set_defaults(func=_evaluate)

    make_bag = sub.add_parser('make-bag', help='write a rosbag2 of frames and ground-truth '
                              'labels from a dataset split')
    from .bag import add_make_bag_arguments
    add_make_bag_arguments(make_bag)
    make_bag.set_defaults(func=_make_bag)

    replay = sub.add_parser('replay', help='replay a rosbag2 through segment_node: latency, '
                            'drops and mIoU')
    from .replay import add_arguments as add_replay_arguments
    add_replay_arguments(replay)
    replay.set_defaults(func=_replay)

    qos = sub.add_parser('qos-matrix', help='measure image delivery over DDS by QoS, depth and '
                         'transport (docs/qos.md)')
    from .qos_matrix import add_arguments as add_qos_arguments
    add_qos_arguments(qos)
    qos.set_defaults(func=_qos_matrix)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from .model.checkpoint import CheckpointError
    from .model.export import ExportError
    try:
        return args.func(args)
    except (CheckpointError, ExportError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f'farsee-ros {args.command}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
