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

"""ament_copyright over the sources (ROS machines: it is not on PyPI)."""

import importlib.util
import os

import pytest

from conftest import REPO


@pytest.mark.linter
@pytest.mark.copyright
def test_copyright():
    if importlib.util.find_spec('ament_copyright') is None:
        pytest.skip('ament_copyright is not on PyPI; it runs on ROS machines (colcon test)')
    from ament_copyright.main import main
    paths = [os.path.join(REPO, 'farsee_ros'), os.path.join(REPO, 'test')]
    assert main(argv=paths) == 0, 'found errors'
