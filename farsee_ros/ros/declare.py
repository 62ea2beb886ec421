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
The node's parameters in ROS: declared with descriptors (type, range, read-only), validated.

What the parameters are lives in parameters.py (no ROS imports); this is how a node declares
them, reads their start-up values and checks changes at run time.
"""

from typing import Any, Dict, List

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)

from .parameters import invalid_reason, ParamSpec, PARAMETERS

_TYPES = {'bool': ParameterType.PARAMETER_BOOL, 'int': ParameterType.PARAMETER_INTEGER,
          'double': ParameterType.PARAMETER_DOUBLE, 'string': ParameterType.PARAMETER_STRING,
          'string[]': ParameterType.PARAMETER_STRING_ARRAY}


class ConfigError(Exception):
    """A start-up problem (parameter, model, device) reported as one line, then exit 1."""


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """Return the parameter's ROS descriptor: type, description, accepted values, ranges."""
    result = ParameterDescriptor(
        name=spec.name, type=_TYPES[spec.type_name], description=spec.description,
        read_only=spec.read_only, additional_constraints=f'accepted: {spec.accepted}')
    if spec.int_range:
        result.integer_range = [IntegerRange(from_value=spec.int_range[0],
                                             to_value=spec.int_range[1], step=0)]
    if spec.float_range:
        result.floating_point_range = [FloatingPointRange(
            from_value=spec.float_range[0], to_value=spec.float_range[1], step=0.0)]
    return result


def declare_parameters(node: Any) -> Dict[str, Any]:
    """Declare every parameter on `node`; return the values; ConfigError on a bad one."""
    values = {}
    for spec in PARAMETERS:
        try:
            value = node.declare_parameter(spec.name, spec.default, descriptor(spec)).value
        except Exception as exc:  # noqa: B902 - rclpy raises several kinds here
            raise ConfigError(f'invalid parameter {spec.name}: {exc}; accepted: '
                              f'{spec.accepted}') from None
        if spec.type_name == 'string[]':
            value = list(value)
        reason = invalid_reason(spec.name, value)
        if reason:
            raise ConfigError(f'invalid parameter {reason}')
        values[spec.name] = value
    return values


def validate_parameters(parameters: List[Any]) -> SetParametersResult:
    """Refuse a parameter change with a reason naming the value (on-set callback)."""
    for parameter in parameters:
        reason = invalid_reason(parameter.name, parameter.value)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
    return SetParametersResult(successful=True)
