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
MAX_RATE_DROP_LIMIT = 0.05   # --max-rate: sustained = under 5% of frames unprocessed
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
    parser.add_argument('--max-rate', type=_positive, nargs='?', const=120.0, metavar='HIGH',
                        help="throughput mode: find the highest input rate (5 to HIGH Hz, "
                        "default 120) with < 5%% of frames unprocessed, by ros2_benchmark's "
                        'binary search and linear scan, confirmed by a load of --soak seconds '
                        '(default 20)')
    parser.add_argument('--probe-seconds', type=_positive, default=8.0,
                        help='--max-rate: length of each search load')
    parser.add_argument('--variants', nargs='+', metavar='NAME:=VALUE[,...]',
                        help='--max-rate: node configurations searched one after the other in '
                        'this run ("" = the defaults, e.g. "" "pipeline:=false"); the table '
                        'gives each one\'s ratio to the first')
    parser.add_argument('--cameras', type=int, default=1, metavar='N',
                        help='--soak and --max-rate: N cameras, each sending at the rate (the '
                        "node's image_topics); drops are judged per camera")
    parser.add_argument('--cameras-together', action='store_true',
                        help='--cameras: publish every camera\'s frame at the same tick '
                        '(synchronised cameras) instead of evenly spaced in the period')
    parser.add_argument('--param', action='append', default=[], metavar='NAME:=VALUE',
                        help='a node parameter for every run (repeatable), e.g. '
                        'inference_threads:=1')
    parser.add_argument('--warmup', type=int, default=20, help='frames sent first, not counted')
    parser.add_argument('--transport', nargs='+', default=['default'], choices=list(TRANSPORTS),
                        help='Fast DDS setting of both ends, one run each: default (what a '
                        "user who configured nothing has; the node applies its own profile), "
                        'default-no-profile (Fast DDS defaults everywhere), large-data')
    parser.add_argument('--no-overlay', action='store_true',
                        help='do not subscribe to the overlay (it is then not rendered)')
    parser.add_argument('--image', metavar='FILE',
                        help='send this picture (resized to --size) instead of random pixels: '
                        'the labels stage then costs what a scene costs (random pixels are its '
                        'worst case: every cell a class boundary)')
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
            warmup: int = 20, overlay: bool = True, transport: str = 'default',
            params: Optional[Dict[str, Any]] = None, image: Optional[str] = None
            ) -> Dict[str, Any]:
    """Start segment_node, send `frames` bgr8 frames of `size` at `rate` Hz, summarise."""
    # Discovery stays at the ROS default (SUBNET) because LOCALHOST makes rmw_fastrtps ignore
    # FASTDDS_BUILTIN_TRANSPORTS (docs/qos.md); node_run gives the run its own domain.
    from .node_run import play

    sequence = [BagFrame(0, 'bench', 'bgr8', _pixels(size, image))] * frames
    with _transport_environment(transport), tempfile.TemporaryDirectory() as folder:
        playback = play(sequence, IMAGE_TOPIC, model=model or _untrained_checkpoint(folder),
                        device=device, backend=backend, rate=rate, overlay=overlay,
                        warmup=warmup, drain=10.0, desc='bench_node', params=params)
    results = summarise(playback, size=size, rate=rate, overlay=overlay, image=image)
    results.update(transport=transport, params=dict(params or {}), device_log=[playback.node])
    return results


def _pixels(size: Sequence[int], image: Optional[str] = None) -> np.ndarray:
    """Return the bgr8 frame to send: random pixels, or `image` resized to `size` (H, W)."""
    height, width = size
    if image is None:
        return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(image) as picture:
            rgb = picture.convert('RGB').resize((width, height), Image.Resampling.BILINEAR)
    except (OSError, UnidentifiedImageError) as exc:
        raise SystemExit(f'--image {image}: cannot read it as a picture ({exc})') from None
    return np.ascontiguousarray(np.asarray(rgb)[..., ::-1])


def _frame_label(size: Sequence[int], image: Optional[str]) -> str:
    """Say what was sent, e.g. '360x480 bgr8 of random pixels'."""
    return f"{size[0]}x{size[1]} bgr8 of {os.path.basename(image) if image else 'random pixels'}"


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
    if args.max_rate:
        return _run_max_rate(args)
    if args.soak:
        return _run_soak(args)
    runs = [measure(model=args.model, device=args.device, backend=args.backend,
                    size=args.size, rate=args.rate,
                    frames=args.frames, warmup=args.warmup, overlay=not args.no_overlay,
                    transport=transport, params=node_params(args.param), image=args.image)
            for transport in args.transport]
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


def summarise(playback, *, size: Sequence[int], rate: float, overlay: bool,
              image: Optional[str] = None) -> Dict[str, Any]:
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
        'frame': _frame_label(size, image), 'rate_hz': rate,
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
@contextlib.contextmanager
def _loaded_node(*, model: Optional[str], device: str, backend: str, size: Sequence[int],
                 warmup: int, overlay: bool, transport: str, params: Optional[Dict[str, Any]],
                 cameras: int = 1, image: Optional[str] = None
                 ) -> Iterator[Tuple[Any, 'SoakRecorder', Any]]:
    """Start segment_node on `cameras` cameras, warm it up; yield (NodeRun, recorder, frame)."""
    from diagnostic_msgs.msg import DiagnosticArray

    from .harness import image_message
    from .node_run import NodeRun, RECORD_DEPTH

    pixels = _pixels(size, image)
    with _transport_environment(transport), tempfile.TemporaryDirectory() as folder, \
            NodeRun(camera_topics(cameras)[0], model=model or _untrained_checkpoint(folder),
                    device=device, backend=backend, overlay=overlay, name='soak',
                    params=params, more_cameras=camera_topics(cameras)[1:]) as node_run:
        node_run.client.collect(DiagnosticArray, DIAGNOSTICS_TOPIC, depth=RECORD_DEPTH)
        node_run.wait_until_subscribed()
        node_run.warm_up(BagFrame(0, 'bench', 'bgr8', pixels), warmup)
        yield node_run, SoakRecorder(node_run), image_message(pixels, 'bgr8', 0, 'bench')


def camera_topics(cameras: int) -> List[str]:
    """Return the image topics of `cameras` benchmark cameras (one: IMAGE_TOPIC)."""
    if cameras < 1:
        raise ValueError(f'cameras={cameras}: give 1 or more')
    return [IMAGE_TOPIC] if cameras == 1 else [f'/bench/cam{i}/image_raw'
                                               for i in range(cameras)]


def _load(node_run, recorder: 'SoakRecorder', msg: Any, *, rate: float, seconds: float,
          together: bool = False) -> Dict[str, Any]:
    """
    Send `msg` to every camera at up to `rate` Hz each for `seconds`; account for every frame.

    'frames' counts over all cameras, 'cameras' per camera topic.
    """
    baseline = recorder.counters_after(node_run.client.now_ns(), timeout=10.0)
    if baseline is None:
        node_run.check_alive()
        raise RuntimeError(f'segment_node published no {DIAGNOSTICS_TOPIC} before the load')
    stamps, publisher = publish_for(node_run, recorder, msg, rate=rate, seconds=seconds,
                                    together=together)
    final, settled = recorder.settle(after_ns=node_run.client.now_ns(),
                                     sent={t: len(v) for t, v in stamps.items()},
                                     baseline=baseline)
    every = [stamp for sent in stamps.values() for stamp in sent]
    cameras = {topic: account(sent=len(sent), before=baseline[topic], after=final[topic],
                              settled=settled, returned=sum(s in recorder.labels for s in sent))
               for topic, sent in stamps.items()}
    total = {key: sum(c[key] for c in cameras.values()) for key in next(iter(cameras.values()))
             if key not in ('counters_settled', 'every_frame_accounted', 'node_counters')}
    total.update(counters_settled=settled, every_frame_accounted=all(
        c['every_frame_accounted'] for c in cameras.values()))
    return {
        'rate_hz': rate, 'seconds': seconds, **publisher,
        'frames': total if len(cameras) > 1 else next(iter(cameras.values())),
        'cameras': cameras,
        'latency_ms': percentiles([(recorder.labels[s] - s) / 1e6 for s in every
                                   if s in recorder.labels], SOAK_STATISTICS),
        'node_processing_ms': percentiles([recorder.processing_ms[s] for s in every
                                           if s in recorder.processing_ms], SOAK_STATISTICS),
        'node_values': dict(recorder.values[node_run.image_topic]),
    }


def soak(*, model: Optional[str] = None, device: str = 'auto', backend: str = 'auto',
         size: Sequence[int] = (1024, 2048), rate: float = 100.0, seconds: float = 60.0,
         warmup: int = 20, overlay: bool = True, transport: str = 'default',
         params: Optional[Dict[str, Any]] = None, cameras: int = 1,
         together: bool = False, image: Optional[str] = None) -> Dict[str, Any]:
    """
    Send bgr8 frames of `size` at up to `rate` Hz (per camera) for `seconds` through segment_node.

    After `warmup` round trips, publishes as fast as it can up to `rate`, then waits until
    the node's counters settle. Returns the rate achieved, what became of the frames (the
    node's /diagnostics counters over the soak), the end-to-end latency of those that came
    back, the node process's memory and its exit code (None: it ran throughout).
    """
    with _loaded_node(model=model, device=device, backend=backend, size=size, warmup=warmup,
                      overlay=overlay, transport=transport, params=params,
                      cameras=cameras, image=image) as (node_run, recorder, msg):
        each = f' on each of {cameras} cameras' if cameras > 1 else ''
        print(f'soak: {seconds:g} s at up to {rate:g} Hz{each} ...', file=sys.stderr, flush=True)
        with RssSampler(node_run.node.process.pid) as memory:
            load = _load(node_run, recorder, msg, rate=rate, seconds=seconds,
                         together=together)
        exit_code = node_run.node.process.poll()
        log_tail = node_run.node.log().strip().splitlines()[-5:]
        qos = node_run.camera.qos_profile
    return {
        'mode': 'soak', 'frame': _frame_label(size, image), 'transport': transport,
        'overlay_subscribed': overlay, 'camera_count': cameras, 'cameras_together': together,
        **load,
        'publisher_qos': {'reliability': qos.reliability.name.lower(),
                          'history': qos.history.name.lower(), 'depth': qos.depth,
                          'durability': qos.durability.name.lower()},
        'node_subscription_reliability': load['node_values'].get('qos_reliability'),
        'node_memory_mib': memory.summary(),
        'node_exit': {'crashed': exit_code is not None, 'exit_code_during_run': exit_code,
                      'exit_code_after_sigint': node_run.node.process.returncode,
                      'log_tail': log_tail if exit_code is not None else []},
        'device_log': [node_run.node_line],
    }


# ------------------------------------------------------------------ --max-rate: throughput
def sustained(load: Dict[str, Any], limit: float = MAX_RATE_DROP_LIMIT) -> bool:
    """
    Say whether the node kept up with a load: under `limit` of the frames sent went unprocessed.

    Unprocessed: dropped by the newest-frame-wins mailbox, lost before the node, invalid or
    failed; with several cameras, each camera on its own (none may starve). The publisher must
    also have reached 95% of the rate asked for (else the sender, not the node, was the
    limit).
    """
    return load['achieved_rate_hz'] >= 0.95 * load['rate_hz'] and all(
        frames['sent'] > 0 and frames['sent'] - frames['processed'] < limit * frames['sent']
        for frames in load['cameras'].values())


def max_rate(*, model: Optional[str] = None, device: str = 'auto', backend: str = 'auto',
             size: Sequence[int] = (360, 480), low: float = 5.0, high: float = 120.0,
             probe_seconds: float = 8.0, seconds: float = 20.0, step: float = 2.5,
             warmup: int = 20, overlay: bool = True, transport: str = 'default',
             params: Optional[Dict[str, Any]] = None, cameras: int = 1,
             together: bool = False, image: Optional[str] = None) -> Dict[str, Any]:
    """
    Find the highest input rate the node sustains with < 5% of frames unprocessed.

    ros2_benchmark's peak-throughput search: one node, warmed up, gets loads of
    `probe_seconds` each; a binary search between `low` and `high` Hz narrows to `step`, a
    linear scan then steps up from the highest rate passed until one fails, and a final load
    of `seconds` at the rate found confirms it (stepping down while it does not).
    """
    probes: List[Dict[str, Any]] = []
    with _loaded_node(model=model, device=device, backend=backend, size=size, warmup=warmup,
                      overlay=overlay, transport=transport, params=params,
                      cameras=cameras, image=image) as (node_run, recorder, msg):
        def probe(rate: float, duration: float, phase: str) -> bool:
            load = _load(node_run, recorder, msg, rate=rate, seconds=duration,
                         together=together)
            load.update(phase=phase, sustained=sustained(load))
            probes.append(load)
            f = load['frames']
            print(f"{phase}: {rate:.1f} Hz for {duration:g} s: sent {f['sent']}, processed "
                  f"{f['processed']}, dropped {f['dropped']}, lost {f['lost_before_node']} -> "
                  f"{'kept up' if load['sustained'] else 'did not keep up'}",
                  file=sys.stderr, flush=True)
            return load['sustained']

        probe((low + high) / 2, probe_seconds, 'trial (not counted)')
        lower, upper = low, high
        if not probe(low, probe_seconds, 'lower bound'):
            upper = lower = low
        while upper - lower > step:
            middle = (lower + upper) / 2
            if probe(middle, probe_seconds, 'binary search'):
                lower = middle
            else:
                upper = middle
        found = lower
        while found > low and found + step <= high and \
                probe(found + step, probe_seconds, 'linear scan'):
            found += step
        confirmed = None
        while found >= low and confirmed is None:
            if probe(found, seconds, 'confirmation'):
                confirmed = found
            else:
                found -= step
        line = node_run.node_line
    final = probes[-1]
    return {
        'mode': 'max-rate', 'frame': _frame_label(size, image), 'transport': transport,
        'overlay_subscribed': overlay, 'params': dict(params or {}), 'camera_count': cameras,
        'cameras_together': together,
        'max_rate_hz': confirmed, 'drop_limit': MAX_RATE_DROP_LIMIT,
        'search': {'low_hz': low, 'high_hz': high, 'step_hz': step,
                   'probe_seconds': probe_seconds, 'confirmation_seconds': seconds},
        'confirmation': {k: final[k] for k in (
            'rate_hz', 'achieved_rate_hz', 'frames', 'cameras', 'latency_ms',
            'node_processing_ms')},
        'stage_p50_ms': {k[len('stage_'):-len('_p50_ms')]: v
                         for k, v in final['node_values'].items() if k.startswith('stage_')},
        'probes': [{k: p[k] for k in ('phase', 'rate_hz', 'achieved_rate_hz', 'sustained')}
                   | {'sent': p['frames']['sent'], 'processed': p['frames']['processed']}
                   for p in probes],
        'device_log': [line],
    }


def publish_for(node_run, recorder: 'SoakRecorder', msg: Any, *, rate: float, seconds: float,
                together: bool = False) -> Tuple[Dict[str, List[int]], Dict[str, Any]]:
    """
    Publish `msg`, stamped anew each time, to every camera at up to `rate` Hz each for `seconds`.

    Stops early if the node exits; drains `recorder` every second. Returns the stamps sent
    per camera topic and the publisher's figures (rate achieved per camera, publish() call
    times, failures). Several cameras publish evenly spaced within each period (independent
    cameras), or with `together` one right after the other at each tick (hardware-synchronised
    cameras: their frames wait in the node together, the hardest case for fairness).

    A publish() that raises (Fast DDS's reliable writer gives up when its history stays full
    of unacknowledged frames) is counted as failed, not sent, and the soak goes on.
    """
    stamps: Dict[str, List[int]] = {stream.image_topic: [] for stream in node_run.streams}
    calls_ms: List[float] = []
    failures: List[str] = []
    count = len(node_run.streams)
    events = 0   # (tick, camera) pairs published so far
    start = time.monotonic()
    next_drain = start + 1.0
    while node_run.node.alive():
        tick, camera = divmod(events, count)
        # behind schedule: publish at once, as fast as it can
        due = start + (tick + (0.0 if together else camera / count)) / rate
        if start + tick / rate >= start + seconds:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        events += 1
        for stream in node_run.streams[camera:camera + 1]:
            stamp = node_run.client.now_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            before = time.perf_counter()
            try:
                stream.publisher.publish(msg)
                stamps[stream.image_topic].append(stamp)
            except RuntimeError as exc:   # rclpy's RCLError
                failures.append(str(exc))
            calls_ms.append((time.perf_counter() - before) * 1e3)
        if time.monotonic() >= next_drain:
            recorder.drain()
            next_drain += 1.0
    elapsed = time.monotonic() - start
    sent = min(len(v) for v in stamps.values())
    return stamps, {'publish_seconds': round(elapsed, 3),
                    'achieved_rate_hz': sent / elapsed if elapsed > 0 else 0.0,
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
    """
    What came back during a soak, taken off the client every second (its memory stays flat).

    Counters are per camera image topic, from the node's /diagnostics arrays (one status per
    camera in each).
    """

    def __init__(self, node_run):
        self.node_run = node_run
        self.topics = [stream.image_topic for stream in node_run.streams]
        self.labels: Dict[int, int] = {}            # stamp -> first labels' receive time (ns)
        self.processing_ms: Dict[int, float] = {}   # stamp -> the node's processing time
        # (diagnostics stamp, {camera topic: counters}), from arrays holding every camera
        self.counters: List[Tuple[int, Dict[str, Dict[str, int]]]] = []
        self.values: Dict[str, Dict[str, str]] = {t: {} for t in self.topics}   # the latest

    def drain(self) -> None:
        """Take every message recorded so far off the client and keep what the soak needs."""
        from .harness import latency_stages, stamp_ns

        client, streams = self.node_run.client, self.node_run.streams
        with client.lock:
            taken = {topic: messages[:] for topic, messages in client.received.items()}
            for messages in client.received.values():
                del messages[:]
        for stream in streams:
            for received_ns, msg in taken.get(stream.labels_topic, []):
                self.labels.setdefault(stamp_ns(msg.header), received_ns)
            for _, msg in taken.get(stream.latency_topic, []):
                self.processing_ms.setdefault(stamp_ns(msg.header),
                                              latency_stages(msg)['processing'])
        for _, msg in taken.get(DIAGNOSTICS_TOPIC, []):
            counts = {}
            for status in msg.status:
                topic = status.name.rsplit(': ', 1)[-1]
                if topic in self.values:
                    self.values[topic] = {kv.key: kv.value for kv in status.values}
                    counts[topic] = {key[len('frames_'):]: int(value) for key, value
                                     in self.values[topic].items() if key.startswith('frames_')}
            if len(counts) == len(self.topics):
                self.counters.append((stamp_ns(msg.header), counts))

    def counters_after(self, after_ns: int,
                       timeout: float) -> Optional[Dict[str, Dict[str, int]]]:
        """Return each camera's counters from the first /diagnostics stamped after `after_ns`."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            later = [counts for stamp, counts in self.counters if stamp > after_ns]
            if later or time.monotonic() > deadline or not self.node_run.node.alive():
                return later[0] if later else None
            time.sleep(0.1)

    def settle(self, *, after_ns: int, sent: Dict[str, int],
               baseline: Dict[str, Dict[str, int]],
               timeout: float = 30.0) -> Tuple[Dict[str, Dict[str, int]], bool]:
        """
        Wait until the node's counters (stamped after `after_ns`) settle; return them, settled.

        Settled: every frame received was handled, and either all `sent` (per camera topic)
        arrived or the counters stayed unchanged for QUIET_S (a reliable repair may deliver
        late ones).
        """
        deadline = time.monotonic() + timeout
        latest, changed = None, time.monotonic()
        while True:
            self.drain()
            later = [counts for stamp, counts in self.counters if stamp > after_ns]
            if later and later[-1] != latest:
                latest, changed = later[-1], time.monotonic()
            if latest is not None and all(_handled_all(c) for c in latest.values()) and (
                    all(latest[t]['received'] - baseline[t]['received'] >= n
                        for t, n in sent.items())
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
                 transport=transport, params=node_params(args.param), cameras=args.cameras,
                 together=args.cameras_together, image=args.image)
            for transport in args.transport]
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
    rows = [('', f)] + (list(r['cameras'].items()) if len(r['cameras']) > 1 else [])
    for camera, c in rows:
        print(f"| {camera or r['publish_failed']} | {c['sent']} | {c['node_received']} | "
              f"{c['processed']} | {c['dropped']} | {c['invalid']} | {c['errors']} | "
              f"{c['lost_before_node']} | {c['node_counted_lost']} | "
              f"{c['unaccounted_in_node']} | {c['labels_returned']} |")
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


def node_params(assignments: Sequence[str]) -> Dict[str, str]:
    """Parse NAME:=VALUE assignments (each may hold several, comma-separated) into a dict."""
    params = {}
    for text in assignments:
        for item in filter(None, (part.strip() for part in text.split(','))):
            name, sep, value = item.partition(':=')
            if not sep or not name:
                raise SystemExit(f'bench-node: node parameter {item!r}: write NAME:=VALUE '
                                 '(e.g. pipeline:=false)')
            params[name] = value
    return params


def _run_max_rate(args: argparse.Namespace) -> int:
    common = node_params(args.param)
    variants = args.variants or ['']
    runs = []
    for transport in args.transport:
        for variant in variants:
            params = dict(common, **node_params([variant]))
            runs.append(max_rate(model=args.model, device=args.device, backend=args.backend,
                                 size=args.size, high=args.max_rate,
                                 probe_seconds=args.probe_seconds, seconds=args.soak or 20.0,
                                 warmup=args.warmup, overlay=not args.no_overlay,
                                 transport=transport, params=params, cameras=args.cameras,
                                 together=args.cameras_together, image=args.image))
    reference = runs[0]['max_rate_hz']
    print(f"segment_node throughput, {runs[0]['frame']}, highest input rate with < "
          f"{MAX_RATE_DROP_LIMIT:.0%} of frames unprocessed; "
          f"{runs[0]['device_log'][0].split(']: ')[-1]}")
    print('| transport | node parameters | max rate (Hz) | ratio | confirmation: sent | '
          'processed | latency p50 / p99 (ms) | stage p50 (ms) |')
    print('| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |')
    for r in runs:
        c, rate = r['confirmation'], r['max_rate_hz']
        ratio = f'{rate / reference:.2f}' if rate and reference else '-'
        stages = ', '.join(f'{k} {v}' for k, v in r['stage_p50_ms'].items()
                           if k in ('inference', 'postprocess', 'overlay', 'publish', 'handoff',
                                    'processing'))
        params = ', '.join(f'{k}:={v}' for k, v in r['params'].items()) or 'defaults'
        print(f"| {r['transport']} | {params} | {_ms(rate) if rate else 'none'} | {ratio} | "
              f"{c['frames']['sent']} | {c['frames']['processed']} | "
              f"{_ms(c['latency_ms']['p50'])} / {_ms(c['latency_ms']['p99'])} | {stages} |")
    _write_report(args.report, runs[0] if len(runs) == 1 else {'runs': runs})
    return 0 if all(r['max_rate_hz'] for r in runs) else 1
