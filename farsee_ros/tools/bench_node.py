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
`farsee-ros bench-node`: the node's latency through real DDS, and its overhead.

A publisher (this process) sends frames at a fixed rate to segment_node (its own process);
this process also subscribes to the labels. Reported: per-stage medians from the node's
per-frame latency records, the node's overhead (everything but the model forward: decode,
preprocess, postprocess, publish), the end-to-end latency a subscriber sees (labels received
minus the frame's stamp) and that minus the model forward, and frames sent/processed/dropped.

`--soak SECONDS` is the overload and soak mode: frames go out at up to `--rate` Hz for that
long, and the report accounts for every one from the node's own /diagnostics counters (sent,
received by the node, processed, dropped by its newest-frame-wins mailbox, lost before it),
with the end-to-end latency of the frames that came back, the node process's resident memory
(sampled every second) and whether it crashed.
"""

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .bag import BagFrame
from ..common import percentiles
from ..engine import add_backend_argument, add_device_argument
from ..ros.parameters import LATENCY_STAGES

STATISTICS = ('p50', 'p95', 'p99', 'max')
SOAK_STATISTICS = ('p50', 'p99', 'max')
IMAGE_TOPIC = '/bench/image_raw'
DIAGNOSTICS_TOPIC = '/diagnostics'
RSS_GROWTH_LIMIT_MIB = 50.0   # the soak's bar: the node's resident memory grows less than this
QUIET_S = 4.0   # counters unchanged this long after the soak: settled (> the 3 s DDS heartbeat)
# --transport: the Fast DDS setting of both ends (the node and this process's subscriber).
TRANSPORTS = {
    'default': {},                                        # what a user has: the node's profile
    'default-no-profile': {'FARSEE_FASTDDS_PROFILE': '0'},   # Fast DDS defaults on both ends
    'large-data': {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the bench-node command's options to `parser`."""
    parser.add_argument('--model', help='checkpoint (default: an untrained FarSee-Net, CamVid '
                        'classes, 512x768 input: speed only)')
    add_device_argument(parser)
    add_backend_argument(parser)
    parser.add_argument('--size', type=int, nargs=2, default=[1024, 2048], metavar=('H', 'W'))
    parser.add_argument('--rate', type=_positive, default=30.0,
                        help='frames per second sent (with --soak: at most; the rate achieved '
                        'is reported)')
    parser.add_argument('--frames', type=int, default=150,
                        help='frames measured (not with --soak)')
    parser.add_argument('--soak', type=_positive, metavar='SECONDS',
                        help='overload and soak mode: send frames at up to --rate for SECONDS; '
                        'report latency p50/p99/max, frames sent/processed/dropped/lost from '
                        "the node's counters, the node process's memory and whether it crashed")
    parser.add_argument('--warmup', type=int, default=20, help='frames sent first, not counted')
    parser.add_argument('--transport', nargs='+', default=['default'], choices=list(TRANSPORTS),
                        help='Fast DDS setting of both ends, one run each: default (what a '
                        "user who configured nothing has; the node applies its own profile), "
                        'default-no-profile (Fast DDS defaults everywhere), large-data')
    parser.add_argument('--no-overlay', action='store_true',
                        help='do not subscribe to the overlay (it is then not rendered)')
    parser.add_argument('--report', help='write the results as JSON here')


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f'must be a positive number, got {text!r}')
    return value


def _untrained_checkpoint(folder: str) -> str:
    from ..model.checkpoint import make_metadata, save_checkpoint
    from ..model.classes import CAMVID
    from ..model.network import build_model
    model = build_model('farseenet', num_classes=CAMVID.num_classes)
    path = os.path.join(folder, 'untrained_farseenet.pt')
    save_checkpoint(path, model, make_metadata(model, CAMVID, input_size=[512, 768],
                                               dataset='untrained (speed only)'))
    return path


def measure(*, model: Optional[str] = None, device: str = 'auto', backend: str = 'auto',
            size: Sequence[int] = (1024, 2048), rate: float = 30.0, frames: int = 150,
            warmup: int = 20, overlay: bool = True, transport: str = 'default') -> Dict[str, Any]:
    """Start segment_node, send `frames` bgr8 frames of `size` at `rate` Hz, summarise."""
    # Discovery stays at the ROS default (SUBNET) because LOCALHOST makes rmw_fastrtps ignore
    # FASTDDS_BUILTIN_TRANSPORTS (docs/qos.md); node_run gives the run its own domain.
    from .node_run import play

    sequence = [BagFrame(0, 'bench', 'bgr8', _pixels(size))] * frames
    with _transport_environment(transport), tempfile.TemporaryDirectory() as folder:
        playback = play(sequence, IMAGE_TOPIC, model=model or _untrained_checkpoint(folder),
                        device=device, backend=backend, rate=rate, overlay=overlay,
                        warmup=warmup, drain=10.0,
                        desc='bench_node')
    results = summarise(playback, size=size, rate=rate, overlay=overlay)
    results.update(transport=transport, device_log=[playback.node])
    return results


def _pixels(size: Sequence[int]) -> np.ndarray:
    height, width = size
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


@contextlib.contextmanager
def _transport_environment(transport: str) -> Iterator[None]:
    """Set `transport`'s Fast DDS variables for both ends (the node inherits them); restore."""
    if transport not in TRANSPORTS:
        raise ValueError(f'transport {transport!r}; accepted: {", ".join(TRANSPORTS)}')
    saved = {k: os.environ.get(k) for settings in TRANSPORTS.values() for k in settings}
    try:
        for key in saved:
            os.environ.pop(key, None)
        os.environ.update(TRANSPORTS[transport])
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value


def run(args: argparse.Namespace) -> int:
    """Measure (or soak), print the tables and write the JSON report."""
    if args.soak:
        return _run_soak(args)
    runs = [measure(model=args.model, device=args.device, backend=args.backend,
                    size=args.size, rate=args.rate,
                    frames=args.frames, warmup=args.warmup, overlay=not args.no_overlay,
                    transport=transport) for transport in args.transport]
    for results in runs:
        _print(results)
    results = runs[0] if len(runs) == 1 else {'runs': runs}
    if len(runs) > 1:
        print('| transport | frames | subscriber p50 | p99 | max | minus the node\'s own p50 |')
        print('| --- | ---: | ---: | ---: | ---: | ---: |')
        for r in runs:
            lat, extra = r['subscriber_latency_ms'], r['subscriber_minus_node_ms']
            print(f"| {r['transport']} | {r['frames_processed']}/{r['frames_sent']} | "
                  f"{_ms(lat['p50'])} | {_ms(lat['p99'])} | {_ms(lat['max'])} | "
                  f"{_ms(extra['p50'])} |")
    _write_report(args.report, results)
    return 0


def _write_report(path: Optional[str], results: Dict[str, Any]) -> None:
    if path:
        with open(path, 'w') as f:
            json.dump(results, f, indent=2)
        print(f'wrote {path}')


def summarise(playback, *, size: Sequence[int], rate: float, overlay: bool) -> Dict[str, Any]:
    """Join the node's outputs to the frames sent: stage medians, overhead, latency."""
    from .harness import latency_stages
    from .node_run import first_by_stamp

    stages: Dict[str, List[float]] = {k: [] for k in LATENCY_STAGES}
    node_by_stamp = {}
    for stamp, (_, msg) in first_by_stamp(playback.sent, playback.latency).items():
        values = latency_stages(msg)
        node_by_stamp[stamp] = values
        for key in LATENCY_STAGES:
            stages[key].append(values[key])
    subscriber, subscriber_overhead, after_node = [], [], []
    received = first_by_stamp(playback.sent, playback.labels)
    for stamp, (received_ns, _) in received.items():
        subscriber.append((received_ns - stamp) / 1e6)
        if stamp in node_by_stamp:
            subscriber_overhead.append(subscriber[-1] - node_by_stamp[stamp]['inference'])
            # The node's end_to_end is taken just after it published the frame's outputs.
            after_node.append(subscriber[-1] - node_by_stamp[stamp]['end_to_end'])
    node_overhead = [p - i for p, i in zip(stages['processing'], stages['inference'])]
    return {
        'frame': f'{size[0]}x{size[1]} bgr8', 'rate_hz': rate,
        'overlay_subscribed': overlay, 'frames_sent': len(playback.sent),
        'frames_processed': len(received), 'dropped': len(playback.sent) - len(received),
        'stage_median_ms': {k: percentiles(v, ('p50',))['p50'] for k, v in stages.items()},
        'node_overhead_ms': percentiles(node_overhead, STATISTICS),
        'subscriber_latency_ms': percentiles(subscriber, STATISTICS),
        'subscriber_latency_minus_inference_ms': percentiles(subscriber_overhead, STATISTICS),
        'subscriber_minus_node_ms': percentiles(after_node, STATISTICS),
    }


def _ms(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.1f}'


def _print(results: Dict[str, Any]) -> None:
    print(f"segment_node, {results['frame']} at {results['rate_hz']:g} Hz, Fast DDS "
          f"{results['transport']}, overlay "
          f"{'subscribed' if results['overlay_subscribed'] else 'not subscribed'}: "
          f"{results['frames_processed']}/{results['frames_sent']} frames processed, "
          f"{results['dropped']} dropped (latest-frame-only)")
    print('| stage | median (ms) |')
    print('| --- | ---: |')
    for key, value in results['stage_median_ms'].items():
        print(f'| {key} | {_ms(value)} |')
    print('| measure | p50 | p95 | p99 | max |')
    print('| --- | ---: | ---: | ---: | ---: |')
    for key in ('node_overhead_ms', 'subscriber_latency_ms',
                'subscriber_latency_minus_inference_ms', 'subscriber_minus_node_ms'):
        v = results[key]
        print(f"| {key} | {' | '.join(_ms(v[k]) for k in STATISTICS)} |")


# ------------------------------------------------------------------ --soak: overload and soak
def soak(*, model: Optional[str] = None, device: str = 'auto', backend: str = 'auto',
         size: Sequence[int] = (1024, 2048), rate: float = 100.0, seconds: float = 60.0,
         warmup: int = 20, overlay: bool = True, transport: str = 'default') -> Dict[str, Any]:
    """
    Send bgr8 frames of `size` at up to `rate` Hz for `seconds` through segment_node.

    After `warmup` round trips, publishes as fast as it can up to `rate`, then waits until
    the node's counters settle. Returns the rate achieved, what became of the frames (the
    node's /diagnostics counters over the soak), the end-to-end latency of those that came
    back, the node process's memory and its exit code (None: it ran throughout).
    """
    from diagnostic_msgs.msg import DiagnosticArray

    from .harness import image_message
    from .node_run import NodeRun, RECORD_DEPTH

    pixels = _pixels(size)
    with _transport_environment(transport), tempfile.TemporaryDirectory() as folder, \
            NodeRun(IMAGE_TOPIC, model=model or _untrained_checkpoint(folder), device=device,
                    backend=backend, overlay=overlay, name='soak') as node_run:
        node_run.client.collect(DiagnosticArray, DIAGNOSTICS_TOPIC, depth=RECORD_DEPTH)
        node_run.wait_until_subscribed()
        node_run.warm_up(BagFrame(0, 'bench', 'bgr8', pixels), warmup)
        recorder = SoakRecorder(node_run)
        baseline = recorder.counters_after(node_run.client.now_ns(), timeout=10.0)
        if baseline is None:
            node_run.check_alive()
            raise RuntimeError(f'segment_node published no {DIAGNOSTICS_TOPIC} after warm-up')
        print(f'soak: {seconds:g} s at up to {rate:g} Hz ...', file=sys.stderr, flush=True)
        with RssSampler(node_run.node.process.pid) as memory:
            stamps, publisher = publish_for(node_run, recorder,
                                            image_message(pixels, 'bgr8', 0, 'bench'),
                                            rate=rate, seconds=seconds)
            final, settled = recorder.settle(after_ns=node_run.client.now_ns(),
                                             sent=len(stamps), baseline=baseline)
        exit_code = node_run.node.process.poll()
        log_tail = node_run.node.log().strip().splitlines()[-5:]
        qos = node_run.camera.qos_profile
    return {
        'mode': 'soak', 'frame': f'{size[0]}x{size[1]} bgr8', 'transport': transport,
        'overlay_subscribed': overlay, 'seconds': seconds, 'rate_hz': rate, **publisher,
        'publisher_qos': {'reliability': qos.reliability.name.lower(),
                          'history': qos.history.name.lower(), 'depth': qos.depth,
                          'durability': qos.durability.name.lower()},
        'node_subscription_reliability': recorder.values.get('qos_reliability'),
        'frames': account(sent=len(stamps), before=baseline, after=final, settled=settled,
                          returned=sum(s in recorder.labels for s in stamps)),
        'latency_ms': percentiles([(recorder.labels[s] - s) / 1e6 for s in stamps
                                   if s in recorder.labels], SOAK_STATISTICS),
        'node_processing_ms': percentiles([recorder.processing_ms[s] for s in stamps
                                           if s in recorder.processing_ms], SOAK_STATISTICS),
        'node_memory_mib': memory.summary(),
        'node_exit': {'crashed': exit_code is not None, 'exit_code_during_run': exit_code,
                      'exit_code_after_sigint': node_run.node.process.returncode,
                      'log_tail': log_tail if exit_code is not None else []},
        'device_log': [node_run.node_line],
    }


def publish_for(node_run, recorder: 'SoakRecorder', msg: Any, *, rate: float,
                seconds: float) -> Tuple[List[int], Dict[str, Any]]:
    """
    Publish `msg`, stamped anew each time, at up to `rate` Hz for `seconds`; return what was sent.

    Stops early if the node exits; drains `recorder` every second. Returns the stamps sent
    and the publisher's figures (rate achieved, publish() call times, failures).

    A publish() that raises (Fast DDS's reliable writer gives up when its history stays full
    of unacknowledged frames) is counted as failed, not sent, and the soak goes on.
    """
    stamps: List[int] = []
    calls_ms: List[float] = []
    failures: List[str] = []
    start = time.monotonic()
    next_drain = start + 1.0
    while node_run.node.alive():
        due = start + len(calls_ms) / rate   # behind schedule: publish at once, as fast as it can
        if due >= start + seconds:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        stamp = node_run.client.now_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        before = time.perf_counter()
        try:
            node_run.camera.publish(msg)
            stamps.append(stamp)
        except RuntimeError as exc:   # rclpy's RCLError
            failures.append(str(exc))
        calls_ms.append((time.perf_counter() - before) * 1e3)
        if time.monotonic() >= next_drain:
            recorder.drain()
            next_drain += 1.0
    elapsed = time.monotonic() - start
    return stamps, {'publish_seconds': round(elapsed, 3),
                    'achieved_rate_hz': len(stamps) / elapsed if elapsed > 0 else 0.0,
                    'publish_call_ms': percentiles(calls_ms, SOAK_STATISTICS),
                    'publish_failed': len(failures), 'publish_error': failures[-1:]}


def account(*, sent: int, before: Dict[str, int], after: Dict[str, int], settled: bool,
            returned: int) -> Dict[str, Any]:
    """
    Say what became of `sent` frames: the node's counters from `before` to `after`, and gaps.

    lost_before_node: sent but never received by the node (DDS: see publisher_qos);
    node_counted_lost: those the node counted itself (gaps in the publisher's sequence
    numbers); unaccounted_in_node: received but neither processed, dropped, invalid nor
    failed. Every frame is accounted when each one sent was handled or counted lost.
    """
    node = {key: after[key] - before.get(key, 0) for key in after}   # every frames_* counter
    handled = node['processed'] + node['dropped'] + node['invalid'] + node['errors']
    return {
        'sent': sent, 'node_received': node['received'], 'processed': node['processed'],
        'dropped': node['dropped'], 'invalid': node['invalid'], 'errors': node['errors'],
        'node_counted_lost': node['lost'], 'lost_before_node': sent - node['received'],
        'unaccounted_in_node': node['received'] - handled, 'labels_returned': returned,
        'labels_lost_on_return': node['processed'] - returned, 'counters_settled': settled,
        'every_frame_accounted': settled and handled + node['lost'] == sent,
        'node_counters': node,
    }


class SoakRecorder:
    """What came back during a soak, taken off the client every second (its memory stays flat)."""

    def __init__(self, node_run):
        self.node_run = node_run
        self.labels: Dict[int, int] = {}            # stamp -> first labels' receive time (ns)
        self.processing_ms: Dict[int, float] = {}   # stamp -> the node's processing time
        self.counters: List[Tuple[int, Dict[str, int]]] = []   # (diagnostics stamp, counters)
        self.values: Dict[str, str] = {}            # the latest camera status's values

    def drain(self) -> None:
        """Take every message recorded so far off the client and keep what the soak needs."""
        from .harness import latency_stages, stamp_ns

        client, node_run = self.node_run.client, self.node_run
        with client.lock:
            taken = {topic: messages[:] for topic, messages in client.received.items()}
            for messages in client.received.values():
                del messages[:]
        for received_ns, msg in taken.get(node_run.labels_topic, []):
            self.labels.setdefault(stamp_ns(msg.header), received_ns)
        for _, msg in taken.get(node_run.latency_topic, []):
            self.processing_ms.setdefault(stamp_ns(msg.header),
                                          latency_stages(msg)['processing'])
        for _, msg in taken.get(DIAGNOSTICS_TOPIC, []):
            for status in msg.status:
                if status.name.endswith(f': {node_run.image_topic}'):
                    self.values = {kv.key: kv.value for kv in status.values}
                    self.counters.append((stamp_ns(msg.header), {
                        key[len('frames_'):]: int(value) for key, value in self.values.items()
                        if key.startswith('frames_')}))

    def counters_after(self, after_ns: int, timeout: float) -> Optional[Dict[str, int]]:
        """Return the node's counters from its first /diagnostics stamped after `after_ns`."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            later = [counts for stamp, counts in self.counters if stamp > after_ns]
            if later or time.monotonic() > deadline or not self.node_run.node.alive():
                return later[0] if later else None
            time.sleep(0.1)

    def settle(self, *, after_ns: int, sent: int, baseline: Dict[str, int],
               timeout: float = 30.0) -> Tuple[Dict[str, int], bool]:
        """
        Wait until the node's counters (stamped after `after_ns`) settle; return them, settled.

        Settled: every frame received was handled, and either all `sent` arrived or the
        counters stayed unchanged for QUIET_S (a reliable repair may deliver late ones).
        """
        deadline = time.monotonic() + timeout
        latest, changed = None, time.monotonic()
        while True:
            self.drain()
            later = [counts for stamp, counts in self.counters if stamp > after_ns]
            if later and later[-1] != latest:
                latest, changed = later[-1], time.monotonic()
            if latest is not None and _handled_all(latest) and (
                    latest['received'] - baseline['received'] >= sent
                    or time.monotonic() - changed >= QUIET_S):
                time.sleep(0.5)   # the last frame's labels: published before its counters
                self.drain()
                return latest, True
            if time.monotonic() > deadline or not self.node_run.node.alive():
                last = self.counters[-1][1] if self.counters else baseline
                return latest or last, False
            time.sleep(0.2)


def _handled_all(counts: Dict[str, int]) -> bool:
    return counts['received'] == sum(counts[k] for k in ('processed', 'dropped', 'invalid',
                                                         'errors'))


def rss_mib(pid: int) -> Optional[float]:
    """Return a process's resident set size (VmRSS) in MiB, None once it has exited."""
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


class RssSampler:
    """A process's resident memory, read at entry, every `period` s from a thread, at exit."""

    def __init__(self, pid: int, period: float = 1.0):
        self.pid, self.period = pid, period
        self.samples: List[Tuple[float, float]] = []   # (seconds since entry, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def __enter__(self) -> 'RssSampler':
        self._start = time.monotonic()
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        """Read the process's RSS now (nothing once it has exited)."""
        rss = rss_mib(self.pid)
        if rss is not None:
            self.samples.append((round(time.monotonic() - self._start, 2), round(rss, 1)))

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def summary(self) -> Dict[str, Any]:
        """
        Return RSS (MiB) idle, at the start and end of the load, max, the growth and a trend.

        The node steps from its idle size to its working set in the first seconds under load;
        that step is not growth. So after the first quarter (at most 5 s), `start` and `end`
        are medians of the first and last sixth of the samples (single samples saw-tooth with
        every frame buffer), `growth` = end - start is judged against the bar, and the trend
        is the least-squares slope in MiB/min over the same samples.
        """
        empty = {'idle': None, 'start': None, 'max': None, 'end': None, 'growth': None,
                 'limit': RSS_GROWTH_LIMIT_MIB, 'within_limit': None, 'trend_mib_per_min': None,
                 'samples': []}
        if not self.samples:
            return empty
        skip = min(5.0, self.samples[-1][0] / 4)
        later = np.array([sample for sample in self.samples if sample[0] >= skip])
        if len(later) < 3:
            return dict(empty, idle=self.samples[0][1], samples=[list(s) for s in self.samples])
        window = max(1, len(later) // 6)
        start = round(float(np.median(later[:window, 1])), 1)
        end = round(float(np.median(later[-window:, 1])), 1)
        trend = round(float(np.polyfit(later[:, 0], later[:, 1], 1)[0]) * 60, 1)
        growth = round(end - start, 1)
        return {'idle': self.samples[0][1], 'start': start,
                'max': max(rss for _, rss in self.samples), 'end': end, 'growth': growth,
                'limit': RSS_GROWTH_LIMIT_MIB, 'within_limit': growth < RSS_GROWTH_LIMIT_MIB,
                'trend_mib_per_min': trend, 'samples': [list(sample) for sample in self.samples]}


def _run_soak(args: argparse.Namespace) -> int:
    runs = [soak(model=args.model, device=args.device, backend=args.backend, size=args.size,
                 rate=args.rate,
                 seconds=args.soak, warmup=args.warmup, overlay=not args.no_overlay,
                 transport=transport) for transport in args.transport]
    for results in runs:
        _print_soak(results)
    _write_report(args.report, runs[0] if len(runs) == 1 else {'runs': runs})
    return 1 if any(r['node_exit']['crashed'] for r in runs) else 0


def _print_soak(r: Dict[str, Any]) -> None:
    f, m, q, e = r['frames'], r['node_memory_mib'], r['publisher_qos'], r['node_exit']
    print(f"segment_node soak, {r['frame']} for {r['seconds']:g} s at up to {r['rate_hz']:g} Hz "
          f"(achieved {r['achieved_rate_hz']:.1f} Hz), Fast DDS {r['transport']}, overlay "
          f"{'subscribed' if r['overlay_subscribed'] else 'not subscribed'}; publisher QoS "
          f"{q['reliability']} {q['history']} {q['depth']}, node subscription "
          f"{r['node_subscription_reliability']}; {r['device_log'][0].split(']: ')[-1]}")
    print('| publish failed | sent | node received | processed | dropped | invalid | errors '
          '| lost before node | counted lost by the node | unaccounted | labels back |')
    print('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
    print(f"| {r['publish_failed']} | {f['sent']} | {f['node_received']} | {f['processed']} | "
          f"{f['dropped']} | {f['invalid']} | {f['errors']} | {f['lost_before_node']} | "
          f"{f['node_counted_lost']} | {f['unaccounted_in_node']} | {f['labels_returned']} |")
    print('| ms | p50 | p99 | max |')
    print('| --- | ---: | ---: | ---: |')
    for key, label in (('latency_ms', 'end to end (labels received - stamp)'),
                       ('node_processing_ms', 'node processing'),
                       ('publish_call_ms', 'publish() call')):
        print(f"| {label} | {' | '.join(_ms(r[key][k]) for k in SOAK_STATISTICS)} |")
    print('| node RSS (MiB) | idle | start (under load) | max | end | growth | '
          'trend (MiB/min) |')
    print('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
    print(f"| segment_node | {_ms(m['idle'])} | {_ms(m['start'])} | {_ms(m['max'])} | "
          f"{_ms(m['end'])} | {_ms(m['growth'])} | {_ms(m['trend_mib_per_min'])} |")
    uncounted = f['lost_before_node'] - f['node_counted_lost']
    gaps = ([f'{uncounted} lost before the node and not counted by it'] if uncounted else []) + \
        ([f"{f['unaccounted_in_node']} unaccounted in the node"]
         if f['unaccounted_in_node'] else []) + \
        ([] if f['counters_settled'] else ['counters not settled'])
    lost = (f"; {f['lost_before_node']} never reached the node (publisher QoS "
            f"{q['reliability']} {q['history']} {q['depth']}), {f['node_counted_lost']} of them "
            'counted lost by the node' if f['lost_before_node'] else '')
    print('accounting: ' + ('every frame sent was processed, dropped or counted lost' if
                            f['every_frame_accounted'] else 'GAP: ' + ', '.join(gaps or ['?']))
          + lost)
    if r['publish_failed']:
        print(f"publisher: {r['publish_failed']} publish() calls raised, those frames were not "
              f"sent (last: {r['publish_error'][0]})")
    print(f"memory: growth under load (end - start, medians) {_ms(m['growth'])} MiB, "
          f"{'within' if m['within_limit'] else 'OVER'} the {m['limit']:g} MiB bar; trend "
          f"{_ms(m['trend_mib_per_min'])} MiB/min after the first quarter (at most 5 s)")
    print('node: ' + (f"CRASHED, exit code {e['exit_code_during_run']}: "
                      + ' / '.join(e['log_tail']) if e['crashed'] else
                      f"ran throughout; exit code {e['exit_code_after_sigint']} after SIGINT"))
