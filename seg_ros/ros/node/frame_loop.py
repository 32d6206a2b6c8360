"""A frame's way through the node, top to bottom, on two threads of its own:

    worker:   take the newest frame(s) -> prepare (decode, Pipeline.prepare)
              -> run_network (Pipeline.infer_many, one batch)  -> hand on (a queue of one)
    finisher: finish (Pipeline.finish: labels at output size, colour, overlay)
              -> camera.publish each wanted output -> counters and latencies

Frame N is coloured and published while frame N+1 is in the network (with
``inference_mode: throughput``, up to ``Pipeline.in_flight`` frames are in the network at
once); outputs leave in the order the frames were taken, and a frame is taken only when the
network has room for it, so latency stays bounded. No rclpy here: a camera is anything
with the ``Camera`` methods, so the tests drive the loop with stand-ins.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from seg_ros.image_codec import ImageCodecError
from seg_ros.ros.latest_frame import Frame, SlotGroup
from seg_ros.ros.node.serving import Served
from seg_ros.ros.stats import LatencyWindow, RateMeter

# Niceness the loop's threads add to their own (and so to the torch threads they start): DDS
# receive threads must win the CPU when a large frame's fragments arrive, or a default
# camera's 512 KB shared-memory segment wraps under them and the frame is lost or waits for
# a repair (see seg_ros/ros/dds_tuning.py).
WORKER_NICENESS = int(os.environ.get("SEG_ROS_WORKER_NICENESS", "5"))
JOIN_TIMEOUT_S = 60.0


def yield_to_dds() -> None:
    """Lower this thread's scheduling priority by WORKER_NICENESS (Linux; raising niceness
    needs no privilege). Threads it starts afterwards, torch's OpenMP pool included, inherit
    it; the executor and DDS threads keep the process's priority."""
    if WORKER_NICENESS <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):  # not permitted here: run at the process's priority
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICENESS)


@dataclass
class Counts:
    processed: int = 0
    idle: int = 0  # skipped: nobody subscribes to an enabled output, or no pipeline
    bad_inputs: int = 0
    last_bad_input: str = ""
    inference_errors: int = 0
    batched: int = 0  # of processed: run in a batch with other cameras' frames
    compressed: int = 0  # outputs encoded for a compressed topic (none while unsubscribed)


class CameraFrames:
    """One camera's counters, rates and latency windows (what its diagnostics report)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = Counts()
        self.latency = LatencyWindow()
        self.in_rate = RateMeter()
        self.out_rate = RateMeter()

    def counts(self) -> Counts:
        with self._lock:
            return Counts(**vars(self._counts))

    def reset_rates(self) -> None:
        self.in_rate.reset()
        self.out_rate.reset()

    def received(self) -> None:
        self.in_rate.tick()

    def idle(self) -> None:
        with self._lock:
            self._counts.idle += 1

    def bad_input(self, reason: str) -> int:
        """Count an unreadable frame; the running count."""
        with self._lock:
            self._counts.bad_inputs += 1
            self._counts.last_bad_input = reason
            return self._counts.bad_inputs

    def failed(self) -> None:
        """A step raised: counted, the thread goes on with the next frame."""
        with self._lock:
            self._counts.inference_errors += 1

    def compressed(self, milliseconds: float) -> None:
        self.latency.add("compress", milliseconds)
        with self._lock:
            self._counts.compressed += 1

    def published(self, batch_size: int) -> None:
        self.out_rate.tick()
        with self._lock:
            self._counts.processed += 1
            self._counts.batched += batch_size > 1


class Camera(Protocol):
    """What the loop needs of a camera (``camera_io.CameraIO`` in the node)."""

    name: str
    frames: CameraFrames

    def wanted(self) -> list[str]: ...  # enabled outputs someone subscribes to

    def publish(self, name: str, array: Any, header: Any) -> None: ...

    def publish_info(self, header: Any, size: tuple[int, int]) -> None: ...


@dataclass
class Job:
    """A frame between the worker and the finisher."""

    frame: Frame
    camera: Camera
    served: Served  # the pipeline and options it runs with, from prepare to publish
    staged: Any  # seg_ros.inference.pipeline.Staged
    wanted: list[str]
    decode_ms: float
    batch_size: int = 1  # how many frames ran through the network with it


# ---------------------------------------------------------------- the steps, in order


def prepare(
    frame: Frame,
    camera: Camera,
    served: Served | None,
    decode: Callable[[Any], Any],
    on_bad_input: Callable[[int, str], None],
) -> Job | None:
    """Decode and preprocess; None when the frame is skipped (nobody listens, no model) or
    unreadable (counted, and ``on_bad_input`` told the running count and reason)."""
    wanted = camera.wanted()
    if not wanted or served is None:
        camera.frames.idle()
        return None
    t0 = time.perf_counter()
    try:
        image = decode(frame.msg)
    except ImageCodecError as e:
        on_bad_input(camera.frames.bad_input(str(e)), str(e))
        return None
    t1 = time.perf_counter()
    order = "bgr" if image.color_order == "bgr" else "rgb"
    staged = served.pipeline.prepare(image.array, color_order=order, options=served.options)
    return Job(frame, camera, served, staged, wanted, (t1 - t0) * 1e3)


def run_network(jobs: list[Job]) -> list[Job]:
    """The network for prepared jobs (one per camera at most), as one batch where the
    pipeline's backend takes it. They share the snapshot the first was prepared with (the
    worker prepares them all with the one it holds)."""
    staged = jobs[0].served.pipeline.infer_many(
        [job.staged for job in jobs], ["confidence" in job.wanted for job in jobs]
    )
    for job, done in zip(jobs, staged):
        job.staged, job.batch_size = done, len(jobs)
    return jobs


def finish(job: Job, now_ns: Callable[[], int], stamp_ns: int) -> None:
    """Finish ``job``, publish each wanted output with the frame's header, record latencies.
    ``now_ns``: the clock the header's ``stamp_ns`` is on (0: unset stamp)."""
    result = job.served.pipeline.finish(
        job.staged, want_color="color" in job.wanted, want_overlay="overlay" in job.wanted
    )
    t2 = time.perf_counter()
    arrays = {
        "labels": result.labels,
        "color": result.color,
        "overlay": result.overlay,
        "confidence": result.confidence,
    }
    header = job.frame.msg.header
    for name in job.wanted:
        if arrays.get(name) is not None:
            job.camera.publish(name, arrays[name], header)
    job.camera.publish_info(header, result.labels.shape[:2])
    done_ns = time.monotonic_ns()
    now = now_ns()
    frames = job.camera.frames
    frames.published(job.batch_size)
    lat = frames.latency
    lat.add("decode", job.decode_ms)
    for stage in ("preprocess", "inference", "postprocess"):
        if stage in result.timings:
            lat.add(stage, result.timings[stage])
    lat.add("publish", (time.perf_counter() - t2) * 1e3)
    lat.add("receipt_to_publish", (done_ns - job.frame.received_ns) / 1e6)
    if stamp_ns > 0:  # an unset stamp says nothing about latency
        lat.add("stamp_to_publish", (now - stamp_ns) / 1e6)


# ---------------------------------------------------------------- batching


def batch_limit(served: Served | None, max_batch: int, cameras: int) -> int:
    """How many cameras' frames run as one batch: ``max_batch`` (0 = what the backend gains
    from), at most what it takes and the number of cameras."""
    if served is None:
        return 1
    pipeline = served.pipeline
    return min(max_batch or pipeline.auto_batch, pipeline.max_batch, cameras)


def describe_batching(served: Served | None, max_batch: int, wait_ms: float, cameras: int) -> str:
    if cameras == 1:
        return "off: one camera"
    if served is None:
        return "off: no model"
    limit = batch_limit(served, max_batch, cameras)
    if limit == 1:
        pipeline = served.pipeline
        if max_batch == 1:
            return "off: max_batch 1"
        if pipeline.max_batch > 1:
            name, device = pipeline.backend_name, pipeline.backend.device
            return f"off: {name} on {device} batches only when max_batch is set"
        return f"off: {pipeline.backend_name} runs one frame at a time"
    return f"up to {limit} frames, waiting at most {wait_ms:g} ms"


# ---------------------------------------------------------------- the threads

_STOP = object()  # a step's result that ends its thread


@dataclass(frozen=True)
class LoopHooks:
    """What the loop asks of the node, read on its threads."""

    served: Callable[[], Served | None]  # the snapshot to run the next batch with
    batching: Callable[[], tuple[int, float]]  # max_batch, batch_wait_ms
    decode: Callable[[Any], Any]  # message -> DecodedImage (raises ImageCodecError)
    stamp_ns: Callable[[Any], int]  # header -> its stamp on the node's clock (0: unset)
    now_ns: Callable[[], int]  # the node's clock
    alive: Callable[[], bool]  # False once Ctrl-C shut the ROS context down
    log_error: Callable[[str], None]  # throttled by the node
    on_bad_input: Callable[[int, str], None]


class InOrder:
    """Jobs between the worker and the finisher: numbered by the worker as it starts them,
    handed to the finisher in that order (frames in flight may land out of order), and the
    bound on how many may be outstanding (in the network or waiting for the finisher)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: dict[int, Any] = {}
        self._next_in = 0  # the number the worker gives its next job
        self._next_out = 0  # the number the finisher takes next

    def outstanding(self) -> int:
        with self._cond:
            return self._next_in - self._next_out

    def wait_room(self, limit: int, timeout: float) -> bool:
        """Wait (at most ``timeout``) until fewer than ``limit`` are outstanding."""
        with self._cond:
            return self._cond.wait_for(lambda: self._next_in - self._next_out < limit, timeout)

    def reserve(self) -> int:
        with self._cond:
            self._next_in += 1
            return self._next_in - 1

    def put(self, number: int, item: Any) -> None:
        with self._cond:
            self._items[number] = item
            self._cond.notify_all()

    def get(self) -> Any:
        with self._cond:
            self._cond.wait_for(lambda: self._next_out in self._items)
            item = self._items.pop(self._next_out)
            self._next_out += 1
            self._cond.notify_all()
            return item


_SKIPPED = object()  # a numbered job that failed in the network: nothing to publish
_END = object()  # after every job the worker started: the finisher ends


class FrameLoop:
    """The worker and the finisher, started at activation and stopped at deactivation."""

    def __init__(self, group: SlotGroup, cameras: dict[str, Camera], hooks: LoopHooks) -> None:
        """``group``: the cameras' newest-frame slots (the subscriptions fill them)."""
        self.group, self._cameras, self._hooks = group, cameras, hooks
        self._worker: threading.Thread | None = None
        self._finisher: threading.Thread | None = None
        self._jobs = InOrder()

    def start(self) -> None:
        self.group.reopen()
        self._jobs = InOrder()
        self._finisher = threading.Thread(
            target=self._finish_loop, args=(self._jobs,), name="seg_ros-publish", daemon=True
        )
        self._worker = threading.Thread(
            target=self._work, args=(self._jobs,), name="seg_ros-inference", daemon=True
        )
        self._finisher.start()
        self._worker.start()

    def stop(self) -> None:
        """Stop taking frames; the frames in flight land and are published first."""
        self.group.close()
        if self._worker is not None:
            self._worker.join(timeout=JOIN_TIMEOUT_S)  # it hands the finisher its end marker
            self._worker = None
        if self._finisher is not None:
            self._finisher.join(timeout=JOIN_TIMEOUT_S)
            self._finisher = None

    def in_flight(self) -> int:
        """Frames started and not yet taken by the finisher (in the network or waiting)."""
        return self._jobs.outstanding()

    def _work(self, jobs: InOrder) -> None:
        """The newest frame of the camera served least recently (or, batching, of up to
        ``max_batch`` cameras): prepare, run the network, hand on to the finisher in order.
        With frames in flight (``Pipeline.in_flight > 1``) a frame is taken only when the
        network has room for it, so none waits behind stale ones."""
        yield_to_dds()
        try:
            while True:
                served = self._hooks.served()
                in_flight = served.pipeline.in_flight if served is not None else 1
                if not jobs.wait_room(in_flight, 0.5):
                    if self.group.closed or not self._finisher_alive():
                        return
                    continue
                max_batch, wait_ms = self._hooks.batching()
                limit = batch_limit(served, max_batch, len(self._cameras)) if in_flight == 1 else 1
                taken = self.group.take_many(limit, wait_ms / 1e3 if limit > 1 else 0.0, 0.5)
                if not taken and self.group.closed:
                    return
                # Read after the wait, so a change made while waiting applies to these
                # frames; one snapshot for the whole batch: a swap never splits it.
                served = self._hooks.served()
                limit = batch_limit(served, max_batch, len(self._cameras))
                for start in range(0, len(taken), limit):
                    if not self._run_batch(taken[start : start + limit], served, jobs):
                        return
        finally:
            jobs.put(jobs.reserve(), _END)  # after every job started: in flight ones too

    def _run_batch(
        self, taken: list[tuple[str, Frame]], served: Served | None, jobs: InOrder
    ) -> bool:
        """Prepare and start one batch (or one frame in flight); False when the thread must
        end."""
        prepared = []
        for name, frame in taken:
            cam = self._cameras[name]
            job = self._guarded(self._prepare, (frame, cam, served), cam)
            if job is _STOP:
                return False
            if job is not None:
                prepared.append(job)
        if prepared and served is not None and served.pipeline.in_flight > 1:
            for job in prepared:
                self._start_in_flight(job, jobs)
            return True
        done = prepared and self._guarded(run_network, prepared, *[j.camera for j in prepared])
        if done is _STOP:
            return False
        for job in done or []:
            jobs.put(jobs.reserve(), job)
        return True

    def _start_in_flight(self, job: Job, jobs: InOrder) -> None:
        """Start ``job`` in the network without waiting; it lands in its place in order."""
        number = jobs.reserve()

        def landed(staged: Any, error: BaseException | None) -> None:
            if error is None:
                job.staged = staged
                jobs.put(number, job)
                return
            job.camera.frames.failed()
            self._hooks.log_error(f"frame failed: {type(error).__name__}: {error}")
            jobs.put(number, _SKIPPED)

        try:
            job.served.pipeline.infer_async(job.staged, "confidence" in job.wanted, landed)
        except Exception as e:  # it never started: its place is filled here
            landed(None, e)

    def _finisher_alive(self) -> bool:
        return self._finisher is not None and self._finisher.is_alive()

    def _prepare(self, item: tuple[Frame, Camera, Served | None]) -> Job | None:
        return prepare(*item, self._hooks.decode, self._hooks.on_bad_input)

    def _finish_loop(self, jobs: InOrder) -> None:
        yield_to_dds()
        while True:
            job = jobs.get()
            if job is _END:
                return
            if job is not _SKIPPED and self._guarded(self._finish, job, job.camera) is _STOP:
                return

    def _finish(self, job: Job) -> None:
        finish(job, self._hooks.now_ns, self._hooks.stamp_ns(job.frame.msg.header))

    def _guarded(self, step: Callable[[Any], Any], item: Any, *cams: Camera) -> Any:
        """``step(item)``; an exception is counted against ``cams`` (the frames it failed)
        and logged, and None returned."""
        try:
            return step(item)
        except Exception as e:  # the threads must outlive any one frame
            if not self._hooks.alive():
                return _STOP  # Ctrl-C shut the context down under a publish: not a failure
            for cam in cams:
                cam.frames.failed()
            self._hooks.log_error(f"frame failed: {type(e).__name__}: {e}")
            return None
