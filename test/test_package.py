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

"""Packaging: package.xml declares every runtime import, setup.py installs the ament layout."""

import ast
import glob
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

from conftest import REPO

# Top-level Python module -> rosdep key (package.xml) and pip name (requirements.txt; None for
# ROS-only packages that the PyPI wheels do not provide).
DEPENDENCIES = {
    'torch': ('python3-torch', 'torch'),
    'torchvision': ('python3-torchvision', 'torchvision'),
    'numpy': ('python3-numpy', 'numpy'),
    'cv2': ('python3-opencv', 'opencv-python-headless'),
    'yaml': ('python3-yaml', 'pyyaml'),
    'tqdm': ('python3-tqdm', 'tqdm'),
    'matplotlib': ('python3-matplotlib', 'matplotlib'),
    'PIL': ('python3-pil', 'pillow'),
    'rclpy': ('rclpy', 'ros-rclpy[fastrtps]'),
    'sensor_msgs': ('sensor_msgs', 'ros-sensor-msgs'),
    'std_msgs': ('std_msgs', 'ros-std-msgs'),
    'diagnostic_msgs': ('diagnostic_msgs', 'ros-diagnostic-msgs'),
    'ament_index_python': ('ament_index_python', 'ros-rclpy[fastrtps]'),
    'rcl_interfaces': ('rcl_interfaces', 'ros-rclpy[fastrtps]'),
    'launch': ('launch', None),
    'launch_ros': ('launch_ros', None),
}
# Imported only inside the functions of optional tools, which say what to install.
OPTIONAL = {'onnx': 'onnx', 'onnxruntime': 'onnxruntime', 'rosbags': 'rosbags',
            'mcap': 'mcap'}


def _imports(path):
    """Yield (top-level module, at module level?) for every absolute import in `path`."""
    tree = ast.parse(open(path).read(), path)
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name.split('.')[0], id(node) in top_level


def _sources():
    return glob.glob(os.path.join(REPO, 'farsee_ros', '**', '*.py'), recursive=True) + \
        glob.glob(os.path.join(REPO, 'launch', '*.launch.py'))


def _package_xml():
    return ET.parse(os.path.join(REPO, 'package.xml')).getroot()


def test_package_xml_format_and_build_type():
    root = _package_xml()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'farsee_ros'
    assert root.find('export/build_type').text == 'ament_python'
    tests = {e.text for e in root.findall('test_depend')}
    assert {'python3-pytest', 'launch_pytest', 'ament_flake8', 'ament_pep257'} <= tests


def test_every_runtime_import_is_an_exec_depend_and_a_requirement():
    exec_depends = {e.text for e in _package_xml().findall('exec_depend')}
    requirements = {line.split('#')[0].strip() for line in
                    open(os.path.join(REPO, 'requirements.txt'))} - {''}
    unknown, undeclared = set(), set()
    for path in _sources():
        for module, module_level in _imports(path):
            if module in sys.stdlib_module_names or module == 'farsee_ros':
                continue
            if module in OPTIONAL:
                assert not module_level, f'{path}: optional {module} imported at module level'
                assert OPTIONAL[module] in requirements
            elif module not in DEPENDENCIES:
                unknown.add(f'{module} ({os.path.relpath(path, REPO)})')
            else:
                key, pip_name = DEPENDENCIES[module]
                if key not in exec_depends:
                    undeclared.add(key)
                if pip_name is not None:
                    assert pip_name in requirements, f'{pip_name} missing in requirements.txt'
    assert not unknown, f'imports without a known rosdep key: {sorted(unknown)}'
    assert not undeclared, f'exec_depend missing in package.xml: {sorted(undeclared)}'


def test_setup_installs_the_ament_layout_and_console_script(tmp_path):
    """Build the wheel (no install, so the test environment is left alone) and read it."""
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-build-isolation',
         '--disable-pip-version-check', '--wheel-dir', str(tmp_path), REPO],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (wheel,) = glob.glob(str(tmp_path / 'farsee_ros-*.whl'))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith('.dist-info/entry_points.txt')]
        scripts = archive.read(entry_points).decode()
    share = 'farsee_ros-0.1.0.data/data/share/'
    assert share + 'ament_index/resource_index/packages/farsee_ros' in names
    assert share + 'farsee_ros/package.xml' in names
    for folder, pattern in (('launch', '*.launch.py'), ('config', '*'), ('models', '*')):
        expected = {f'{share}farsee_ros/{folder}/{os.path.basename(f)}'
                    for f in glob.glob(os.path.join(REPO, folder, pattern)) if os.path.isfile(f)}
        installed = {n for n in names if n.startswith(f'{share}farsee_ros/{folder}/')}
        assert installed == expected, folder
    for module in ('model/network.py', 'engine/segmenter.py', 'training/train.py',
                   'ros/segment_node.py', 'tools/cli.py', 'tools/qos_matrix/__main__.py'):
        assert f'farsee_ros/{module}' in names, module   # every layer is installed
    assert 'farsee_ros/tools/camvid_test_Seq05VD.sha256' in names   # the demo's pinned sums
    assert 'farsee-ros = farsee_ros.tools.cli:main' in scripts
    metadata = next(n for n in names if n.endswith('.dist-info/METADATA'))
    with zipfile.ZipFile(wheel) as archive:   # colcon test picks pytest from this extra
        assert 'Requires-Dist: pytest; extra == "test"' in archive.read(metadata).decode()
    setup_cfg = open(os.path.join(REPO, 'setup.cfg')).read()
    assert 'script_dir=$base/lib/farsee_ros' in setup_cfg     # where `ros2 run` looks
    assert 'install_scripts=$base/lib/farsee_ros' in setup_cfg


def test_ci_runs_the_readmes_test_command():
    readme = open(os.path.join(REPO, 'README.md')).read()
    assert 'make test' in readme and 'make demo' in readme
    assert 'make test' in open(os.path.join(REPO, '.ci', 'run')).read()
