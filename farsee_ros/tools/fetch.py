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
Files fetched on first use: downloaded over HTTP(S), checked by sha256, cached per user.

The cache is `$FARSEE_CACHE_DIR`, else `$XDG_CACHE_HOME/farsee_ros`, else
`~/.cache/farsee_ros`. A file is downloaded to a temporary name, hashed, compared with its
pinned sha256 and only then renamed into place, so the cache never holds a partial or
mismatching file. Where a file has no pinned sum, the sum of its first download is recorded
in the cache's SHA256SUMS and every later use is checked against that.
"""

import hashlib
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from ..common import atomic_write, sha256_of

SUMS_FILE = 'SHA256SUMS'


class FetchError(RuntimeError):
    """A file could not be fetched (network, server or checksum)."""


class OfflineError(FetchError):
    """The server could not be reached at all (no network, a dead server, a timeout)."""


class ChecksumError(FetchError):
    """A downloaded file's sha256 is not the pinned one."""


@dataclass(frozen=True)
class RemoteFiles:
    """A set of files under one base URL, each with its pinned sha256 where known."""

    name: str                         # cache subfolder
    base_url: str
    paths: Tuple[str, ...]            # relative to base_url and to the cache subfolder
    sha256: Dict[str, str] = field(default_factory=dict)   # path -> hex digest (pinned)
    description: str = ''


def cache_directory() -> str:
    """Return the per-user cache directory of this package."""
    if os.environ.get('FARSEE_CACHE_DIR'):
        return os.environ['FARSEE_CACHE_DIR']
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'farsee_ros')


def download(url: str, dest: str, sha256: Optional[str] = None, timeout: float = 15.0) -> str:
    """
    Download `url` to `dest` and return the file's sha256.

    Raises OfflineError when the server cannot be reached, FetchError on an HTTP error and
    ChecksumError when `sha256` is given and differs; `dest` is written only on success.
    """
    digest = hashlib.sha256()
    try:
        # atomic_write renames onto dest only when the block ends without an exception.
        with atomic_write(dest, 'wb') as out, \
                urllib.request.urlopen(url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 16), b''):
                digest.update(block)
                out.write(block)
            actual = digest.hexdigest()
            if sha256 and actual != sha256.lower():
                raise ChecksumError(f'{url}: sha256 {actual} is not the pinned {sha256}; '
                                    'the file was not kept')
    except urllib.error.HTTPError as exc:
        raise FetchError(f'{url}: HTTP {exc.code} {exc.reason}') from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        reason = getattr(exc, 'reason', exc)
        raise OfflineError(f'cannot reach {url}: {reason}') from None
    return actual


def fetch_files(files: RemoteFiles, base_url: Optional[str] = None,
                cache_dir: Optional[str] = None,
                log: Callable[[str], None] = print) -> List[str]:
    """
    Return local paths of `files`, downloading what the cache lacks (or holds corrupted).

    Each cached file is checked against its pinned sum, else the sum recorded at its first
    download (SHA256SUMS in the cache folder); a file that fails is downloaded again.
    """
    folder = os.path.join(cache_dir or cache_directory(), files.name)
    base = (base_url or files.base_url).rstrip('/')
    recorded = read_sums(os.path.join(folder, SUMS_FILE))
    unpinned = [p for p in files.paths if p not in files.sha256]
    local, fetched = [], 0
    for path in files.paths:
        dest = os.path.join(folder, *path.split('/'))
        expected = files.sha256.get(path) or recorded.get(path)
        if not (os.path.isfile(dest) and expected and sha256_of(dest) == expected):
            recorded[path] = download(f'{base}/{path}', dest, files.sha256.get(path))
            if not fetched:   # said once the server answered: offline is one line
                log(f'downloading {files.description or files.name} from {base} '
                    f'into {folder}')
            fetched += 1
        local.append(dest)
    if fetched:
        write_sums(os.path.join(folder, SUMS_FILE), recorded)
        if unpinned:
            log(f'note: {len(unpinned)} of {len(files.paths)} files have no pinned sha256 in '
                f'this release; their sums from this download are recorded in '
                f'{os.path.join(folder, SUMS_FILE)} and checked on every later run')
    return local


def read_sums(path: str) -> Dict[str, str]:
    """Read a `sha256sum`-format file (digest, two spaces, relative path) into a dict."""
    sums: Dict[str, str] = {}
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                digest, _, name = line.strip().partition('  ')
                if digest and name:
                    sums[name] = digest
    return sums


def write_sums(path: str, sums: Dict[str, str]) -> None:
    """Write `sums` in `sha256sum` format (check with `cd <folder> && sha256sum -c`)."""
    with atomic_write(path) as f:
        for name in sorted(sums):
            f.write(f'{sums[name]}  {name}\n')
