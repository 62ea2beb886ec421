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

"""Format the matrix's result rows as a markdown table (pure)."""

from typing import Optional, Sequence

HEADER = ('| size | rate (Hz) | transports (pub/sub) | publisher QoS | subscriber QoS | '
          'received/sent | p50 (ms) | p95 (ms) | max (ms) | notes |\n'
          '|---|---:|---|---|---|---:|---:|---:|---:|---|')


def _ms(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.1f}'


def format_row(row: dict) -> str:
    """Format one result (from run_cell) as a markdown table row."""
    size = f'{row["width"]}x{row["height"]} ({row["width"] * row["height"] * 3 / 1e6:.1f} MB)'
    rate = f'{row["rate"]:g}'
    transports = f'{row["pub_transport"]}/{row["sub_transport"]}'
    pub = f'{row["pub_reliability"].replace("_", " ")}, depth {row["pub_depth"]}'
    sub = f'{row["sub_reliability"].replace("_", " ")}, depth {row["sub_depth"]}'
    if row['status'] == 'incompatible':
        delivered = 'incompatible'
    elif row['status'] == 'unmatched':
        delivered = 'no match'
    else:
        delivered = f'{row["received"]}/{row["sent"]}'
    notes = '; '.join(row.get('notes', []))
    return (f'| {size} | {rate} | {transports} | {pub} | {sub} | {delivered} | '
            f'{_ms(row["p50_ms"])} | {_ms(row["p95_ms"])} | {_ms(row["max_ms"])} | {notes} |')


def format_table(rows: Sequence[dict]) -> str:
    """Format results as a markdown table, one row per cell."""
    return '\n'.join([HEADER] + [format_row(row) for row in rows])
