"""A frame's way through the node, without rclpy: decode, the pipeline's staged inference,
finishing (labels at output size, colour, overlay) and handing each output to a publish
function, with the counters and latency windows the diagnostics report. The node's worker
and finisher threads call it; the tests drive it with a stand-in pipeline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seg_ros.image_codec import ImageCodecError
from seg_ros.ros.latest_frame import Frame
from seg_ros.ros.stats import LatencyWindow, RateMeter


@dataclass
class Job:
    """A frame between the inference worker and the finisher."""

    frame: Frame
    pipeline: Any  # the one that ran it (a swap in between must not mix them)
    staged: Any  # after Pipeline.infer
    wanted: list[str]
    decode_ms: float
    camera: Any = None  # which of the node's cameras it came from (the node sets it)
    batch_size: int = 1  # how many frames ran through the network with it


@dataclass
class Counts:
    processed: int
    idle: int  # skipped: nobody subscribes to an enabled output, or no pipeline
    bad_inputs: int
    last_bad_input: str
    inference_errors: int
    batched: int = 0  # of processed: run in a batch with other cameras' frames


class FrameProcessor:
    def __init__(
        self,
        decode: Callable[[Any], Any],
        on_bad_input: Callable[[int, str], None] = lambda count, reason: None,
    ) -> None:
        """``decode``: message -> DecodedImage (raises ImageCodecError); ``on_bad_input``:
        told the running count and reason (the node logs it, throttled)."""
        self._decode, self._on_bad_input = decode, on_bad_input
        self._lock = threading.Lock()
        self._counts = Counts(0, 0, 0, "", 0)
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

    def failed(self) -> None:
        """A step raised: counted, the thread goes on with the next frame."""
        with self._lock:
            self._counts.inference_errors += 1

    def prepare(self, frame: Frame, pipeline: Any, wanted: list[str]) -> Job | None:
        """Decode and preprocess, for ``run_network``; None when the frame is skipped or
        unreadable."""
        if not wanted or pipeline is None:
            with self._lock:
                self._counts.idle += 1
            return None
        t0 = time.perf_counter()
        try:
            image = self._decode(frame.msg)
        except ImageCodecError as e:
            with self._lock:
                self._counts.bad_inputs += 1
                self._counts.last_bad_input = str(e)
                count = self._counts.bad_inputs
            self._on_bad_input(count, str(e))
            return None
        t1 = time.perf_counter()
        order = "bgr" if image.color_order == "bgr" else "rgb"
        staged = pipeline.prepare(image.array, color_order=order)
        return Job(frame, pipeline, staged, wanted, (t1 - t0) * 1e3)

    def finish(
        self,
        job: Job,
        publish: Callable[[str, Any], None],
        now_ns: Callable[[], int],
        stamp_ns: int,
    ) -> None:
        """Finish ``job``, ``publish(name, array)`` each wanted output, record latencies.
        ``now_ns``: the clock the frame's header ``stamp_ns`` is on (0: unset stamp)."""
        result = job.pipeline.finish(
            job.staged, want_color="color" in job.wanted, want_overlay="overlay" in job.wanted
        )
        t2 = time.perf_counter()
        arrays = {
            "labels": result.labels,
            "color": result.color,
            "overlay": result.overlay,
            "confidence": result.confidence,
        }
        for name in job.wanted:
            if arrays.get(name) is not None:
                publish(name, arrays[name])
        done_ns = time.monotonic_ns()
        now = now_ns()
        self.out_rate.tick()
        with self._lock:
            self._counts.processed += 1
            self._counts.batched += job.batch_size > 1
        lat = self.latency
        lat.add("decode", job.decode_ms)
        for stage in ("preprocess", "inference", "postprocess"):
            if stage in result.timings:
                lat.add(stage, result.timings[stage])
        lat.add("publish", (time.perf_counter() - t2) * 1e3)
        lat.add("receipt_to_publish", (done_ns - job.frame.received_ns) / 1e6)
        if stamp_ns > 0:  # an unset stamp says nothing about latency
            lat.add("stamp_to_publish", (now - stamp_ns) / 1e6)


def run_network(jobs: list[Job]) -> list[Job]:
    """Stage 2 for prepared jobs (one per camera at most), as one batch where the pipeline's
    backend takes it. They share the pipeline the first was prepared with (the caller
    prepares them all with the one it holds)."""
    staged = jobs[0].pipeline.infer_many(
        [job.staged for job in jobs], ["confidence" in job.wanted for job in jobs]
    )
    for job, done in zip(jobs, staged):
        job.staged, job.batch_size = done, len(jobs)
    return jobs
