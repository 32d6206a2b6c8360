"""sensor_msgs/Image and CompressedImage fields <-> numpy arrays, without ROS.

The functions take the message's fields (or any object with the same attribute names), so the
node's rclpy messages and the bag tools' ``rosbags`` messages share one implementation. Every
check names the problem: a camera driver that fills ``step`` wrongly should be told so, not
handed a scrambled image.

Decoded colour images keep their channel order (no copy to swap it); the caller passes the
returned ``color_order`` to the pipeline, which normalises in whichever order it is given.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np


class ImageCodecError(ValueError):
    """A message cannot be turned into an image (or an image into a message); says why."""


@dataclass(frozen=True)
class _Layout:
    channels: int  # values stored per pixel (2 for packed YUV 4:2:2)
    dtype: np.dtype
    color_order: str  # "rgb" | "bgr" | "mono"; order of the first three channels
    to_rgb: str = ""  # the cv2.cvtColor code that makes RGB of the stored values, if needed


_U8 = np.dtype(np.uint8)
_U16 = np.dtype(np.uint16)

# Encoding names as sensor_msgs/image_encodings.hpp spells them. 8UC3 is OpenCV's BGR.
ENCODINGS: dict[str, _Layout] = {
    "rgb8": _Layout(3, _U8, "rgb"),
    "bgr8": _Layout(3, _U8, "bgr"),
    "rgba8": _Layout(4, _U8, "rgb"),
    "bgra8": _Layout(4, _U8, "bgr"),
    "mono8": _Layout(1, _U8, "mono"),
    "8UC1": _Layout(1, _U8, "mono"),
    "8UC3": _Layout(3, _U8, "bgr"),
    "mono16": _Layout(1, _U16, "mono"),
    "16UC1": _Layout(1, _U16, "mono"),
}

# What cameras publish raw and cv_bridge converts: decoded to RGB here, never encoded. OpenCV's
# Bayer names count from the second row, hence RGGB -> BayerBG (cv_bridge's mapping; the 4.x
# names, since OpenCV's own RGGB spellings are newer than a Jetson's OpenCV). yuv422 is UYVY and
# yuv422_yuy2 is YUYV (sensor_msgs/image_encodings.hpp); uyvy/yuyv are the newer names.
_BAYER = {"rggb": "BG", "bggr": "RG", "gbrg": "GR", "grbg": "GB"}
CONVERTED: dict[str, _Layout] = {
    **{
        f"bayer_{pattern}{bits}": _Layout(1, dtype, "rgb", f"COLOR_Bayer{cv}2RGB")
        for pattern, cv in _BAYER.items()
        for bits, dtype in (("8", _U8), ("16", _U16))
    },
    "yuv422": _Layout(2, _U8, "rgb", "COLOR_YUV2RGB_UYVY"),
    "uyvy": _Layout(2, _U8, "rgb", "COLOR_YUV2RGB_UYVY"),
    "yuv422_yuy2": _Layout(2, _U8, "rgb", "COLOR_YUV2RGB_YUYV"),
    "yuyv": _Layout(2, _U8, "rgb", "COLOR_YUV2RGB_YUYV"),
    "rgb16": _Layout(3, _U16, "rgb"),
    "bgr16": _Layout(3, _U16, "bgr"),
    "rgba16": _Layout(4, _U16, "rgb"),
    "bgra16": _Layout(4, _U16, "bgr"),
}
_DECODABLE = {**ENCODINGS, **CONVERTED}

# 16-bit images are scaled over the full 16-bit range, as cv_bridge's mono16 -> mono8 does, so
# a frame's brightness never depends on the content of the frame before it.
_MONO16_SCALE = 255.0 / 65535.0


@dataclass
class DecodedImage:
    """An image ready for the pipeline: HxW or HxWx3 uint8, plus its channel order."""

    array: np.ndarray
    color_order: str  # "rgb" | "bgr" | "mono"

    @property
    def height(self) -> int:
        return int(self.array.shape[0])

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    def rgb(self) -> np.ndarray:
        """The image as contiguous HxWx3 RGB (a copy unless it already is one)."""
        a = self.array
        if a.ndim == 2:
            return np.repeat(a[:, :, None], 3, axis=2)
        if self.color_order == "bgr":
            a = a[:, :, ::-1]
        return np.ascontiguousarray(a)


def supported_encodings() -> list[str]:
    """Every encoding ``decode_image`` reads (``encode_image`` writes those in ENCODINGS)."""
    return list(_DECODABLE)


def _as_bytes(data: Any) -> np.ndarray:
    """A flat uint8 view of a message's ``data`` (array.array, bytes, list or ndarray)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)  # a plain list of ints


def decode_image(
    height: int, width: int, encoding: str, step: int, data: Any, is_bigendian: int = 0
) -> DecodedImage:
    """sensor_msgs/Image fields -> image for the pipeline; raises ImageCodecError.

    Padded rows (``step`` larger than a row) are handled without copying; alpha is dropped;
    16-bit images are scaled to 8 bits over the full range; Bayer mosaics are demosaiced and
    YUV 4:2:2 converted to RGB (OpenCV, as cv_bridge does).
    """
    layout = _DECODABLE.get(encoding)
    if layout is None:
        raise ImageCodecError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(_DECODABLE)}"
        )
    if height <= 0 or width <= 0:
        raise ImageCodecError(f"zero-size image ({width}x{height})")
    if layout.channels == 2 and width % 2:
        raise ImageCodecError(
            f"a {encoding} image needs an even width (two pixels share their colour), got {width}"
        )
    if encoding.startswith("bayer_") and (height < 2 or width < 2):
        raise ImageCodecError(
            f"a {encoding} mosaic needs at least 2x2 pixels, got {width}x{height}"
        )
    row_bytes = width * layout.channels * layout.dtype.itemsize
    if step < row_bytes:
        raise ImageCodecError(
            f"step {step} is smaller than a {encoding} row of width {width} ({row_bytes} bytes)"
        )
    if step % layout.dtype.itemsize:
        raise ImageCodecError(f"step {step} is not a multiple of the {encoding} element size")
    flat = _as_bytes(data)
    expected = step * height
    if flat.size < expected:
        raise ImageCodecError(
            f"truncated data: {flat.size} bytes, but step {step} x height {height} needs {expected}"
        )
    if flat.size > expected:
        raise ImageCodecError(
            f"data size mismatch: {flat.size} bytes, but step {step} x height {height} is "
            f"{expected}"
        )
    rows = flat.reshape(height, step)[:, :row_bytes]
    if layout.dtype.itemsize == 1:
        pixels = rows.reshape(height, width, layout.channels)
    else:
        order = ">" if is_bigendian else "<"
        # A view when rows are unpadded; padded rows need a copy to be reinterpreted.
        rows = rows if rows.flags.c_contiguous else np.ascontiguousarray(rows)
        wide = rows.view(layout.dtype.newbyteorder(order)).reshape(height, width, layout.channels)
        pixels = np.rint(wide.astype(np.float32) * _MONO16_SCALE).astype(np.uint8)
    if layout.to_rgb:
        import cv2

        stored = pixels[:, :, 0] if layout.channels == 1 else pixels
        return DecodedImage(cv2.cvtColor(stored, getattr(cv2, layout.to_rgb)), "rgb")
    if layout.channels == 1:
        return DecodedImage(pixels[:, :, 0], "mono")
    if layout.channels == 4:
        # A copy without alpha: OpenCV (resize, colour conversion) cannot read a 3-of-4
        # channel view, so the pipeline would copy it anyway.
        import cv2

        return DecodedImage(cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB), layout.color_order)
    return DecodedImage(pixels, layout.color_order)


def decode_image_msg(msg: Any) -> DecodedImage:
    """decode_image on anything with sensor_msgs/Image's field names."""
    return decode_image(
        int(msg.height),
        int(msg.width),
        str(msg.encoding),
        int(msg.step),
        msg.data,
        int(getattr(msg, "is_bigendian", 0)),
    )


@dataclass
class ImageFields:
    """The fields of a sensor_msgs/Image except the header; ``data`` is contiguous uint8."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


def encode_image(array: np.ndarray, encoding: str) -> ImageFields:
    """numpy image -> sensor_msgs/Image fields. The array's shape and dtype must fit."""
    layout = ENCODINGS.get(encoding)
    if layout is None:
        raise ImageCodecError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(ENCODINGS)}"
        )
    if array.ndim == 2 and layout.channels == 1:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != layout.channels:
        raise ImageCodecError(
            f"a {encoding} image needs {layout.channels} channel(s), got shape {array.shape}"
        )
    if array.dtype != layout.dtype:
        raise ImageCodecError(f"a {encoding} image needs dtype {layout.dtype}, got {array.dtype}")
    height, width = int(array.shape[0]), int(array.shape[1])
    if height == 0 or width == 0:
        raise ImageCodecError(f"zero-size image ({width}x{height})")
    array = np.ascontiguousarray(array)
    return ImageFields(
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(sys.byteorder == "big" and array.dtype.itemsize > 1),
        step=width * layout.channels * array.dtype.itemsize,
        data=array.reshape(-1).view(np.uint8),
    )


def decode_compressed(fmt: str, data: Any) -> DecodedImage:
    """sensor_msgs/CompressedImage (jpeg/png) -> image for the pipeline.

    image_transport writes ``format`` as e.g. ``"rgb8; jpeg compressed bgr8"``; whatever the
    source encoding, OpenCV decodes the stream to BGR, so the channel order is always "bgr".
    """
    import cv2

    lowered = fmt.lower()
    if "compresseddepth" in lowered:
        raise ImageCodecError(f"compressedDepth images are not supported (format {fmt!r})")
    flat = _as_bytes(data)
    if flat.size == 0:
        raise ImageCodecError(f"empty compressed image (format {fmt!r})")
    # imdecode sniffs the stream itself; the format string is only used in messages.
    image = cv2.imdecode(flat, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageCodecError(
            f"corrupt compressed image: OpenCV cannot decode {flat.size} bytes (format {fmt!r})"
        )
    if image.dtype == np.uint16:
        image = np.rint(image.astype(np.float32) * _MONO16_SCALE).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageCodecError(f"compressed image decodes to unsupported dtype {image.dtype}")
    if image.ndim == 2:
        return DecodedImage(image, "mono")
    if image.shape[2] == 1:
        return DecodedImage(image[:, :, 0], "mono")
    if image.shape[2] == 4:
        return DecodedImage(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), "bgr")
    if image.shape[2] == 3:
        return DecodedImage(image, "bgr")
    raise ImageCodecError(f"compressed image decodes to unsupported shape {image.shape}")


def decode_compressed_msg(msg: Any) -> DecodedImage:
    """decode_compressed on anything with sensor_msgs/CompressedImage's field names."""
    return decode_compressed(str(msg.format), msg.data)


def encode_compressed(
    array: np.ndarray, fmt: str = "jpeg", color_order: str = "rgb", quality: int = 90
) -> tuple[str, np.ndarray]:
    """Image -> (CompressedImage.format, data) the way image_transport's compressed plugin
    writes them, so the node can be fed the same bytes a real camera pipeline would send."""
    import cv2

    if fmt not in ("jpeg", "png"):
        raise ImageCodecError(f"compressed format must be 'jpeg' or 'png', got {fmt!r}")
    if array.ndim == 2:
        source, bgr = "mono8", array
    elif array.ndim == 3 and array.shape[2] == 3:
        source = "rgb8" if color_order == "rgb" else "bgr8"
        bgr = array[:, :, ::-1] if color_order == "rgb" else array
    else:
        raise ImageCodecError(f"cannot compress an image of shape {array.shape}")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == "jpeg" else []
    ok, buffer = cv2.imencode("." + ("jpg" if fmt == "jpeg" else "png"), bgr, params)
    if not ok:
        raise ImageCodecError(f"OpenCV could not encode a {array.shape} image as {fmt}")
    target = "mono8" if source == "mono8" else "bgr8"
    return f"{source}; {fmt} compressed {target}", buffer.reshape(-1)
