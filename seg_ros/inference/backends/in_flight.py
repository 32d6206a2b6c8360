"""Frames in flight for runtimes whose network call blocks (onnxruntime's ``run``, a TensorRT
context's execute and stream sync): each frame runs on a worker thread of its own, holding one
of N slots (whatever one frame needs to itself: nothing, or a context with its buffers).

Written here rather than taken from ``concurrent.futures`` alone: the executor queues without
bound, and a frame must instead wait to be started until a slot is free, so none waits in the
network behind stale ones (the node takes the newest frame only when there is room).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable  # typing's: aliases evaluated at import, on Python 3.8 too

Done = Callable[[Any], None]  # called with the frame's output, valid only inside the call
Failed = Callable[[BaseException], None]  # called with what stopped the frame's network


class InFlight:
    """``start(batch, done, failed)`` for ``len(slots)`` frames at once; ``run(slot, batch)``
    is the runtime's blocking call (it releases the GIL while the network runs)."""

    def __init__(self, slots: list[Any], run: Callable[[Any, Any], Any], name: str) -> None:
        self._run_one = run
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for slot in slots:
            self._free.put(slot)
        self._pool = ThreadPoolExecutor(len(slots), thread_name_prefix=name)
        self._running = 0
        self._idle = threading.Condition()

    def start(self, batch: Any, done: Done, failed: Failed | None = None) -> None:
        """Wait for a free slot, then run ``batch`` on a worker: ``done(output)`` (the output
        is the slot's own, valid inside the call) or ``failed(error)``."""
        slot = self._free.get()
        with self._idle:
            self._running += 1
        try:
            self._pool.submit(self._run, slot, batch, done, failed)
        except BaseException:
            self._landed(slot)
            raise

    def _run(self, slot: Any, batch: Any, done: Any, failed: Any) -> None:
        try:
            try:
                output = self._run_one(slot, batch)
            except Exception as e:  # handed to the frame it belongs to, not lost in the pool
                if failed is None:
                    raise
                failed(e)
                return
            done(output)
        finally:
            self._landed(slot)

    def _landed(self, slot: Any) -> None:
        with self._idle:
            self._running -= 1
            self._idle.notify_all()
        self._free.put(slot)

    def wait_idle(self) -> None:
        """Return once every started frame has called its ``done`` or ``failed``."""
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0)
