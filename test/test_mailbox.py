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

"""The latest-frame mailbox without DDS: drops, round-robin, invalid frames, stop, threads."""

import ast
import threading
import time

import pytest

from farsee_ros.ros import mailbox as mailbox_module
from farsee_ros.ros.mailbox import COUNTERS, Mailbox, MAX_PUBLISHERS


def test_the_mailbox_imports_nothing_from_ros():
    tree = ast.parse(open(mailbox_module.__file__).read())
    imported = {alias.name.split('.')[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split('.')[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {'dataclasses', 'threading', 'typing'}, imported


def test_a_frame_replaced_before_it_was_taken_counts_as_dropped():
    box = Mailbox(['cam'])
    box.put('cam', 'frame 1', 1.0)
    box.put('cam', 'frame 2', 2.0)
    box.put('cam', 'frame 3', 3.0)
    assert box.take(timeout=0) == ('cam', 'frame 3', 3.0)   # only the newest is kept
    assert box.take(timeout=0) is None
    counts = box.period()['cam'].counts
    assert (counts['received'], counts['dropped']) == (3, 2)


def test_the_worker_takes_cameras_round_robin():
    box = Mailbox(['a', 'b', 'c'])
    taken = []
    for _ in range(3):
        for name in ('a', 'b', 'c'):
            box.put(name, name, 0.0)
        taken += [box.take(timeout=0)[0] for _ in range(2)]   # one camera always left over
    # 'a' never starves 'b' and 'c' even though it is always put first.
    assert taken == ['a', 'b', 'c', 'a', 'b', 'c']
    # The camera left over in one round was replaced in the next: 'c' in round two, 'b' in three.
    assert {name: p.counts['dropped'] for name, p in box.period().items()} == \
        {'a': 0, 'b': 1, 'c': 1}


def test_an_invalid_frame_is_counted_and_never_displaces_the_pending_one():
    box = Mailbox(['cam'])
    box.put('cam', 'good', 5.0)
    for i in range(10):
        box.put_invalid('cam', f'bad {i}')
    assert box.take(timeout=0) == ('cam', 'good', 5.0)
    period = box.period()['cam']
    assert period.counts == {'received': 11, 'processed': 0, 'dropped': 0, 'invalid': 10,
                             'errors': 0, 'lost': 0, 'non_finite': 0}
    assert period.last_invalid == 'bad 9'


def test_a_blocked_take_returns_none_on_close():
    box = Mailbox(['cam'])
    result = []
    worker = threading.Thread(target=lambda: result.append(box.take()))
    worker.start()
    time.sleep(0.2)
    assert worker.is_alive() and not result   # waiting: nothing pending
    started = time.monotonic()
    box.close()
    worker.join(timeout=2.0)
    assert not worker.is_alive() and result == [None]
    assert time.monotonic() - started < 1.0
    box.put('cam', 'late', 0.0)
    assert box.take() is None   # closed: no more frames are handed out


def test_take_waits_for_a_frame_or_the_timeout():
    box = Mailbox(['cam'])
    started = time.monotonic()
    assert box.take(timeout=0.1) is None
    assert time.monotonic() - started >= 0.1
    threading.Timer(0.1, box.put, ('cam', 'frame', 7.0)).start()
    assert box.take(timeout=5.0) == ('cam', 'frame', 7.0)


def test_a_period_reports_totals_deltas_and_its_own_latencies():
    box = Mailbox(['cam'])
    for latency in (10.0, 20.0):
        box.put('cam', 'frame', 0.0)
        box.take(timeout=0)
        box.count_processed('cam', latency, {'inference': latency / 2, 'handoff': 0.5})
    box.count_error('cam', 'RuntimeError: out of memory')
    box.count_error('cam', 'NaN logits', non_finite=True)
    box.count_reported_lost('cam', 3)   # no sequence numbers seen: the report counts
    first = box.period()['cam']
    assert list(first.counts) == list(COUNTERS)
    assert first.counts == first.delta == {'received': 2, 'processed': 2, 'dropped': 0,
                                           'invalid': 0, 'errors': 2, 'lost': 3,
                                           'non_finite': 1}
    assert first.latencies_ms == [10.0, 20.0]
    assert first.stages_ms == {'inference': [5.0, 10.0], 'handoff': [0.5, 0.5]}
    assert first.last_error == 'NaN logits'
    box.put('cam', 'frame', 0.0)
    box.take(timeout=0)
    box.count_invalid('cam', 'corrupt jpeg')   # found malformed only when decoded
    second = box.period()['cam']
    assert second.counts['received'] == 3 and second.counts['invalid'] == 1
    assert second.delta == {'received': 1, 'processed': 0, 'dropped': 0, 'invalid': 1,
                            'errors': 0, 'lost': 0, 'non_finite': 0}
    assert second.latencies_ms == [] and second.last_invalid == 'corrupt jpeg'


def test_sequence_gaps_count_the_frames_that_never_arrived():
    box = Mailbox(['cam', 'other'])
    for number in (5, 6, 9, 10, 10, 8, 14):   # 7, 8 and 11-13 missing; 10 repeated, 8 late
        box.arrived('cam', b'driver', number)
    assert box.period()['cam'].counts['lost'] == 5
    box.arrived('cam', b'restarted', 1)       # another publisher starts its own count
    box.arrived('cam', b'restarted', 3)
    box.arrived('cam', b'driver', 15)
    box.arrived('cam', None, None)            # no numbers from the middleware: nothing
    box.count_reported_lost('cam', 4)         # numbers seen: the report is already in the gaps
    box.count_reported_lost('other', 2)       # none seen there: the report counts
    period = box.period()
    assert period['cam'].delta['lost'] == 1 and period['cam'].counts['lost'] == 6
    assert period['other'].counts['lost'] == 2
    for publisher in range(MAX_PUBLISHERS + 1):   # memory stays bounded: the oldest goes
        box.arrived('other', publisher, 1)
    box.arrived('other', 0, 5)                # forgotten: counting starts again
    box.arrived('other', MAX_PUBLISHERS, 4)   # remembered: 2 and 3 missing
    assert box.period()['other'].delta['lost'] == 2


def test_unknown_cameras_are_refused_by_name():
    with pytest.raises(ValueError, match=r"cameras=\['a', 'a'\]"):
        Mailbox(['a', 'a'])
    with pytest.raises(KeyError, match=r"unknown camera 'c'; known: \['a', 'b'\]"):
        Mailbox(['a', 'b']).put('c', 'frame', 0.0)


def test_a_producer_and_a_consumer_thread_account_for_every_frame():
    box = Mailbox(['left', 'right'])
    sent = 5000
    taken = {'left': [], 'right': []}

    def produce():
        for i in range(sent):
            box.put('left' if i % 2 else 'right', i, float(i))
            if i % 100 == 0:
                time.sleep(0.001)   # let the consumer catch up now and then

    def consume():
        while True:
            item = box.take()
            if item is None:
                return
            camera, frame, _ = item
            taken[camera].append(frame)
            box.count_processed(camera, 1.0)

    consumer = threading.Thread(target=consume)
    producer = threading.Thread(target=produce)
    consumer.start()
    producer.start()
    producer.join()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and sum(
            p.counts['processed'] + p.counts['dropped'] for p in box.period().values()) < sent:
        time.sleep(0.01)   # the consumer is still on the last frames
    box.close()
    consumer.join(timeout=2.0)
    assert not consumer.is_alive()
    periods = box.period()
    for camera, frames in taken.items():
        counts = periods[camera].counts
        assert counts['received'] == sent // 2
        assert counts['processed'] + counts['dropped'] == counts['received'], counts
        assert counts['processed'] == len(frames) > 0
        assert frames == sorted(frames)   # newest only: never an older frame after a newer one
    assert taken['left'][-1] == sent - 1 and taken['right'][-1] == sent - 2   # last ones ran
