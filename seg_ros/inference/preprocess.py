"""Image in, network-sized RGB uint8 out: validation, colour order, resize.

Resizing runs on uint8 in OpenCV (the cheapest place for it); normalisation to float happens in
the backend's ``prepare``, where the tensor's device, dtype and memory layout are known.
"""

from __future__ import annotations

import cv2
import numpy as np

from seg_ros.inference.config import COLOR_ORDERS


def check_image(image: object) -> np.ndarray:
    """An HxWx3 (or HxW / HxWx1 mono) uint8 array as HxWx3; ValueError naming the problem."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be HxWx3 (colour) or HxW (mono), got shape {tuple(image.shape)}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image is empty: shape {tuple(image.shape)}")
    return image


def check_color_order(color_order: str) -> str:
    order = color_order.lower() if isinstance(color_order, str) else color_order
    if order not in COLOR_ORDERS:
        raise ValueError(f"color_order must be one of {list(COLOR_ORDERS)}, got {color_order!r}")
    return order


def to_rgb(image: np.ndarray, color_order: str) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color_order == "bgr" else image


def resize_to_network(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at network (height, width); INTER_AREA when shrinking (no aliasing), else
    bilinear, as the training transforms do."""
    h, w = size
    if image.shape[:2] == (h, w):
        return np.ascontiguousarray(image)
    shrinking = h * w < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interpolation)


def normalisation_constants(mean: list[float], std: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(scale, bias) with ``x = uint8 * scale + bias`` equal to ``(uint8 / 255 - mean) / std``:
    one multiply-add per pixel instead of a divide and two subtractions."""
    m = np.asarray(mean, np.float32)
    s = np.asarray(std, np.float32)
    return 1.0 / (255.0 * s), -m / s


def swap_rb(image: np.ndarray) -> np.ndarray:
    """RGB <-> BGR as a new contiguous array (a network trained on BGR; cv2 is the fast swap,
    and a contiguous result is what every backend's prepare can take)."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def normalise_nchw(image: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> 1x3xHxW float32 contiguous, normalised (ONNX Runtime's input)."""
    out = np.empty((1, 3, *image.shape[:2]), np.float32)
    for c in range(3):
        # cv2.convertScaleAbs would clip; plain numpy on one contiguous plane at a time keeps
        # the writes sequential, which is what makes this cheap.
        np.multiply(image[:, :, c], scale[c], out=out[0, c], casting="unsafe")
        out[0, c] += bias[c]
    return out
