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

"""The five layers: each imports only the layers below it, and nothing below ros/ imports ROS."""

import ast
import glob
import os

from conftest import REPO

# Lowest first. A module may import its own layer and the layers before it in this list.
# common.py (and the package's __init__) sit below every layer.
LAYERS = ('common', 'model', 'engine', 'training', 'ros', 'tools')
ROS_MODULES = {'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'ament_index_python',
               'launch', 'launch_ros', 'builtin_interfaces', 'rcl_interfaces', 'rosidl_runtime_py'}
ROS_EDGE = LAYERS.index('ros')


def _modules():
    """Yield (module name, path) for every module of the package."""
    package = os.path.join(REPO, 'farsee_ros')
    for path in sorted(glob.glob(os.path.join(package, '**', '*.py'), recursive=True)):
        parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        yield '.'.join(parts), path


def _imports(module, path):
    """Yield every absolute module name `module` imports, at module level or inside functions."""
    is_package = path.endswith('__init__.py')
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module
            else:
                parts = module.split('.')
                parts = parts[:len(parts) - node.level + (1 if is_package else 0)]
                base = '.'.join(parts + ([node.module] if node.module else []))
            yield base
            if not node.module:   # from . import x: x may be a module
                yield from (f'{base}.{alias.name}' for alias in node.names)


def layer_of(module):
    """Return the layer index of a farsee_ros module (0 for common and the package itself)."""
    parts = module.split('.')
    if len(parts) == 1 or parts[1] not in LAYERS:
        return 0
    return LAYERS.index(parts[1])


def test_every_module_belongs_to_a_layer():
    package = os.path.join(REPO, 'farsee_ros')
    for folder, _, files in os.walk(package):
        if any(f.endswith('.py') for f in files) and '__pycache__' not in folder:
            assert '__init__.py' in files, \
                f'{os.path.relpath(folder, REPO)} has no __init__.py: setup.py would skip it'
    for module, path in _modules():
        parts = module.split('.')
        assert module in ('farsee_ros', 'farsee_ros.common') or parts[1] in LAYERS[1:], \
            f'{os.path.relpath(path, REPO)} is in no layer folder ({", ".join(LAYERS[1:])})'


def test_layers_import_only_the_layers_below():
    wrong = []
    for module, path in _modules():
        for imported in _imports(module, path):
            if imported.split('.')[0] == 'farsee_ros' and layer_of(imported) > layer_of(module):
                wrong.append(f'{module} ({LAYERS[layer_of(module)]}) imports {imported} '
                             f'({LAYERS[layer_of(imported)]})')
    assert not wrong, 'a lower layer imports a higher one:\n' + '\n'.join(wrong)


def test_nothing_below_the_ros_edge_imports_ros():
    wrong = []
    for module, path in _modules():
        if layer_of(module) < ROS_EDGE:
            ros = {m for m in _imports(module, path) if m.split('.')[0] in ROS_MODULES}
            if ros:
                wrong.append(f'{module} imports {sorted(ros)}')
    assert not wrong, 'ROS imports below farsee_ros/ros/:\n' + '\n'.join(wrong)


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The checks above can fail: a lazy upward import and a lazy rclpy import are found."""
    path = tmp_path / 'bad.py'
    path.write_text('def f():\n    from ..tools import cli\n    import rclpy.node\n')
    found = set(_imports('farsee_ros.model.bad', str(path)))
    assert 'farsee_ros.tools' in found and 'rclpy.node' in found
    assert layer_of('farsee_ros.tools.cli') > layer_of('farsee_ros.model.bad')
