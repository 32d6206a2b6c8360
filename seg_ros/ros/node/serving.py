"""What the node serves: the current pipeline with the per-frame options, as one immutable
snapshot (``Served``) that the worker reads once per batch and the node replaces whole (a
live setting, a finished build); and run-time builds off the node's threads (``PipelineBuilder``:
the newest request wins, one builder thread, a build begun before the node cleaned up is never
handed out). No rclpy: the node wakes its executor through ``on_done`` (a guard condition),
and the tests drive it with a stand-in build function."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seg_ros.inference.pipeline import FrameOptions, Pipeline


@dataclass(frozen=True)
class Served:
    pipeline: Pipeline
    options: FrameOptions  # applied from the next frame prepared, without a rebuild
    values: dict[str, Any]  # the settings' pipeline_values() that built it (for a revert)


@dataclass(frozen=True)
class BuildOutcome:
    """A finished run-time build as the node acts on it."""

    served: Served | None  # swapped in; None: it failed
    error: str | None
    revert: dict[str, Any]  # parameters to set back (a failed newest request), else {}


@dataclass
class BuildResult:
    seq: int  # the request's number
    settings: Any  # what was asked (NodeSettings)
    pipeline: Any | None  # None: the build failed
    error: str | None
    newest: bool  # no later request was made: a failure may revert the parameters


def frame_options(settings: Any) -> FrameOptions:
    """The live settings of NodeSettings as the options a frame is finished with."""
    return FrameOptions(
        settings.output_resolution, float(settings.overlay_alpha), float(settings.min_confidence)
    )


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

    def build_now(self, settings: Any) -> tuple[Any | None, str | None]:
        """Build on the caller's thread (configure): the pipeline, or why it failed."""
        return self._build(settings)

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


class Serving:
    """The served snapshot, the errors that explain its absence or a failed switch, and the
    builder. Read from any thread; replaced only on the node's executor thread."""

    def __init__(
        self,
        on_done: Callable[[], None],
        build: Callable[[Any], tuple[Any | None, str | None]] = build_pipeline,
    ) -> None:
        self._lock = threading.Lock()
        self._served: Served | None = None
        self._load_error: str | None = None
        self._swap_error: tuple[str, float] | None = None  # (reason, monotonic time)
        self.builder = PipelineBuilder(on_done=on_done, build=build)

    @property
    def served(self) -> Served | None:
        return self._served  # one reference read: never half of a replacement

    def errors(self) -> tuple[str | None, tuple[str, float] | None]:
        """(why there is no model, (why the last switch failed, when))."""
        with self._lock:
            return self._load_error, self._swap_error

    def configure(self, settings: Any) -> str | None:
        """Build the first pipeline here and now; the reason when it cannot be built."""
        pipeline, error = self.builder.build_now(settings)
        with self._lock:
            if pipeline is None:
                self._load_error = error
                return error
            self._served = Served(pipeline, frame_options(settings), settings.pipeline_values())
            self._load_error = self._swap_error = None
        return None

    def release(self) -> None:
        with self._lock:
            self._served = None
            self._swap_error = None
        self.builder.invalidate()

    def set_options(self, settings: Any) -> None:
        """Live settings: a new snapshot with the same pipeline; frames prepared before keep
        the options they were prepared with."""
        with self._lock:
            if self._served is not None:
                options = frame_options(settings)
                self._served = dataclasses.replace(self._served, options=options)

    def take_build(self, settings: Any) -> BuildOutcome | None:
        """Act on a finished build: swap it in (with the options ``settings`` has now), or
        keep the current pipeline and say which parameters to revert. None: nothing to do
        (no build finished, or the node cleaned up while it was being built)."""
        result = self.builder.take()
        if result is None or self._served is None:
            return None
        with self._lock:
            if result.pipeline is not None:
                values = result.settings.pipeline_values()
                self._served = Served(result.pipeline, frame_options(settings), values)
                self._swap_error = None
                return BuildOutcome(self._served, None, {})
            self._swap_error = (str(result.error), time.monotonic())
            serving = dict(self._served.values)
        revert = {}
        if result.newest:  # else a newer request is on its way; reverting would undo it
            current = settings.pipeline_values()
            revert = {k: v for k, v in serving.items() if current.get(k) != v}
        return BuildOutcome(None, str(result.error), revert)

    def close(self) -> None:
        self.builder.close()
