"""The node serving your own model (an ONNX nobody here wrote, with its description) over real
DDS: its labels and class names, a hot swap to and from a seg_ros network under a stream, and
bad descriptions refused by the parameter service while the node keeps its model."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from own_models import OWN_SIZE, describe, export, network
from ros_fixtures import NodeUnderTest, Streamer, collected, image_msg, scene, values, wait_for
from weights_helpers import make_weights

pytest.importorskip("rclpy", reason="the ROS 2 wheels (ros-rclpy) are not installed")
pytest.importorskip("onnx", reason="own models are ONNX files (pip install seg_ros[onnx])")
pytest.importorskip("onnxruntime", reason="onnxruntime runs own models (seg_ros[onnx])")

H, W = 90, 120
FIVE = ["background", "road", "car", "person", "sky"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("own_node")
    onnx = export(network("lraspp_mobilenet_v3_large", 5), d / "lraspp5.onnx", dynamic=True)
    describe(onnx, FIVE, name="lraspp5", input_size=list(OWN_SIZE))
    bad = d / "bad.onnx"  # four names for five channels, which the graph leaves dynamic
    shutil.copy(onnx, bad)
    describe(bad, FIVE[:4], input_size=list(OWN_SIZE))
    typo = d / "typo.onnx"
    shutil.copy(onnx, typo)
    describe(typo, FIVE, input_size=list(OWN_SIZE), colour_order="rgb")
    labels_out = export(network("lraspp_mobilenet_v3_large", 5, "labels"), d / "ids.onnx", True)
    describe(labels_out, FIVE, output="labels", input_size=list(OWN_SIZE))
    fplnet = make_weights(d / "fplnet_full.safetensors", "fplnet", "full")
    return {
        "onnx": str(onnx),
        "bad": str(bad),
        "typo": str(typo),
        "labels": str(labels_out),
        "fplnet": str(fplnet),
    }


@pytest.fixture(scope="module")
def node(ros_probe, files, tmp_path_factory) -> NodeUnderTest:
    params = {"weights": files["onnx"], "target_rate": 0.0, "diagnostics_period": 0.5}
    name = "seg_test_own"
    n = NodeUnderTest(
        ros_probe, name, params, tmp_path_factory.mktemp(name), namespace=f"/{name}_{os.getpid()}"
    )
    n.wait_active()
    yield n
    assert n.close() == 0, n.process.log()[-3000:]


def _labels(msg) -> np.ndarray:
    from seg_ros.image_codec import decode_image_msg

    return decode_image_msg(msg).array


def test_the_node_serves_an_own_model_with_its_class_names(node, files) -> None:
    from seg_ros.inference import Pipeline

    rgb = scene(H, W, seed=3)
    out = node.roundtrip(image_msg(rgb, "rgb8", "own_1"), outputs=("labels", "color"))
    local = Pipeline(weights=files["onnx"])(rgb)  # the same backend choice (auto) here
    np.testing.assert_array_equal(_labels(out["labels"]), local.labels)
    got = node.probe.get_parameters(node.fqn, ["class_names", "class_colors"])
    assert list(got["class_names"]) == FIVE
    assert len(got["class_colors"]) == 15
    status = values(node.wait_status(lambda s, v: "Model" in v, what="diagnostics"))
    assert status["Model"] == "lraspp5", status
    assert status["Weights"] == files["onnx"], status


def test_bad_descriptions_and_torch_are_refused_and_the_model_kept(node, files) -> None:
    probe = node.probe
    result = probe.set_parameters(node.fqn, {"weights": files["typo"]})[0]
    assert not result.successful and "unknown key 'colour_order'" in result.reason, result.reason
    result = probe.set_parameters(node.fqn, {"backend": "torch"})[0]
    assert not result.successful and "torch backend runs only" in result.reason, result.reason
    # a model that outputs labels cannot give the confidence asked of it
    result = probe.set_parameters(
        node.fqn, {"weights": files["labels"], "min_confidence": 0.5}, atomically=True
    )
    assert not result.successful and "outputs labels" in result.reason, result.reason
    assert probe.get_parameters(node.fqn, ["weights"])["weights"] == files["onnx"]
    out = node.roundtrip(image_msg(scene(H, W, seed=4), "rgb8", "own_kept"), outputs=("labels",))
    assert set(np.unique(_labels(out["labels"]))) <= set(range(5))
    assert values(node.status())["Model"] == "lraspp5"


def test_a_class_count_found_wrong_at_build_reverts_and_keeps_serving(node, files) -> None:
    """The description's class count against a dynamic output is only known once the model
    runs: the parameter is taken, the build fails naming it, and the node goes on with the
    model it had."""
    from diagnostic_msgs.msg import DiagnosticStatus

    probe = node.probe
    with Streamer(node.image_pub, scene(H, W, seed=6), rate=8.0, prefix="ownbad_"):
        assert probe.set_parameters(node.fqn, {"weights": files["bad"]})[0].successful
        status = node.wait_status(
            lambda s, v: s.level == DiagnosticStatus.WARN and "switch failed" in s.message,
            what="the failed switch in diagnostics",
        )
        assert "classes need N x 4 x H x W" in values(status)["Last error"], values(status)
        wait_for(
            lambda: probe.get_parameters(node.fqn, ["weights"])["weights"] == files["onnx"],
            what="weights to revert",
        )
        n = len(collected(node.outputs["labels"], "ownbad_"))
        wait_for(lambda: len(collected(node.outputs["labels"], "ownbad_")) > n + 2, what="frames")
    assert values(node.status())["Model"] == "lraspp5"


def test_hot_swap_between_a_seg_ros_network_and_an_own_model_under_a_stream(node, files) -> None:
    probe = node.probe
    failed_before = node.process.log().count("pipeline switch failed")  # other tests' own
    with Streamer(node.image_pub, scene(H, W, seed=5), rate=10.0, prefix="ownswap_"):
        node.outputs["labels"].wait(1)
        result = probe.set_parameters(node.fqn, {"weights": files["fplnet"]})[0]
        assert result.successful, result.reason
        node.wait_status(lambda s, v: v.get("Model") == "fplnet", what="fplnet", timeout=120)
        wait_for(lambda: probe.get_parameters(node.fqn, ["class_names"])["class_names"][0]
                 == "sky", what="camvid class names")  # fmt: skip
        n = len(collected(node.outputs["labels"], "ownswap_"))
        wait_for(lambda: len(collected(node.outputs["labels"], "ownswap_")) > n + 2, what="fplnet")
        result = probe.set_parameters(node.fqn, {"weights": files["onnx"]})[0]
        assert result.successful, result.reason
        node.wait_status(lambda s, v: v.get("Model") == "lraspp5", what="back", timeout=120)
        n = len(collected(node.outputs["labels"], "ownswap_"))
        wait_for(lambda: len(collected(node.outputs["labels"], "ownswap_")) > n + 2, what="own")
    assert list(probe.get_parameters(node.fqn, ["class_names"])["class_names"]) == FIVE
    frames = collected(node.outputs["labels"], "ownswap_")
    assert len(frames) > 5
    for msg in frames:  # every frame whole, from one model or the other (11 camvid classes)
        labels = _labels(msg)
        assert labels.shape == (H, W)
        assert set(np.unique(labels)) <= set(range(11)) | {255}
    assert node.process.log().count("pipeline switch failed") == failed_before
