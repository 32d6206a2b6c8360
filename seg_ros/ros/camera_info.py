"""camera_info for the labels' grid: a camera's intrinsics scaled to the size the labels are
published at, and the pairing of camera_info messages with frames by stamp (as
image_transport's camera subscriber pairs them: the same stamp)."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Any

KEEP = 30  # camera_info messages remembered: a second at 30 Hz, ahead of or behind frames


def stamp_ns(header: Any) -> int:
    """A header's stamp as integer nanoseconds: the key camera_info and frames pair on."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def camera_info_topic(image_topic: str) -> str:
    """image_transport's rule: camera_info sits beside the image (``/cam/image_raw`` ->
    ``/cam/camera_info``), whatever the image topic's own name."""
    parent = image_topic.rstrip("/").rsplit("/", 1)[0]
    return f"{parent}/camera_info"


def scaled(info: Any, width: int, height: int, header: Any) -> Any:
    """``info`` for an image of ``width`` x ``height`` made by resizing the camera's image
    (as image_proc's resize scales it): K and P rows scaled, ROI too; binning kept."""
    out = copy.deepcopy(info)
    sx, sy = width / float(info.width), height / float(info.height)
    k, p = list(info.k), list(info.p)
    k[0], k[2], k[4], k[5] = k[0] * sx, k[2] * sx, k[4] * sy, k[5] * sy
    p[0], p[2], p[3] = p[0] * sx, p[2] * sx, p[3] * sx
    p[5], p[6] = p[5] * sy, p[6] * sy
    out.k, out.p = k, p
    out.width, out.height = int(width), int(height)
    roi = out.roi
    roi.x_offset, roi.width = round(roi.x_offset * sx), round(roi.width * sx)
    roi.y_offset, roi.height = round(roi.y_offset * sy), round(roi.height * sy)
    out.header = header
    return out


class CameraInfoPairs:
    """The newest camera_info messages by stamp; a frame takes the one with its stamp. Those
    never taken are counted (a camera_info stream that matches no image is a wiring fault)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_stamp: OrderedDict[int, Any] = OrderedDict()
        self.received = 0
        self.unmatched = 0  # fell out of the window without a frame of their stamp

    def put(self, stamp_ns: int, info: Any) -> None:
        with self._lock:
            self.received += 1
            self._by_stamp[stamp_ns] = info
            while len(self._by_stamp) > KEEP:
                self._by_stamp.popitem(last=False)
                self.unmatched += 1

    def take(self, stamp_ns: int) -> Any | None:
        with self._lock:
            return self._by_stamp.pop(stamp_ns, None)
