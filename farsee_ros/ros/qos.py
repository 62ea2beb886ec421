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
Matching a camera subscription's QoS to what the camera's publishers offer.

Functions of publisher-info lists (what Node.get_publishers_info_by_topic returns), so they
are tested without DDS. See docs/qos.md for why reliability is the setting that matters.
"""

from typing import Optional, Sequence

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.topic_endpoint_info import TopicEndpointInfo

RELIABILITY = {'reliable': ReliabilityPolicy.RELIABLE,
               'best_effort': ReliabilityPolicy.BEST_EFFORT}


def offered_reliability(publishers: Sequence[TopicEndpointInfo]) -> Optional[str]:
    """
    Return the reliability that every publisher is compatible with, or None with none.

    'reliable' only when every publisher offers reliable, else 'best_effort' (compatible with
    every publisher), as ros2 topic echo chooses.
    """
    if not publishers:
        return None
    if all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers):
        return 'reliable'
    return 'best_effort'


def reliability_to_subscribe(wanted: str, publishers: Sequence[TopicEndpointInfo],
                             current: Optional[str]) -> Optional[str]:
    """
    Return the reliability to (re)subscribe with, or None to leave the subscription as it is.

    `wanted` is the qos_reliability parameter (auto, reliable or best_effort); `current` the
    reliability of the existing subscription, None before there is one. auto follows the
    publishers (re-subscribing when what they offer changes) and waits while there are none;
    a fixed choice subscribes once.
    """
    if wanted not in ('auto', *RELIABILITY):
        raise ValueError(f'qos_reliability={wanted!r} is not one of auto | reliable | '
                         'best_effort')
    if wanted != 'auto':
        return wanted if current is None else None
    offered = offered_reliability(publishers)
    return None if offered == current else offered


def subscription_qos(reliability: str, depth: int) -> QoSProfile:
    """Return the camera subscription's QoS: KEEP_LAST `depth`, volatile, `reliability`."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=RELIABILITY[reliability], durability=DurabilityPolicy.VOLATILE)


def incompatible_qos_warning(topic: str, policy: str, requested: Optional[str],
                             publishers: Sequence[TopicEndpointInfo]) -> str:
    """Say which policy is incompatible on `topic`, what we request and what each side offers."""
    offers = sorted({f'{p.node_namespace.rstrip("/")}/{p.node_name} offers '
                     f'{p.qos_profile.reliability.name.lower()}' for p in publishers})
    return (f'incompatible QoS on {topic} ({policy}): this subscription requests {requested}, '
            f'but {"; ".join(offers) or "a publisher offers otherwise"}; set qos_reliability to '
            'auto or best_effort')
