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


"""`farsee-ros bench --quick`: every model timed on the CPU, ratios to FarSee-Net, a table."""

import json

import pytest

from farsee_ros.tools.bench import PEERS
from farsee_ros.tools.cli import main
from farsee_ros.model.network import VARIANTS


@pytest.mark.timeout(300)
def test_quick_bench_times_every_model(tmp_path, capsys):
    report_path = str(tmp_path / 'bench.json')
    assert main(['bench', '--quick', '--device', 'cpu', '--runs', '1', '--no-backends',
                 '--report', report_path]) == 0
    with open(report_path) as f:
        report = json.load(f)
    rows = report['model_only']
    assert {r['model'] for r in rows} == {*VARIANTS, *PEERS}
    for row in rows:
        assert row['median_ms'] > 0 and row['input'] == '512x768' and row['runs'] == 1, row
    farseenet = next(r for r in rows if r['model'] == 'farseenet')
    assert farseenet['ratio_to_farseenet'] == 1.0
    for row in rows:
        assert row['ratio_to_farseenet'] == pytest.approx(row['median_ms']
                                                          / farseenet['median_ms'])
    with open(str(tmp_path / 'bench.md')) as f:
        table = f.read()
    assert '| deeplabv3_resnet50 | 39.64 | 512x768 | fp32 |' in table
    assert 'cores' in report['machine']
    assert '| farseenet | 12.99 | 512x768 | fp32 |' in capsys.readouterr().out


def test_backend_rows_time_every_backend(tmp_path, small_checkpoint, capsys):
    report_path = str(tmp_path / 'backends.json')
    assert main(['bench', '--only-backends', '--model', small_checkpoint, '--device', 'cpu',
                 '--runs', '1', '--report', report_path]) == 0
    with open(report_path) as f:
        result = json.load(f)['backends']
    assert result['input'] == '128x192' and result['runs'] == 1
    names = [row['backend'] for row in result['rows']]
    assert names[0] == 'torch fp32 eager' and names[-2:] == ['onnxruntime fp32',
                                                             'onnxruntime int8']
    assert result['rows'][0]['speedup_vs_torch_fp32'] == 1.0
    assert all(row['median_ms'] > 0 for row in result['rows'])
    assert result['rows'][-1]['int8_model'].startswith('quantized here')   # none beside it
    assert '| onnxruntime int8 |' in capsys.readouterr().out


def test_unknown_model_is_named(capsys):
    assert main(['bench', '--quick', '--device', 'cpu', '--models', 'segformer']) == 2
    assert "unknown model 'segformer'; accepted: aspp" in capsys.readouterr().err
