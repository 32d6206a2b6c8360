"""The pure-numpy sensor_msgs codec: every encoding, padded rows, and each kind of bad input."""

from __future__ import annotations

import array
from types import SimpleNamespace

import numpy as np
import pytest
from camera_images import mosaic, yuv422

from seg_ros.image_codec import (
    ImageCodecError,
    decode_compressed,
    decode_compressed_msg,
    decode_image,
    decode_image_msg,
    encode_compressed,
    encode_image,
    supported_encodings,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)


def msg_from(arr: np.ndarray, encoding: str, pad: int = 0, container=bytes) -> SimpleNamespace:
    fields = encode_image(arr, encoding)
    rows = fields.data.reshape(fields.height, fields.step)
    if pad:
        rows = np.concatenate([rows, np.full((fields.height, pad), 7, np.uint8)], axis=1)
    raw = rows.tobytes()
    data = array.array("B", raw) if container is array.array else container(raw)
    return SimpleNamespace(
        height=fields.height,
        width=fields.width,
        encoding=encoding,
        is_bigendian=fields.is_bigendian,
        step=fields.step + pad,
        data=data,
    )


@pytest.mark.parametrize("container", [bytes, array.array, np.frombuffer])
@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize(
    ("encoding", "make", "order"),
    [
        ("rgb8", lambda: RGB, "rgb"),
        ("bgr8", lambda: RGB[:, :, ::-1], "bgr"),
        ("8UC3", lambda: RGB[:, :, ::-1], "bgr"),
        ("rgba8", lambda: np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)]), "rgb"),
        ("bgra8", lambda: np.dstack([RGB[:, :, ::-1], np.zeros(RGB.shape[:2], np.uint8)]), "bgr"),
    ],
)
def test_colour_encodings_round_trip_to_rgb(encoding, make, order, pad, container) -> None:
    if container is np.frombuffer:
        container = lambda raw: np.frombuffer(raw, np.uint8)  # noqa: E731 (rosbags-style data)
    decoded = decode_image_msg(msg_from(make(), encoding, pad, container))
    assert decoded.color_order == order
    assert decoded.array.shape == RGB.shape
    np.testing.assert_array_equal(decoded.rgb(), RGB)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8(encoding: str) -> None:
    gray = RGB[:, :, 0]
    decoded = decode_image_msg(msg_from(gray, encoding, pad=2))
    assert decoded.color_order == "mono"
    np.testing.assert_array_equal(decoded.array, gray)
    np.testing.assert_array_equal(decoded.rgb(), np.dstack([gray] * 3))


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 2])
def test_mono16_is_scaled_over_the_full_range(encoding: str, bigendian: bool, pad: int) -> None:
    wide = np.array([[0, 257, 65535], [32896, 1000, 65000]], dtype=np.uint16)
    stored = wide.astype(">u2" if bigendian else "<u2")
    rows = np.concatenate(
        [stored.view(np.uint8).reshape(2, 6), np.zeros((2, pad), np.uint8)], axis=1
    )
    decoded = decode_image(2, 3, encoding, 6 + pad, rows.tobytes(), int(bigendian))
    assert decoded.array.dtype == np.uint8
    np.testing.assert_array_equal(decoded.array, [[0, 1, 255], [128, 4, 253]])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(encoding="32FC1"), "unsupported encoding '32FC1'; supported: rgb8, .*, yuv422"),
        (dict(encoding="nv21"), "unsupported encoding 'nv21'"),
        (dict(encoding="yuv422", width=5, step=10, data=bytes(60)), "needs an even width"),
        (dict(encoding="bayer_rggb8", height=1, step=5, data=bytes(5)), "at least 2x2"),
        (dict(height=0), "zero-size image"),
        (dict(width=0, step=0), "zero-size image"),
        (dict(step=10), "step 10 is smaller than a rgb8 row of width 5"),
        (dict(data=bytes(6 * 15 - 1)), "truncated data: 89 bytes"),
        (dict(data=b""), "truncated data: 0 bytes"),
        (dict(data=bytes(6 * 15 + 4)), "data size mismatch: 94 bytes"),
    ],
)
def test_bad_images_say_what_is_wrong(fields: dict, message: str) -> None:
    msg = dict(height=6, width=5, encoding="rgb8", step=15, data=bytes(90))
    msg.update(fields)
    with pytest.raises(ImageCodecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_image(**msg)


# A smooth picture (demosaicing and 4:2:2 chroma interpolate between neighbours) whose red and
# blue run in different directions, so a swapped mosaic or chroma order cannot pass.
_Y, _X = np.mgrid[0:24, 0:32]
SMOOTH = np.dstack([40 + 6 * _X, 90 + 3 * (_X + _Y), 200 - 6 * _Y]).astype(np.uint8)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("pad", [0, 4])
def test_bayer_mosaics_are_demosaiced_to_rgb(pattern: str, bits: int, pad: int) -> None:
    raw = mosaic(SMOOTH, pattern)
    if bits == 16:
        raw = raw.astype("<u2") * 257  # scales back to exactly the 8-bit values
    rows = raw.view(np.uint8).reshape(raw.shape[0], -1)
    rows = np.concatenate([rows, np.full((rows.shape[0], pad), 255, np.uint8)], axis=1)
    h, w = SMOOTH.shape[:2]
    decoded = decode_image(h, w, f"bayer_{pattern}{bits}", rows.shape[1], rows.tobytes())
    assert decoded.color_order == "rgb" and decoded.array.shape == SMOOTH.shape
    inner = (slice(2, -2), slice(2, -2))  # demosaicing guesses at the border
    error = np.abs(decoded.array[inner].astype(int) - SMOOTH[inner]).max(axis=(0, 1))
    assert (error <= 4).all(), f"largest error per channel {error}"


@pytest.mark.parametrize(
    ("encoding", "order"),
    [("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv")],
)
def test_yuv422_is_converted_to_rgb(encoding: str, order: str) -> None:
    h, w = SMOOTH.shape[:2]
    packed = yuv422(SMOOTH, order)
    decoded = decode_image(h, w, encoding, w * 2, packed.tobytes())
    assert decoded.color_order == "rgb" and decoded.array.shape == SMOOTH.shape
    error = np.abs(decoded.array.astype(int) - SMOOTH).mean(axis=(0, 1))
    assert (error <= 4).all(), f"mean error per channel {error}"
    other = "yuyv" if order == "uyvy" else "uyvy"  # the other byte order is another picture
    wrong = decode_image(h, w, other, w * 2, packed.tobytes()).array
    assert np.abs(wrong.astype(int) - SMOOTH).mean() > 20


@pytest.mark.parametrize(
    ("encoding", "make", "order"),
    [
        ("rgb16", lambda a: a, "rgb"),
        ("bgr16", lambda a: a[:, :, ::-1], "bgr"),
        ("rgba16", lambda a: np.dstack([a, np.full(a.shape[:2], 65535, a.dtype)]), "rgb"),
        ("bgra16", lambda a: np.dstack([a[:, :, ::-1], np.zeros(a.shape[:2], a.dtype)]), "bgr"),
    ],
)
@pytest.mark.parametrize("bigendian", [False, True])
def test_16_bit_colour_is_scaled_like_mono16(encoding, make, order, bigendian) -> None:
    wide = make(RGB.astype(np.uint16) * 257).astype(">u2" if bigendian else "<u2")
    h, w = RGB.shape[:2]
    rows = np.ascontiguousarray(wide).view(np.uint8).reshape(h, -1)
    decoded = decode_image(h, w, encoding, rows.shape[1], rows.tobytes(), int(bigendian))
    assert decoded.color_order == order
    np.testing.assert_array_equal(decoded.rgb(), RGB)


def test_converted_encodings_are_read_not_written() -> None:
    assert {"bayer_rggb8", "yuv422", "rgb16", "mono16"} <= set(supported_encodings())
    with pytest.raises(ImageCodecError, match="unsupported encoding 'bayer_rggb8'"):
        encode_image(np.zeros((4, 4), np.uint8), "bayer_rggb8")


def test_odd_step_for_16_bit_is_refused() -> None:
    with pytest.raises(ImageCodecError, match="not a multiple"):
        decode_image(2, 2, "mono16", 5, bytes(10))


def test_encode_checks_shape_and_dtype() -> None:
    with pytest.raises(ImageCodecError, match="needs 3 channel"):
        encode_image(np.zeros((4, 4), np.uint8), "rgb8")
    with pytest.raises(ImageCodecError, match="needs dtype uint8"):
        encode_image(np.zeros((4, 4), np.uint16), "mono8")
    fields = encode_image(np.zeros((4, 6), np.uint8), "mono8")
    assert (fields.height, fields.width, fields.step, fields.data.size) == (4, 6, 6, 24)


def test_encode_is_a_view_of_contiguous_input() -> None:
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    fields = encode_image(labels, "mono8")
    assert np.shares_memory(fields.data, labels)


def test_png_round_trip_is_lossless_and_bgr() -> None:
    fmt, data = encode_compressed(RGB, "png", color_order="rgb")
    assert fmt == "rgb8; png compressed bgr8"
    decoded = decode_compressed_msg(SimpleNamespace(format=fmt, data=array.array("B", data)))
    assert decoded.color_order == "bgr"
    np.testing.assert_array_equal(decoded.rgb(), RGB)


def test_jpeg_and_mono_and_16bit_png() -> None:
    smooth = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (24, 1, 3))
    fmt, data = encode_compressed(smooth, "jpeg")
    decoded = decode_compressed(fmt, data.tobytes())
    assert decoded.array.shape == (24, 32, 3)
    assert np.abs(decoded.rgb().astype(int) - smooth).max() < 16

    fmt, data = encode_compressed(smooth[:, :, 0], "png")
    decoded = decode_compressed(fmt, data)
    assert decoded.color_order == "mono"
    np.testing.assert_array_equal(decoded.array, smooth[:, :, 0])

    import cv2

    ok, buf = cv2.imencode(".png", np.full((3, 4), 65535, np.uint16))
    assert ok
    decoded = decode_compressed("16UC1; png compressed", buf)
    np.testing.assert_array_equal(decoded.array, np.full((3, 4), 255, np.uint8))


@pytest.mark.parametrize(
    ("fmt", "data", "message"),
    [
        ("jpeg", b"", "empty compressed image"),
        ("jpeg", b"\xff\xd8\xff\xe0 this is not a jpeg", "corrupt compressed image"),
        ("png", bytes(range(256)) * 4, "corrupt compressed image"),
        ("16UC1; compressedDepth png", b"\x00" * 20, "compressedDepth"),
    ],
)
def test_bad_compressed_data_says_what_is_wrong(fmt: str, data: bytes, message: str) -> None:
    with pytest.raises(ImageCodecError, match=message):
        decode_compressed(fmt, data)


def test_truncated_jpeg_is_refused_or_decodes_to_the_right_size() -> None:
    # libjpeg pads a cut-off stream with grey rather than failing; either outcome is safe, a
    # wrongly sized image is not.
    _, data = encode_compressed(RGB, "jpeg")
    try:
        decoded = decode_compressed("jpeg", data[: len(data) // 2])
    except ImageCodecError as e:
        assert "corrupt" in str(e)
    else:
        assert decoded.array.shape == RGB.shape
