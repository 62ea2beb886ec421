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
Helpers every layer may use: atomic file writes, a file's sha256, percentiles.

Standard library and NumPy only; imports nothing else from the package, so it sits below
the five layers.
"""

import contextlib
import hashlib
import os
from typing import Dict, IO, Iterator, Optional, Sequence

import numpy as np

PERCENTILES = ('p50', 'p95', 'p99', 'max', 'mean')


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'w', **open_kwargs) -> Iterator[IO]:
    """
    Open a temporary file beside `path` for writing; rename it onto `path` on success.

    A crash or an exception inside the block never leaves a truncated `path`: the temporary
    file is removed and `path` keeps its previous contents (or stays absent).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp'
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def sha256_of(path: str) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def percentiles(values: Sequence[float],
                keys: Sequence[str] = PERCENTILES) -> Dict[str, Optional[float]]:
    """
    Return the summary statistics named in `keys` (p<N>, max, mean) of `values`.

    Every statistic is None when `values` is empty (JSON null, never NaN).
    """
    if not len(values):
        return {key: None for key in keys}
    data = np.asarray(values, dtype=np.float64)
    result: Dict[str, Optional[float]] = {}
    for key in keys:
        if key == 'max':
            result[key] = float(data.max())
        elif key == 'mean':
            result[key] = float(data.mean())
        elif key.startswith('p') and key[1:].replace('.', '', 1).isdigit():
            result[key] = float(np.percentile(data, float(key[1:])))
        else:
            raise ValueError(f'unknown statistic {key!r}; accepted: p<N> (0-100), max, mean')
    return result
