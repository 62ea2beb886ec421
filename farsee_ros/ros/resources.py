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

"""Where installed resources live: the default model, config and launch files."""

import os
from typing import Optional

PACKAGE = 'farsee_ros'
DEFAULT_MODEL_NAME = 'farseenet_camvid.pt'


def share_directory() -> str:
    """Return the share directory: from the ament index when installed, else the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return get_package_share_directory(PACKAGE)
    except (ImportError, LookupError, OSError):
        # Not installed through colcon (no ament index, or AMENT_PREFIX_PATH unset).
        pass
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_model_path() -> str:
    """Return the default weights' path (models/farseenet_camvid.pt), existing or not."""
    return os.path.join(share_directory(), 'models', DEFAULT_MODEL_NAME)


def existing_default_model() -> Optional[str]:
    """Return the default weights' path if the file exists, else None."""
    path = default_model_path()
    return path if os.path.isfile(path) else None
