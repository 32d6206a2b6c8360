"""Run-time pipeline builds off the node's threads: the newest request wins, one builder
thread, and a build begun before the node cleaned up is never handed out. No rclpy: the
node wakes its executor through ``on_done`` (a guard condition), and the tests drive it with
a stand-in build function."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class BuildResult:
    seq: int  # the request's number
    settings: Any  # what was asked (NodeSettings)
    pipeline: Any | None  # None: the build failed
    error: str | None
    newest: bool  # no later request was made: a failure may revert the parameters


def build_pipeline(settings: Any) -> tuple[Any | None, str | None]:
    """A warmed-up Pipeline for NodeSettings, or the reason it cannot be built."""
    from seg_ros.inference.errors import PipelineError
    from seg_ros.inference.pipeline import Pipeline

    try:
        pipeline = Pipeline(settings.pipeline_config())
        pipeline.warmup()
    except PipelineError as e:
        return None, str(e)
    except Exception as e:  # a backend can fail in ways of its own; the node stays up
        return None, f"{type(e).__name__}: {e}"
    return pipeline, None


class PipelineBuilder:
    def __init__(
        self,
        on_done: Callable[[], None],
        build: Callable[[Any], tuple[Any | None, str | None]] = build_pipeline,
    ) -> None:
        self._build, self._on_done = build, on_done
        self._cond = threading.Condition()
        self._request: tuple[int, Any] | None = None
        self._result: tuple[int, int, Any, Any, str | None] | None = None
        self._seq = 0
        self._generation = 0  # bumped by invalidate(): builds begun before it are dropped
        self._building: Any | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def building(self) -> Any | None:
        """The settings being built now, or None."""
        with self._cond:
            return self._building

    def request(self, settings: Any) -> None:
        """Build ``settings``; a request made while another waits replaces it."""
        with self._cond:
            self._seq += 1
            self._request = (self._seq, settings)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="seg_ros-builder", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def take(self) -> BuildResult | None:
        """The latest finished build, once; None if none, or if it began before invalidate()."""
        with self._cond:
            result, self._result = self._result, None
            newest, generation = self._seq, self._generation
        if result is None:
            return None
        seq, built_in, settings, pipeline, error = result
        if built_in != generation:
            return None
        return BuildResult(seq, settings, pipeline, error, newest=seq == newest)

    def invalidate(self) -> None:
        """Whatever is being built now will not be handed out (the node cleaned up)."""
        with self._cond:
            self._generation += 1

    def close(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._request is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                (seq, settings), self._request = self._request, None
                self._building = settings
                generation = self._generation
            pipeline, error = self._build(settings)
            with self._cond:
                self._building = None
                self._result = (seq, generation, settings, pipeline, error)
            self._on_done()
