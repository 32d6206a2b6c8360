"""Rates and latency percentiles for the diagnostics, kept over sliding windows, and the
names the latencies are published under.

No ROS imports: the tools that read the node's diagnostics (seg-demo, the node benchmark) take
the names from here too.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from seg_ros.compat import zip_strict

PERCENTILES = (50, 90, 99)


class RateMeter:
    """Events per second over the last ``window`` seconds (or since the first event, if that
    was more recent), so a rate below one per diagnostics period still reads sensibly."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self.total = 0
        self._times: deque[float] = deque()
        self._last: float | None = None  # kept past the window: "no input for 12 s"
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.total += 1
            self._last = now
            self._times.append(now)
            self._trim(now)

    def snapshot(self, now: float | None = None) -> tuple[float, int, float]:
        """(events per second, events in the window, window length in seconds)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            span = min(self.window, now - self._started)
            count = len(self._times)
        return (count / span if span > 0 else 0.0), count, span

    def last(self) -> float | None:
        """When the newest event happened (monotonic seconds), however long ago; None before
        the first one since the last reset."""
        with self._lock:
            return self._last

    def reset(self) -> None:
        with self._lock:
            self.total = 0
            self._last = None
            self._times.clear()
            self._started = time.monotonic()

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()


class LatencyWindow:
    """The last ``size`` samples (ms) of several named stages."""

    def __init__(self, size: int = 500) -> None:
        self.size = size
        self._samples: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self._samples.setdefault(stage, deque(maxlen=self.size)).append(ms)

    def percentiles(self, stage: str) -> dict[str, float] | None:
        """{"p50": .., "p90": .., "p99": .., "max": ..} or None before the first sample."""
        with self._lock:
            samples = np.fromiter(self._samples.get(stage, ()), dtype=np.float64)
        if samples.size == 0:
            return None
        values = np.percentile(samples, PERCENTILES)
        out = {f"p{p}": float(v) for p, v in zip_strict(PERCENTILES, values)}
        out["max"] = float(samples.max())
        return out

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()
