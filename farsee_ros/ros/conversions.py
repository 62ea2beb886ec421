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
Convert sensor_msgs images to numpy frames and segmentation results back to messages.

Raw ``sensor_msgs/msg/Image`` data in the common 8-bit encodings becomes a zero-copy numpy
view on ``msg.data``; 16-bit mono and Bayer data keeps its top 8 bits, YUV 4:2:2 and Bayer
mosaics are converted to RGB with OpenCV, and ``sensor_msgs/msg/CompressedImage`` JPEG or PNG
streams are decoded with ``cv2.imdecode``. Every malformed message raises InvalidImage, whose
text names the field, the offending value and what is accepted.
"""

import array
from dataclasses import dataclass
import re
from typing import Optional, Tuple

import cv2
import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header


class InvalidImage(ValueError):
    """
    Signal a message that cannot become a frame.

    ``str(exc)`` is the reason: it names the field, the offending value and the accepted
    values.
    """


@dataclass
class Frame:
    """
    Hold the pixels of one decoded image and their channel order.

    ``pixels`` is HxWxC or HxW uint8 and may be a non-contiguous view; ``color_order`` is one
    of 'rgb', 'bgr', 'rgba', 'bgra' or 'mono'; ``zero_copy`` is True when ``pixels`` is a
    view on the message's data buffer (no copy was made).
    """

    pixels: np.ndarray
    color_order: str
    zero_copy: bool


# Encodings that map onto the buffer as they are: encoding -> (channels, colour order).
_PACKED = {
    'rgb8': (3, 'rgb'),
    'bgr8': (3, 'bgr'),
    'rgba8': (4, 'rgba'),
    'bgra8': (4, 'bgra'),
    'mono8': (1, 'mono'),
}

# YUV 4:2:2, two bytes a pixel. sensor_msgs' 'yuv422' is UYVY and 'yuv422_yuy2' is YUYV;
# newer sensor_msgs name them 'uyvy' and 'yuyv' and mark the old names deprecated.
_YUV = {
    'uyvy': cv2.COLOR_YUV2RGB_UYVY,
    'yuv422': cv2.COLOR_YUV2RGB_UYVY,
    'yuyv': cv2.COLOR_YUV2RGB_YUY2,
    'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUY2,
}

# OpenCV names a Bayer pattern after the 2x2 block that starts at the second row and second
# column, so its names are shifted relative to ROS's (which name the top-left block): ROS
# bayer_rggb is OpenCV's BayerBG, as in cv_bridge.
_BAYER_CODES = {
    'rggb': cv2.COLOR_BayerBG2RGB,
    'bggr': cv2.COLOR_BayerRG2RGB,
    'gbrg': cv2.COLOR_BayerGR2RGB,
    'grbg': cv2.COLOR_BayerGB2RGB,
}
# encoding -> (OpenCV conversion code, bytes a pixel)
_BAYER = {'bayer_%s%d' % (pattern, bits): (code, bits // 8)
          for bits in (8, 16) for pattern, code in _BAYER_CODES.items()}

ENCODINGS: Tuple[str, ...] = tuple(_PACKED) + ('mono16',) + tuple(_YUV) + tuple(_BAYER)
COMPRESSED_FORMATS: Tuple[str, ...] = ('jpeg', 'png')

_ACCEPTED_ENCODINGS = ', '.join(ENCODINGS)
_ACCEPTED_FORMATS = ("'jpeg' (or 'jpg') or 'png', alone or as image_transport writes them, "
                     "e.g. 'bgr8; jpeg compressed bgr8'")
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
_JPEG_MAGIC = b'\xff\xd8\xff'
# JPEG start-of-frame markers: 0xC0-0xCF except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01, 0xD8}


def _bytes_per_pixel(encoding: str) -> int:
    if encoding in _PACKED:
        return _PACKED[encoding][0]
    if encoding in _BAYER:
        return _BAYER[encoding][1]
    return 2  # mono16 and the YUV 4:2:2 encodings


def _field(msg, name: str):
    try:
        return getattr(msg, name)
    except AttributeError:
        raise InvalidImage('%s: the message has no %r field (got a %s)'
                           % (name, name, type(msg).__name__)) from None


def _uint_field(msg, name: str) -> int:
    value = _field(msg, name)
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidImage('%s: %r is not an integer; accepted: an unsigned integer'
                           % (name, value)) from None
    if number < 0:
        raise InvalidImage('%s: %d is negative; accepted: an unsigned integer' % (name, number))
    return number


def _check_max_pixels(max_pixels) -> None:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) \
            or max_pixels < 1:
        raise ValueError('max_pixels must be a positive integer, got %r' % (max_pixels,))


def _data_buffer(data) -> Tuple[np.ndarray, bool]:
    """
    Return ``data`` as a flat uint8 array and whether it is a view (not a copy) on ``data``.

    rclpy hands uint8[] fields over as ``array.array('B')``; bytes, bytearray and memoryview
    are viewed the same way. Anything else (a list of ints) is copied after a range check.
    """
    try:
        view = memoryview(data)
    except TypeError:
        view = None
    if view is not None:
        try:
            if view.c_contiguous:
                return np.frombuffer(view.cast('B') if view.ndim != 1 or view.format != 'B'
                                     else view, np.uint8), True
        except (TypeError, ValueError, BufferError):
            pass
        try:
            return np.frombuffer(view.tobytes(), np.uint8), False
        except (TypeError, ValueError, BufferError) as exc:
            raise InvalidImage('data: cannot read the buffer (%s); accepted: a uint8 sequence'
                               % exc) from None
    if isinstance(data, (str, bytes)):
        raise InvalidImage('data: got a %s; accepted: a uint8 sequence' % type(data).__name__)
    try:
        values = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise InvalidImage('data: cannot read a %s (%s); accepted: a uint8 sequence'
                           % (type(data).__name__, exc)) from None
    if values.size == 0:
        return np.zeros(0, np.uint8), False
    if values.ndim != 1 or values.dtype.kind not in 'iu' \
            or values.min() < 0 or values.max() > 255:
        raise InvalidImage('data: a %s of dtype %s and shape %s; accepted: a flat sequence of '
                           'integers in [0, 255]' % (type(data).__name__, values.dtype,
                                                     values.shape))
    return values.astype(np.uint8), False


def _checked_rows(msg, max_pixels: int) -> Tuple[str, np.ndarray, int, int, bool]:
    """Validate an Image's metadata and data length; return (encoding, rows, h, w, is_view)."""
    _check_max_pixels(max_pixels)
    encoding = _field(msg, 'encoding')
    if not isinstance(encoding, str) or encoding not in ENCODINGS:
        raise InvalidImage('encoding: %r is not supported; accepted: %s'
                           % (encoding, _ACCEPTED_ENCODINGS))
    height = _uint_field(msg, 'height')
    width = _uint_field(msg, 'width')
    step = _uint_field(msg, 'step')
    for name, value in (('height', height), ('width', width)):
        if value == 0:
            raise InvalidImage('%s: 0; accepted: at least 1 (height=%d, width=%d)'
                               % (name, height, width))
    if encoding in _YUV and width % 2:
        raise InvalidImage('width: %d is odd; %s packs two pixels into four bytes, so accepted '
                           'widths are even' % (width, encoding))
    if height * width > max_pixels:
        raise InvalidImage('height*width: %d*%d = %d pixels exceeds max_pixels=%d'
                           % (height, width, height * width, max_pixels))
    bpp = _bytes_per_pixel(encoding)
    row_bytes = width * bpp
    if step < row_bytes:
        raise InvalidImage('step: %d is less than width*bytes_per_pixel = %d*%d = %d for %s; '
                           'accepted: step >= %d' % (step, width, bpp, row_bytes, encoding,
                                                     row_bytes))
    buf, is_view = _data_buffer(_field(msg, 'data'))
    if buf.size != height * step:
        raise InvalidImage('data: %d bytes, but height*step = %d*%d = %d bytes are required'
                           % (buf.size, height, step, height * step))
    rows = buf.reshape(height, step)[:, :row_bytes]
    return encoding, rows, height, width, is_view


def check_image(msg, max_pixels: int) -> None:
    """
    Validate a ``sensor_msgs/msg/Image`` without converting its pixels (microseconds).

    Raises InvalidImage for exactly the messages image_to_frame rejects, except for a Bayer or
    YUV buffer that OpenCV then fails to convert.
    """
    _checked_rows(msg, max_pixels)


def image_to_frame(msg, max_pixels: int) -> Frame:
    """
    Turn a ``sensor_msgs/msg/Image`` into a Frame, raising InvalidImage if it is malformed.

    rgb8, bgr8, rgba8, bgra8 and mono8 become zero-copy views on ``msg.data`` (also with a
    padded ``step``). mono16 keeps the top 8 bits of each value, as a view on the data;
    uyvy/yuv422 and yuyv/yuv422_yuy2 are converted to RGB; Bayer mosaics (8-bit, or 16-bit
    reduced to their top 8 bits) are demosaiced to RGB. ``max_pixels`` bounds height*width.
    """
    encoding, rows, height, width, is_view = _checked_rows(msg, max_pixels)

    if encoding in _PACKED:
        channels, order = _PACKED[encoding]
        pixels = rows if channels == 1 else rows.reshape(height, width, channels)
        return Frame(pixels, order, is_view)

    big_endian = bool(_field(msg, 'is_bigendian'))
    if encoding == 'mono16':
        # The top 8 bits of a 16-bit value are its most significant byte: the first byte of
        # each pair when big-endian, the second when little-endian. This is value >> 8.
        return Frame(rows[:, 0::2] if big_endian else rows[:, 1::2], 'mono', is_view)

    if encoding in _YUV:
        source = rows.reshape(height, width, 2)
        code = _YUV[encoding]
    else:
        code, depth = _BAYER[encoding]
        if depth == 1:
            source = rows
        else:
            source = rows[:, 0::2] if big_endian else rows[:, 1::2]
    try:
        pixels = cv2.cvtColor(source, code)
    except cv2.error as exc:
        raise InvalidImage('height/width: OpenCV cannot convert a %dx%d %s image (%s)'
                           % (width, height, encoding, str(exc).strip())) from None
    return Frame(pixels, 'rgb', False)


def _compressed_codec(fmt) -> Tuple[str, bool]:
    """Return the codec named by a CompressedImage format and whether its pixels are RGB."""
    if not isinstance(fmt, str):
        raise InvalidImage('format: %r is not a string; accepted: %s' % (fmt, _ACCEPTED_FORMATS))
    lowered = fmt.strip().lower()
    if 'compresseddepth' in lowered:
        raise InvalidImage('format: %r is a compressedDepth stream (depth image), which is not '
                           'supported; accepted: %s' % (fmt, _ACCEPTED_FORMATS))
    tokens = re.split(r'[^a-z0-9]+', lowered)
    if 'jpeg' in tokens or 'jpg' in tokens:
        codec = 'jpeg'
    elif 'png' in tokens:
        codec = 'png'
    else:
        raise InvalidImage('format: %r names no supported codec; accepted: %s'
                           % (fmt, _ACCEPTED_FORMATS))
    # image_transport's compressed publisher writes '<encoding>; <codec> compressed <target>';
    # the stream holds its channels in the target's order (bgr8 unless it says rgb).
    _, _, target = lowered.partition(';')
    return codec, 'compressed rgb' in target


def _png_size(data: memoryview) -> Optional[Tuple[int, int]]:
    if len(data) < 24 or data[12:16] != b'IHDR':
        return None
    return (int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big'))


def _jpeg_size(data: memoryview) -> Optional[Tuple[int, int]]:
    i, end = 2, len(data)
    while i < end:
        if data[i] != 0xFF:
            return None
        while i < end and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= end:
            return None
        marker = data[i]
        i += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA) or i + 2 > end:  # end of image or start of scan: no SOF
            return None
        length = (data[i] << 8) | data[i + 1]
        if marker in _JPEG_SOF:
            if i + 7 > end:
                return None
            height = (data[i + 3] << 8) | data[i + 4]
            width = (data[i + 5] << 8) | data[i + 6]
            return (width, height) if height else None  # height 0: defined later by DNL
        i += length
    return None


def _checked_stream(msg, max_pixels: int) -> Tuple[np.ndarray, str, str, bool]:
    """Validate a CompressedImage before decoding; return (buffer, kind, format, rgb_stream)."""
    _check_max_pixels(max_pixels)
    fmt = _field(msg, 'format')
    codec, rgb_stream = _compressed_codec(fmt)
    buf, _ = _data_buffer(_field(msg, 'data'))
    if buf.size == 0:
        raise InvalidImage('data: empty; accepted: a %s stream (format %r)' % (codec, fmt))
    head = memoryview(buf)
    if head[:8] == _PNG_MAGIC:
        kind, size = 'png', _png_size(head)
    elif head[:3] == _JPEG_MAGIC:
        kind, size = 'jpeg', _jpeg_size(head)
    else:
        raise InvalidImage('data: %d bytes starting %r are not a PNG or JPEG stream (format %r); '
                           'accepted: a jpeg or png stream'
                           % (buf.size, bytes(head[:8]), fmt))
    if size is not None:
        width, height = size
        if width == 0 or height == 0:
            raise InvalidImage('data: the %s header declares a %dx%d image; accepted: at least '
                               '1x1' % (kind, width, height))
        if width * height > max_pixels:
            raise InvalidImage('data: the %s header declares %dx%d = %d pixels, which exceeds '
                               'max_pixels=%d' % (kind, width, height, width * height,
                                                  max_pixels))
    return buf, kind, fmt, rgb_stream


def check_compressed(msg, max_pixels: int) -> None:
    """
    Validate a ``sensor_msgs/msg/CompressedImage`` without decoding it (format, signature, size).

    A stream that passes can still fail to decode; compressed_to_frame reports that.
    """
    _checked_stream(msg, max_pixels)


def compressed_to_frame(msg, max_pixels: int) -> Frame:
    """
    Decode a ``sensor_msgs/msg/CompressedImage`` (JPEG or PNG) into a Frame.

    The image's size is read from the PNG IHDR or JPEG SOF header and checked against
    ``max_pixels`` before decoding. 16-bit images keep their top 8 bits; 3-channel images are
    'bgr' and 4-channel ones 'bgra' (or 'rgb'/'rgba' when the format says the stream was
    compressed from rgb8/rgba8, as image_transport's subscriber reads it).
    """
    buf, kind, fmt, rgb_stream = _checked_stream(msg, max_pixels)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise InvalidImage('data: cv2.imdecode failed on the %d-byte %s stream (%s)'
                           % (buf.size, kind, str(exc).strip())) from None
    if image is None or image.size == 0:
        raise InvalidImage('data: cv2.imdecode cannot decode the %d-byte %s stream (format %r)'
                           % (buf.size, kind, fmt))
    height, width = image.shape[:2]
    if height * width > max_pixels:
        raise InvalidImage('data: the decoded %dx%d = %d pixels exceed max_pixels=%d'
                           % (width, height, height * width, max_pixels))
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InvalidImage('data: decoded to dtype %s; accepted: 8- or 16-bit images'
                           % image.dtype)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        order = 'mono'
    elif image.shape[2] == 3:
        order = 'rgb' if rgb_stream else 'bgr'
    elif image.shape[2] == 4:
        order = 'rgba' if rgb_stream else 'bgra'
    else:
        raise InvalidImage('data: decoded to %d channels; accepted: 1, 3 or 4'
                           % image.shape[2])
    return Frame(image, order, False)


def _to_image(pixels: np.ndarray, encoding: str, header) -> Image:
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(pixels))  # one memcpy; rclpy keeps array('B') as is
    msg = Image()
    if header is not None:
        if not isinstance(header, Header):
            raise ValueError('header must be a std_msgs.msg.Header or None, got %s'
                             % type(header).__name__)
        msg.header = header
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = width * channels
    msg.data = data
    return msg


def _check_pixels(name: str, pixels, ndim: int, channels: Optional[int]) -> None:
    if not isinstance(pixels, np.ndarray):
        raise ValueError('%s must be a numpy array, got %s' % (name, type(pixels).__name__))
    if pixels.dtype != np.uint8:
        raise ValueError('%s must have dtype uint8, got %s' % (name, pixels.dtype))
    expected = 'HxW' if channels is None else 'HxWx%d' % channels
    if pixels.ndim != ndim or (channels is not None and pixels.shape[2] != channels):
        raise ValueError('%s must have shape %s, got %s' % (name, expected, pixels.shape))
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ValueError('%s must not be empty, got shape %s' % (name, pixels.shape))


def labels_to_image(labels: np.ndarray, header: Optional[Header] = None) -> Image:
    """Build a mono8 ``sensor_msgs/msg/Image`` from an HxW uint8 label map."""
    _check_pixels('labels', labels, 2, None)
    return _to_image(labels, 'mono8', header)


def overlay_to_image(overlay: np.ndarray, color_order: str,
                     header: Optional[Header] = None) -> Image:
    """Build an rgb8 ('rgb') or bgr8 ('bgr') ``sensor_msgs/msg/Image`` from HxWx3 uint8."""
    encodings = {'rgb': 'rgb8', 'bgr': 'bgr8'}
    if color_order not in encodings:
        raise ValueError("color_order must be 'rgb' or 'bgr', got %r" % (color_order,))
    _check_pixels('overlay', overlay, 3, 3)
    return _to_image(overlay, encodings[color_order], header)
