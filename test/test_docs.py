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

"""docs/architecture.md's cost table is what the code computes (it cannot drift)."""

import os

from conftest import REPO
from farsee_ros.tools.cli import commands_markdown
from farsee_ros.ros.launch_support import arguments_markdown
from farsee_ros.model.complexity import complexity_markdown, frontend_markdown
from farsee_ros.ros.parameters import parameters_markdown, topics_markdown


def test_architecture_table_matches_the_code():
    doc = open(os.path.join(REPO, 'docs', 'architecture.md')).read()
    for num_classes in (19, 11):
        table = complexity_markdown(num_classes, (512, 768))
        assert table in doc, f'regenerate: farsee-ros complexity --num-classes {num_classes}'
    assert frontend_markdown(11) in doc, 'regenerate: farsee-ros complexity --num-classes 11 ' \
        '--frontends'


def test_readme_tables_are_generated_from_the_code():
    readme = open(os.path.join(REPO, 'README.md')).read()
    for name, table in (('topics', topics_markdown()), ('parameters', parameters_markdown()),
                        ('launch arguments', arguments_markdown()),
                        ('farsee-ros commands', commands_markdown())):
        assert table in readme, f'README {name} table drifted from the code'


def test_readme_ros_commands_name_what_the_package_has():
    """Every launch argument, parameter, output topic, file and subcommand the README uses."""
    import re

    from farsee_ros.tools.cli import build_parser
    from farsee_ros.ros.launch_support import LAUNCH_ARGUMENTS
    from farsee_ros.ros.parameters import OUTPUT_TOPICS, PARAMETERS

    readme = open(os.path.join(REPO, 'README.md')).read()
    parameters = {p.name for p in PARAMETERS}
    launches = re.findall(r'ros2 launch farsee_ros (\S+)((?: [\w]+:=\S+)*)', readme)
    assert launches
    for launch_file, arguments in launches:
        assert os.path.isfile(os.path.join(REPO, 'launch', launch_file)), launch_file
        for name in re.findall(r'(\w+):=', arguments):
            assert name in LAUNCH_ARGUMENTS, f'README launches with unknown argument {name}'
    for name in re.findall(r'-p (\w+):=', readme):
        assert name in parameters, f'README sets unknown parameter {name}'
    for name in re.findall(r'ros2 param (?:set|describe) /farsee (\w+)', readme):
        assert name in parameters or name == '<name>'
    outputs = {t[0] for t in OUTPUT_TOPICS}
    for name in re.findall(r'/farsee/(\w+)', readme):
        assert name in outputs or name in ('front', 'rear'), f'README names /farsee/{name}'
    for path in re.findall(r'`((?:config|launch|models|docs)/[\w./]+)`', readme):
        assert os.path.exists(os.path.join(REPO, path)), f'README names missing {path}'
    commands = set(next(a for a in build_parser()._actions if hasattr(a, 'choices')
                        and isinstance(a.choices, dict)).choices)
    for name in re.findall(r'farsee-ros ([a-z][\w-]*)', readme):
        assert name in commands or name in ('demo_output',), f'README runs farsee-ros {name}'
