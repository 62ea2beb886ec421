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
The node's parameters: names, defaults, ranges and validation, in one place.

The node declares exactly these; the launch file, config/segment.yaml and the README's table
are checked against them. No ROS imports, so tools and tests can read it anywhere.
"""

from dataclasses import dataclass
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

NODE_NAME = 'farsee'
DEVICE_PATTERN = re.compile(r'^(auto|cpu|cuda|cuda:\d+)$')
# Suffixes dropped from an image topic to name its camera: /front/image_raw -> 'front'.
IMAGE_TOPIC_SUFFIXES = ('compressed', 'image_raw', 'image_rect_color', 'image_rect', 'image_color',
                        'image_mono', 'image')


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: default (its type is the parameter's type), description and limits."""

    name: str
    default: Any
    description: str
    read_only: bool = True
    choices: Optional[Tuple[str, ...]] = None
    int_range: Optional[Tuple[int, int]] = None
    float_range: Optional[Tuple[float, float]] = None

    @property
    def type_name(self) -> str:
        if isinstance(self.default, bool):
            return 'bool'
        if isinstance(self.default, int):
            return 'int'
        if isinstance(self.default, float):
            return 'double'
        if isinstance(self.default, list):
            return 'string[]'
        return 'string'

    @property
    def accepted(self) -> str:
        """Say in words which values are accepted."""
        if self.choices:
            return ' | '.join(self.choices)
        if self.name == 'device':
            return 'auto | cpu | cuda | cuda:N'
        if self.int_range:
            return f'{self.int_range[0]} to {self.int_range[1]}'
        if self.float_range:
            return f'{self.float_range[0]:g} to {self.float_range[1]:g}'
        if self.name == 'input_height' or self.name == 'input_width':
            return '0, or 32 to 4096'
        return self.type_name


PARAMETERS: Tuple[ParamSpec, ...] = (
    ParamSpec('model_path', '', 'Checkpoint (.pt) or engine ONNX file (.onnx); empty = the '
              'installed default model (share/farsee_ros/models/farseenet_camvid.pt).'),
    ParamSpec('device', 'auto', 'Inference device: auto (CUDA if present, else CPU with a '
              'warning), cpu, cuda or cuda:N (an error if CUDA is absent).'),
    ParamSpec('backend', 'auto', 'What runs the network: auto (on the CPU the INT8 ONNX model '
              'beside the checkpoint when there is one, else PyTorch; PyTorch on CUDA), torch, '
              'or onnxruntime (CUDA/TensorRT with onnxruntime-gpu).',
              choices=('auto', 'torch', 'onnxruntime')),
    ParamSpec('precision', 'auto', 'auto (fp16 on CUDA, fp32 on CPU), fp32 or fp16 (CUDA only).',
              choices=('auto', 'fp32', 'fp16')),
    ParamSpec('pipeline', True, 'Overlap consecutive frames: one thread runs the network on '
              'frame n while another makes and publishes the labels and overlay of frame n-1; '
              'false = one thread, one frame at a time.'),
    ParamSpec('inference_threads', 0, 'Threads of the network\'s forward pass (ONNX Runtime '
              'intra-op, or PyTorch on the CPU); 0 = auto (every core).', int_range=(0, 256)),
    ParamSpec('input_height', 0, "Model input height; 0 = the checkpoint's input size.",
              int_range=(0, 4096)),
    ParamSpec('input_width', 0, "Model input width; 0 = the checkpoint's input size.",
              int_range=(0, 4096)),
    ParamSpec('image_topics', ['/camera/image_raw'], 'Camera image topics (one or several). '
              'Several cameras publish under ~/<camera>/.'),
    ParamSpec('image_transport', 'raw', 'raw: sensor_msgs/Image on each topic; compressed: '
              'sensor_msgs/CompressedImage on <topic>/compressed (jpeg, png).',
              choices=('raw', 'compressed')),
    ParamSpec('qos_reliability', 'auto', "Subscription reliability; auto matches what the "
              "camera's publishers offer (as ros2 topic echo does).",
              choices=('auto', 'reliable', 'best_effort')),
    ParamSpec('qos_depth', 10, 'Subscription history depth (KEEP_LAST); 10 is the only depth '
              'that got every 6 MB frame through on default transports (docs/qos.md). The node '
              'itself keeps only the newest frame per camera.', int_range=(1, 100)),
    ParamSpec('overlay_alpha', 0.5, 'Opacity of the class colours in the overlay.',
              read_only=False, float_range=(0.0, 1.0)),
    ParamSpec('publish_labels', True, 'Publish ~/labels (mono8 class ids).', read_only=False),
    ParamSpec('publish_overlay', True, 'Publish ~/overlay (rendered only while it has '
              'subscribers).', read_only=False),
    ParamSpec('publish_latency', True, 'Publish ~/latency, a per-frame DiagnosticArray.',
              read_only=False),
    ParamSpec('max_pixels', 16777216, 'Frames with more pixels (height x width) are rejected.',
              int_range=(1, 268435456)),
    ParamSpec('expected_rate_hz', 0.0, 'Output rate below which /diagnostics warns; 0 = no '
              'rate check.', float_range=(0.0, 1000.0)),
    ParamSpec('diagnostics_period', 1.0, 'Seconds between /diagnostics summaries.',
              float_range=(0.1, 60.0)),
)
SPECS: Dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}

# The per-frame ~/latency record: each value is published as '<stage>_ms'.
LATENCY_STAGES = ('decode', 'preprocess', 'inference', 'postprocess', 'overlay', 'publish',
                  'queue', 'handoff', 'processing', 'end_to_end')

# Topics the node publishes, relative to the node (~/...): name, type, contents. With several
# cameras each camera's outputs are under ~/<camera>/.
# Output topics under ~/ (one camera) or ~/<camera>/: name, type, encoding, header, contents.
OUTPUT_TOPICS: Tuple[Tuple[str, str, str, str, str], ...] = (
    ('labels', 'sensor_msgs/Image', 'mono8', 'the input\'s', 'class ids (0 to N-1) at the '
     'input\'s height x width'),
    ('overlay', 'sensor_msgs/Image', 'bgr8 for bgr8/bgra8 input, else rgb8', 'the input\'s',
     'class colours blended over the frame at its size; rendered only while subscribed'),
    ('latency', 'diagnostic_msgs/DiagnosticArray', '-', 'the input\'s',
     'per frame: decode, preprocess, inference, postprocess (labels), overlay, publish, queue '
     '(waiting for the network), handoff (waiting between the pipeline\'s threads), processing '
     'and end-to-end (now - stamp) times in ms'),
    ('camera_info', 'sensor_msgs/CameraInfo', '-', 'the input\'s',
     'the camera\'s CameraInfo (sibling camera_info topic), when the camera publishes one'),
)
RUNTIME_PARAMETERS = tuple(p.name for p in PARAMETERS if not p.read_only)


def invalid_reason(name: str, value: Any) -> Optional[str]:
    """Return why `value` is not acceptable for parameter `name`, or None if it is."""
    spec = SPECS.get(name)
    if spec is None:
        return None   # not ours (use_sim_time, ...): rclpy checks those
    if spec.choices and value not in spec.choices:
        return f'{name}={value!r} is not one of {spec.accepted}'
    if name == 'device' and not DEVICE_PATTERN.match(str(value)):
        return f'device={value!r} is not one of {spec.accepted}'
    if name in ('input_height', 'input_width') and value != 0 and not 32 <= value <= 4096:
        return f'{name}={value!r}: use 0 (the checkpoint\'s size) or 32 to 4096'
    if spec.int_range and not spec.int_range[0] <= value <= spec.int_range[1]:
        return f'{name}={value!r} is outside {spec.accepted}'
    if spec.float_range and not spec.float_range[0] <= value <= spec.float_range[1]:
        return f'{name}={value!r} is outside {spec.accepted}'
    if name == 'image_topics':
        if not value or not all(isinstance(t, str) and t.strip() for t in value):
            return 'image_topics must list at least one non-empty topic name'
        if len(set(value)) != len(value):
            return f'image_topics lists a topic twice: {list(value)}'
    return None


def camera_names(topics: Sequence[str]) -> List[str]:
    """
    Name each camera from its topic: '/front/image_raw' -> 'front'.

    The image suffix is dropped and the last remaining segment kept; where two cameras would
    share a name, their whole remaining paths are joined with '_'.
    """
    parts = []
    for topic in topics:
        segments = [s for s in topic.strip('/').split('/') if s]
        while len(segments) > 1 and segments[-1] in IMAGE_TOPIC_SUFFIXES:
            segments.pop()
        parts.append(segments)
    names = [segs[-1] for segs in parts]
    if len(set(names)) != len(names):
        names = ['_'.join(segs) for segs in parts]
    return [re.sub(r'[^A-Za-z0-9_]', '_', n) or 'camera' for n in names]


def parameters_markdown() -> str:
    """Return the README's parameter table, generated from PARAMETERS."""
    lines = ['| parameter | type | default | runtime | accepted | description |',
             '| --- | --- | --- | --- | --- | --- |']
    for p in PARAMETERS:
        default = '""' if p.default == '' else str(p.default).replace("'", '"')
        if isinstance(p.default, bool):
            default = str(p.default).lower()
        lines.append(f'| `{p.name}` | {p.type_name} | `{default}` | '
                     f'{"no" if p.read_only else "yes"} | {p.accepted} | {p.description} |')
    return '\n'.join(lines)


def topics_markdown() -> str:
    """Return the README's output-topic table (single camera: /farsee/<name>)."""
    lines = ['| topic | type | encoding | header | contents |',
             '| --- | --- | --- | --- | --- |']
    for name, kind, encoding, header, contents in OUTPUT_TOPICS:
        lines.append(f'| `/{NODE_NAME}/{name}` | `{kind}` | {encoding} | {header} | '
                     f'{contents} |')
    lines.append('| `/diagnostics` | `diagnostic_msgs/DiagnosticArray` | - | stamp = now | every '
                 '`diagnostics_period`: per camera latency p50/p95/max, input and output rates, '
                 'received/processed/dropped/invalid/error counts and `frames_lost` (frames '
                 'the camera sent that never arrived, from gaps in its publication sequence '
                 'numbers), QoS, device, precision, '
                 'model; WARN below `expected_rate_hz`, on invalid input or before the first '
                 'frame, ERROR on inference failure |')
    return '\n'.join(lines)
