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

"""ament_pep257 over the package, the tests and setup.py (what colcon test runs)."""

import importlib.util
import os

import pytest

from conftest import REPO

PATHS = [os.path.join(REPO, p) for p in ('farsee_ros', 'test', 'launch', 'setup.py')
         if os.path.exists(os.path.join(REPO, p))]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    if importlib.util.find_spec('ament_pep257') is None:
        pytest.skip('ament_pep257 is not installed')
    from ament_pep257.main import main
    assert main(argv=PATHS) == 0, 'found code style errors / warnings'
