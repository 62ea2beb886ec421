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
from farsee_ros.launch_support import arguments_markdown
from farsee_ros.model.complexity import complexity_markdown
from farsee_ros.node_params import parameters_markdown, topics_markdown


def test_architecture_table_matches_the_code():
    doc = open(os.path.join(REPO, 'docs', 'architecture.md')).read()
    for num_classes in (19, 11):
        table = complexity_markdown(num_classes, (512, 768))
        assert table in doc, f'regenerate: farsee-ros complexity --num-classes {num_classes}'


def test_readme_tables_are_generated_from_the_code():
    readme = open(os.path.join(REPO, 'README.md')).read()
    for name, table in (('topics', topics_markdown()), ('parameters', parameters_markdown()),
                        ('launch arguments', arguments_markdown())):
        assert table in readme, f'README {name} table drifted from the code'
