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
The latest-frame hand-off: each camera's newest pending frame, taken by one worker thread.

Subscription callbacks put frames in; the worker takes them round-robin across cameras. A
frame replaced before the worker took it is counted as dropped, so latency never builds up a
backlog. The per-camera counters and the diagnostics period live here too, under the same
lock. No ROS imports: a frame is any object, and the tests run without DDS.
"""

from dataclasses import dataclass, field
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

# Per camera, since start: frames that arrived, were published, were replaced while pending,
# were rejected as malformed, failed inference, or were sent but never arrived (lost); and of
# the errors, those whose logits held NaN or inf (nothing published for them).
COUNTERS = ('received', 'processed', 'dropped', 'invalid', 'errors', 'lost', 'non_finite')
# Publishers whose last sequence number a camera remembers (a restarted driver is a new one).
MAX_PUBLISHERS = 64


@dataclass
class Period:
    """One camera's counters at the end of a diagnostics period, and what changed in it."""

    counts: Dict[str, int]        # since start, in COUNTERS order
    delta: Dict[str, int]         # during this period
    latencies_ms: List[float]     # end to end, of the frames processed during this period
    last_invalid: str             # why the latest invalid frame was rejected ('' if none yet)
    last_error: str               # the latest inference failure ('' if none yet)
    stages_ms: Dict[str, List[float]] = field(default_factory=dict)   # per stage, same frames


@dataclass
class _Slot:
    """One camera's pending frame, counters and period state."""

    pending: Any = None
    pending_since: float = 0.0
    counts: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    period_start: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    latencies_ms: List[float] = field(default_factory=list)
    stages_ms: Dict[str, List[float]] = field(default_factory=dict)
    last_invalid: str = ''
    last_error: str = ''
    sequences: Dict[Any, int] = field(default_factory=dict)   # publisher -> last number seen


class Mailbox:
    """Keeps the newest frame per camera for one worker, and counts what became of each."""

    def __init__(self, cameras: Sequence[str]):
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f'Mailbox cameras={list(cameras)!r}: give one or more distinct '
                             'camera names')
        self._slots = {name: _Slot() for name in cameras}
        self._names = list(cameras)
        self._next = 0                       # where the next round-robin scan starts
        self._condition = threading.Condition()
        self._closed = False

    # ---------------------------------------------------------------- producers (callbacks)
    def put(self, camera: str, frame: Any, now: float) -> None:
        """Make `frame` (arrived at time `now`) the camera's pending one; a replaced one drops."""
        with self._condition:
            slot = self._slot(camera)
            slot.counts['received'] += 1
            if slot.pending is not None:
                slot.counts['dropped'] += 1
            slot.pending, slot.pending_since = frame, now
            self._condition.notify()

    def put_invalid(self, camera: str, reason: str) -> None:
        """Count a frame rejected on arrival; the camera's pending frame, if any, stays."""
        with self._condition:
            slot = self._slot(camera)
            slot.counts['received'] += 1
            slot.counts['invalid'] += 1
            slot.last_invalid = reason

    def arrived(self, camera: str, publisher: Any, sequence: Optional[int]) -> None:
        """
        Note a frame's publisher and its publication sequence number; count the gap as lost.

        Every frame the publisher wrote that never reached the node (lost on the wire, discarded
        by the writer, or overwritten in the node's reader queue) leaves a gap in the numbers
        of the frames that did. The first frame of a publisher sets where counting starts; an
        older or repeated number counts nothing. `sequence` None (a middleware without
        publication sequence numbers) counts nothing: count_reported_lost counts instead.
        """
        if sequence is None:
            return
        with self._condition:
            slot = self._slot(camera)
            seen = slot.sequences
            last = seen.pop(publisher, None)
            if last is not None and sequence > last + 1:
                slot.counts['lost'] += sequence - last - 1
            seen[publisher] = sequence if last is None else max(last, sequence)
            while len(seen) > MAX_PUBLISHERS:   # forget the longest-silent publisher
                del seen[next(iter(seen))]

    def count_reported_lost(self, camera: str, count: int) -> None:
        """
        Count frames the middleware reports lost, where frames carry no sequence numbers.

        Once a camera's frames carry publication sequence numbers their gaps count instead
        (they include what the middleware reports), so the report is not counted twice.
        """
        with self._condition:
            slot = self._slot(camera)
            if not slot.sequences:
                slot.counts['lost'] += count

    # ---------------------------------------------------------------- the worker
    def take(self, timeout: Optional[float] = None) -> Optional[Tuple[str, Any, float]]:
        """
        Wait for a pending frame and return (camera, frame, arrival time), round-robin.

        Returns None once the mailbox is closed (pending frames are then left), or when
        `timeout` seconds pass with nothing pending; without a timeout it waits until one of
        the two happens.
        """
        with self._condition:
            self._condition.wait_for(
                lambda: self._closed or self._first_pending() is not None, timeout)
            index = None if self._closed else self._first_pending()
            if index is None:
                return None
            self._next = (index + 1) % len(self._names)
            camera = self._names[index]
            slot = self._slots[camera]
            frame, since = slot.pending, slot.pending_since
            slot.pending = None
            return camera, frame, since

    def count_processed(self, camera: str, latency_ms: float,
                        stages_ms: Optional[Dict[str, float]] = None) -> None:
        """Count a taken frame whose results were published: its end-to-end and stage times."""
        with self._condition:
            slot = self._slot(camera)
            slot.counts['processed'] += 1
            slot.latencies_ms.append(latency_ms)
            for stage, ms in (stages_ms or {}).items():
                slot.stages_ms.setdefault(stage, []).append(ms)

    def count_invalid(self, camera: str, reason: str) -> None:
        """Count a taken frame found malformed only when decoded (it was already received)."""
        with self._condition:
            slot = self._slot(camera)
            slot.counts['invalid'] += 1
            slot.last_invalid = reason

    def count_error(self, camera: str, reason: str, non_finite: bool = False) -> None:
        """Count a taken frame whose inference failed (`non_finite`: NaN/inf logits)."""
        with self._condition:
            slot = self._slot(camera)
            slot.counts['errors'] += 1
            slot.counts['non_finite'] += int(non_finite)
            slot.last_error = reason

    def close(self) -> None:
        """Stop handing out frames and wake a waiting worker (its take() returns None)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    # ---------------------------------------------------------------- diagnostics
    def period(self) -> Dict[str, Period]:
        """End the current diagnostics period: return each camera's Period, start a new one."""
        periods = {}
        with self._condition:
            for camera, slot in self._slots.items():
                counts = dict(slot.counts)
                delta = {k: v - slot.period_start[k] for k, v in counts.items()}
                latencies, slot.latencies_ms = slot.latencies_ms, []
                stages, slot.stages_ms = slot.stages_ms, {}
                slot.period_start = counts
                periods[camera] = Period(counts, delta, latencies, slot.last_invalid,
                                         slot.last_error, stages)
        return periods

    # ---------------------------------------------------------------- helpers (lock held)
    def _slot(self, camera: str) -> _Slot:
        try:
            return self._slots[camera]
        except KeyError:
            raise KeyError(f'unknown camera {camera!r}; known: {self._names}') from None

    def _first_pending(self) -> Optional[int]:
        count = len(self._names)
        for step in range(count):
            index = (self._next + step) % count
            if self._slots[self._names[index]].pending is not None:
                return index
        return None
