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

"""The node's own Fast DDS profile: when it is loaded, and what it holds."""

import xml.etree.ElementTree as ET

from farsee_ros.ros.fastdds import node_profile, OPT_OUT, profile_path


def test_loaded_only_when_the_user_chose_nothing(tmp_path):
    path, note = node_profile({}, cwd=str(tmp_path))
    assert path == profile_path() and path.endswith('config/fastdds_node.xml') and path in note
    assert node_profile({'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'}, cwd=str(tmp_path))[0] == path
    for environ in ({'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'},
                    {'RMW_IMPLEMENTATION': 'rmw_zenoh_cpp'},
                    {OPT_OUT: '0'}, {OPT_OUT: 'off'},
                    {'FASTDDS_DEFAULT_PROFILES_FILE': '/etc/mine.xml'},
                    {'FASTRTPS_DEFAULT_PROFILES_FILE': '/etc/mine.xml'},
                    {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'},
                    {'FASTDDS_BUILTIN_TRANSPORTS': 'UDPv4'}):
        path, note = node_profile(environ, cwd=str(tmp_path))
        assert path is None, environ
        assert next(iter(environ.values())) in note, note
    (tmp_path / 'DEFAULT_FASTDDS_PROFILES.xml').write_text('<dds/>')
    path, note = node_profile({}, cwd=str(tmp_path))
    assert path is None and 'DEFAULT_FASTDDS_PROFILES.xml' in note


def test_the_profile_keeps_udp_and_enlarges_shared_memory():
    root = ET.parse(profile_path()).getroot()
    ns = {'d': 'http://www.eprosima.com'}
    kinds = {d.findtext('d:transport_id', namespaces=ns): d.findtext('d:type', namespaces=ns)
             for d in root.iterfind('.//d:transport_descriptor', ns)}
    assert sorted(kinds.values()) == ['SHM', 'TCPv4', 'UDPv4']   # peers elsewhere: UDP stays
    shm = next(d for d in root.iterfind('.//d:transport_descriptor', ns)
               if d.findtext('d:type', namespaces=ns) == 'SHM')
    assert int(shm.findtext('d:segment_size', namespaces=ns)) >= 4 * 1024 * 1024
    participant = root.find('.//d:participant', ns)
    assert participant.get('is_default_profile') == 'true'
    assert participant.findtext('.//d:useBuiltinTransports', namespaces=ns) == 'false'
    used = [t.text for t in participant.iterfind('.//d:userTransports/d:transport_id', ns)]
    assert sorted(used) == sorted(kinds)
    writer = root.find('.//d:data_writer', ns)
    assert writer.get('is_default_profile') == 'true'
    period = writer.find('.//d:heartbeat_period', ns)
    assert int(period.findtext('d:sec', namespaces=ns)) == 0
    assert int(period.findtext('d:nanosec', namespaces=ns)) <= 200_000_000
