"""Raw frames as cameras publish them (Bayer mosaics, packed YUV 4:2:2), made from RGB here so
tests can say what the decoded picture must be."""

from __future__ import annotations

import cv2
import numpy as np


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """The Bayer mosaic a ``pattern`` sensor (e.g. rggb: R G on even rows, G B on odd) reads."""
    channel = {"r": 0, "g": 1, "b": 2}
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for i, c in enumerate(pattern):
        out[i // 2 :: 2, i % 2 :: 2] = rgb[i // 2 :: 2, i % 2 :: 2, channel[c]]
    return out


def yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """HxWx3 RGB as Hx2W packed 4:2:2 bytes in ``order`` ("uyvy" or "yuyv"), with OpenCV's
    coefficients: its 4:2:0 encoder run on every row twice gives each row its own chroma."""
    h, w = rgb.shape[:2]
    planes = cv2.cvtColor(np.repeat(rgb, 2, axis=0), cv2.COLOR_RGB2YUV_I420)
    y = planes[: 2 * h : 2]
    u = planes[2 * h : 2 * h + h // 2].reshape(h, w // 2)
    v = planes[2 * h + h // 2 :].reshape(h, w // 2)
    out = np.empty((h, w // 2, 4), np.uint8)
    y0, y1 = y[:, 0::2], y[:, 1::2]
    parts = (u, y0, v, y1) if order == "uyvy" else (y0, u, y1, v)
    for i, part in enumerate(parts):
        out[:, :, i] = part
    return out.reshape(h, w * 2)
