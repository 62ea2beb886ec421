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

"""The camera subscription's QoS choice without DDS, from publisher-info lists."""

import pytest
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.topic_endpoint_info import TopicEndpointInfo

from farsee_ros.ros.qos import incompatible_qos_warning, offered_reliability, \
    reliability_to_subscribe, subscription_qos

RELIABLE = ReliabilityPolicy.RELIABLE
BEST_EFFORT = ReliabilityPolicy.BEST_EFFORT


def _publisher(reliability, node='camera', namespace='/'):
    return TopicEndpointInfo(node_name=node, node_namespace=namespace,
                             qos_profile=QoSProfile(depth=10, reliability=reliability))


def test_auto_matches_what_every_publisher_offers():
    assert offered_reliability([]) is None
    assert offered_reliability([_publisher(RELIABLE), _publisher(RELIABLE)]) == 'reliable'
    # One best-effort publisher: only best_effort is compatible with both (ros2 topic echo).
    assert offered_reliability([_publisher(RELIABLE), _publisher(BEST_EFFORT)]) == 'best_effort'


def test_auto_waits_for_publishers_and_resubscribes_only_when_the_offer_changes():
    reliable, best_effort = [_publisher(RELIABLE)], [_publisher(BEST_EFFORT)]
    assert reliability_to_subscribe('auto', [], None) is None             # wait
    assert reliability_to_subscribe('auto', reliable, None) == 'reliable'
    assert reliability_to_subscribe('auto', reliable, 'reliable') is None  # keep
    assert reliability_to_subscribe('auto', best_effort, 'reliable') == 'best_effort'
    assert reliability_to_subscribe('auto', [], 'best_effort') is None     # publisher gone: keep


def test_a_fixed_reliability_subscribes_once_whatever_is_offered():
    assert reliability_to_subscribe('reliable', [], None) == 'reliable'
    assert reliability_to_subscribe('reliable', [_publisher(BEST_EFFORT)], 'reliable') is None
    assert reliability_to_subscribe('best_effort', [_publisher(RELIABLE)], None) == 'best_effort'
    with pytest.raises(ValueError, match=r"qos_reliability='fast' is not one of auto"):
        reliability_to_subscribe('fast', [], None)


def test_the_subscription_profile():
    qos = subscription_qos('best_effort', 3)
    assert (qos.history, qos.depth, qos.reliability, qos.durability) == \
        (HistoryPolicy.KEEP_LAST, 3, BEST_EFFORT, DurabilityPolicy.VOLATILE)
    assert subscription_qos('reliable', 10).reliability == RELIABLE


def test_the_incompatible_qos_warning_names_both_sides():
    publishers = [_publisher(BEST_EFFORT, 'usb_cam', '/front/'), _publisher(BEST_EFFORT, 'bag')]
    text = incompatible_qos_warning('/front/image_raw', 'RELIABILITY', 'reliable', publishers)
    assert text == ('incompatible QoS on /front/image_raw (RELIABILITY): this subscription '
                    'requests reliable, but /bag offers best_effort; /front/usb_cam offers '
                    'best_effort; set qos_reliability to auto or best_effort')
    assert 'but a publisher offers otherwise;' in incompatible_qos_warning(
        '/t', 'RELIABILITY', 'reliable', [])
