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
Describe the matrix: its cells, how they are measured, and the parsing of its options.

Pure: no rclpy, no processes. A cell is one size, rate, transport pair and pair of QoS.
"""

from dataclasses import dataclass
import itertools
from typing import List, Sequence, Tuple

# Values Fast DDS 3.x accepts for FASTDDS_BUILTIN_TRANSPORTS (set_builtin_transports_from_env_var
# in RTPSParticipantImpl.cpp); LARGE_DATA also takes options, e.g. 'LARGE_DATA?max_msg_size=1MB'.
# Here 'DEFAULT' means: leave the variable unset (Fast DDS then builds SHM + UDPv4).
FASTDDS_TRANSPORTS = ('DEFAULT', 'DEFAULTv6', 'SHM', 'UDPv4', 'UDPv6', 'LARGE_DATA',
                      'LARGE_DATAv6', 'P2P', 'NONE')
# What each builtin-transport value should open in a participant, as the children's probe sees it.
EXPECTED_TRANSPORTS = {
    'DEFAULT': 'SHM+UDP', 'DEFAULTv6': 'SHM+UDP', 'SHM': 'SHM', 'UDPv4': 'UDP', 'UDPv6': 'UDP',
    'LARGE_DATA': 'SHM+TCP+UDP', 'LARGE_DATAv6': 'SHM+TCP+UDP',
}
RELIABILITIES = ('reliable', 'best_effort')
DISCOVERY_RANGES = ('SUBNET', 'LOCALHOST', 'SYSTEM_DEFAULT')

DEFAULT_SIZES = ('640x480', '2048x1024')
DEFAULT_RATES = (10.0, 30.0)
DEFAULT_TRANSPORTS = ('DEFAULT/DEFAULT', 'LARGE_DATA/LARGE_DATA', 'DEFAULT/LARGE_DATA')
DEFAULT_PUB_QOS = ('reliable:10', 'best_effort:1')
DEFAULT_SUB_RELIABILITIES = RELIABILITIES
DEFAULT_SUB_DEPTHS = (1, 5, 10)
DEFAULT_FRAMES = 60

QUICK = {
    'sizes': ['2048x1024'], 'rates': [30.0],
    'transports': ['DEFAULT/DEFAULT', 'LARGE_DATA/LARGE_DATA'],
    'pub_qos': ['reliable:10'], 'sub_reliability': list(RELIABILITIES),
    'sub_depths': [1, 5], 'frames': 30,
}

# Rough per-cell cost besides settling, publishing and grace (two interpreter starts, discovery,
# tear-down), used only for the up-front estimate; measured on a 2-core machine.
CELL_OVERHEAD_S = 1.0
INCOMPATIBLE_NOTE = 'not run: a best-effort publisher never serves a reliable subscriber'


@dataclass(frozen=True)
class Cell:
    """One point of the matrix."""

    width: int
    height: int
    rate: float
    pub_transport: str
    sub_transport: str
    pub_reliability: str
    pub_depth: int
    sub_reliability: str
    sub_depth: int

    @property
    def frame_bytes(self) -> int:
        """Return the size of one bgr8 frame in bytes."""
        return self.width * self.height * 3

    @property
    def compatible(self) -> bool:
        """Say whether DDS can match the two endpoints (best effort cannot serve reliable)."""
        return not (self.pub_reliability == 'best_effort' and self.sub_reliability == 'reliable')


@dataclass
class Settings:
    """How every cell of one run is measured."""

    frames: int = DEFAULT_FRAMES
    domain_id: int = 0
    discovery_range: str = 'SUBNET'
    match_timeout: float = 5.0
    settle: float = 0.5
    grace: float = 1.0


def parse_size(text: str) -> Tuple[int, int]:
    """Parse 'WIDTHxHEIGHT' into (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise ValueError(f'invalid size {text!r}; expected WIDTHxHEIGHT, e.g. 640x480') from None
    if width <= 0 or height <= 0:
        raise ValueError(f'invalid size {text!r}: both sides must be positive')
    return width, height


def check_transport(value: str) -> str:
    """Return `value` if Fast DDS accepts it for FASTDDS_BUILTIN_TRANSPORTS, else raise."""
    base = value.split('?', 1)[0]
    if base not in FASTDDS_TRANSPORTS:
        raise ValueError(f'invalid transport {value!r}; Fast DDS accepts: '
                         f'{", ".join(FASTDDS_TRANSPORTS)} (LARGE_DATA may take ?options)')
    return value


def parse_transport_pair(text: str) -> Tuple[str, str]:
    """Parse 'PUB/SUB' (or one value for both) into (publisher, subscriber) transports."""
    parts = text.split('/')
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise ValueError(f'invalid transports {text!r}; expected PUB/SUB, e.g. DEFAULT/LARGE_DATA')
    return check_transport(parts[0]), check_transport(parts[1])


def parse_qos(text: str) -> Tuple[str, int]:
    """Parse 'RELIABILITY:DEPTH' (e.g. reliable:10, best_effort:1) into (reliability, depth)."""
    reliability, _, depth = text.partition(':')
    reliability = reliability.replace('-', '_')
    if reliability not in RELIABILITIES or not depth.isdigit() or int(depth) < 1:
        raise ValueError(f'invalid QoS {text!r}; expected reliable:DEPTH or best_effort:DEPTH')
    return reliability, int(depth)


def build_cells(sizes: Sequence[str], rates: Sequence[float], transports: Sequence[str],
                pub_qos: Sequence[str], sub_reliabilities: Sequence[str],
                sub_depths: Sequence[int]) -> List[Cell]:
    """Return the matrix's cells in the order they are run and tabulated."""
    for reliability in sub_reliabilities:
        if reliability.replace('-', '_') not in RELIABILITIES:
            raise ValueError(f'invalid subscriber reliability {reliability!r}; accepted: '
                             f'{", ".join(RELIABILITIES)}')
    if any(rate <= 0 for rate in rates):
        raise ValueError('rates must be positive')
    if any(depth < 1 for depth in sub_depths):
        raise ValueError('subscriber depths must be at least 1')
    cells = []
    for size, rate, pair, qos, sub_rel, sub_depth in itertools.product(
            sizes, rates, transports, pub_qos, sub_reliabilities, sub_depths):
        width, height = parse_size(size)
        pub_transport, sub_transport = parse_transport_pair(pair)
        pub_rel, pub_depth = parse_qos(qos)
        cells.append(Cell(width, height, float(rate), pub_transport, sub_transport, pub_rel,
                          pub_depth, sub_rel.replace('-', '_'), int(sub_depth)))
    return cells


def estimate_seconds(cells: Sequence[Cell], settings: Settings) -> float:
    """Estimate the wall time of measuring `cells` (incompatible ones cost nothing)."""
    return sum(CELL_OVERHEAD_S + settings.settle + settings.frames / cell.rate
               + settings.grace / 2 for cell in cells if cell.compatible)
