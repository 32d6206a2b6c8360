"""The segmentation node: a lifecycle node that serves ``seg_ros.inference.Pipeline`` on ROS.

Threads, and why:
- the executor thread runs the subscription callback (which only parks the message in a
  one-slot mailbox, so it never falls behind the camera), the parameter and lifecycle
  services and the diagnostics timer;
- the inference worker takes the newest frame, decodes and preprocesses it and runs the
  network (at a lower scheduling priority than the DDS threads);
- the finisher resizes the labels, colours, blends and publishes the frame the worker hands
  it (one at most), so frame N is published while frame N+1 is in the network;
- a builder thread builds a replacement pipeline when a parameter asks for one, so a model
  switch never stalls the frames in flight; the finished pipeline is handed back to the
  executor thread (a guard condition), which swaps it in or, on failure, reverts the
  parameters.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterValueException, ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image

from seg_ros.inference.pipeline import Pipeline
from seg_ros.ros import contract, diagnostics
from seg_ros.ros.contract import (
    COMPRESSED_INPUT_TOPIC,
    DIAGNOSTICS_TOPIC,
    INPUT_TOPIC,
    NODE_NAME,
    OUTPUTS,
    START_FAILURE,
    camera_topic,
    status_name,
)
from seg_ros.ros.dds_tuning import apply_fastdds_profile
from seg_ros.ros.frame_processor import FrameProcessor, Job, run_network
from seg_ros.ros.image_msgs import ReusedImageBuffer, decode
from seg_ros.ros.latest_frame import Frame, LatestFrameSlot, SlotGroup
from seg_ros.ros.parameters import (
    LIVE_PARAMS,
    REBUILD_PARAMS,
    SPECS,
    NodeSettings,
    check_settings,
    check_value,
    descriptor,
)
from seg_ros.ros.pipeline_builder import PipelineBuilder, build_pipeline

# Outputs are reliable so a subscriber that keeps up sees every result; a small depth keeps a
# slow one from holding many full-size images.
OUTPUT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
STALE_AFTER_MIN_S = 3.0
SWAP_ERROR_WARN_MIN_S = 10.0
BAD_INPUT_LOG_PERIOD_S = 5.0


QOS_RECHECK_S = 1.0


def input_qos(name: str, publishers: list[Any] | None = None) -> QoSProfile:
    """sensor_data: best effort, depth 1 (a best-effort reader matches reliable and best-effort
    publishers alike); reliable: for publishers that must not lose frames; auto: reliable when
    there are publishers and every one offers reliable, else best effort.

    Why auto: on one host a default-configured Fast DDS writer loses nearly every frame above
    its 512 KB shared-memory segment to a best-effort reader (640x480 RGB: 3 of 150), while a
    reliable reader repairs them (150 of 150); see seg_ros/ros/dds_tuning.py. A reliable
    reader would not match a best-effort camera, hence the choice per publisher set."""
    if name == "auto":
        reliable = bool(publishers) and all(
            p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers
        )
        name = "reliable" if reliable else "sensor_data"
    reliability = (
        ReliabilityPolicy.BEST_EFFORT if name == "sensor_data" else ReliabilityPolicy.RELIABLE
    )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=reliability,
        durability=DurabilityPolicy.VOLATILE,
    )


# Niceness the inference worker adds to its own (and so to the torch threads it starts): DDS
# receive threads must win the CPU when a large frame's fragments arrive, or a default
# camera's 512 KB shared-memory segment wraps under them and the frame is lost or waits for
# a repair (see seg_ros/ros/dds_tuning.py).
WORKER_NICENESS = int(os.environ.get("SEG_ROS_WORKER_NICENESS", "5"))


def yield_to_dds() -> None:
    """Lower this thread's scheduling priority by WORKER_NICENESS (Linux; raising niceness
    needs no privilege). Threads it starts afterwards, torch's OpenMP pool included, inherit
    it; the executor and DDS threads keep the process's priority."""
    if WORKER_NICENESS <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):  # not permitted here: run at the process's priority
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICENESS)


_STOP = object()  # a step's result that ends its thread


class _RosLogHandler(logging.Handler):
    """Routes the inference package's Python logging (e.g. the random-weights warning) into
    the ROS log, so it reaches the console and /rosout like the node's own messages."""

    def __init__(self, logger: Any) -> None:
        super().__init__()
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.levelno >= logging.ERROR:
            self._logger.error(text)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(text)
        elif record.levelno >= logging.INFO:
            self._logger.info(text)
        else:
            self._logger.debug(text)


CAMERAS_PARAM = "cameras"
SINGLE_CAMERA = ("",)  # the default: one camera on 'image', in the node's namespace
CAMERAS_DESCRIPTION = (
    "Several cameras, one network: namespaces (front, left, /robot/rear); each camera's input "
    "is <camera>/image and its outputs <camera>/segmentation/..., with its own header, "
    "newest-frame slot and diagnostics status. [''] (default): one camera on 'image'. "
    "Read-only: set at start."
)


@dataclass
class CameraIO:
    """One camera's side of the node: its input, its newest frame, its outputs, its counters.
    The single-camera node has one, named ""."""

    name: str
    slot: LatestFrameSlot
    frames: FrameProcessor
    subscription: Any = None
    subscription_qos: QoSProfile | None = None
    publishers: dict[str, Any] = field(default_factory=dict)
    buffers: dict[str, ReusedImageBuffer] = field(
        default_factory=lambda: {name: ReusedImageBuffer() for name in OUTPUTS}
    )

    def topic(self, relative: str) -> str:
        return camera_topic(self.name, relative)


def check_cameras(names: list[str]) -> str | None:
    """Why a ``cameras`` list cannot be served, or None."""
    stripped = [n.strip("/") for n in names]
    if any(not n for n in stripped):
        return f"{CAMERAS_PARAM}: an empty camera name in {names}"
    if len(set(stripped)) != len(stripped):
        return f"{CAMERAS_PARAM}: a camera is listed twice in {names}"
    bad = [n for n in names if not all(c.isalnum() or c in "_/" for c in n) or "//" in n]
    if bad:
        return f"{CAMERAS_PARAM}: {bad} are not namespaces (letters, digits, _ and /)"
    return None


class SegmentationNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._lock = threading.Lock()  # pipeline, errors, counters
        self._io_lock = threading.Lock()  # publishers: the worker publishes, params toggle them
        self._pipeline: Pipeline | None = None
        self._serving: dict[str, Any] | None = None  # pipeline_values() that built it
        self._load_error: str | None = None
        self._swap_error: tuple[str, float] | None = None
        self._lifecycle = "unconfigured"
        self._autostart_failed = False
        self._internal_set = False
        self._declared = False

        self._worker: threading.Thread | None = None
        self._finisher: threading.Thread | None = None
        # One staged frame between the inference worker and the finisher: frame N is
        # coloured and published while frame N+1 is in the network, and never more than one
        # waits (latency stays bounded, order is kept).
        self._handoff: queue.Queue[Job | None] = queue.Queue(maxsize=1)
        self._qos_timer = None

        self._log_handler = _RosLogHandler(self.get_logger())
        package_log = logging.getLogger("seg_ros")
        package_log.addHandler(self._log_handler)
        package_log.setLevel(logging.INFO)
        package_log.propagate = False  # the ROS log is this process's log; no second copy

        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._parameters_changed)
        for spec in SPECS:
            self.declare_parameter(spec.name, spec.default, descriptor(spec))
        names = self._declare_cameras()
        self._declared = True
        self._settings = self._read_settings()
        self._group = SlotGroup(names or [""])
        self._cameras = {
            name: CameraIO(name, slot, FrameProcessor(decode, on_bad_input=self._log_bad_input))
            for name, slot in self._group.slots.items()
        }

        self._build_done = self.create_guard_condition(self._on_build_finished)
        # Builds requested at run time: the newest request wins, one builder thread, which
        # wakes the executor through the guard condition when one is done.
        self._builder = PipelineBuilder(on_done=self._build_done.trigger)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._diagnostics_timer = self.create_timer(
            self._settings.diagnostics_period, self._publish_diagnostics
        )
        self._retry_timer = None

    # ---------------------------------------------------------------- parameters

    def _declare_cameras(self) -> list[str]:
        """The read-only ``cameras`` list (a string array: a launch file or params YAML sets
        it); refused at start with the reason when it cannot be served."""
        # Declared with a value: rclpy infers [] as a byte array, and an uninitialised
        # parameter makes its get_parameters service answer nothing for *every* name (ros2
        # param dump printed {}, rqt_reconfigure saw no parameters).
        self.declare_parameter(
            CAMERAS_PARAM,
            list(SINGLE_CAMERA),
            ParameterDescriptor(description=CAMERAS_DESCRIPTION, read_only=True),
        )
        try:
            names = list(self.get_parameter(CAMERAS_PARAM).value)
        except ParameterUninitializedException:  # rcl reads `cameras: []` as "not set"
            raise InvalidParameterValueException(
                CAMERAS_PARAM,
                [],
                f"{CAMERAS_PARAM}: an empty list; leave it out for one camera on 'image', "
                "or list the cameras",
            ) from None
        if names == list(SINGLE_CAMERA):
            return []
        problem = check_cameras(names)
        if problem:
            raise InvalidParameterValueException(CAMERAS_PARAM, names, problem)
        return names

    @property
    def cameras(self) -> list[str]:
        """The cameras served; [""] for the single-camera node."""
        return list(self._cameras)

    def _read_settings(self) -> NodeSettings:
        return NodeSettings.from_values({s.name: self.get_parameter(s.name).value for s in SPECS})

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        if self._internal_set:
            return SetParametersResult(successful=True)
        for p in params:
            reason = check_value(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        if self._declared and any(p.name in REBUILD_PARAMS | LIVE_PARAMS for p in params):
            values = {s.name: self.get_parameter(s.name).value for s in SPECS}
            values.update({p.name: p.value for p in params})
            reason = check_settings(NodeSettings.from_values(values))
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _parameters_changed(self, params: list[Parameter]) -> None:
        if not self._declared:
            return
        old, self._settings = self._settings, self._read_settings()
        names = {p.name for p in params}
        if self._internal_set:
            return
        if (
            "diagnostics_period" in names
            and old.diagnostics_period != self._settings.diagnostics_period
        ):
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = self.create_timer(
                self._settings.diagnostics_period, self._publish_diagnostics
            )
        if self._lifecycle == "active" and names & {"input_transport", "input_qos"}:
            self._unsubscribe()
            self._subscribe()
        if self._lifecycle in ("inactive", "active") and names & {o[2] for o in OUTPUTS.values()}:
            self._sync_publishers()
        if names & LIVE_PARAMS:
            self._apply_live_settings(self._pipeline)
        if names & REBUILD_PARAMS:
            if self._lifecycle in ("inactive", "active"):
                self._request_build(self._settings)
            elif self._lifecycle == "unconfigured" and self._autostart_failed:
                # The node was started to run; a fixed parameter is the cue to try again.
                self._schedule_autostart()

    # ---------------------------------------------------------------- lifecycle

    @property
    def autostart(self) -> bool:
        return bool(self._settings.autostart)

    def start(self) -> bool:
        """Walk unconfigured -> inactive -> active, as `autostart` asks."""
        ok = (
            self.trigger_configure() == TransitionCallbackReturn.SUCCESS
            and self.trigger_activate() == TransitionCallbackReturn.SUCCESS
        )
        self._autostart_failed = not ok
        return ok

    def _schedule_autostart(self) -> None:
        if self._retry_timer is not None:
            return

        def retry() -> None:
            self.destroy_timer(self._retry_timer)
            self._retry_timer = None
            if self._lifecycle == "unconfigured":
                self.get_logger().info("parameters changed: trying to start again")
                self.start()

        self._retry_timer = self.create_timer(0.0, retry)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        settings = self._settings
        self.get_logger().info(f"configuring: {self._describe_settings(settings)}")
        pipeline, error = build_pipeline(settings)
        if pipeline is None:
            with self._lock:
                self._load_error = error
            self.get_logger().error(f"{START_FAILURE}: {error}")
            return TransitionCallbackReturn.FAILURE
        with self._lock:
            self._pipeline, self._serving = pipeline, settings.pipeline_values()
            self._load_error = self._swap_error = None
        self._lifecycle = "inactive"
        self._autostart_failed = False
        # Lifecycle publishers, from configure to cleanup: the outputs stay on the graph while
        # the node is inactive (viewers keep them) and publish only while it is active.
        self._sync_publishers()
        self._announce(pipeline)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for cam in self._cameras.values():
            cam.frames.reset_rates()
        self._sync_publishers()
        self._group.reopen()
        self._handoff = queue.Queue(maxsize=1)
        self._finisher = threading.Thread(
            target=self._finish_loop, args=(self._handoff,), name="seg_ros-publish", daemon=True
        )
        self._finisher.start()
        self._worker = threading.Thread(
            target=self._work, args=(self._group, self._handoff), name="seg_ros-inference",
            daemon=True,
        )  # fmt: skip
        self._worker.start()
        self._subscribe()
        self._lifecycle = "active"
        for cam in self._cameras.values():
            outputs = (self.resolve_topic_name(cam.topic(OUTPUTS[n][0])) for n in cam.publishers)
            self.get_logger().info(
                f"active: {self.resolve_topic_name(self._input_topic(cam))} -> "
                + ", ".join(outputs)
            )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self._lifecycle = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_publishers()
        self._release_pipeline()
        self._lifecycle = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self._destroy_publishers()
        self._release_pipeline()
        self._lifecycle = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self._destroy_publishers()
        self._release_pipeline()
        self._lifecycle = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Stop the threads; for main() and tests, before destroy_node()."""
        self._stop_io()
        self._destroy_publishers()
        self._builder.close()
        logging.getLogger("seg_ros").removeHandler(self._log_handler)

    def _release_pipeline(self) -> None:
        with self._lock:
            self._pipeline = self._serving = None
            self._swap_error = None
        self._builder.invalidate()
        for cam in self._cameras.values():
            cam.frames.latency.reset()

    # ---------------------------------------------------------------- input and output

    def _input_topic(self, cam: CameraIO) -> str:
        compressed = self._settings.input_transport == "compressed"
        return cam.topic(COMPRESSED_INPUT_TOPIC if compressed else INPUT_TOPIC)

    def _wanted_input_qos(self, cam: CameraIO) -> QoSProfile:
        publishers = None
        if self._settings.input_qos == "auto":
            topic = self.resolve_topic_name(self._input_topic(cam))
            publishers = self.get_publishers_info_by_topic(topic)
        return input_qos(self._settings.input_qos, publishers)

    def _subscribe(self) -> None:
        for cam in self._cameras.values():
            self._subscribe_camera(cam)
        if self._qos_timer is None:
            self._qos_timer = self.create_timer(QOS_RECHECK_S, self._recheck_input_qos)

    def _subscribe_camera(self, cam: CameraIO) -> None:
        msg_type = CompressedImage if self._settings.input_transport == "compressed" else Image
        qos = self._wanted_input_qos(cam)
        cam.subscription = self.create_subscription(
            msg_type, self._input_topic(cam), lambda msg, c=cam: self._on_image(c, msg), qos
        )
        cam.subscription_qos = qos

    def _recheck_input_qos(self) -> None:
        """input_qos auto: follow the publishers as cameras come and go."""
        if self._settings.input_qos != "auto":
            return
        for cam in self._cameras.values():
            if cam.subscription is None:
                continue
            wanted = self._wanted_input_qos(cam)
            if wanted.reliability != cam.subscription_qos.reliability:
                self.get_logger().info(
                    f"input QoS of {self.resolve_topic_name(self._input_topic(cam))} follows "
                    f"the publishers: now {_reliability_name(wanted)}"
                )
                self.destroy_subscription(cam.subscription)
                self._subscribe_camera(cam)

    def _unsubscribe(self) -> None:
        if self._qos_timer is not None:
            self.destroy_timer(self._qos_timer)
            self._qos_timer = None
        for cam in self._cameras.values():
            if cam.subscription is not None:
                self.destroy_subscription(cam.subscription)
                cam.subscription = None

    def _sync_publishers(self) -> None:
        """Lifecycle publishers exist exactly for the enabled outputs, per camera; one made
        while the node is active publishes at once (activation enabled the others)."""
        with self._io_lock:
            for cam in self._cameras.values():
                for name, (topic, _, flag) in OUTPUTS.items():
                    enabled = bool(getattr(self._settings, flag))
                    if enabled and name not in cam.publishers:
                        pub = self.create_lifecycle_publisher(Image, cam.topic(topic), OUTPUT_QOS)
                        if self._lifecycle == "active":
                            pub.on_activate(None)
                        cam.publishers[name] = pub
                    elif not enabled and name in cam.publishers:
                        self.destroy_lifecycle_publisher(cam.publishers.pop(name))

    def _destroy_publishers(self) -> None:
        with self._io_lock:
            for cam in self._cameras.values():
                for pub in cam.publishers.values():
                    self.destroy_lifecycle_publisher(pub)
                cam.publishers.clear()

    def _stop_io(self) -> None:
        self._unsubscribe()
        self._group.close()
        if self._worker is not None:
            self._worker.join(timeout=60)  # it hands the finisher its end marker
            self._worker = None
        if self._finisher is not None:
            self._finisher.join(timeout=60)
            self._finisher = None

    def _on_image(self, cam: CameraIO, msg: Image | CompressedImage) -> None:
        # Only park it: decoding and inference happen on the worker.
        cam.frames.received()
        cam.slot.put(Frame(msg, time.monotonic_ns()))

    def _wanted(self, cam: CameraIO) -> list[str]:
        with self._io_lock:
            return [n for n, pub in cam.publishers.items() if pub.get_subscription_count()]

    def _work(self, group: SlotGroup, handoff: queue.Queue) -> None:
        """Decode, preprocess and run the network on the newest frame of the camera served
        least recently (or, batching, of up to ``max_batch`` cameras); hand them on to the
        finisher."""
        yield_to_dds()
        try:
            while True:
                pipeline = self._pipeline  # one for the whole batch: a swap never splits it
                limit = self._batch_limit(pipeline)
                wait = self._settings.batch_wait_ms / 1e3 if limit > 1 else 0.0
                taken = group.take_many(limit, wait, timeout=0.5)
                if not taken:
                    if group.closed:
                        return
                    continue
                jobs = []
                for name, frame in taken:
                    cam = self._cameras[name]
                    job = self._guarded(self._prepare, (cam, frame, pipeline), cam)
                    if job is _STOP:
                        return
                    if job is not None:
                        jobs.append(job)
                done = jobs and self._guarded(run_network, jobs, *[j.camera for j in jobs])
                if done is _STOP:
                    return
                for job in done or []:
                    if not self._hand_on(handoff, job):
                        return
        finally:
            self._hand_on(handoff, None)

    def _batch_limit(self, pipeline: Pipeline | None) -> int:
        if pipeline is None:
            return 1
        asked = self._settings.max_batch or pipeline.auto_batch
        return min(asked, pipeline.max_batch, len(self._cameras))

    def _hand_on(self, handoff: queue.Queue, job: Job | None) -> bool:
        finisher = self._finisher
        while True:
            try:
                handoff.put(job, timeout=0.5)
                return True
            except queue.Full:
                if finisher is None or not finisher.is_alive():
                    return False  # nobody to hand it to (shutting down)

    def _finish_loop(self, handoff: queue.Queue) -> None:
        """Labels at output size, colour, overlay, publish, statistics."""
        yield_to_dds()
        while True:
            job = handoff.get()
            if job is None:
                return
            if self._guarded(self._finish, job, job.camera) is _STOP:
                return

    def _guarded(self, step: Any, item: Any, *cams: CameraIO) -> Any:
        """``step(item)``; an exception is counted against ``cams`` (the frames it failed)
        and logged, and None returned."""
        try:
            return step(item)
        except Exception as e:  # the threads must outlive any one frame
            if not self.context.ok():
                return _STOP  # Ctrl-C shut the context down under a publish: not a failure
            for cam in cams:
                cam.frames.failed()
            self.get_logger().error(
                f"frame failed: {type(e).__name__}: {e}", throttle_duration_sec=5.0
            )
            return None

    def _prepare(self, taken: tuple[CameraIO, Frame, Pipeline | None]) -> Job | None:
        cam, frame, pipeline = taken
        job = cam.frames.prepare(frame, pipeline, self._wanted(cam))
        if job is not None:
            job.camera = cam
        return job

    def _log_bad_input(self, count: int, reason: str) -> None:
        self.get_logger().warning(
            f"bad input ({count} so far): {reason}", throttle_duration_sec=BAD_INPUT_LOG_PERIOD_S
        )

    def _finish(self, job: Job) -> None:
        header = job.frame.msg.header
        cam = job.camera

        def publish(name: str, array: Any) -> None:
            with self._io_lock:
                pub = cam.publishers.get(name)
                if pub is not None:
                    # publish() serialises before it returns, so the buffer is free again.
                    pub.publish(cam.buffers[name](array, OUTPUTS[name][1], header))

        clock = self.get_clock()
        stamp = Time.from_msg(header.stamp, clock_type=clock.clock_type).nanoseconds
        cam.frames.finish(job, publish, lambda: clock.now().nanoseconds, stamp)

    # ---------------------------------------------------------------- run-time rebuilds

    def _request_build(self, settings: NodeSettings) -> None:
        self._builder.request(settings)
        self.get_logger().info(f"building a new pipeline: {self._describe_settings(settings)}")

    def _on_build_finished(self) -> None:
        result = self._builder.take()
        if result is None or self._lifecycle not in ("inactive", "active"):
            return  # none, or cleaned up while it was being built
        if result.pipeline is not None:
            self._apply_live_settings(result.pipeline)  # they may have changed meanwhile
            with self._lock:
                self._pipeline, self._serving = result.pipeline, result.settings.pipeline_values()
                self._swap_error = None
            self._announce(result.pipeline)
            return
        self.get_logger().error(f"pipeline switch failed, keeping the current one: {result.error}")
        with self._lock:
            self._swap_error = (str(result.error), time.monotonic())
            serving = dict(self._serving or {})
        if not result.newest:
            return  # a newer request is on its way; reverting now would undo it
        current = self._settings.pipeline_values()
        revert = [Parameter(k, value=v) for k, v in serving.items() if current.get(k) != v]
        if revert:
            self._internal_set = True
            try:
                self.set_parameters_atomically(revert)
            finally:
                self._internal_set = False
            self.get_logger().warning(
                "reverted " + ", ".join(f"{p.name}={p.value!r}" for p in revert)
            )

    def _apply_live_settings(self, pipeline: Pipeline | None) -> None:
        # The pipeline reads these from its config once per frame, so plain assignments take
        # effect from the next frame without a rebuild.
        if pipeline is not None:
            pipeline.config.overlay_alpha = float(self._settings.overlay_alpha)
            pipeline.config.min_confidence = float(self._settings.min_confidence)
            pipeline.config.output_resolution = self._settings.output_resolution

    def _announce(self, pipeline: Pipeline) -> None:
        meta = pipeline.metadata
        h, w = pipeline.input_size
        self.get_logger().info(
            f"serving {meta.model}/{meta.variant} ({meta.num_classes} {meta.dataset} classes) "
            f"on {pipeline.describe()['backend']} {pipeline.backend.device} "
            f"{pipeline.config.precision}, network input {h}x{w} (h x w)"
        )
        if len(self._cameras) > 1:
            self.get_logger().info(
                f"cameras {', '.join(self._cameras)}; batching: {self._describe_batching(pipeline)}"
            )
        if pipeline.random_init:
            self.get_logger().warning(
                f"{meta.model} has RANDOM WEIGHTS: its labels are meaningless. Set the "
                "'weights' parameter or install the shipped weights."
            )

    @staticmethod
    def _describe_settings(s: NodeSettings) -> str:
        size = (
            f"{s.input_height}x{s.input_width} (h x w; 0 follows the weights' aspect)"
            if s.input_width or s.input_height
            else "weights' size"
        )
        return (
            f"model={s.model} variant={s.variant or 'default'} weights={s.weights or 'default'} "
            f"backend={s.backend} device={s.device} precision={s.precision} input={size}"
        )

    # ---------------------------------------------------------------- diagnostics

    def _publish_diagnostics(self) -> None:
        statuses = [self.diagnostic_status(cam) for cam in self._cameras]
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(msg)

    def diagnostic_status(self, camera: str = "") -> Any:
        """The status of one camera (the only one of a single-camera node)."""
        cam = self._cameras[camera]
        frames = cam.frames
        s = self._settings
        now = time.monotonic()
        with self._lock:
            pipeline = self._pipeline
            load_error = self._load_error
            swap = self._swap_error
        received, dropped = cam.slot.counts()
        counts = frames.counts()
        processed, idle = counts.processed, counts.idle
        bad, last_bad, errors = counts.bad_inputs, counts.last_bad_input, counts.inference_errors
        swap_error = None
        if swap is not None and now - swap[1] < max(
            SWAP_ERROR_WARN_MIN_S, 2 * s.diagnostics_period
        ):
            swap_error = swap[0]
        last_input = frames.in_rate.last()
        out_rate, in_window, window = frames.out_rate.snapshot(now)
        in_rate, _, _ = frames.in_rate.snapshot(now)
        with self._io_lock:
            subscribers = sum(p.get_subscription_count() for p in cam.publishers.values())
        random_init = pipeline is not None and pipeline.random_init
        health = diagnostics.Health(
            lifecycle=self._lifecycle,
            load_error=load_error,
            random_weights=random_init,
            swap_error=swap_error,
            seconds_since_input=None if last_input is None else now - last_input,
            stale_after=max(STALE_AFTER_MIN_S, 2 * s.diagnostics_period),
            subscribers=subscribers,
            output_rate=out_rate,
            target_rate=s.target_rate,
            input_rate=in_rate,
        )
        level, message = diagnostics.assess(health)

        values = diagnostics.frequency_values(
            out_rate, in_window, window, frames.out_rate.total, s.target_rate, in_rate
        )
        values += [
            (contract.INPUT_FREQUENCY, f"{in_rate:.3f}"),
            (contract.LIFECYCLE_STATE, self._lifecycle),
            (contract.INPUT_TOPIC_KEY, self.resolve_topic_name(self._input_topic(cam))),
            (contract.INPUT_QOS_KEY, self._describe_input_qos(cam)),
            (contract.FRAMES_RECEIVED, str(received)),
            (contract.FRAMES_PROCESSED, str(processed)),
            (contract.FRAMES_DROPPED, str(dropped)),
            (contract.FRAMES_IDLE, str(idle)),
            (contract.BAD_INPUTS, str(bad)),
            (contract.LAST_BAD_INPUT, last_bad or "none"),
            (contract.INFERENCE_ERRORS, str(errors)),
            (contract.FRAMES_BATCHED, str(counts.batched)),
            (contract.BATCHING, self._describe_batching(pipeline)),
            (contract.SUBSCRIBERS, str(subscribers)),
        ]
        values += diagnostics.latency_values(frames.latency)
        if pipeline is not None:
            # Model, Variant, Backend, Device, Precision, Input size (h x w), Weights, ...
            for key, value in pipeline.describe().items():
                values.append((contract.describe_key(key), str(value)))
        else:
            values.append((contract.describe_key("model"), contract.NO_MODEL))
        building = self._builder.building
        values += [
            (contract.BUILDING, self._describe_settings(building) if building else "no"),
            (contract.LAST_ERROR, load_error or (swap[0] if swap else "none")),
        ]
        name = status_name(self.get_fully_qualified_name(), camera.strip("/"))
        return diagnostics.make_status(name, s.device, level, message, values)

    def _describe_batching(self, pipeline: Pipeline | None) -> str:
        if len(self._cameras) == 1:
            return "off: one camera"
        limit = self._batch_limit(pipeline)
        if pipeline is None:
            return "off: no model"
        if limit == 1:
            if self._settings.max_batch == 1:
                return "off: max_batch 1"
            if pipeline.max_batch > 1:
                name, device = pipeline.backend_name, pipeline.backend.device
                return f"off: {name} on {device} batches only when max_batch is set"
            return f"off: {pipeline.backend_name} runs one frame at a time"
        return f"up to {limit} frames, waiting at most {self._settings.batch_wait_ms:g} ms"

    def _describe_input_qos(self, cam: CameraIO) -> str:
        qos = cam.subscription_qos
        chosen = _reliability_name(qos) if qos is not None else "not subscribed"
        if self._settings.input_qos == "auto":
            return f"auto: {chosen}"
        return chosen


def _reliability_name(qos: QoSProfile) -> str:
    return "reliable" if qos.reliability == ReliabilityPolicy.RELIABLE else "best effort"


def usage() -> str:
    """What ``segmentation_node --help`` prints: the ROS arguments and every parameter."""
    lines = [
        "usage: segmentation_node [--help] [--ros-args [-r FROM:=TO] [-p NAME:=VALUE] "
        "[--params-file FILE] [--log-level LEVEL]]",
        "",
        "seg_ros' segmentation node: subscribes to `image` (or `image/compressed`), publishes",
        "segmentation/labels, segmentation/color, segmentation/overlay and /diagnostics.",
        "",
        "ROS arguments (after --ros-args):",
        "  -r image:=/camera/image_raw   remap the input (or any topic)",
        "  -r __ns:=/front               namespace; -r __node:=NAME renames the node",
        "  -p NAME:=VALUE                set a parameter",
        "  -p cameras:=[front,left]      several cameras into one node (read-only; `cameras`",
        "                                under parameters below)",
        "  --params-file FILE            parameters from YAML (config/segmentation.yaml)",
        "  --log-level debug|info|warn|error",
        "",
        "parameters (default):",
    ]
    lines += [f"  {CAMERAS_PARAM} ({list(SINGLE_CAMERA)!r})", f"      {CAMERAS_DESCRIPTION}"]
    for spec in SPECS:
        default = spec.default
        shown = str(default).lower() if isinstance(default, bool) else repr(default)
        lines.append(f"  {spec.name} ({shown})")
        lines.append(f"      {spec.description}")
        if spec.choices:
            lines.append(f"      one of: {', '.join(spec.choices)}")
        elif spec.constraints:
            lines.append(f"      {spec.constraints}")
    return "\n".join(lines)


def _wants_help(argv: list[str]) -> bool:
    """--help / -h before any --ros-args (after it they belong to ROS)."""
    for arg in argv:
        if arg == "--ros-args":
            return False
        if arg in ("-h", "--help"):
            return True
    return False


def main(args: list[str] | None = None) -> int:
    if _wants_help(sys.argv[1:] if args is None else args):
        print(usage())
        return 0
    profile = apply_fastdds_profile()  # before rclpy.init() creates the DDS participant
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = SegmentationNode()
        if profile:
            node.get_logger().debug(f"Fast DDS profile for large images: {profile}")
        if node.autostart and not node.start():
            node.get_logger().error(
                "not started; fix the parameters (the node retries when they change) or use "
                "the lifecycle services"
            )
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except rclpy.exceptions.InvalidParameterValueException as e:
        print(f"segmentation_node: {e}", file=sys.stderr)
        code = 2
    except rclpy.exceptions.InvalidParameterTypeException as e:
        # A params file's `overlay_alpha: 1` or `-p input_width:=640.0`: parameters are
        # statically typed, so say which and how, not with a traceback.
        print(
            f"segmentation_node: {e} (write 1.0 for a double, 640 for an integer)", file=sys.stderr
        )
        code = 2
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
