"""Lifecycle transitions through the real lifecycle services, failed configures, and a node
that starts with a bad model and recovers when its parameter is fixed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from ros_fixtures import NodeProcess, NodeUnderTest, image_msg, scene, values, wait_for
from weights_helpers import make_weights

pytest.importorskip("rclpy", reason="the ROS 2 wheels (ros-rclpy) are not installed")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("weights")
    good = make_weights(d / "fplnet.safetensors")
    misfit = make_weights(d / "misfit.safetensors", "fplnet", "full", tensors_of="encoder")
    return {"good": str(good), "misfit": str(misfit)}


def test_lifecycle_transitions(ros_probe, weights, tmp_path) -> None:
    from diagnostic_msgs.msg import DiagnosticStatus

    params = {"autostart": False, "weights": weights["good"], "diagnostics_period": 0.5}
    node = NodeUnderTest(
        ros_probe, "seg_test_lifecycle", params, tmp_path, namespace=f"/seg_lc_{os.getpid()}"
    )
    probe, fqn = ros_probe, node.fqn
    labels_topic = node.process.topic("segmentation/labels")
    try:
        status = node.wait_status(
            lambda s, v: v["Lifecycle state"] == "unconfigured", timeout=90, what="unconfigured"
        )
        assert status.level == DiagnosticStatus.STALE
        assert probe.lifecycle_state(fqn) == "unconfigured"
        assert node.image_pub.get_subscription_count() == 0

        assert probe.lifecycle_transition(fqn, "configure")
        assert probe.lifecycle_state(fqn) == "inactive"
        status = node.wait_status(lambda s, v: v["Lifecycle state"] == "inactive")
        assert status.level == DiagnosticStatus.STALE and values(status)["Model"] == "fplnet"
        # Lifecycle publishers: on the graph from configure on, publishing only while active.
        wait_for(lambda: probe.node.count_publishers(labels_topic) == 1, what="advertised")

        for round_ in range(2):  # the worker thread stops and starts again cleanly
            assert probe.lifecycle_transition(fqn, "activate")
            assert probe.lifecycle_state(fqn) == "active"
            wait_for(lambda: node.image_pub.get_subscription_count() > 0, what="subscription")
            out = node.roundtrip(image_msg(scene(), "rgb8", f"lc_{round_}"))
            assert out["labels"].encoding == "mono8"
            assert probe.lifecycle_transition(fqn, "deactivate")
            assert probe.lifecycle_state(fqn) == "inactive"
            wait_for(lambda: node.image_pub.get_subscription_count() == 0, what="unsubscribed")
            # Deactivated, segmentation/labels stays on the graph (viewers keep it; it once
            # vanished), and nothing is published on it.
            assert probe.node.count_publishers(labels_topic) == 1
            before = len(node.outputs["labels"].snapshot())
            node.image_pub.publish(image_msg(scene(), "rgb8", f"inactive_{round_}"))
            time.sleep(1.0)
            assert len(node.outputs["labels"].snapshot()) == before

        assert probe.lifecycle_transition(fqn, "cleanup")
        assert probe.lifecycle_state(fqn) == "unconfigured"
        wait_for(lambda: probe.node.count_publishers(labels_topic) == 0, what="unadvertised")
        node.wait_status(lambda s, v: v["Model"] == "none", what="the model to be released")

        # A model that cannot be built: configure fails, diagnostics say why.
        assert probe.set_parameters(fqn, {"weights": weights["misfit"]})[0].successful
        assert not probe.lifecycle_transition(fqn, "configure")
        assert probe.lifecycle_state(fqn) == "unconfigured"
        status = node.wait_status(lambda s, v: s.level == DiagnosticStatus.ERROR, what="ERROR")
        assert status.message.startswith("no model:") and "does not fit" in status.message

        assert probe.set_parameters(fqn, {"weights": weights["good"]})[0].successful
        assert probe.lifecycle_transition(fqn, "configure")
        assert probe.lifecycle_transition(fqn, "activate")
        wait_for(lambda: node.image_pub.get_subscription_count() > 0, what="subscription")
        node.roundtrip(image_msg(scene(), "rgb8", "lc_after_error"))

        assert probe.lifecycle_transition(fqn, "deactivate")
        assert probe.lifecycle_transition(fqn, "shutdown")
        assert probe.lifecycle_state(fqn) == "finalized"
        node.assert_alive()
    finally:
        code = node.close()
    assert code == 0, node.process.log()[-3000:]


def test_autostarted_node_recovers_when_the_weights_are_fixed(ros_probe, weights, tmp_path):
    from diagnostic_msgs.msg import DiagnosticStatus

    params = {"weights": weights["misfit"], "diagnostics_period": 0.5}
    node = NodeUnderTest(
        ros_probe, "seg_test_recover", params, tmp_path, namespace=f"/seg_rc_{os.getpid()}"
    )
    try:
        status = node.wait_status(
            lambda s, v: s.level == DiagnosticStatus.ERROR, timeout=90, what="ERROR"
        )
        assert "does not fit" in status.message
        assert ros_probe.set_parameters(node.fqn, {"weights": weights["good"]})[0].successful
        node.wait_active()
        node.roundtrip(image_msg(scene(), "rgb8", "recovered"))
        assert "trying to start again" in node.process.log()
    finally:
        code = node.close()
    assert code == 0, node.process.log()[-3000:]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"backend": "tensorflow"}, "backend 'tensorflow' is not allowed"),
        # A wrong type (a params file's `overlay_alpha: 1`) is a clear line too, no traceback.
        ({"overlay_alpha": 1}, "expecting type 'DOUBLE': overlay_alpha (write 1.0"),
    ],
)
def test_invalid_startup_parameter_stops_the_node_with_the_reason(
    ros_domain, tmp_path, params, words
) -> None:
    process = NodeProcess("seg_test_invalid", params, tmp_path)
    try:
        process.process.wait(timeout=90)
    finally:
        process.stop()
    assert process.process.returncode == 2
    assert words in process.log()
    assert "Traceback" not in process.log()


# A node whose timer does what Ctrl-C's signal handler does (shut the context down) and then
# what the input-QoS re-check does (a graph query), or fails while the context is up.
_SPIN_PROBE = """
import sys, rclpy
from rclpy.executors import SingleThreadedExecutor
from seg_ros.ros.node.cli import spin

rclpy.init()
node = rclpy.create_node("seg_spin_probe")

def tick():
    if sys.argv[1] == "shutdown":
        rclpy.shutdown()
        node.get_publishers_info_by_topic("/image")  # raises: the context is gone
    raise ValueError("a real failure")

node.create_timer(0.05, tick)
executor = SingleThreadedExecutor()
executor.add_node(node)
spin(executor)
print("spin returned")
"""


@pytest.mark.parametrize(("case", "code"), [("shutdown", 0), ("failure", 1)])
def test_a_callback_cut_short_by_ctrl_c_is_a_clean_exit(case: str, code: int) -> None:
    """Ctrl-C under a callback (seen in CI: the input-QoS re-check's graph query raised
    RCLError "context is invalid", and the node exited 1 with a traceback) is a clean stop;
    an exception while the context is up still ends the node with its traceback."""
    command = [sys.executable, "-c", _SPIN_PROBE, case]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == code, done.stdout + done.stderr
    if case == "shutdown":
        assert "spin returned" in done.stdout and "Traceback" not in done.stderr, done.stderr
    else:
        assert "ValueError: a real failure" in done.stderr
