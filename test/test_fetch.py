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

"""Files fetched on first use, against a real HTTP server on loopback serving generated files."""

import functools
import hashlib
import http.server
import os
import socket
import threading
import time

import pytest

from farsee_ros.tools.fetch import (ChecksumError, fetch_files, FetchError, OfflineError,
                                    read_sums, RemoteFiles, SUMS_FILE)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """Serve tmp_path/www on 127.0.0.1; yield (base URL, folder, request log)."""
    root = tmp_path / 'www'
    root.mkdir()
    requests = []

    class Handler(_Quiet):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}', root, requests
    server.shutdown()
    server.server_close()


def dead_url() -> str:
    """Return a loopback URL on a port nothing listens on."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return f'http://127.0.0.1:{port}'


def _write(root, files):
    sums = {}
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        sums[path] = hashlib.sha256(data).hexdigest()
    return sums


FILES = {'test/a.png': os.urandom(3000), 'test/b.png': os.urandom(70_000),
         'testannot/a.png': b'label a'}


def test_downloads_checks_and_caches(served, tmp_path):
    base, root, requests = served
    sums = _write(root, FILES)
    remote = RemoteFiles('seq', 'http://unused.invalid', tuple(FILES), sums, 'three files')
    said = []
    paths = fetch_files(remote, base_url=base, cache_dir=str(tmp_path / 'cache'),
                        log=said.append)
    assert [open(p, 'rb').read() for p in paths] == list(FILES.values())
    assert paths[0] == str(tmp_path / 'cache' / 'seq' / 'test' / 'a.png')
    assert len(requests) == 3 and len(said) == 1 and 'downloading three files' in said[0]
    assert read_sums(str(tmp_path / 'cache' / 'seq' / SUMS_FILE)) == sums
    # Second use: from the cache, no request, nothing said (works with the server gone too).
    again = fetch_files(remote, base_url=dead_url(), cache_dir=str(tmp_path / 'cache'),
                        log=said.append)
    assert again == paths and len(requests) == 3 and len(said) == 1


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(served, tmp_path):
    base, root, _ = served
    sums = _write(root, FILES)
    sums['test/b.png'] = hashlib.sha256(b'something else').hexdigest()
    remote = RemoteFiles('seq', base, tuple(FILES), sums)
    with pytest.raises(ChecksumError) as error:
        fetch_files(remote, cache_dir=str(tmp_path / 'cache'), log=lambda _: None)
    message = str(error.value)
    assert f'{base}/test/b.png' in message and sums['test/b.png'] in message
    assert hashlib.sha256(FILES['test/b.png']).hexdigest() in message
    folder = tmp_path / 'cache' / 'seq' / 'test'
    assert sorted(os.listdir(folder)) == ['a.png']      # b.png and b.png.part are gone


def test_a_dead_server_is_reported_as_offline_quickly(tmp_path):
    remote = RemoteFiles('seq', dead_url(), tuple(FILES))
    started = time.monotonic()
    with pytest.raises(OfflineError, match='cannot reach http://127.0.0.1:'):
        fetch_files(remote, cache_dir=str(tmp_path / 'cache'), log=lambda _: None)
    assert time.monotonic() - started < 10
    assert not os.path.exists(tmp_path / 'cache' / 'seq' / 'test' / 'a.png')


def test_a_missing_file_is_an_http_error_not_offline(served, tmp_path):
    base, root, _ = served
    _write(root, {'test/a.png': b'x'})
    remote = RemoteFiles('seq', base, ('test/a.png', 'test/missing.png'))
    with pytest.raises(FetchError, match='missing.png: HTTP 404') as error:
        fetch_files(remote, cache_dir=str(tmp_path / 'cache'), log=lambda _: None)
    assert not isinstance(error.value, OfflineError)


def test_unpinned_files_are_checked_against_their_first_download(served, tmp_path):
    base, root, requests = served
    sums = _write(root, FILES)
    remote = RemoteFiles('seq', base, tuple(FILES))      # no pinned sums
    said = []
    paths = fetch_files(remote, cache_dir=str(tmp_path / 'cache'), log=said.append)
    assert read_sums(str(tmp_path / 'cache' / 'seq' / SUMS_FILE)) == sums
    assert any('no pinned sha256' in line and SUMS_FILE in line for line in said)
    # A cached file that changed afterwards (a bad disk, an interrupted copy) is fetched again.
    with open(paths[1], 'r+b') as f:
        f.write(b'corrupt')
    fetch_files(remote, cache_dir=str(tmp_path / 'cache'), log=said.append)
    assert requests.count('/test/b.png') == 2 and requests.count('/test/a.png') == 1
    assert open(paths[1], 'rb').read() == FILES['test/b.png']
