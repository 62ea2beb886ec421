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
What launch/segment.launch.py computes, as plain tested Python (no launch imports).

The launch file only declares LAUNCH_ARGUMENTS and hands their values to these functions.
"""

import os
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .fastdds import USER_CHOICES
from .resources import share_directory

# name -> (default, description, node parameter it sets or None for launch-only arguments)
LAUNCH_ARGUMENTS: Dict[str, Tuple[str, str, Optional[str]]] = {
    'image_topic': ('', 'One camera image topic (shorthand for image_topics).',
                    'image_topics'),
    'image_topics': ('', 'Camera image topics, comma-separated.', 'image_topics'),
    'image_transport': ('', 'raw or compressed (default: params_file).', 'image_transport'),
    'model_path': ('', 'Checkpoint or engine ONNX file (default: the installed default '
                   'model).',
                   'model_path'),
    'device': ('', 'auto, cpu, cuda or cuda:N (default: params_file).', 'device'),
    'backend': ('', 'auto, torch or onnxruntime (default: params_file).', 'backend'),
    'precision': ('', 'auto, fp32 or fp16 (default: params_file).', 'precision'),
    'namespace': ('', 'Namespace of the node (outputs: /<namespace>/farsee/...).', None),
    'params_file': ('', 'Parameter file (default: share/farsee_ros/config/segment.yaml).',
                    None),
    'use_sim_time': ('false', 'Use /clock (rosbag replay with --clock).', 'use_sim_time'),
    'rviz': ('false', 'Also start rviz2 with config/farsee.rviz.', None),
    'fastdds_large_data': ('false', 'Set FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA for the '
                           'processes this launch starts; only when the camera uses it too '
                           '(docs/qos.md).', None),
}
LAUNCH_ONLY = ('namespace', 'params_file', 'rviz', 'fastdds_large_data')
TRANSPORT_VARIABLE = 'FASTDDS_BUILTIN_TRANSPORTS'


def _truthy(value: str) -> bool:
    if value.strip().lower() in ('true', '1', 'yes', 'on'):
        return True
    if value.strip().lower() in ('false', '0', 'no', 'off', ''):
        return False
    raise ValueError(f'expected true or false, not {value!r}')


def node_parameters(arguments: Mapping[str, str]) -> Dict[str, Any]:
    """Turn the launch arguments the user set into typed parameter overrides for the node."""
    overrides: Dict[str, Any] = {}
    topics = arguments.get('image_topics', '') or arguments.get('image_topic', '')
    if topics.strip():
        overrides['image_topics'] = [t.strip() for t in topics.split(',') if t.strip()]
    for name in ('image_transport', 'model_path', 'device', 'precision'):
        value = arguments.get(name, '').strip()
        if value:
            overrides[name] = value
    if _truthy(arguments.get('use_sim_time', 'false')):
        overrides['use_sim_time'] = True
    return overrides


def params_file(arguments: Mapping[str, str]) -> str:
    """Return the parameter file to load: the user's, else the installed config."""
    return arguments.get('params_file', '').strip() or os.path.join(
        share_directory(), 'config', 'segment.yaml')


def rviz_config() -> str:
    """Return the path of config/farsee.rviz."""
    return os.path.join(share_directory(), 'config', 'farsee.rviz')


def want_rviz(arguments: Mapping[str, str]) -> bool:
    """Return whether rviz:=true was given."""
    return _truthy(arguments.get('rviz', 'false'))


def rviz_installed() -> bool:
    """Return whether the ament index knows the rviz2 package."""
    try:
        from ament_index_python.packages import get_package_prefix
        get_package_prefix('rviz2')
    except (ImportError, LookupError, ValueError):
        return False
    return True


def start_rviz(arguments: Mapping[str, str],
               installed: Callable[[], bool] = rviz_installed) -> Tuple[bool, Optional[str]]:
    """
    Return whether to start rviz2, and a warning when rviz:=true cannot be honoured.

    Without rviz2, a launch that includes it fails ("package 'rviz2' not found") after it
    started segment_node, and leaves the node running without its parent; so the node runs
    alone and the user is told how to get rviz2.
    """
    if not want_rviz(arguments):
        return False, None
    if not installed():
        return False, ('rviz:=true, but rviz2 is not installed (not in the ament index): '
                       'starting segment_node without it; install it with '
                       'sudo apt install ros-$ROS_DISTRO-rviz2')
    return True, None


def transport_environment(arguments: Mapping[str, str],
                          environ: Mapping[str, str] = os.environ) -> Dict[str, str]:
    """
    Return the environment to set for the launched processes, and nothing by default.

    Measured (docs/qos.md): LARGE_DATA on every process delivers 6 MB frames that Fast DDS's
    default transports lose or delay, but LARGE_DATA on one side only never matches a
    default-transport camera. So it is set only on request (fastdds_large_data:=true, for a
    launch that starts the camera too, or a system that exports it everywhere), never over
    the user's own choice of transports, profile or RMW.
    """
    if not _truthy(arguments.get('fastdds_large_data', 'false')):
        return {}
    user_choice = any(environ.get(name) for name in USER_CHOICES)
    if environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') != 'rmw_fastrtps_cpp' or user_choice:
        return {}
    return {TRANSPORT_VARIABLE: 'LARGE_DATA'}


def transport_warning(environ: Mapping[str, str], extra: Mapping[str, str]) -> Optional[str]:
    """Return a warning when LOCALHOST discovery makes rmw_fastrtps ignore the transports."""
    transports = extra.get(TRANSPORT_VARIABLE) or environ.get(TRANSPORT_VARIABLE)
    if transports and environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE', '').upper() == 'LOCALHOST':
        return (f'{TRANSPORT_VARIABLE}={transports} has no effect with '
                'ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST: rmw_fastrtps then installs its own '
                'SHM + UDPv4 transports (docs/qos.md)')
    return None


def arguments_markdown() -> str:
    """Return the README's launch-argument table, generated from LAUNCH_ARGUMENTS."""
    lines = ['| argument | default | sets | description |', '| --- | --- | --- | --- |']
    for name, (default, description, parameter) in LAUNCH_ARGUMENTS.items():
        target = f'parameter `{parameter}`' if parameter else 'launch only'
        lines.append(f'| `{name}` | `{default or "(unset)"}` | {target} | {description} |')
    return '\n'.join(lines)
