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
segment_node over real DDS: outputs, headers, bad input, stale frames, parameters, SIGINT.

The node runs as its own process, started with the command line launch_ros gives it; this
process talks to it through a real rclpy node. ROS_DOMAIN_ID is set per run (conftest.py).
"""

import array
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, ListParameters, SetParameters
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from farsee_ros.ros.parameters import PARAMETERS
from farsee_ros.engine import Segmenter
from farsee_ros.tools.harness import Client, image_message, NodeProcess, stamp_ns

STARTUP_TIMEOUT = 90.0


def _find(messages, stamp):
    return [m for m in messages if stamp_ns(m.header) == stamp]


def _status(client, topic_fragment):
    """Return the newest /diagnostics status of the camera topic (values as a dict)."""
    for array_msg in reversed(client.messages('/diagnostics')):
        for status in array_msg.status:
            if topic_fragment in status.name and 'latency' not in status.name:
                return status, {kv.key: kv.value for kv in status.values}
    return None, {}


@pytest.fixture(scope='module')
def client():
    ros = Client()
    yield ros
    ros.close()


@pytest.fixture(scope='module')
def node(tmp_path_factory, node_checkpoint, client):
    process = NodeProcess(tmp_path_factory.mktemp('node'), {
        'model_path': node_checkpoint, 'image_topics': '[/cam/image_raw]', 'device': 'cpu',
        'diagnostics_period': 0.5, 'max_pixels': 3_000_000})
    for topic, kind in (('/farsee/labels', Image), ('/farsee/overlay', Image),
                        ('/farsee/latency', DiagnosticArray), ('/diagnostics', DiagnosticArray)):
        client.collect(kind, topic)
    client.cam = client.publisher(Image, '/cam/image_raw', depth=500)
    assert client.wait_for(lambda: client.cam.get_subscription_count() > 0, STARTUP_TIMEOUT), \
        process.log()
    time.sleep(1.0)   # let the node's output publishers discover our subscriptions
    yield process
    process.stop()


def _send_and_wait(client, topic_pub, msg, timeout=60.0, labels_topic='/farsee/labels',
                   node=None):
    """Publish `msg`, wait for its labels; on failure the message carries `node`'s log."""
    stamp = stamp_ns(msg.header)
    topic_pub.publish(msg)
    assert client.wait_for(lambda: _find(client.messages(labels_topic), stamp), timeout), \
        node.log() if node is not None else f'no labels on {labels_topic} in {timeout} s'
    return stamp


@pytest.mark.parametrize('height, width, encoding', [
    (480, 640, 'bgr8'), (1024, 2048, 'rgb8'), (480, 640, 'mono8')])
def test_full_resolution_labels_with_the_input_header(
        node, client, node_checkpoint, height, width, encoding):
    rng = np.random.default_rng(height + width)
    shape = (height, width) if encoding == 'mono8' else (height, width, 3)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    msg = image_message(pixels, encoding, client.now_ns(), frame_id=f'cam_{encoding}')
    stamp = _send_and_wait(client, client.cam, msg, node=node)

    (labels,) = _find(client.messages('/farsee/labels'), stamp)
    assert (labels.encoding, labels.height, labels.width, labels.step) == \
        ('mono8', height, width, width)
    assert labels.header == msg.header
    ids = np.frombuffer(labels.data, np.uint8).reshape(height, width)
    order = {'bgr8': 'bgr', 'rgb8': 'rgb', 'mono8': 'mono'}[encoding]
    expected = Segmenter.from_checkpoint(node_checkpoint, device='cpu').segment(
        pixels, order, overlay=False).labels
    assert (ids == expected).mean() > 0.999

    assert client.wait_for(lambda: _find(client.messages('/farsee/overlay'), stamp), 10)
    (overlay,) = _find(client.messages('/farsee/overlay'), stamp)
    assert overlay.header == msg.header
    assert (overlay.height, overlay.width) == (height, width)
    assert overlay.encoding == ('bgr8' if encoding == 'bgr8' else 'rgb8')

    assert client.wait_for(lambda: _find(client.messages('/farsee/latency'), stamp), 10)
    (latency,) = _find(client.messages('/farsee/latency'), stamp)
    assert latency.header == msg.header
    values = {kv.key: float(kv.value) for kv in latency.status[0].values}
    for key in ('decode_ms', 'preprocess_ms', 'inference_ms', 'postprocess_ms', 'publish_ms',
                'handoff_ms', 'processing_ms', 'end_to_end_ms'):
        assert values[key] >= 0.0, key
    assert values['end_to_end_ms'] >= values['processing_ms'] >= values['inference_ms']


def test_diagnostics_summary(node, client):
    assert client.wait_for(lambda: int(_status(client, '/cam/image_raw')[1].get(
        'frames_processed', 0)) >= 1, 10)
    status, values = _status(client, '/cam/image_raw')
    for key in ('latency_p50_ms', 'latency_p95_ms', 'latency_max_ms', 'input_rate_hz',
                'output_rate_hz', 'frames_dropped', 'frames_invalid', 'device', 'precision',
                'stage_inference_p50_ms', 'stage_postprocess_p50_ms', 'stage_handoff_p50_ms'):
        assert key in values, key
    assert values['device'] == 'cpu' and values['precision'] == 'fp32'
    assert (values['pipeline'], values['inference_threads']) == ('two threads', 'auto')
    assert values['qos_reliability'] == 'reliable'   # auto matched our reliable publisher


def _malformed_messages():
    """Yield (reason, message) for at least 200 malformed images covering every rejection."""
    stamp = 1
    good = np.zeros((4, 6, 3), np.uint8)
    for i in range(30):
        msg = image_message(good, ['rgb16', 'jpeg', '', 'BGR8', 'bayer_xyz8', '8UC3'][i % 6],
                            stamp + i)
        yield 'encoding', msg
    for i in range(30):
        msg = image_message(good, 'bgr8', stamp + i)
        msg.height = 0 if i % 2 else msg.height
        msg.width = 0 if not i % 2 else msg.width
        yield 'zero size', msg
    for i in range(40):
        msg = image_message(good, ['bgr8', 'rgb8', 'rgba8', 'mono16'][i % 4], stamp + i)
        msg.step = msg.width * (3 if i % 4 < 2 else 4 if i % 4 == 2 else 2) - 1 - i % 3
        yield 'step', msg
    for i in range(60):
        msg = image_message(good, 'bgr8', stamp + i)
        data = array.array('B', bytes(msg.data))
        msg.data = data[:-(1 + i)] if i % 2 else data + array.array('B', bytes(1 + i))
        yield 'data length', msg
    for i in range(20):
        yuv = np.zeros((4, 5, 2), np.uint8)   # odd width
        yield 'yuv width', image_message(yuv, ['yuv422', 'yuv422_yuy2'][i % 2], stamp + i)
    for i in range(20):
        # Over max_pixels = 3,000,000: three real 3 MB frames, the rest claim the size only.
        big = np.zeros((1000, 3001 + i) if i < 3 else (1, 1), np.uint8)
        msg = image_message(big, 'mono8', stamp + i)
        msg.height, msg.width, msg.step = 1000, 3001 + i, 3001 + i
        yield 'max_pixels', msg


def test_malformed_messages_are_counted_and_the_next_frame_is_processed(node, client):
    _, before = _status(client, '/cam/image_raw')
    invalid_before = int(before.get('frames_invalid', 0))
    bad = list(_malformed_messages())
    assert len(bad) >= 200 and {r for r, _ in bad} == {
        'encoding', 'zero size', 'step', 'data length', 'yuv width', 'max_pixels'}
    for _, msg in bad:
        client.cam.publish(msg)
        time.sleep(0.1 if len(msg.data) > 1_000_000 else 0.003)
    valid = image_message(np.full((240, 320, 3), 90, np.uint8), 'bgr8', client.now_ns())
    _send_and_wait(client, client.cam, valid, node=node)
    assert node.alive()
    assert client.wait_for(lambda: int(_status(client, '/cam/image_raw')[1].get(
        'frames_invalid', 0)) - invalid_before == len(bad), 10), (invalid_before, _status(
            client, '/cam/image_raw')[1])
    status, values = _status(client, '/cam/image_raw')
    assert values['last_invalid_reason']
    assert 'invalid frame' in node.log()


def _counts(client):
    values = _status(client, '/cam/image_raw')[1]
    return {k: int(values.get(f'frames_{k}', 0)) for k in ('received', 'dropped', 'lost')}


def test_stale_frames_are_dropped_and_latency_stays_bounded(node, client):
    # One frame through first: the node has then seen this publisher's sequence numbers.
    _send_and_wait(client, client.cam, image_message(
        np.zeros((48, 64, 3), np.uint8), 'bgr8', client.now_ns()), node=node)
    time.sleep(1.0)   # a diagnostics period with that frame in it
    before = _counts(client)
    latency_count = len(client.messages('/farsee/latency'))
    pixels = np.random.default_rng(5).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < 4.0:    # far faster than the CPU can segment
        client.cam.publish(image_message(pixels, 'bgr8', client.now_ns()))
        sent += 1
        time.sleep(0.01)
    time.sleep(2.0)
    latencies = [float({kv.key: kv.value for kv in m.status[0].values}['end_to_end_ms'])
                 for m in client.messages('/farsee/latency')[latency_count:]]
    processed = len(latencies)
    assert 0 < processed < sent
    # A backlog would make latency grow through the burst; latest-frame-only keeps it flat.
    assert max(latencies) < 2000.0, latencies
    assert np.median(latencies[-5:]) < 3 * np.median(latencies[:5]) + 500.0, latencies
    assert client.wait_for(lambda: _counts(client)['dropped'] - before['dropped'] > 0, 5)
    # Every frame sent is accounted for: it reached the node (then processed or dropped), or
    # the gap it left in the publisher's sequence numbers counted it as lost.
    assert client.wait_for(lambda: sum(_counts(client)[k] - before[k] for k in (
        'received', 'lost')) == sent, 10), (sent, before, _counts(client))


def _call(client, kind, service_name, request):
    service = client.node.create_client(kind, service_name)
    assert service.wait_for_service(timeout_sec=10)
    future = service.call_async(request)
    assert client.wait_for(future.done, 10)
    client.node.destroy_client(service)
    return future.result()


def test_the_node_declares_exactly_the_documented_parameters(node, client):
    names = _call(client, ListParameters, '/farsee/list_parameters',
                  ListParameters.Request()).result.names
    ours = [p.name for p in PARAMETERS]
    assert set(ours) <= set(names)
    assert set(names) - set(ours) <= {'use_sim_time', 'start_type_description_service'}
    described = _call(client, DescribeParameters, '/farsee/describe_parameters',
                      DescribeParameters.Request(names=ours)).descriptors
    for spec, descriptor in zip(PARAMETERS, described):
        assert descriptor.name == spec.name
        assert descriptor.description == spec.description
        assert descriptor.read_only == spec.read_only, spec.name
        if spec.int_range:
            assert (descriptor.integer_range[0].from_value,
                    descriptor.integer_range[0].to_value) == spec.int_range
        if spec.float_range:
            assert (descriptor.floating_point_range[0].from_value,
                    descriptor.floating_point_range[0].to_value) == spec.float_range


def _set(client, name, value):
    service = client.node.create_client(SetParameters, '/farsee/set_parameters')
    assert service.wait_for_service(timeout_sec=10)
    kinds = {float: (ParameterType.PARAMETER_DOUBLE, 'double_value'),
             bool: (ParameterType.PARAMETER_BOOL, 'bool_value'),
             int: (ParameterType.PARAMETER_INTEGER, 'integer_value'),
             str: (ParameterType.PARAMETER_STRING, 'string_value')}
    kind, field_name = kinds[type(value)]
    parameter_value = ParameterValue(type=kind, **{field_name: value})
    future = service.call_async(SetParameters.Request(
        parameters=[Parameter(name=name, value=parameter_value)]))
    assert client.wait_for(future.done, 10)
    client.node.destroy_client(service)
    return future.result().results[0]


def test_runtime_parameters_are_validated(node, client):
    rejected = _set(client, 'overlay_alpha', 1.5)
    assert not rejected.successful and 'overlay_alpha' in rejected.reason
    assert _set(client, 'overlay_alpha', 1.0).successful
    pixels = np.random.default_rng(9).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    msg = image_message(pixels, 'bgr8', client.now_ns())
    stamp = _send_and_wait(client, client.cam, msg, node=node)
    assert client.wait_for(lambda: _find(client.messages('/farsee/overlay'), stamp), 10)
    (overlay,) = _find(client.messages('/farsee/overlay'), stamp)
    (labels,) = _find(client.messages('/farsee/labels'), stamp)
    ids = np.frombuffer(labels.data, np.uint8).reshape(120, 160)
    from farsee_ros.model.classes import CAMVID
    palette_bgr = np.array(CAMVID.palette, np.uint8)[:, ::-1]
    assert np.array_equal(np.frombuffer(overlay.data, np.uint8).reshape(120, 160, 3),
                          palette_bgr[ids])      # alpha 1: pure class colours
    assert _set(client, 'overlay_alpha', 0.5).successful
    for name, value in (('device', 'cpu'), ('qos_depth', 3), ('model_path', '/x.pt')):
        result = _set(client, name, value)
        assert not result.successful and result.reason, name
    assert not _set(client, 'publish_overlay', 'yes').successful    # wrong type
    assert node.alive()


def test_multiple_compressed_cameras_and_camera_info(tmp_path, node_checkpoint, client):
    process = NodeProcess(tmp_path, {
        'model_path': node_checkpoint, 'device': 'cpu', 'image_transport': 'compressed',
        'image_topics': '[/left/image_raw, /right/image_raw]',
        'pipeline': False, 'inference_threads': 1}, name='multi')   # the one-thread reference
    try:
        left = client.publisher(CompressedImage, '/left/image_raw/compressed')
        right = client.publisher(CompressedImage, '/right/image_raw/compressed',
                                 reliable=False, depth=1)   # a sensor-data QoS camera
        info = client.publisher(CameraInfo, '/left/camera_info')
        for topic in ('/farsee/left/labels', '/farsee/right/labels',
                      '/farsee/left/camera_info'):
            client.collect(CameraInfo if 'info' in topic else Image, topic)
        assert client.wait_for(lambda: left.get_subscription_count() > 0
                               and right.get_subscription_count() > 0, STARTUP_TIMEOUT), \
            process.log()
        time.sleep(1.0)
        camera_info = CameraInfo(width=320, height=240, distortion_model='plumb_bob')
        camera_info.header.frame_id = 'left_optical'
        info.publish(camera_info)
        time.sleep(0.5)
        frames = {}
        for name, publisher, fmt, ext in (('left', left, 'jpeg', '.jpg'),
                                          ('right', right, 'bgr8; png compressed bgr8', '.png')):
            pixels = np.random.default_rng(3).integers(0, 256, (240, 320, 3), dtype=np.uint8)
            encoded = cv2.imencode(ext, pixels)[1].tobytes()
            msg = CompressedImage(format=fmt, data=array.array('B', encoded))
            msg.header.frame_id = f'{name}_optical'
            stamp = client.now_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            frames[name] = (stamp, msg)
            topic = f'/farsee/{name}/labels'
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not _find(client.messages(topic), stamp):
                publisher.publish(msg)   # best effort may lose one: resend until seen
                time.sleep(0.5)
            (labels,) = _find(client.messages(topic), stamp)[:1]
            assert (labels.height, labels.width, labels.encoding) == (240, 320, 'mono8')
            assert labels.header == msg.header
        stamp, msg = frames['left']
        assert client.wait_for(lambda: _find(client.messages('/farsee/left/camera_info'),
                                             stamp), 10)
        (republished,) = _find(client.messages('/farsee/left/camera_info'), stamp)[:1]
        assert republished.header == msg.header and republished.width == 320
        assert 'best_effort' in process.log() and 'reliable' in process.log()
    finally:
        process.stop()


def _mapped_libraries(pid):
    with open(f'/proc/{pid}/maps') as maps:
        return {line.split()[-1] for line in maps if len(line.split()) >= 6}


def test_the_default_weights_on_the_cpu_run_without_pytorch(tmp_path, repo, client):
    """Backend auto, device cpu: the INT8 file beside the default weights, and no libtorch."""
    process = NodeProcess(tmp_path, {'device': 'cpu', 'backend': 'auto',
                                     'image_topics': '[/nt_a/image_raw, /nt_b/image_raw]'},
                          name='no_torch')
    try:
        camera = client.publisher(Image, '/nt_a/image_raw')
        client.collect(Image, '/farsee/nt_a/labels')
        assert client.wait_for(lambda: camera.get_subscription_count() > 0, STARTUP_TIMEOUT), \
            process.log()
        time.sleep(1.0)
        pixels = np.random.default_rng(7).integers(0, 256, (360, 480, 3), dtype=np.uint8)
        msg = image_message(pixels, 'bgr8', client.now_ns(), frame_id='nt_a')
        stamp = _send_and_wait(client, camera, msg, labels_topic='/farsee/nt_a/labels',
                               node=process)
        (labels,) = _find(client.messages('/farsee/nt_a/labels'), stamp)
        ids = np.frombuffer(labels.data, np.uint8).reshape(360, 480)
        engine = Segmenter.from_checkpoint(f'{repo}/models/farseenet_camvid.pt', device='cpu')
        assert engine.host and engine.precision == 'int8'
        assert (ids == engine.segment(pixels, 'bgr', overlay=False).labels).mean() > 0.999
        libraries = _mapped_libraries(process.process.pid)
        assert any('onnxruntime' in path for path in libraries), sorted(libraries)
        assert not [path for path in libraries if 'libtorch' in path]
        assert 'ONNX Runtime' in process.log() and 'int8' in process.log()
    finally:
        process.stop()


def test_incompatible_qos_warns_naming_both_sides_and_sigint_exits_cleanly(
        tmp_path, node_checkpoint, client):
    process = NodeProcess(tmp_path, {'model_path': node_checkpoint, 'device': 'cpu',
                                     'qos_reliability': 'reliable',
                                     'image_topics': '[/be_cam/image_raw]'}, name='reliable')
    try:
        assert process.wait_for_log('subscribed to /be_cam/image_raw', STARTUP_TIMEOUT), \
            process.log()
        client.publisher(Image, '/be_cam/image_raw', reliable=False, depth=1)
        assert process.wait_for_log('incompatible QoS on /be_cam/image_raw', 20), process.log()
        line = [ln for ln in process.log().splitlines() if 'incompatible QoS' in ln][0]
        assert 'requests reliable' in line and 'offers best_effort' in line
        start = time.monotonic()
        code = process.interrupt(timeout=10)
        assert code == 0 and time.monotonic() - start < 2.0, (code, process.log())
        assert 'Traceback' not in process.log()
    finally:
        process.stop()


@pytest.mark.parametrize('params, message', [
    ({'model_path': '/nonexistent/model.pt'}, 'model file not found: /nonexistent/model.pt'),
    ({'device': 'gpu'}, "device='gpu'"),
    ({'backend': 'tensorrt'}, "backend='tensorrt'"),
    ({'qos_depth': 0}, 'qos_depth'),
    ({'image_transport': 'theora'}, "image_transport='theora'"),
    ({'input_height': 16, 'input_width': 16}, 'input_height=16'),
    ({'device': 'cuda'}, 'CUDA is not available'),
    ({'model_path': 'CORRUPT'}, 'is not a checkpoint'),
])
def test_bad_start_gives_one_error_line_and_a_nonzero_exit(
        tmp_path, node_checkpoint, params, message):
    import torch
    if params.get('device') == 'cuda' and torch.cuda.is_available():
        pytest.skip('CUDA is present: device cuda is valid here')
    if params.get('model_path') == 'CORRUPT':
        corrupt = tmp_path / 'corrupt.pt'
        corrupt.write_bytes(b'\x00not a checkpoint' * 10)
        params = {'model_path': str(corrupt)}
    params = dict({'model_path': node_checkpoint, 'device': 'cpu'}, **params)
    process = NodeProcess(tmp_path, params, name='bad')
    try:
        code = process.process.wait(timeout=STARTUP_TIMEOUT)
    finally:
        process.stop()
    log = process.log()
    errors = [ln for ln in log.splitlines() if 'ERROR' in ln]
    assert code == 1, log
    assert len(errors) == 1 and message in errors[0], log
    assert 'Traceback' not in log
