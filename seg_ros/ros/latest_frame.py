"""A one-slot mailbox between the subscription callback and the inference worker.

A camera faster than the model must not build a queue: each waiting frame would add a full
inference time to the latency of every frame behind it. The slot keeps only the newest frame;
the one it replaces is counted as dropped. With several cameras (``SlotGroup``) each keeps its
own slot, so a fast camera never pushes out a slow one's frame, and the one worker serves the
cameras in turn, one frame or (``take_many``) one batch at a time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Frame:
    msg: Any  # sensor_msgs/Image or CompressedImage, decoded on the worker
    received_ns: int  # time.monotonic_ns() at the subscription callback


class LatestFrameSlot:
    def __init__(self, cond: threading.Condition | None = None) -> None:
        """``cond``: shared with the other slots of a ``SlotGroup`` (one worker waits on all)."""
        self._cond = cond or threading.Condition()
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

    def peek_received_ns(self) -> int | None:
        """When the waiting frame arrived (the caller holds the group's lock), or None."""
        return None if self._frame is None else self._frame.received_ns

    def pop_waiting(self) -> Frame | None:
        """Take the waiting frame without waiting (the caller holds the group's lock)."""
        frame, self._frame = self._frame, None
        return frame


class SlotGroup:
    """One slot per camera and one worker: ``take_many`` hands out the newest frame of the camera
    that was served least recently among those with a frame waiting, so every camera is
    served in turn and none starves another. (Oldest-frame-first is not fair: a camera whose
    frames always land a moment before the others' would win every round.)"""

    def __init__(self, names: list[str]) -> None:
        self._cond = threading.Condition()
        self.slots = {name: LatestFrameSlot(self._cond) for name in names}
        self._served = dict.fromkeys(names, 0)  # when each was last served (a take counter)
        self._takes = 0
        self._closed = False

    def take_many(
        self, limit: int, wait: float, timeout: float | None = None
    ) -> list[tuple[str, Frame]]:
        """Up to ``limit`` cameras' newest frames, least recently served first, for one batch.

        Waits up to ``timeout`` for a first frame; then, while fewer than ``limit`` cameras
        have one, up to ``wait`` seconds more for the others (the bound on what batching may
        add to the first frame's latency). [] on timeout or once closed.
        """
        with self._cond:
            if not self._closed and not self._waiting():
                self._cond.wait(timeout)
            want = min(limit, len(self.slots))
            if wait > 0 and 0 < len(self._waiting()) < want:
                deadline = time.monotonic() + wait
                while not self._closed and len(self._waiting()) < want:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            if self._closed:
                return []
            waiting = self._waiting()
            order = sorted(
                waiting, key=lambda n: (self._served[n], self.slots[n].peek_received_ns())
            )
            taken = []
            for name in order[: max(1, limit)]:
                self._takes += 1
                self._served[name] = self._takes
                taken.append((name, self.slots[name].pop_waiting()))
            return taken

    def _waiting(self) -> list[str]:
        return [n for n, s in self.slots.items() if s.peek_received_ns() is not None]

    def close(self) -> None:
        for slot in self.slots.values():
            slot.close()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        for slot in self.slots.values():
            slot.reopen()
        with self._cond:
            self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed
