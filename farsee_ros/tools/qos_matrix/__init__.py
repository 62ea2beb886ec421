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
Measure how camera-sized images cross Fast DDS for a matrix of QoS, rates and transports.

Every measured cell runs two fresh OS processes, a subscriber and a publisher, each a plain
rclpy node started from this module in a hidden role (``--role subscriber|publisher``) with
``FASTDDS_BUILTIN_TRANSPORTS`` set as the cell says (unset for DEFAULT), one ROS_DOMAIN_ID for
the whole run and a topic of its own. The publisher waits until the subscriber is matched,
settles, publishes N bgr8 frames at the cell's rate (stamped with the wall clock just before
``publish``) and lingers for a grace period; the subscriber's callback only records
(stamp, receive time), so receive time - stamp is the transport latency between two processes
on one machine, including rclpy's conversion of the message on both sides. Children write
JSON results that this parent reads; each child also reports which transports it really got
(TCP listener, UDP sockets, mapped Fast DDS shared-memory segments), so a transport that was
asked for but not applied is flagged rather than silently measured as something else.

    python -m farsee_ros.tools.qos_matrix           # full matrix, 144 cells (~11 min, 2 cores)
    python -m farsee_ros.tools.qos_matrix --quick   # 8 cells (under a minute)
    python -m farsee_ros.tools.qos_matrix --sizes 640x480 --rates 10 --out qos.md --json qos.json
"""

# cells: the matrix (pure); children: the two child processes; runner: one cell and the whole
# run; report: the markdown table (pure).
from .cells import (build_cells, Cell, check_transport, estimate_seconds, parse_qos,
                    parse_size, parse_transport_pair, Settings)
from .children import child_env, effective_transports, transport_probe
from .report import format_row, format_table
from .runner import add_arguments, main, never_matched, run, run_cell

__all__ = [
    'add_arguments', 'build_cells', 'Cell', 'check_transport', 'child_env',
    'effective_transports', 'estimate_seconds', 'format_row', 'format_table', 'main',
    'never_matched', 'parse_qos', 'parse_size', 'parse_transport_pair', 'run', 'run_cell',
    'Settings', 'transport_probe',
]
