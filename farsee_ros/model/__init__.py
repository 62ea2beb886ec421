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
The network, its checkpoints and export: PyTorch, no ROS.

Attributes load their module on first use (PEP 562), so that reading an engine ONNX file
(model/onnx_file.py, model/metadata.py) never imports PyTorch.
"""

import importlib

_WHERE = {'build_model': 'network', 'FarSeeNet': 'network', 'VARIANTS': 'metadata',
          'CheckpointError': 'metadata', 'load_checkpoint': 'checkpoint',
          'make_metadata': 'checkpoint', 'save_checkpoint': 'checkpoint'}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    """Import the module that defines `name` and return it from there."""
    if name not in _WHERE:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'.{_WHERE[name]}', __name__), name)
