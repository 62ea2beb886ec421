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

from .. import __version__


def _info(args: argparse.Namespace) -> int:
    from ..model.checkpoint import read_checkpoint
    _, metadata = read_checkpoint(args.model)
    print(json.dumps(metadata, indent=2))
    return 0


def _complexity(args: argparse.Namespace) -> int:
    from ..model.complexity import complexity_markdown, frontend_markdown
    if args.frontends:
        print(frontend_markdown(args.num_classes))
    else:
        print(complexity_markdown(args.num_classes, tuple(args.input_size)))
    return 0


# Tools in their own modules (relative to farsee_ros.tools), each with add_arguments(parser)
# and run(args) -> exit code; imported when the parser is built.
TOOLS = (
    ('export', '.export', 'export a checkpoint to TorchScript, ONNX (fp32, or INT8 calibrated '
     'on training frames) or an fp16 checkpoint, parity-checked'),
    ('demo', '.demo', 'a street sequence through segment_node over ROS topics: overlay GIF, '
     'mosaic, latency plot, summary'),
    ('bench', '.bench', 'model-only latency of FarSee-Net and peers, and the node end to end'),
    ('bench-node', '.bench_node', "segment_node's latency and overhead through DDS"),
    ('train', '..training.train', "train a network with the paper's recipe (torchrun for "
     'several GPUs)'),
    ('evaluate', '..training.evaluate', 'mIoU, per-class IoU and pixel accuracy of a '
     'checkpoint on a dataset split'),
    ('make-bag', '.bag', 'write a rosbag2 of frames and ground-truth labels from a dataset split'),
    ('replay', '.replay', 'replay a rosbag2 through segment_node: latency, drops and mIoU'),
    ('qos-matrix', '.qos_matrix', 'measure image delivery over DDS by QoS, depth and transport '
     '(docs/qos.md)'),
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog='farsee-ros', description=__doc__)
    parser.add_argument('--version', action='version', version=f'farsee_ros {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)

    info = sub.add_parser('info', help="print a checkpoint's metadata")
    info.add_argument('--model', required=True)
    info.set_defaults(func=_info)

    cx = sub.add_parser('complexity', help='parameters and multiply-adds of every variant')
    cx.add_argument('--num-classes', type=int, default=19)
    cx.add_argument('--input-size', type=int, nargs=2, default=[512, 768], metavar=('H', 'W'))
    cx.add_argument('--frontends', action='store_true',
                    help='instead: farseenet (3x3 sub-pixel) on every front-end, at 192x256 '
                    'and 288x384')
    cx.set_defaults(func=_complexity)

    for name, module_name, help_text in TOOLS:
        module = importlib.import_module(module_name, __package__)
        tool = sub.add_parser(name, help=help_text)
        module.add_arguments(tool)
        tool.set_defaults(func=module.run)
    return parser


def commands_markdown() -> str:
    """Return the README's table of subcommands, from the parser itself."""
    sub = next(a for a in build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    lines = ['| command | what it does |', '| --- | --- |']
    for action in sub._choices_actions:
        lines.append(f'| `farsee-ros {action.dest}` | {action.help} |')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..model.checkpoint import CheckpointError
    from ..model.export import ExportError
    try:
        return args.func(args)
    except (CheckpointError, ExportError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f'farsee-ros {args.command}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
