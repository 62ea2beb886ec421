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

"""ament_flake8 over the package, the tests and setup.py (what colcon test runs)."""

import importlib.util
import os

import pytest

from conftest import REPO

PATHS = [os.path.join(REPO, p) for p in ('farsee_ros', 'test', 'launch', 'setup.py')
         if os.path.exists(os.path.join(REPO, p))]


@pytest.mark.linter
@pytest.mark.flake8
def test_flake8():
    if importlib.util.find_spec('ament_flake8') is None:
        pytest.skip('ament_flake8 is not installed')
    from ament_flake8.main import main_with_errors
    rc, errors = main_with_errors(argv=PATHS)
    assert rc == 0, f'{len(errors)} flake8 issue(s):\n' + '\n'.join(map(str, errors[:20]))
