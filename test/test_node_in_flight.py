"""Frames in flight in the node (inference_mode: throughput), over real DDS: outputs in the
order the frames came, each with its own header and the one-at-a-time labels; a model switch
and deactivate/activate while frames are in the network lose no output."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from ros_fixtures import NodeUnderTest, collected, image_msg, scene, values, wait_for
from weights_helpers import make_weights

pytest.importorskip("rclpy", reason="the ROS 2 wheels (ros-rclpy) are not installed")
pytest.importorskip("openvino", reason="frames in flight run on OpenVINO (and onnxruntime)")

H, W = 90, 120
SCENES = 6


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("weights")
    return {
        "full": str(make_weights(d / "full.safetensors", "fplnet", "full")),
        "encoder": str(make_weights(d / "encoder.safetensors", "fplnet", "encoder")),
    }


@pytest.fixture
def node(request, ros_probe, weights, tmp_path) -> NodeUnderTest:
    params = {
        "weights": weights["full"],
        "backend": getattr(request, "param", "openvino"),
        "inference_mode": "throughput",
        "target_rate": 0.0,
        "diagnostics_period": 0.5,
    }
    n = NodeUnderTest(ros_probe, "seg_in_flight", params, tmp_path, f"/in_flight_{os.getpid()}")
    n.wait_active()
    yield n
    code = n.close()
    assert code == 0, n.process.log()[-3000:]


def stream(node: NodeUnderTest, prefix: str, frames: int, rate: float = 30.0) -> None:
    """``frames`` frames at ``rate``, cycling through the scenes: id '<prefix><n>_<scene>'."""
    images = [scene(H, W, seed=s) for s in range(SCENES)]
    start = time.monotonic()
    for n in range(frames):
        ns = time.time_ns()
        s = n % SCENES
        stamp = (ns // 10**9, ns % 10**9)
        node.image_pub.publish(image_msg(images[s], "rgb8", f"{prefix}{n}_{s}", stamp))
        time.sleep(max(0.0, start + (n + 1) / rate - time.monotonic()))


def number(frame_id: str) -> int:
    return int(frame_id.split("_")[-2].lstrip("abcdefghijklmnopqrstuvwxyz"))


@pytest.mark.parametrize("node", ["openvino", "onnxruntime"], indirect=True)
def test_outputs_keep_order_headers_and_the_one_at_a_time_labels(node, weights) -> None:
    from seg_ros.inference import Pipeline

    status = node.wait_status(lambda s, v: "Frames in flight" in v, what="a status")
    mode = values(status)["Inference mode"]
    assert mode.startswith("throughput: up to"), mode
    stream(node, "order", 90)
    wait_for(lambda: len(collected(node.outputs["labels"], "order")) > 10, what="outputs")
    time.sleep(1.0)
    reference = Pipeline(weights=weights["full"], backend=values(status)["Backend"].split()[0])
    expected = [reference(scene(H, W, seed=s)).labels for s in range(SCENES)]
    labels = collected(node.outputs["labels"], "order")
    ids = [m.header.frame_id for m in labels]
    assert [number(i) for i in ids] == sorted(number(i) for i in ids), "out of order"
    assert len(set(ids)) == len(ids)
    for msg in labels:
        s = int(msg.header.frame_id.rsplit("_", 1)[1])
        got = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)
        np.testing.assert_array_equal(got, expected[s], err_msg=msg.header.frame_id)
    for name in ("color", "overlay"):  # every output of a frame carries that frame's header
        headers = {m.header.frame_id: m.header for m in labels}
        for msg in collected(node.outputs[name], "order"):
            if msg.header.frame_id in headers:
                assert msg.header.stamp == headers[msg.header.frame_id].stamp


def test_a_switch_and_deactivate_with_frames_in_flight_lose_no_output(node, weights) -> None:
    import threading

    probe = node.probe

    def processed() -> int:
        return int(values(node.status())["Frames processed"])

    stop = threading.Event()

    def camera() -> None:
        n = 0
        while not stop.is_set():
            stream(node, f"run{n}_", 15)
            n += 1

    thread = threading.Thread(target=camera, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(collected(node.outputs["labels"], "run")) > 5, what="outputs")
        result = probe.set_parameters(
            node.fqn, {"variant": "encoder", "weights": weights["encoder"]}, atomically=True
        )
        assert result.successful, result.reason
        node.wait_status(lambda s, v: v.get("Variant") == "encoder", what="the switch")
        seen = len(collected(node.outputs["labels"], "run"))
        wait_for(lambda: len(collected(node.outputs["labels"], "run")) > seen + 5, what="more")
        assert probe.lifecycle_transition(node.fqn, "deactivate")
        # Every frame the node took into the network came out before it went inactive.
        status = node.wait_status(lambda s, v: v["Lifecycle state"] == "inactive")
        assert values(status)["Frames in flight"] == "0"
        time.sleep(1.0)  # outputs still on the wire
        assert len(node.outputs["labels"].snapshot()) == processed()
        assert probe.lifecycle_transition(node.fqn, "activate")
        seen = len(collected(node.outputs["labels"], "run"))
        wait_for(lambda: len(collected(node.outputs["labels"], "run")) > seen + 5, what="again")
    finally:
        stop.set()
        thread.join(10)
    log = node.process.log()
    assert "frame failed" not in log and "pipeline switch failed" not in log
