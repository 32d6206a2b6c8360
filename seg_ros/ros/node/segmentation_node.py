"""The segmentation node: a lifecycle node serving ``seg_ros.inference.Pipeline`` on ROS; a
thin rclpy shell (lifecycle and parameter callbacks, wiring). Its threads: the executor
(subscription callbacks only park a message, so they never fall behind the camera; parameter
and lifecycle services; timers), the worker and finisher (``frame_loop.py``: frame N+1 is in
the network while frame N is published), the builder (``serving.py``: a model switch is built
off the hot path; a guard condition hands it back to the executor, which swaps it in or, on
failure, reverts the parameters)."""

from __future__ import annotations

import threading
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.time import Time

from seg_ros.ros.contract import DIAGNOSTICS_TOPIC, NODE_NAME, START_FAILURE, status_name
from seg_ros.ros.image_msgs import decode
from seg_ros.ros.latest_frame import SlotGroup
from seg_ros.ros.node import ros_log
from seg_ros.ros.node.camera_io import CameraIO, CameraPorts
from seg_ros.ros.node.frame_loop import FrameLoop, LoopHooks, describe_batching
from seg_ros.ros.node.model_info import MODEL_PARAMS, READ_ONLY, ModelInfo
from seg_ros.ros.node.serving import Served, Serving
from seg_ros.ros.node.status import (
    announcement,
    camera_status,
    describe_settings,
    gather,
)
from seg_ros.ros.parameters import (
    LIVE_PARAMS,
    OUTPUTS_FLAGS,
    REBUILD_PARAMS,
    SPECS,
    NodeSettings,
    check_change,
    declare_parameters,
)

LOG_PERIOD_S = 5.0  # throttles the per-frame warnings and errors
SERVING_STATES = ("inactive", "active")  # configured: a pipeline is served


class SegmentationNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._lifecycle = "unconfigured"
        self._autostart_failed = False
        self._internal_set = False  # a revert: not checked, not acted on
        self._declared = False
        self._retry_timer: Any = None
        self._log_handler = ros_log.attach(self.get_logger())

        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._parameters_changed)
        declare_parameters(self)
        self._declared = True
        self._settings = self._read_settings()

        names = self._settings.camera_names
        group = SlotGroup(names)
        io_lock = threading.Lock()
        self._cameras = {n: CameraIO(n, group.slots[n], io_lock) for n in names}
        self._ports = CameraPorts(self, self._cameras, lambda: self._settings)
        self._build_done = self.create_guard_condition(self._on_build_finished)
        self._serving = Serving(on_done=self._build_done.trigger)
        clock = self.get_clock()
        self._loop = FrameLoop(
            group,
            self._cameras,
            LoopHooks(
                served=lambda: self._serving.served,
                batching=lambda: (self._settings.max_batch, self._settings.batch_wait_ms),
                decode=decode,
                stamp_ns=lambda h: Time.from_msg(h.stamp, clock_type=clock.clock_type).nanoseconds,
                now_ns=lambda: clock.now().nanoseconds,
                alive=self.context.ok,
                log_error=lambda text: self.get_logger().error(
                    text, throttle_duration_sec=LOG_PERIOD_S
                ),
                on_bad_input=lambda count, why: self.get_logger().warning(
                    f"bad input ({count} so far): {why}", throttle_duration_sec=LOG_PERIOD_S
                ),
            ),
        )
        self._model_info = ModelInfo(self)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._diagnostics_timer = self.create_timer(
            self._settings.diagnostics_period, self._publish_diagnostics
        )

    @property
    def cameras(self) -> list[str]:
        """The cameras served; [""] for the single-camera node."""
        return list(self._cameras)

    @property
    def autostart(self) -> bool:
        return bool(self._settings.autostart)

    # ---------------------------------------------------------------- parameters

    def _read_settings(self) -> NodeSettings:
        return NodeSettings.from_values({s.name: self.get_parameter(s.name).value for s in SPECS})

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        if self._internal_set:
            return SetParametersResult(successful=True)
        model_params = [p.name for p in params if p.name in MODEL_PARAMS]
        if model_params:
            return SetParametersResult(successful=False, reason=f"{model_params[0]}: {READ_ONLY}")
        current = self._read_settings if self._declared else None
        try:
            reason = check_change({p.name: p.value for p in params}, current)
        except Exception as e:  # a check's own failure refuses the change; the node serves on
            reason = f"could not check the change: {type(e).__name__}: {e}"
            self.get_logger().error(reason)
        return SetParametersResult(successful=reason is None, reason=reason or "")

    def _parameters_changed(self, params: list[Parameter]) -> None:
        if not self._declared:
            return
        old, self._settings = self._settings, self._read_settings()  # one replacement
        if self._internal_set:
            return
        names = {p.name for p in params}
        new = self._settings
        if "diagnostics_period" in names and old.diagnostics_period != new.diagnostics_period:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = self.create_timer(
                new.diagnostics_period, self._publish_diagnostics
            )
        if self._lifecycle == "active" and names & {"input_transport", "input_qos"}:
            self._ports.unsubscribe()
            self._ports.subscribe()
        if self._lifecycle in SERVING_STATES and names & {*OUTPUTS_FLAGS, "jpeg_quality"}:
            self._ports.sync_publishers(active=self._lifecycle == "active")
        if names & LIVE_PARAMS:
            self._serving.set_options(new)
        if names & REBUILD_PARAMS:
            if self._lifecycle in SERVING_STATES:
                self._serving.builder.request(new)
                self.get_logger().info(f"building a new pipeline: {describe_settings(new)}")
            elif self._lifecycle == "unconfigured" and self._autostart_failed:
                # The node was started to run; a fixed parameter is the cue to try again.
                self._schedule_autostart()

    # ---------------------------------------------------------------- lifecycle

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
        self.get_logger().info(f"configuring: {describe_settings(settings)}")
        error = self._serving.configure(settings)
        if error is not None:
            self.get_logger().error(f"{START_FAILURE}: {error}")
            return TransitionCallbackReturn.FAILURE
        self._lifecycle = "inactive"
        self._autostart_failed = False
        # Lifecycle publishers, from configure to cleanup: the outputs stay on the graph while
        # the node is inactive (viewers keep them) and publish only while it is active.
        self._ports.sync_publishers(active=False)
        self._announce(self._serving.served)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for cam in self._cameras.values():
            cam.frames.reset_rates()
        self._ports.sync_publishers(active=False)  # super().on_activate enables them all
        self._loop.start()
        self._ports.subscribe()
        self._lifecycle = "active"
        for cam in self._cameras.values():
            outputs = ", ".join(self._ports.output_topics(cam))
            self.get_logger().info(f"active: {self._ports.resolved_input(cam)} -> {outputs}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self._lifecycle = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unconfigure()
        self._lifecycle = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._tear_down("finalized")

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._tear_down("unconfigured")

    def _tear_down(self, to: str) -> TransitionCallbackReturn:
        self._stop_io()
        self._unconfigure()
        self._lifecycle = to
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Stop the threads; for main() and tests, before destroy_node()."""
        self._stop_io()
        self._ports.destroy_publishers()
        self._serving.close()
        ros_log.detach(self._log_handler)

    def _stop_io(self) -> None:
        self._ports.unsubscribe()
        self._loop.stop()

    def _unconfigure(self) -> None:
        self._model_info.clear()
        self._ports.destroy_publishers()
        self._serving.release()
        for cam in self._cameras.values():
            cam.frames.latency.reset()

    def _on_build_finished(self) -> None:
        outcome = self._serving.take_build(self._settings)
        if outcome is None or self._lifecycle not in SERVING_STATES:
            return  # none, or cleaned up while it was being built
        if outcome.served is not None:
            self._announce(outcome.served)
            return
        self.get_logger().error(f"pipeline switch failed, keeping the current one: {outcome.error}")
        if outcome.revert:
            revert = [Parameter(k, value=v) for k, v in outcome.revert.items()]
            self._set_internally(lambda: self.set_parameters_atomically(revert))
            self.get_logger().warning(
                "reverted " + ", ".join(f"{p.name}={p.value!r}" for p in revert)
            )

    def _set_internally(self, change: Any) -> None:
        """A change of the node's own (a revert, the model's class names): not checked, not
        acted on."""
        self._internal_set = True
        try:
            change()
        finally:
            self._internal_set = False

    def _announce(self, served: Served | None) -> None:
        if served is None:
            return
        self._model_info.show(served.pipeline.metadata, self._set_internally)
        info, warning = announcement(served, self.cameras, self._describe_batching(served))
        for line in info:
            self.get_logger().info(line)
        if warning:
            self.get_logger().warning(warning)

    # ---------------------------------------------------------------- logs and diagnostics

    def _describe_batching(self, served: Served | None) -> str:
        s = self._settings
        return describe_batching(served, s.max_batch, s.batch_wait_ms, len(self._cameras))

    def _publish_diagnostics(self) -> None:
        msg = DiagnosticArray(status=[self.diagnostic_status(cam) for cam in self._cameras])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(msg)

    def diagnostic_status(self, camera: str = "") -> Any:
        """The status of one camera (the only one of a single-camera node)."""
        served = self._serving.served
        return camera_status(
            gather(
                status_name(self.get_fully_qualified_name(), camera.strip("/")),
                (self._lifecycle, self._settings, self._serving, served),
                (self._cameras[camera], self._ports, self._loop.in_flight()),
                self._describe_batching(served),
            )
        )
