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
Start segment_node (node name farsee), optionally with rviz2.

ros2 launch farsee_ros segment.launch.py image_topic:=/camera/image_raw [rviz:=true]
All decisions live in farsee_ros.ros.launch_support (tested without launch installed).
"""

import os

from farsee_ros.ros import launch_support
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, \
    SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _setup(context):
    arguments = {name: LaunchConfiguration(name).perform(context)
                 for name in launch_support.LAUNCH_ARGUMENTS}
    environment = launch_support.transport_environment(arguments)
    actions = [SetEnvironmentVariable(name, value) for name, value in environment.items()]
    warning = launch_support.transport_warning(os.environ, environment)
    if warning:
        actions.append(LogInfo(msg=f'WARNING: {warning}'))
    actions.append(Node(
        package='farsee_ros', executable='segment_node', name='farsee',
        namespace=arguments['namespace'], output='screen', emulate_tty=True,
        parameters=[launch_support.params_file(arguments),
                    launch_support.node_parameters(arguments)]))
    rviz, rviz_warning = launch_support.start_rviz(arguments)
    if rviz_warning:
        actions.append(LogInfo(msg=f'WARNING: {rviz_warning}'))
    if rviz:
        actions.append(Node(package='rviz2', executable='rviz2', name='rviz2',
                            arguments=['-d', launch_support.rviz_config()], output='screen'))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, (default, description, _) in launch_support.LAUNCH_ARGUMENTS.items()]
        + [OpaqueFunction(function=_setup)])
