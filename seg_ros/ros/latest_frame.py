"""A one-slot mailbox between the subscription callback and the inference worker.

A camera faster than the model must not build a queue: each waiting frame would add a full
inference time to the latency of every frame behind it. The slot keeps only the newest frame;
the one it replaces is counted as dropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class Frame:
    msg: Any  # sensor_msgs/Image or CompressedImage, decoded on the worker
    received_ns: int  # time.monotonic_ns() at the subscription callback


class LatestFrameSlot:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self.received = 0
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        """Never blocks: the executor thread must stay free to take the next message."""
        with self._cond:
            self.received += 1
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify()

    def take(self, timeout: float | None = None) -> Frame | None:
        """The newest frame, waiting up to ``timeout``; None on timeout or once closed."""
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return None if self._closed else frame

    def close(self) -> None:
        """Wake the worker for good; a frame still waiting counts as dropped."""
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
                self._frame = None
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def counts(self) -> tuple[int, int]:
        with self._cond:
            return self.received, self.dropped
