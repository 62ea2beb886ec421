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
launch_pytest: segment.launch.py brings up a node that answers (ROS machines only).

Needs launch, launch_ros and launch_pytest (colcon test on a ROS 2 install); skipped here.
"""

import importlib.util
import os
import time

import pytest

if importlib.util.find_spec('launch_pytest') is None or \
        importlib.util.find_spec('launch_ros') is None:
    pytest.skip('launch_pytest and launch_ros need a ROS 2 install (they are not on PyPI); '
                'the launch file\'s logic is tested in test_launch_config.py',
                allow_module_level=True)

from ament_index_python.packages import get_package_share_directory  # noqa: E402
import launch  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_pytest  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402


@launch_pytest.fixture
def segment_launch(node_checkpoint):
    share = get_package_share_directory('farsee_ros')
    return launch.LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'segment.launch.py')),
            launch_arguments={'image_topic': '/launch_test/image_raw', 'device': 'cpu',
                              'model_path': node_checkpoint}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=segment_launch)
def test_launch_starts_the_node_on_the_given_topic():
    # Everything on an own, initialised context: the global executor belongs to the default
    # context, which this test never initialises (spin_once(node) would raise).
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('launch_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        publisher = node.create_publisher(Image, '/launch_test/image_raw', 10)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and publisher.get_subscription_count() == 0:
            executor.spin_once(timeout_sec=0.1)
        assert publisher.get_subscription_count() > 0
        assert ('farsee', '/') in node.get_node_names_and_namespaces()
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
