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
The node's own Fast DDS profile (config/fastdds_node.xml): when segment_node loads it.

Measured (docs/qos.md): on Fast DDS's default transports a 480x360 frame's labels and overlay
overflow the default 512 KB shared-memory segment, and a reliable subscriber then waits for
the writer's next heartbeat (3 s) for the lost sample. The profile gives the node's own
participant an 8.5 MB segment and a 100 ms heartbeat, so subscribers that configured nothing
get the outputs promptly. It is never applied over the user's own choice: a profile file,
FASTDDS_BUILTIN_TRANSPORTS, another RMW, or FARSEE_FASTDDS_PROFILE=0.
"""

import os
from typing import Mapping, Optional, Tuple

from .resources import share_directory

PROFILE_NAME = 'fastdds_node.xml'
PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
USER_CHOICES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                'FASTDDS_BUILTIN_TRANSPORTS')
# Files Fast DDS loads from the working directory by itself.
WORKING_DIRECTORY_PROFILES = ('DEFAULT_FASTDDS_PROFILES.xml', 'DEFAULT_FASTRTPS_PROFILES.xml')
OPT_OUT = 'FARSEE_FASTDDS_PROFILE'


def profile_path() -> str:
    """Return the installed config/fastdds_node.xml."""
    return os.path.join(share_directory(), 'config', PROFILE_NAME)


def node_profile(environ: Mapping[str, str] = os.environ,
                 cwd: Optional[str] = None) -> Tuple[Optional[str], str]:
    """
    Return (the profile file to load, or None) and the line the node logs about it.

    The caller sets FASTDDS_DEFAULT_PROFILES_FILE to the path before rclpy.init, in the
    node's own process only.
    """
    rmw = environ.get('RMW_IMPLEMENTATION', '') or 'rmw_fastrtps_cpp'
    if rmw != 'rmw_fastrtps_cpp':
        return None, f'RMW_IMPLEMENTATION={rmw}: no Fast DDS profile (docs/qos.md has notes)'
    if environ.get(OPT_OUT, '').strip().lower() in ('0', 'false', 'off', 'no'):
        return None, f'{OPT_OUT}={environ[OPT_OUT]}: Fast DDS defaults, no node profile'
    for name in USER_CHOICES:
        if environ.get(name):
            return None, (f'{name}={environ[name]} is set: using it, not {PROFILE_NAME}; on '
                          'default transports, merge that file\'s default participant and '
                          'data_writer profiles into yours for prompt large outputs')
    folder = cwd or os.getcwd()
    for name in WORKING_DIRECTORY_PROFILES:
        if os.path.isfile(os.path.join(folder, name)):
            return None, f'{os.path.join(folder, name)} is loaded by Fast DDS: not {PROFILE_NAME}'
    path = profile_path()
    if not os.path.isfile(path):
        return None, f'{path} is missing: Fast DDS defaults (outputs may wait seconds)'
    return path, (f'Fast DDS profile {path}: 8.5 MB shared memory, 100 ms heartbeat, TCP for '
                  f'LARGE_DATA peers (set {OPT_OUT}=0 to use the defaults)')
