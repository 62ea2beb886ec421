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
sensor_msgs <-> numpy conversions: pixels, zero-copy views, YUV, Bayer, JPEG/PNG, rejections.

Every message here is a real sensor_msgs message; malformed ones must raise InvalidImage and
nothing else, with a reason that names the offending field.
"""

import array
import struct
import zlib

import cv2
from farsee_ros.ros.conversions import (
    check_compressed, check_image, COMPRESSED_FORMATS, compressed_to_frame, ENCODINGS, Frame,
    image_to_frame, InvalidImage, labels_to_image, overlay_to_image)
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

BIG = 1 << 40  # a max_pixels that never binds
PACKED = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}
ORDERS = {'rgb8': 'rgb', 'bgr8': 'bgr', 'rgba8': 'rgba', 'bgra8': 'bgra', 'mono8': 'mono'}
YUV = ('uyvy', 'yuv422', 'yuyv', 'yuv422_yuy2')
BAYER_PATTERNS = ('rggb', 'bggr', 'gbrg', 'grbg')


def bytes_per_pixel(encoding):
    if encoding in PACKED:
        return PACKED[encoding]
    if encoding.startswith('bayer_'):
        return 2 if encoding.endswith('16') else 1
    return 2


def uint8_array(raw):
    data = array.array('B')
    data.frombytes(raw)
    return data


def pad_rows(rows, step):
    """Return the bytes of an HxN uint8 array with each row padded to ``step`` bytes."""
    height, row_bytes = rows.shape
    padded = np.full((height, step), 0xAB, np.uint8)
    padded[:, :row_bytes] = rows
    return padded.tobytes()


def make_image(encoding, height, width, step=None, raw=None, is_bigendian=0):
    """Build a real sensor_msgs/Image; ``raw`` defaults to height*step zero bytes."""
    if step is None:
        step = width * bytes_per_pixel(encoding)
    if raw is None:
        raw = bytes(height * step)
    msg = Image(height=height, width=width, encoding=encoding, step=step,
                is_bigendian=is_bigendian)
    msg.data = uint8_array(raw)
    return msg


def make_compressed(fmt, raw):
    msg = CompressedImage(format=fmt)
    msg.data = uint8_array(raw)
    return msg


def data_of(msg):
    return np.frombuffer(msg.data, np.uint8)


def encode(ext, image, *params):
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def smooth_bgr(height, width):
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                      ((x + y) * 127 // max(width + height - 2, 1))]).astype(np.uint8)


def png_chunk(kind, payload):
    return (struct.pack('>I', len(payload)) + kind + payload
            + struct.pack('>I', zlib.crc32(kind + payload) & 0xFFFFFFFF))


def png_bytes(width, height, color_type, rows=None):
    """Write a PNG by hand (bit depth 8); ``rows`` is a list of raw scanline bytes."""
    ihdr = png_chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, color_type, 0, 0, 0))
    body = b''
    if rows is not None:
        body = png_chunk(b'IDAT', zlib.compress(b''.join(b'\x00' + r for r in rows)))
    return b'\x89PNG\r\n\x1a\n' + ihdr + body + png_chunk(b'IEND', b'')


def jpeg_with_size(raw, width, height):
    """Return a JPEG whose SOF0 header is rewritten to declare width x height."""
    at = raw.index(b'\xff\xc0')
    return raw[:at + 5] + struct.pack('>HH', height, width) + raw[at + 9:]


@pytest.fixture(autouse=True, scope='module')
def quiet_opencv():
    """Silence OpenCV's log lines about the broken streams these tests decode on purpose."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    yield
    cv2.utils.logging.setLogLevel(level)


# --- API surface ----------------------------------------------------------------------------

def test_constants():
    assert set(ENCODINGS) >= {
        'rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', 'yuv422', 'yuv422_yuy2',
        'bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8',
        'bayer_rggb16', 'bayer_bggr16', 'bayer_gbrg16', 'bayer_grbg16'}
    assert len(set(ENCODINGS)) == len(ENCODINGS)
    assert COMPRESSED_FORMATS == ('jpeg', 'png')
    assert issubclass(InvalidImage, ValueError)


def test_rclpy_hands_uint8_arrays():
    msg = make_image('mono8', 2, 3, raw=bytes(range(6)))
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'
    copy = deserialize_message(serialize_message(msg), Image)
    assert isinstance(copy.data, array.array) and copy.data.typecode == 'B'
    frame = image_to_frame(copy, BIG)
    assert frame.zero_copy and np.shares_memory(frame.pixels, data_of(copy))
    np.testing.assert_array_equal(frame.pixels, np.arange(6).reshape(2, 3))


@pytest.mark.parametrize('max_pixels', [0, -1, 1.5, None, True])
def test_bad_max_pixels_is_a_value_error(max_pixels):
    with pytest.raises(ValueError, match='max_pixels'):
        image_to_frame(make_image('mono8', 1, 1), max_pixels)
    with pytest.raises(ValueError, match='max_pixels'):
        compressed_to_frame(make_compressed('png', png_bytes(1, 1, 0, [b'\x00'])), max_pixels)


# --- raw images -----------------------------------------------------------------------------

@pytest.mark.parametrize('pad', [0, 1, 7])
@pytest.mark.parametrize('encoding', sorted(PACKED))
def test_packed_encodings_are_zero_copy_views(encoding, pad):
    channels = PACKED[encoding]
    height, width = 5, 7
    shape = (height, width) if channels == 1 else (height, width, channels)
    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    step = width * channels + pad
    msg = make_image(encoding, height, width, step, pad_rows(pixels.reshape(height, -1), step))
    frame = image_to_frame(msg, BIG)
    assert isinstance(frame, Frame)
    assert frame.color_order == ORDERS[encoding]
    assert frame.pixels.dtype == np.uint8 and frame.pixels.shape == shape
    np.testing.assert_array_equal(frame.pixels, pixels)
    assert frame.zero_copy
    assert np.shares_memory(frame.pixels, data_of(msg))
    assert frame.pixels.flags.c_contiguous == (pad == 0)


def test_zero_copy_view_follows_the_message_buffer():
    msg = make_image('rgb8', 2, 2, raw=bytes(12))
    frame = image_to_frame(msg, BIG)
    msg.data[3 * 3 + 2] = 99  # last pixel's blue, written into the message buffer
    assert frame.pixels[1, 1, 2] == 99


def test_bytes_buffers_are_viewed_too():
    """A plain bytes or memoryview buffer (not what rclpy hands out) is also viewed in place."""
    raw = bytes(range(24))
    for buffer in (raw, memoryview(raw), bytearray(raw)):
        msg = make_image('bgr8', 2, 4)
        msg._data = buffer  # what a caller bypassing the setter could leave there
        frame = image_to_frame(msg, BIG)
        assert frame.zero_copy and np.shares_memory(frame.pixels, np.frombuffer(buffer, np.uint8))
        np.testing.assert_array_equal(frame.pixels.ravel(), np.arange(24))
    msg._data = list(range(24))  # a plain list is copied after a range check
    frame = image_to_frame(msg, BIG)
    assert not frame.zero_copy
    np.testing.assert_array_equal(frame.pixels.ravel(), np.arange(24))
    for bad in ([300] * 24, [-1] * 24, ['a'] * 24, 'x' * 24):
        msg._data = bad
        with pytest.raises(InvalidImage, match='^data'):
            image_to_frame(msg, BIG)


@pytest.mark.parametrize('pad', [0, 1, 6])
@pytest.mark.parametrize('big_endian', [0, 1])
def test_mono16_keeps_the_top_byte(big_endian, pad):
    height, width = 6, 9
    values = np.random.default_rng(2).integers(0, 65536, (height, width), dtype=np.uint16)
    values[0, :4] = [0, 255, 256, 65535]
    raw16 = values.astype('>u2' if big_endian else '<u2')
    step = 2 * width + pad
    msg = make_image('mono16', height, width, step,
                     pad_rows(raw16.view(np.uint8).reshape(height, -1), step), big_endian)
    frame = image_to_frame(msg, BIG)
    assert frame.color_order == 'mono' and frame.pixels.shape == (height, width)
    np.testing.assert_array_equal(frame.pixels, (values >> 8).astype(np.uint8))
    assert list(frame.pixels[0, :4]) == [0, 0, 1, 255]
    assert frame.zero_copy and np.shares_memory(frame.pixels, data_of(msg))


def test_mono16_endianness_matters():
    raw = np.array([[0x12, 0x34]], np.uint8).tobytes()
    little = image_to_frame(make_image('mono16', 1, 1, raw=raw, is_bigendian=0), BIG)
    big = image_to_frame(make_image('mono16', 1, 1, raw=raw, is_bigendian=1), BIG)
    assert little.pixels[0, 0] == 0x34 and big.pixels[0, 0] == 0x12


def bt601_rgb(y, u, v):
    """Return BT.601 limited-range YUV -> RGB as floats, unclipped."""
    y, u, v = (np.asarray(c, np.float64) for c in (y, u, v))
    c, d, e = 1.164 * (y - 16), u - 128, v - 128
    return np.stack([c + 1.596 * e, c - 0.392 * d - 0.813 * e, c + 2.017 * d], axis=-1)


def yuv_planes(height, width, seed=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(16, 236, (height, width), dtype=np.uint8)
    u = rng.integers(16, 241, (height, width // 2), dtype=np.uint8)
    v = rng.integers(16, 241, (height, width // 2), dtype=np.uint8)
    return y, u, v


def pack_uyvy(y, u, v):
    out = np.empty((y.shape[0], y.shape[1] * 2), np.uint8)
    out[:, 0::4], out[:, 1::4], out[:, 2::4], out[:, 3::4] = u, y[:, 0::2], v, y[:, 1::2]
    return out


def pack_yuyv(y, u, v):
    out = np.empty((y.shape[0], y.shape[1] * 2), np.uint8)
    out[:, 0::4], out[:, 1::4], out[:, 2::4], out[:, 3::4] = y[:, 0::2], u, y[:, 1::2], v
    return out


@pytest.mark.parametrize('pad', [0, 3])
@pytest.mark.parametrize('encoding', YUV)
def test_yuv422_matches_opencv_and_bt601(encoding, pad):
    height, width = 6, 10
    y, u, v = yuv_planes(height, width)
    uyvy_order = encoding in ('uyvy', 'yuv422')
    packed = pack_uyvy(y, u, v) if uyvy_order else pack_yuyv(y, u, v)
    step = 2 * width + pad
    frame = image_to_frame(make_image(encoding, height, width, step, pad_rows(packed, step)),
                           BIG)
    assert frame.color_order == 'rgb' and frame.pixels.shape == (height, width, 3)
    assert frame.pixels.dtype == np.uint8 and not frame.zero_copy
    code = cv2.COLOR_YUV2RGB_UYVY if uyvy_order else cv2.COLOR_YUV2RGB_YUY2
    expected = cv2.cvtColor(np.ascontiguousarray(packed.reshape(height, width, 2)), code)
    np.testing.assert_array_equal(frame.pixels, expected)
    # Each chroma sample is shared by two neighbouring pixels.
    formula = bt601_rgb(y, np.repeat(u, 2, axis=1), np.repeat(v, 2, axis=1))
    formula = np.clip(np.round(formula), 0, 255)
    assert np.abs(frame.pixels.astype(np.int16) - formula).max() <= 2


@pytest.mark.parametrize('encoding', YUV)
def test_yuv422_one_pixel_by_hand(encoding):
    # Y=100, U=90, V=180: R = 1.164*84 + 1.596*52 = 180.8, G = 97.8 - 0.392*(-38) - 0.813*52
    # = 70.4, B = 97.8 + 2.017*(-38) = 21.1.
    uyvy = bytes([90, 100, 180, 100]) * 2
    yuyv = bytes([100, 90, 100, 180]) * 2
    raw = uyvy if encoding in ('uyvy', 'yuv422') else yuyv
    frame = image_to_frame(make_image(encoding, 1, 4, raw=raw), BIG)
    for pixel in frame.pixels.reshape(-1, 3):
        assert np.abs(pixel.astype(int) - [181, 70, 21]).max() <= 2


def test_yuv_byte_orders_differ():
    raw = bytes([90, 100, 180, 100])
    uyvy = image_to_frame(make_image('yuv422', 1, 2, raw=raw), BIG).pixels
    yuyv = image_to_frame(make_image('yuv422_yuy2', 1, 2, raw=raw), BIG).pixels
    assert np.abs(uyvy.astype(int) - yuyv.astype(int)).max() > 20


def mosaic(rgb, pattern):
    """Sample an HxWx3 RGB image through a ROS Bayer pattern (top-left 2x2 block, row-major)."""
    channel = {'r': 0, 'g': 1, 'b': 2}
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for index, letter in enumerate(pattern):
        row, col = divmod(index, 2)
        out[row::2, col::2] = rgb[row::2, col::2, channel[letter]]
    return out


def bayer_message(rgb, pattern, bits, big_endian=0, pad=0):
    height, width = rgb.shape[:2]
    plane = mosaic(rgb, pattern)
    if bits == 8:
        rows = plane
    else:
        low = np.random.default_rng(4).integers(0, 256, plane.shape, dtype=np.uint16)
        wide = (plane.astype(np.uint16) << 8) | low  # noise in the bits that get dropped
        rows = wide.astype('>u2' if big_endian else '<u2').view(np.uint8).reshape(height, -1)
    step = rows.shape[1] + pad
    return make_image('bayer_%s%d' % (pattern, bits), height, width, step,
                      pad_rows(rows, step), big_endian)


BAYER_CASES = [(p, 8, 0) for p in BAYER_PATTERNS] + [
    (p, 16, e) for p in BAYER_PATTERNS for e in (0, 1)]


@pytest.mark.parametrize('pattern,bits,big_endian', BAYER_CASES)
def test_bayer_uniform_colour(pattern, bits, big_endian):
    colour = (200, 50, 10)
    rgb = np.empty((12, 16, 3), np.uint8)
    rgb[:] = colour
    frame = image_to_frame(bayer_message(rgb, pattern, bits, big_endian, pad=2), BIG)
    assert frame.color_order == 'rgb' and frame.pixels.shape == (12, 16, 3)
    assert not frame.zero_copy
    np.testing.assert_array_equal(frame.pixels[1:-1, 1:-1], rgb[1:-1, 1:-1])
    assert np.abs(frame.pixels.astype(int) - colour).max() <= 2  # borders too


@pytest.mark.parametrize('pattern,bits,big_endian', BAYER_CASES)
def test_bayer_two_regions(pattern, bits, big_endian):
    left, right = (200, 50, 10), (10, 60, 220)
    rgb = np.empty((16, 20, 3), np.uint8)
    rgb[:, :10] = left
    rgb[:, 10:] = right
    frame = image_to_frame(bayer_message(rgb, pattern, bits, big_endian), BIG)
    pixels = frame.pixels
    np.testing.assert_array_equal(pixels[2:-2, 2:7], rgb[2:-2, 2:7])
    np.testing.assert_array_equal(pixels[2:-2, 13:-2], rgb[2:-2, 13:-2])
    # A shifted pattern (OpenCV's naming taken at face value) would swap red and blue.
    assert pixels[8, 4, 0] > 150 and pixels[8, 4, 2] < 30
    assert pixels[8, 16, 2] > 150 and pixels[8, 16, 0] < 30


def test_bayer_tiny_images():
    for height, width in ((1, 1), (1, 2), (2, 1), (3, 5)):
        rgb = np.full((height, width, 3), 77, np.uint8)
        frame = image_to_frame(bayer_message(rgb, 'rggb', 8), BIG)
        assert frame.pixels.shape == (height, width, 3)


def test_max_pixels_boundary():
    msg = make_image('rgb8', 4, 5)
    assert image_to_frame(msg, 20).pixels.shape == (4, 5, 3)
    with pytest.raises(InvalidImage, match='max_pixels'):
        image_to_frame(msg, 19)


# --- compressed images ----------------------------------------------------------------------

def test_jpeg_colour():
    bgr = smooth_bgr(48, 64)
    raw = encode('.jpg', bgr, cv2.IMWRITE_JPEG_QUALITY, 95)
    frame = compressed_to_frame(make_compressed('jpeg', raw), BIG)
    assert frame.color_order == 'bgr' and frame.pixels.shape == (48, 64, 3)
    assert frame.pixels.dtype == np.uint8 and not frame.zero_copy
    np.testing.assert_array_equal(frame.pixels,
                                  cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR))
    assert np.abs(frame.pixels.astype(int) - bgr).mean() < 3


def test_jpeg_grayscale():
    gray = smooth_bgr(30, 40)[:, :, 0]
    frame = compressed_to_frame(make_compressed('mono8; jpeg compressed mono8',
                                                encode('.jpg', gray)), BIG)
    assert frame.color_order == 'mono' and frame.pixels.shape == (30, 40)
    assert np.abs(frame.pixels.astype(int) - gray).mean() < 3


def test_png_colour_is_lossless_bgr():
    bgr = np.random.default_rng(5).integers(0, 256, (21, 33, 3), dtype=np.uint8)
    frame = compressed_to_frame(make_compressed('bgr8; png compressed bgr8',
                                                encode('.png', bgr)), BIG)
    assert frame.color_order == 'bgr'
    np.testing.assert_array_equal(frame.pixels, bgr)


def test_png_compressed_rgb8_stream_is_rgb():
    """Image_transport reads a stream compressed from rgb8 as holding RGB channels."""
    rgb = np.random.default_rng(6).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    frame = compressed_to_frame(make_compressed('rgb8; png compressed rgb8',
                                                encode('.png', rgb)), BIG)
    assert frame.color_order == 'rgb'
    np.testing.assert_array_equal(frame.pixels, rgb)
    # image_transport's usual case: an rgb8 image, converted and compressed as bgr8.
    frame = compressed_to_frame(make_compressed('rgb8; png compressed bgr8',
                                                encode('.png', rgb[:, :, ::-1])), BIG)
    assert frame.color_order == 'bgr'
    np.testing.assert_array_equal(frame.pixels[:, :, ::-1], rgb)


def test_png_16bit_gray_keeps_the_top_byte():
    values = np.random.default_rng(7).integers(0, 65536, (13, 17), dtype=np.uint16)
    frame = compressed_to_frame(make_compressed('png', encode('.png', values)), BIG)
    assert frame.color_order == 'mono' and frame.pixels.dtype == np.uint8
    np.testing.assert_array_equal(frame.pixels, (values >> 8).astype(np.uint8))


def test_png_16bit_colour_keeps_the_top_byte():
    values = np.random.default_rng(8).integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    frame = compressed_to_frame(make_compressed('png', encode('.png', values)), BIG)
    assert frame.color_order == 'bgr'
    np.testing.assert_array_equal(frame.pixels, (values >> 8).astype(np.uint8))


def test_png_with_alpha():
    bgra = np.random.default_rng(9).integers(0, 256, (10, 12, 4), dtype=np.uint8)
    frame = compressed_to_frame(make_compressed('bgra8; png compressed bgra8',
                                                encode('.png', bgra)), BIG)
    assert frame.color_order == 'bgra' and frame.pixels.shape == (10, 12, 4)
    np.testing.assert_array_equal(frame.pixels, bgra)


def test_png_gray_with_alpha_becomes_bgra():
    gray_alpha = np.zeros((4, 5, 2), np.uint8)
    gray_alpha[:, :, 0] = np.arange(5) * 40
    gray_alpha[:, :, 1] = 200
    rows = [row.tobytes() for row in gray_alpha]
    frame = compressed_to_frame(make_compressed('png', png_bytes(5, 4, 4, rows)), BIG)
    assert frame.color_order == 'bgra' and frame.pixels.shape == (4, 5, 4)
    assert list(frame.pixels[0, 2]) == [80, 80, 80, 200]


FORMAT_SPELLINGS = [
    ('jpeg', '.jpg', 3, 'bgr'), ('jpg', '.jpg', 3, 'bgr'), ('JPEG', '.jpg', 3, 'bgr'),
    ('png', '.png', 3, 'bgr'), ('PNG', '.png', 3, 'bgr'),
    ('bgr8; jpeg compressed bgr8', '.jpg', 3, 'bgr'),
    ('rgb8; jpeg compressed bgr8', '.jpg', 3, 'bgr'),
    ('rgb8; png compressed rgb8', '.png', 3, 'rgb'),
    ('mono8; png compressed mono8', '.png', 1, 'mono'),
    ('mono8; jpeg compressed mono8', '.jpg', 1, 'mono'),
    ('bgra8; png compressed bgra8', '.png', 4, 'bgra'),
    (' jpeg ', '.jpg', 3, 'bgr'),
]


@pytest.mark.parametrize('fmt,ext,channels,order', FORMAT_SPELLINGS)
def test_format_spellings(fmt, ext, channels, order):
    image = smooth_bgr(16, 24)
    if channels == 1:
        image = image[:, :, 1]
    elif channels == 4:
        image = np.dstack([image, np.full((16, 24), 128, np.uint8)])
    frame = compressed_to_frame(make_compressed(fmt, encode(ext, image)), BIG)
    assert frame.color_order == order
    assert frame.pixels.shape == image.shape


def test_compressed_max_pixels_boundary():
    raw = encode('.png', smooth_bgr(8, 10))
    assert compressed_to_frame(make_compressed('png', raw), 80).pixels.shape == (8, 10, 3)
    with pytest.raises(InvalidImage, match='max_pixels'):
        compressed_to_frame(make_compressed('png', raw), 79)


def test_max_pixels_is_checked_from_the_header_before_decoding():
    # Headers that declare a huge image over a few bytes of data: the header check answers.
    huge_png = png_bytes(100000, 100000, 2)
    huge_jpeg = jpeg_with_size(encode('.jpg', smooth_bgr(8, 8)), 60000, 60000)
    for fmt, raw in (('png', huge_png), ('jpeg', huge_jpeg)):
        with pytest.raises(InvalidImage, match=r'header declares 60000x60000|100000x100000'):
            compressed_to_frame(make_compressed(fmt, raw), 10 ** 6)


def test_jpeg_header_is_found_after_app_segments_and_fill_bytes():
    raw = encode('.jpg', smooth_bgr(8, 12))
    app1 = b'\xff\xe1' + struct.pack('>H', 2 + 300) + bytes(300)
    raw = raw[:2] + b'\xff' + app1 + raw[2:]  # an extra APP1 segment after a fill byte
    assert compressed_to_frame(make_compressed('jpeg', raw), 96).pixels.shape == (8, 12, 3)
    with pytest.raises(InvalidImage, match='header declares 12x8'):
        compressed_to_frame(make_compressed('jpeg', raw), 95)


# --- malformed messages ---------------------------------------------------------------------

def _malformed_raw():
    """Yield (id, message factory, field named in the reason, max_pixels)."""
    unknown = ['', 'RGB8', 'BGR8', 'rgb', 'bgr', '8UC1', '8UC3', '16UC1', '32FC1', '64FC1',
               'nv12', 'nv21', 'nv24', 'jpeg', 'png', 'rgb16', 'bgr16', 'rgba16', 'mono',
               'yuv420', 'bayer_rggb', 'bayer_rggb32', ' rgb8', 'rgb8 ', 'mono8\x00', 'unknown']
    for encoding in unknown:
        for height, width in ((4, 6), (1, 1)):
            yield ('encoding-%r-%dx%d' % (encoding, height, width),
                   lambda e=encoding, h=height, w=width: make_image(e, h, w, w * 3,
                                                                    bytes(h * w * 3)),
                   'encoding', BIG)
    for encoding in ENCODINGS:
        bpp = bytes_per_pixel(encoding)
        for height, width in ((0, 4), (0, 0), (4, 0)):
            field = 'height' if height == 0 else 'width'
            yield ('zero-%s-%dx%d' % (encoding, height, width),
                   lambda e=encoding, h=height, w=width, b=bpp: make_image(e, h, w, w * b, b''),
                   field, BIG)
        for step in (0, 4 * bpp - 1):
            yield ('step-%s-%d' % (encoding, step),
                   lambda e=encoding, s=step: make_image(e, 3, 4, s, bytes(3 * s)),
                   'step', BIG)
        height, width, step = 3, 4, 4 * bpp + 2
        for size in (0, height * step - 1, height * step + 1, (height - 1) * step,
                     height * 4 * bpp):
            yield ('data-%s-%d' % (encoding, size),
                   lambda e=encoding, s=step, n=size: make_image(e, 3, 4, s, bytes(n)),
                   'data', BIG)
        for height, width, limit in ((3, 4, 11), (1, 2, 1), (20, 20, 399)):
            yield ('max-%s-%dx%d' % (encoding, height, width),
                   lambda e=encoding, h=height, w=width, b=bpp: make_image(e, h, w),
                   'max_pixels', limit)
    for encoding in YUV:
        for width in (1, 3, 5, 641):
            yield ('odd-%s-%d' % (encoding, width),
                   lambda e=encoding, w=width: make_image(e, 2, w, 2 * w, bytes(4 * w)),
                   'width', BIG)


def _malformed_compressed():
    rng = np.random.default_rng(10)
    png = encode('.png', smooth_bgr(8, 8))
    jpeg = encode('.jpg', smooth_bgr(8, 8))
    bad_formats = ['', 'tiff', 'bmp', 'webp', 'bgr8', 'rgb8; raw', 'jpeg2000', 'jpegxl',
                   'pngx', 'png; compressedDepth', 'compressedDepth png',
                   '16UC1; compressedDepth png', '32FC1; compressedDepth', 'rvl',
                   'compressedDepth rvl', 'h264', 'theora', 'zstd']
    for fmt in bad_formats:
        yield 'format-%r' % fmt, lambda f=fmt: make_compressed(f, png), 'format', BIG
    garbage = [b'', b'\x00', b'\xff', b'GIF89a' + bytes(20), b'BM' + bytes(60),
               b'II*\x00' + bytes(40), b'RIFF\x00\x00\x00\x00WEBPVP8 ',
               png[:8], png[:30], png[:60], png[:len(png) // 2],
               jpeg[:3], jpeg[:20], jpeg[:200], jpeg[:len(jpeg) // 2],
               png_bytes(0, 5, 2), png_bytes(5, 0, 2), png_bytes(3, 3, 2),
               jpeg_with_size(jpeg, 0, 8)[:60]]
    garbage += [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (1, 7, 64, 4096)]
    garbage += [b'\x89PNG\r\n\x1a\n' + rng.integers(0, 256, 100, dtype=np.uint8).tobytes(),
                b'\xff\xd8\xff' + rng.integers(0, 256, 100, dtype=np.uint8).tobytes()]
    for index, raw in enumerate(garbage):
        for fmt in ('jpeg', 'png'):
            yield ('garbage-%d-%s' % (index, fmt), lambda f=fmt, r=raw: make_compressed(f, r),
                   'data', BIG)
    for fmt, raw in (('png', png), ('jpeg', jpeg), ('png', png_bytes(100000, 100000, 2))):
        yield 'max-%s-%d' % (fmt, len(raw)), lambda f=fmt, r=raw: make_compressed(f, r), \
            'max_pixels', 63


MALFORMED_RAW = list(_malformed_raw())
MALFORMED_COMPRESSED = list(_malformed_compressed())


def test_there_are_enough_malformed_messages():
    assert len(MALFORMED_RAW) + len(MALFORMED_COMPRESSED) >= 200


@pytest.mark.parametrize('factory,field,max_pixels',
                         [case[1:] for case in MALFORMED_RAW],
                         ids=[case[0] for case in MALFORMED_RAW])
def test_malformed_image_is_rejected(factory, field, max_pixels):
    with pytest.raises(InvalidImage) as caught:
        image_to_frame(factory(), max_pixels)
    assert type(caught.value) is InvalidImage
    assert field in str(caught.value)
    # The node's subscription callback runs the cheap check: it must reject the same way.
    with pytest.raises(InvalidImage) as checked:
        check_image(factory(), max_pixels)
    assert str(checked.value) == str(caught.value)


@pytest.mark.parametrize('factory,field,max_pixels',
                         [case[1:] for case in MALFORMED_COMPRESSED],
                         ids=[case[0] for case in MALFORMED_COMPRESSED])
def test_malformed_compressed_is_rejected(factory, field, max_pixels):
    with pytest.raises(InvalidImage) as caught:
        compressed_to_frame(factory(), max_pixels)
    assert type(caught.value) is InvalidImage
    assert field in str(caught.value)
    try:
        check_compressed(factory(), max_pixels)
    except InvalidImage as checked:
        assert str(checked) == str(caught.value)
    else:   # only what needs decoding passes the cheap check
        assert 'decode' in str(caught.value)


def test_reasons_name_the_value_and_the_accepted_values():
    with pytest.raises(InvalidImage) as caught:
        image_to_frame(make_image('32FC1', 1, 1, 4, bytes(4)), BIG)
    reason = str(caught.value)
    assert reason.startswith('encoding') and "'32FC1'" in reason
    assert all(encoding in reason for encoding in ENCODINGS)
    with pytest.raises(InvalidImage, match=r'^step: 5 .*accepted: step >= 6'):
        image_to_frame(make_image('rgb8', 1, 2, 5, bytes(5)), BIG)
    with pytest.raises(InvalidImage, match=r'^data: 5 bytes.* = 6 bytes'):
        image_to_frame(make_image('rgb8', 1, 2, 6, bytes(5)), BIG)
    with pytest.raises(InvalidImage, match=r'^width: 3 is odd.*even'):
        image_to_frame(make_image('yuv422', 1, 3, 6, bytes(6)), BIG)
    with pytest.raises(InvalidImage, match=r"^format: 'png; compressedDepth'.*jpeg"):
        compressed_to_frame(make_compressed('png; compressedDepth', b'\x89PNG'), BIG)


def test_wrong_message_type_is_an_invalid_image():
    with pytest.raises(InvalidImage, match='encoding'):
        image_to_frame(CompressedImage(format='jpeg'), BIG)
    with pytest.raises(InvalidImage, match='format'):
        compressed_to_frame(make_image('rgb8', 1, 1), BIG)


# --- output builders ------------------------------------------------------------------------

def stamped_header():
    header = Header(frame_id='camera_optical')
    header.stamp.sec, header.stamp.nanosec = 1234, 567
    return header


def assert_round_trips(msg):
    copy = deserialize_message(serialize_message(msg), Image)
    assert copy == msg
    assert bytes(copy.data) == bytes(msg.data)
    assert copy.header.frame_id == msg.header.frame_id
    assert (copy.header.stamp.sec, copy.header.stamp.nanosec) == (1234, 567)
    return copy


def test_labels_to_image():
    labels = np.random.default_rng(11).integers(0, 19, (7, 9), dtype=np.uint8)
    header = stamped_header()
    msg = labels_to_image(labels, header)
    assert isinstance(msg, Image) and msg.header is header
    assert (msg.height, msg.width, msg.step) == (7, 9, 9)
    assert msg.encoding == 'mono8' and msg.is_bigendian == 0
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'
    assert bytes(msg.data) == labels.tobytes()
    copy = assert_round_trips(msg)
    np.testing.assert_array_equal(image_to_frame(copy, BIG).pixels, labels)


@pytest.mark.parametrize('order', ['rgb', 'bgr'])
def test_overlay_to_image(order):
    overlay = np.random.default_rng(12).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    header = stamped_header()
    msg = overlay_to_image(overlay, order, header)
    assert msg.header is header
    assert (msg.height, msg.width, msg.step) == (6, 10, 30)
    assert msg.encoding == order + '8' and msg.is_bigendian == 0
    assert bytes(msg.data) == overlay.tobytes()
    copy = assert_round_trips(msg)
    frame = image_to_frame(copy, BIG)
    assert frame.color_order == order
    np.testing.assert_array_equal(frame.pixels, overlay)


def test_builders_copy_non_contiguous_input():
    base = np.random.default_rng(13).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    view = base[1:7:2, ::3]
    msg = overlay_to_image(view, 'bgr', stamped_header())
    assert bytes(msg.data) == np.ascontiguousarray(view).tobytes()
    assert (msg.height, msg.width, msg.step) == (3, 4, 12)
    labels = base[:, :, 1].T
    expected = np.ascontiguousarray(labels).tobytes()
    msg = labels_to_image(labels, stamped_header())
    assert (msg.height, msg.width, msg.step) == (12, 8, 8)
    assert bytes(msg.data) == expected
    base[:] = 0  # the message owns its bytes
    assert bytes(msg.data) == expected


def test_builders_default_header():
    msg = labels_to_image(np.zeros((2, 3), np.uint8), None)
    assert msg.header == Header()


@pytest.mark.parametrize('labels', [
    np.zeros((4, 5), np.int64), np.zeros((4, 5), np.float32), np.zeros((4, 5), np.uint16),
    np.zeros((4, 5), bool), np.zeros((4, 5, 1), np.uint8), np.zeros((4, 5, 3), np.uint8),
    np.zeros(20, np.uint8), np.zeros((0, 5), np.uint8), np.zeros((4, 0), np.uint8),
    [[1, 2], [3, 4]], None])
def test_labels_to_image_rejects(labels):
    with pytest.raises(ValueError, match='labels'):
        labels_to_image(labels, Header())


@pytest.mark.parametrize('overlay', [
    np.zeros((4, 5, 3), np.float32), np.zeros((4, 5, 3), np.int32),
    np.zeros((4, 5), np.uint8), np.zeros((4, 5, 4), np.uint8), np.zeros((4, 5, 1), np.uint8),
    np.zeros((4, 5, 3, 1), np.uint8), np.zeros((0, 5, 3), np.uint8), 'pixels'])
def test_overlay_to_image_rejects(overlay):
    with pytest.raises(ValueError, match='overlay'):
        overlay_to_image(overlay, 'rgb', Header())


@pytest.mark.parametrize('order', ['rgba', 'mono', 'RGB', '', None])
def test_overlay_to_image_rejects_colour_orders(order):
    with pytest.raises(ValueError, match='color_order'):
        overlay_to_image(np.zeros((2, 2, 3), np.uint8), order, Header())


def test_builders_reject_a_non_header():
    with pytest.raises(ValueError, match='header'):
        labels_to_image(np.zeros((2, 2), np.uint8), 'frame')
