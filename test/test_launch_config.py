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
launch/segment.launch.py and config/segment.yaml against what the node declares.

The files are read, not executed: launch is not installable without ROS.
"""

import ast
import os

import pytest
import yaml

from conftest import REPO
from farsee_ros.ros import launch_support
from farsee_ros.ros.parameters import (camera_names, invalid_reason, NODE_NAME, PARAMETERS,
                                       SPECS)

LAUNCH_FILE = os.path.join(REPO, 'launch', 'segment.launch.py')


def _config():
    with open(os.path.join(REPO, 'config', 'segment.yaml')) as f:
        return yaml.safe_load(f)


def test_config_keys_are_the_declared_parameters_with_valid_values():
    config = _config()
    assert list(config) == [f'/**/{NODE_NAME}']
    values = config[f'/**/{NODE_NAME}']['ros__parameters']
    assert set(values) == {p.name for p in PARAMETERS}
    for name, value in values.items():
        spec = SPECS[name]
        assert type(value) is type(spec.default), name
        assert invalid_reason(name, value) is None, name
        assert value == spec.default, f'{name}: config and code defaults differ'


def test_launch_arguments_map_to_declared_parameters():
    for name, (default, description, parameter) in launch_support.LAUNCH_ARGUMENTS.items():
        assert description
        if parameter is None:
            assert name in launch_support.LAUNCH_ONLY
        else:
            assert parameter in SPECS or parameter == 'use_sim_time', name
    assert {'image_topic', 'image_topics', 'model_path', 'device', 'precision', 'namespace',
            'params_file', 'use_sim_time', 'rviz', 'fastdds_large_data'} <= \
        set(launch_support.LAUNCH_ARGUMENTS)


def test_launch_file_declares_only_the_tested_arguments_and_starts_the_node():
    tree = ast.parse(open(LAUNCH_FILE).read())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    declared = [c for c in calls if getattr(c.func, 'id', '') == 'DeclareLaunchArgument']
    assert len(declared) == 1 and isinstance(declared[0].args[0], ast.Name), \
        'arguments come from launch_support.LAUNCH_ARGUMENTS only'
    keywords = {kw.arg: kw.value for c in calls if getattr(c.func, 'id', '') == 'Node'
                for kw in c.keywords if isinstance(kw.value, ast.Constant)}
    nodes = [c for c in calls if getattr(c.func, 'id', '') == 'Node']
    node_keywords = [{kw.arg: kw.value.value for kw in n.keywords
                      if isinstance(kw.value, ast.Constant)} for n in nodes]
    assert {'package': 'farsee_ros', 'executable': 'segment_node', 'name': NODE_NAME,
            'output': 'screen', 'emulate_tty': True}.items() <= node_keywords[0].items()
    assert node_keywords[1]['executable'] == 'rviz2'
    assert keywords
    setup = open(os.path.join(REPO, 'setup.py')).read()
    assert "'segment_node = farsee_ros.ros.segment_node:main'" in setup


def test_node_parameters_from_launch_arguments():
    assert launch_support.node_parameters({}) == {}
    assert launch_support.node_parameters({'image_topic': '/camera/image_raw'}) == \
        {'image_topics': ['/camera/image_raw']}
    assert launch_support.node_parameters(
        {'image_topics': '/a/image_raw, /b/image_raw', 'image_topic': '/c',
         'device': 'cuda:1', 'use_sim_time': 'true', 'rviz': 'true'}) == {
        'image_topics': ['/a/image_raw', '/b/image_raw'], 'device': 'cuda:1',
        'use_sim_time': True}
    with pytest.raises(ValueError, match="expected true or false, not 'maybe'"):
        launch_support.node_parameters({'use_sim_time': 'maybe'})
    assert launch_support.params_file({}).endswith(os.path.join('config', 'segment.yaml'))
    assert launch_support.params_file({'params_file': '/p.yaml'}) == '/p.yaml'
    assert launch_support.want_rviz({'rviz': 'True'}) and not launch_support.want_rviz({})
    assert launch_support.rviz_config().endswith(os.path.join('config', 'farsee.rviz'))
    assert os.path.isfile(os.path.join(REPO, 'config', 'farsee.rviz'))


def test_transport_environment_is_opt_in():
    """LARGE_DATA on one side only never matches (docs/qos.md): never set it unasked."""
    assert launch_support.transport_environment({}, {}) == {}
    assert launch_support.transport_environment({'fastdds_large_data': 'false'}, {}) == {}
    on = {'fastdds_large_data': 'true'}
    assert launch_support.transport_environment(on, {}) == \
        {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'}
    for environ in ({'FASTDDS_BUILTIN_TRANSPORTS': 'UDPv4'},
                    {'FASTDDS_DEFAULT_PROFILES_FILE': '/x.xml'},
                    {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}):
        assert launch_support.transport_environment(on, environ) == {}


def test_transport_warning_under_localhost_discovery():
    localhost = {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
    assert launch_support.transport_warning(localhost, {}) is None
    assert 'no effect' in launch_support.transport_warning(
        localhost, {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'})
    assert 'no effect' in launch_support.transport_warning(
        dict(localhost, FASTDDS_BUILTIN_TRANSPORTS='LARGE_DATA'), {})
    assert launch_support.transport_warning(
        {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'}, {}) is None


def test_rviz_true_without_rviz2_starts_the_node_alone_with_a_warning(tmp_path, monkeypatch):
    assert launch_support.start_rviz({}) == (False, None)
    assert launch_support.start_rviz({'rviz': 'true'}, installed=lambda: True) == (True, None)
    start, warning = launch_support.start_rviz({'rviz': 'true'}, installed=lambda: False)
    assert not start and 'rviz2 is not installed' in warning and 'apt install' in warning
    # The real lookup: an ament index without rviz2, then one with it.
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))
    assert not launch_support.rviz_installed()
    marker = tmp_path / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'rviz2'
    marker.parent.mkdir(parents=True)
    marker.write_text('')
    assert launch_support.rviz_installed()
    assert launch_support.start_rviz({'rviz': 'true'}) == (True, None)


def test_rviz_config_shows_overlay_and_labels():
    rviz = yaml.safe_load(open(os.path.join(REPO, 'config', 'farsee.rviz')))
    topics = [d['Topic']['Value'] for d in rviz['Visualization Manager']['Displays']]
    assert topics == ['/farsee/overlay', '/farsee/labels']


def test_camera_names():
    assert camera_names(['/camera/image_raw']) == ['camera']
    assert camera_names(['/front/image_raw', '/rear/image_rect_color']) == ['front', 'rear']
    assert camera_names(['/a/cam/image_raw', '/b/cam/image_raw']) == ['a_cam', 'b_cam']
    assert camera_names(['image']) == ['image']


@pytest.mark.parametrize('name, value, fragment', [
    ('device', 'gpu', 'auto | cpu | cuda | cuda:N'),
    ('precision', 'int8', 'auto | fp32 | fp16'),
    ('qos_reliability', 'sometimes', 'auto | reliable | best_effort'),
    ('qos_depth', 0, '1 to 100'),
    ('overlay_alpha', 1.5, '0 to 1'),
    ('input_height', 20, '32 to 4096'),
    ('image_topics', [], 'at least one'),
    ('image_topics', ['/a', '/a'], 'twice'),
])
def test_invalid_values_name_the_accepted_ones(name, value, fragment):
    assert fragment in invalid_reason(name, value)
