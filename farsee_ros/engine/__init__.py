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
The one inference engine: `Segmenter` (frame in; labels, overlay and stage times out).

Also what training, evaluation and the benchmarks share with it: the preprocessing
(`model_input`) and the device/precision choice. No ROS imports.
"""

from .backends import add_backend_argument, BACKENDS
from .device import add_device_argument, DEVICES, is_fatal_device_error, PRECISIONS, \
    resolve_device, resolve_precision
from .postprocess import upsampled_argmax
from .preprocess import model_input
from .segmenter import COLOR_ORDERS, Segmentation, Segmenter

__all__ = ['add_backend_argument', 'add_device_argument', 'BACKENDS', 'COLOR_ORDERS', 'DEVICES',
           'is_fatal_device_error', 'model_input', 'PRECISIONS', 'resolve_device',
           'resolve_precision', 'Segmentation', 'Segmenter', 'upsampled_argmax']
