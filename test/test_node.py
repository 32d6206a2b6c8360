"""The segmentation node in its own process, driven over real DDS by an rclpy probe.

One node serves most tests (starting torch and a model costs seconds on a loaded CI machine);
the tests that change how it runs put their settings back before they end.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from camera_images import mosaic, yuv422
from ros_fixtures import (
    NodeUnderTest,
    Streamer,
    collected,
    image_msg,
    raw_image,
    scene,
    values,
    wait_for,
)
from weights_helpers import NETWORK_SIZE, make_weights, truncated_copy

pytest.importorskip("rclpy", reason="the ROS 2 wheels (ros-rclpy) are not installed")

from seg_ros.labels import CAMVID, CITYSCAPES

H, W = 90, 120  # camera frames: not the network's size, so resizing is exercised
PALETTE = {tuple(c) for c in CAMVID.palette} | {(0, 0, 0)}
# Random-init networks (the hot-swap test's desanet) use the Cityscapes classes.
ANY_PALETTE = PALETTE | {tuple(c) for c in CITYSCAPES.palette}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("weights")
    full = make_weights(d / "fplnet_full.safetensors", "fplnet", "full")
    encoder = make_weights(d / "fplnet_encoder.safetensors", "fplnet", "encoder")
    truncated = truncated_copy(full, d / "truncated.safetensors")
    misfit = make_weights(d / "misfit.safetensors", "fplnet", "full", tensors_of="encoder")
    return {
        "full": str(full),
        "encoder": str(encoder),
        "truncated": str(truncated),
        "misfit": str(misfit),
    }


def _started_node(ros_probe, weights, folder, name: str) -> NodeUnderTest:
    params = {"weights": weights["full"], "target_rate": 0.0, "diagnostics_period": 0.5}
    n = NodeUnderTest(ros_probe, name, params, folder, namespace=f"/{name}_{os.getpid()}")
    n.wait_active()
    return n


def _closed_cleanly(n: NodeUnderTest) -> None:
    code = n.close()
    assert code == 0, f"the node did not exit cleanly ({code}):\n{n.process.log()[-3000:]}"


@pytest.fixture(scope="module")
def node(ros_probe, weights, tmp_path_factory) -> NodeUnderTest:
    """Shared by the tests that leave its settings as they found them."""
    n = _started_node(ros_probe, weights, tmp_path_factory.mktemp("main_node"), "seg_test_main")
    yield n
    _closed_cleanly(n)


@pytest.fixture
def swap_node(ros_probe, weights, tmp_path) -> NodeUnderTest:
    """A node of its own for each test that switches models: no test sees another's switch,
    whatever the order they run in."""
    n = _started_node(ros_probe, weights, tmp_path, "seg_test_swap")
    yield n
    _closed_cleanly(n)


def check_outputs(
    out: dict, header, height: int, width: int, palette: set = PALETTE, num_classes: int = 11
) -> None:
    """Encodings, sizes, copied headers, class ids and palette colours of one frame's outputs."""
    for name, encoding, channels in (
        ("labels", "mono8", 1),
        ("color", "rgb8", 3),
        ("overlay", "rgb8", 3),
    ):
        if name not in out:
            continue
        msg = out[name]
        assert msg.encoding == encoding, name
        assert (msg.height, msg.width) == (height, width), name
        assert msg.step == width * channels, name
        assert len(msg.data) == height * width * channels, name
        assert msg.header.frame_id == header.frame_id, name
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (
            header.stamp.sec,
            header.stamp.nanosec,
        ), name
    if "labels" in out:
        labels = to_array(out["labels"])
        assert set(np.unique(labels)) <= set(range(num_classes)) | {255}
    if "color" in out:
        colours = {tuple(c) for c in to_array(out["color"]).reshape(-1, 3)}
        assert colours <= palette


def to_array(msg) -> np.ndarray:
    from seg_ros.image_codec import decode_image_msg

    decoded = decode_image_msg(msg)
    return decoded.array


# ---------------------------------------------------------------- frames in, results out


def test_outputs_have_input_size_encodings_and_copied_header(node) -> None:
    msg = image_msg(scene(H, W), "rgb8", "camera_optical", stamp=(1234, 567_890))
    out = node.roundtrip(msg)
    check_outputs(out, msg.header, H, W)
    # The overlay is the camera image blended with the mask, not the mask itself.
    assert not np.array_equal(to_array(out["overlay"]), to_array(out["color"]))


def _as(encoding: str, rgb: np.ndarray) -> np.ndarray:
    gray = rgb[:, :, 1]
    alpha = np.full(rgb.shape[:2], 77, np.uint8)
    return {
        "rgb8": rgb,
        "bgr8": rgb[:, :, ::-1],
        "8UC3": rgb[:, :, ::-1],
        "rgba8": np.dstack([rgb, alpha]),
        "bgra8": np.dstack([rgb[:, :, ::-1], alpha]),
        "mono8": gray,
        "8UC1": gray,
        "mono16": gray.astype(np.uint16) * 257,  # scales back to exactly ``gray``
        "16UC1": gray.astype(np.uint16) * 257,
    }[encoding]


def test_every_input_encoding_gives_the_same_labels(node) -> None:
    rgb = scene(H, W, seed=3)
    labels = {}
    for i, encoding in enumerate(
        ["rgb8", "bgr8", "8UC3", "rgba8", "bgra8", "mono8", "8UC1", "mono16", "16UC1"]
    ):
        msg = image_msg(_as(encoding, rgb), encoding, f"enc_{i}_{encoding}")
        out = node.roundtrip(msg)
        check_outputs(out, msg.header, H, W)
        labels[encoding] = to_array(out["labels"])
    # Channel order is honoured: the same picture in any colour encoding is the same input.
    for encoding in ("bgr8", "8UC3", "rgba8", "bgra8"):
        np.testing.assert_array_equal(labels[encoding], labels["rgb8"], err_msg=encoding)
    for encoding in ("8UC1", "mono16", "16UC1"):
        np.testing.assert_array_equal(labels[encoding], labels["mono8"], err_msg=encoding)


@pytest.mark.parametrize(
    ("encoding", "make"),
    [
        ("bayer_rggb8", lambda rgb: mosaic(rgb, "rggb")),
        ("bayer_gbrg16", lambda rgb: mosaic(rgb, "gbrg").astype("<u2") * 257),
        ("yuv422", lambda rgb: yuv422(rgb, "uyvy")),
        ("yuv422_yuy2", lambda rgb: yuv422(rgb, "yuyv")),
    ],
)
def test_raw_camera_encodings_are_served(node, encoding, make) -> None:
    """A Bayer or YUV camera's frames are segmented as the RGB picture they decode to."""
    from seg_ros.image_codec import decode_image

    picture = scene(H, W, seed=5)
    raw = make(picture)
    rows = np.ascontiguousarray(raw).view(np.uint8).reshape(H, -1)
    msg = raw_image(H, W, encoding, rows.shape[1], rows.tobytes(), f"raw_{encoding}")
    out = node.roundtrip(msg)
    check_outputs(out, msg.header, H, W)
    rgb = decode_image(H, W, encoding, rows.shape[1], rows.tobytes()).array
    assert np.abs(rgb.astype(int) - picture).mean() < 12  # the picture, not noise
    same = node.roundtrip(image_msg(rgb, "rgb8", f"rgb_of_{encoding}"))
    np.testing.assert_array_equal(to_array(out["labels"]), to_array(same["labels"]))


def test_padded_rows_are_read_correctly(node) -> None:
    rgb = scene(H, W, seed=4)
    plain = node.roundtrip(image_msg(rgb, "rgb8", "pad_plain"))
    padded_rows = np.concatenate([rgb.reshape(H, W * 3), np.full((H, 5), 200, np.uint8)], axis=1)
    msg = raw_image(H, W, "rgb8", W * 3 + 5, padded_rows.tobytes(), "pad_padded")
    padded = node.roundtrip(msg)
    np.testing.assert_array_equal(to_array(padded["labels"]), to_array(plain["labels"]))


BAD_INPUTS = [
    ("unknown_encoding", lambda: raw_image(H, W, "32FC1", W * 4, bytes(H * W * 4), "bad_enc")),
    ("step_mismatch", lambda: raw_image(H, W, "rgb8", W, bytes(H * W), "bad_step")),
    ("truncated", lambda: raw_image(H, W, "rgb8", W * 3, bytes(H * W * 3 - 10), "bad_trunc")),
    ("oversized", lambda: raw_image(H, W, "mono8", W, bytes(H * W + 10), "bad_over")),
    ("zero_size", lambda: raw_image(0, 0, "rgb8", 0, b"", "bad_zero")),
]


def test_bad_inputs_are_counted_and_the_node_keeps_serving(node) -> None:
    before = int(values(node.wait_status(lambda s, v: True))["Bad inputs"])
    for kind, make in BAD_INPUTS:
        node.image_pub.publish(make())
        # Each one is counted before the next arrives (the slot keeps only the newest frame).
        node.wait_status(
            lambda s, v, n=before: int(v["Bad inputs"]) > n,
            what=f"the {kind} frame to be counted",
        )
        before += 1
        good = image_msg(scene(H, W), "rgb8", f"after_{kind}")
        check_outputs(node.roundtrip(good), good.header, H, W)
    for kind, _ in BAD_INPUTS:
        assert not any(
            m.header.frame_id.startswith("bad_")
            for c in node.outputs.values()
            for m in c.snapshot()
        ), kind
    log = node.process.log()
    assert "bad input" in log and "unsupported encoding '32FC1'" in log


def test_compressed_input(node) -> None:
    from seg_ros.ros.image_msgs import to_compressed_msg

    header = image_msg(scene(H, W), "rgb8", "x").header
    assert node.probe.set_parameters(node.fqn, {"input_transport": "compressed"})[0].successful
    try:
        wait_for(
            lambda: node.compressed_pub.get_subscription_count() > 0,
            what="the node to subscribe to image/compressed",
        )
        for fmt in ("png", "jpeg"):
            header.frame_id = f"compressed_{fmt}"
            msg = to_compressed_msg(scene(H, W, seed=5), header, fmt)
            check_outputs(node.roundtrip(msg, compressed=True), header, H, W)
        # A png decodes to exactly the raw image, so the labels match raw input's.
        header.frame_id = "compressed_png_again"
        png = node.roundtrip(to_compressed_msg(scene(H, W, seed=5), header, "png"), compressed=True)
        before = int(values(node.wait_status(lambda s, v: True))["Bad inputs"])
        broken = to_compressed_msg(scene(H, W), header, "jpeg")
        broken.data = broken.data[:20]
        broken.header.frame_id = "compressed_corrupt"
        node.compressed_pub.publish(broken)
        status = node.wait_status(lambda s, v: int(v["Bad inputs"]) > before)
        assert "corrupt compressed image" in values(status)["Last bad input"]
    finally:
        assert node.probe.set_parameters(node.fqn, {"input_transport": "raw"})[0].successful
    wait_for(lambda: node.image_pub.get_subscription_count() > 0, what="raw subscription")
    raw = node.roundtrip(image_msg(scene(H, W, seed=5), "rgb8", "raw_again"))
    np.testing.assert_array_equal(to_array(raw["labels"]), to_array(png["labels"]))


# ---------------------------------------------------------------- parameters


def test_parameters_are_declared_with_descriptors(node) -> None:
    d = node.probe.describe_parameters(
        node.fqn, ["model", "backend", "overlay_alpha", "input_width", "autostart"]
    )
    assert "fplnet" in d["model"].additional_constraints
    assert "onnxruntime" in d["backend"].additional_constraints
    r = d["overlay_alpha"].floating_point_range[0]
    assert (r.from_value, r.to_value) == (0.0, 1.0)
    assert d["input_width"].integer_range[0].to_value >= 2048
    assert d["autostart"].read_only
    assert all(desc.description for desc in d.values())


def test_every_listed_parameter_reads_back_in_one_call(node) -> None:
    """What `ros2 param dump` and rqt_reconfigure do: list, then get all at once. rclpy answers
    that call with nothing at all when one parameter is uninitialised (measured: the dump was
    `ros__parameters: {}` while `cameras` was declared without a value)."""
    from rcl_interfaces.srv import ListParameters

    listed = node.probe.call(
        ListParameters, f"{node.fqn}/list_parameters", ListParameters.Request()
    ).result.names
    values = node.probe.get_parameters(node.fqn, sorted(listed))  # strict: one value per name
    assert {"model", "backend", "cameras", "autostart"} <= set(values)
    assert values["cameras"] == [""] and values["model"] == "fplnet"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize(
    ("values_", "reason"),
    [
        ({"backend": "tensorflow"}, "backend 'tensorflow' is not allowed"),
        ({"model": "unet"}, "model 'unet' is not allowed"),
        ({"precision": "int8"}, "precision 'int8'"),
        ({"device": "gpu0"}, "device 'gpu0'"),
        ({"variant": "resnet18"}, "variant 'resnet18'"),
        ({"input_width": 10}, "input_width 10 is too small"),
        pytest.param(
            {"device": "cuda"},
            "CUDA is not available",
            marks=pytest.mark.skipif(_has_cuda(), reason="a CUDA device is present"),
        ),
        ({"overlay_alpha": 1.5}, "out of range"),
        ({"min_confidence": -0.2}, "out of range"),
        ({"input_transport": "theora"}, "input_transport 'theora'"),
        ({"input_qos": "fast"}, "input_qos 'fast'"),
        ({"diagnostics_period": 0.0}, "out of range"),
        ({"autostart": False}, "read-only"),
        ({"weights": "/nonexistent/w.safetensors"}, "not found"),
        ({"weights": "/etc/hostname"}, "cannot read safetensors header"),
        ({"weights": "TRUNCATED"}, "cannot read safetensors header"),
        ({"model": "rgpnet"}, "'fplnet' network, but model 'rgpnet'"),
        ({"precision": "fp16"}, "needs device 'cuda'"),
        ({"backend": "tensorrt"}, "needs device 'cuda'"),
        ({"overlay_alpha": "half"}, "type"),
        ({"engine": "/tmp/model.onnx"}, "engine file not found"),
        ({"engine": "/tmp/model.plan"}, "cannot tell the runtime"),
    ],
)
def test_invalid_values_are_rejected_with_a_reason(
    node, weights, values_: dict, reason: str
) -> None:
    if values_.get("weights") == "TRUNCATED":
        values_ = {"weights": weights["truncated"]}
    name = next(iter(values_))
    before = node.probe.get_parameters(node.fqn, [name])[name]
    result = node.probe.set_parameters(node.fqn, values_)[0]
    assert not result.successful
    assert reason in result.reason, result.reason
    assert node.probe.get_parameters(node.fqn, [name])[name] == before


def test_overlay_alpha_and_output_resolution_apply_without_a_rebuild(node) -> None:
    rgb = scene(H, W, seed=6)
    probe = node.probe
    try:
        assert probe.set_parameters(node.fqn, {"overlay_alpha": 0.0})[0].successful
        out = node.roundtrip(image_msg(rgb, "rgb8", "alpha0"))
        np.testing.assert_array_equal(to_array(out["overlay"]), rgb)
        assert probe.set_parameters(node.fqn, {"overlay_alpha": 1.0})[0].successful
        out = node.roundtrip(image_msg(rgb, "rgb8", "alpha1"))
        np.testing.assert_array_equal(to_array(out["overlay"]), to_array(out["color"]))
        assert probe.set_parameters(node.fqn, {"output_resolution": "network"})[0].successful
        msg = image_msg(rgb, "rgb8", "network_res")
        check_outputs(node.roundtrip(msg), msg.header, *NETWORK_SIZE)
    finally:
        probe.set_parameters(node.fqn, {"overlay_alpha": 0.5, "output_resolution": "input"})
    assert "building a new pipeline" not in node.process.log()


def test_live_settings_changed_under_a_30hz_stream_are_never_half_applied(swap_node) -> None:
    """Two sets of live settings, flipped atomically while a 30 Hz camera streams: every
    frame's outputs are computed with one set, never part of each. min_confidence is applied
    on the inference worker, the others on the finisher: a configuration changed in place
    under them once mixed the two within a frame. (A node of its own: its 30 Hz stream would
    stay in the shared node's input-rate window.)"""
    import time

    node = swap_node
    rgb = scene(H, W, seed=8)
    probe = node.probe
    a = {"overlay_alpha": 0.0, "output_resolution": "input", "min_confidence": 0.0}
    b = {"overlay_alpha": 1.0, "output_resolution": "network", "min_confidence": 1.0}
    try:
        # every frame of the stream is computed with a or b: a is in force before it starts
        assert probe.set_parameters(node.fqn, a, atomically=True).successful
        with Streamer(node.image_pub, rgb, rate=30.0, prefix="live_"):
            for i in range(16):
                assert probe.set_parameters(node.fqn, a if i % 2 else b, atomically=True).successful
                time.sleep(0.25)
    finally:
        probe.set_parameters(node.fqn, {**a, "overlay_alpha": 0.5}, atomically=True)
    got = {
        name: {m.header.frame_id: m for m in collected(node.outputs[name], "live_")}
        for name in ("labels", "color", "overlay")
    }
    frames = sorted(set(got["labels"]) & set(got["color"]) & set(got["overlay"]))
    seen = {"a": 0, "b": 0}
    for frame_id in frames:
        labels, color, overlay = (to_array(got[n][frame_id]) for n in got)
        if overlay.shape[:2] == (H, W):  # set a: the camera's size, the camera image, no 255s
            seen["a"] += 1
            assert labels.shape == (H, W) and color.shape[:2] == (H, W), frame_id
            np.testing.assert_array_equal(overlay, rgb, err_msg=frame_id)
            assert not (labels == 255).any(), frame_id
        else:  # set b: the network's size, the mask alone, every pixel below 1.0 confidence
            seen["b"] += 1
            assert overlay.shape[:2] == labels.shape == NETWORK_SIZE, frame_id
            np.testing.assert_array_equal(overlay, color, err_msg=frame_id)
            assert (labels == 255).all(), frame_id
    assert seen["a"] >= 5 and seen["b"] >= 5, seen  # both sets were seen, many times each
    assert "building a new pipeline" not in node.process.log()


def test_disabled_outputs_are_not_published(node) -> None:
    probe = node.probe
    topic = node.process.topic("segmentation/color")
    assert probe.set_parameters(node.fqn, {"publish_color": False})[0].successful
    try:
        wait_for(lambda: probe.node.count_publishers(topic) == 0, what="color to be unadvertised")
        out = node.roundtrip(image_msg(scene(H, W), "rgb8", "no_color"), ("labels", "overlay"))
        assert out["labels"].encoding == "mono8"
        assert not collected(node.outputs["color"], "no_color")
    finally:
        assert probe.set_parameters(node.fqn, {"publish_color": True})[0].successful
    wait_for(lambda: probe.node.count_publishers(topic) == 1, what="color to be advertised again")
    node.roundtrip(image_msg(scene(H, W), "rgb8", "color_back"))


def test_confidence_output_and_min_confidence(node, weights) -> None:
    """segmentation/confidence is off by default; on, it is mono8 with the frame's header and
    equals the pipeline's softmax confidence; min_confidence marks the less certain pixels
    255 in the labels. Both apply without a rebuild."""
    from seg_ros.inference import Pipeline

    probe = node.probe
    topic = node.process.topic("segmentation/confidence")
    assert probe.node.count_publishers(topic) == 0
    rgb = scene(H, W, seed=8)
    local = Pipeline(weights=weights["full"], confidence=True)(rgb)
    try:
        assert probe.set_parameters(node.fqn, {"publish_confidence": True})[0].successful
        wait_for(lambda: probe.node.count_publishers(topic) == 1, what="confidence advertised")
        msg = image_msg(rgb, "rgb8", "conf_on", stamp=(77, 5))
        out = node.roundtrip(msg, ("labels", "confidence"))
        conf = out["confidence"]
        assert conf.encoding == "mono8" and (conf.height, conf.width) == (H, W)
        assert conf.header.frame_id == "conf_on" and conf.header.stamp.sec == 77
        confidence = to_array(conf)
        diff = np.abs(confidence.astype(int) - local.confidence.astype(int))
        assert diff.max() <= 2, diff.max()
        # Just above the most confident pixel every label goes; just below the least
        # confident one none does. At the network's size labels and confidence are the same
        # pixels (no resizing); a mono8 level L is a probability within half a step of L/255.
        lowest, highest = int(confidence.min()), int(confidence.max())
        for threshold, masked in (((highest + 0.5) / 255, True), ((lowest - 0.5) / 255, False)):
            assert probe.set_parameters(
                node.fqn, {"min_confidence": threshold, "output_resolution": "network"}
            )[0].successful
            out = node.roundtrip(
                image_msg(rgb, "rgb8", f"conf_min_{masked}"), ("labels", "confidence")
            )
            labels, level = to_array(out["labels"]), to_array(out["confidence"]).astype(int)
            assert labels.shape == NETWORK_SIZE
            below, above = level <= threshold * 255 - 0.5, level >= threshold * 255 + 0.5
            assert (below if masked else above).all(), (threshold, np.unique(level))
            assert (labels[below] == 255).all() and (labels[above] != 255).all()
    finally:
        probe.set_parameters(
            node.fqn,
            {"publish_confidence": False, "min_confidence": 0.0, "output_resolution": "input"},
        )
    wait_for(lambda: probe.node.count_publishers(topic) == 0, what="confidence unadvertised")
    out = node.roundtrip(image_msg(rgb, "rgb8", "conf_off"))
    assert 255 not in np.unique(to_array(out["labels"]))
    assert "building a new pipeline" not in node.process.log()


# ---------------------------------------------------------------- diagnostics


def test_diagnostics_keys_and_levels(node) -> None:
    from diagnostic_msgs.msg import DiagnosticStatus

    # A 5 Hz camera the node keeps up with is OK: judged against its input rate (target_rate 0,
    # the default), not against a fixed 10 Hz (it once warned "5.00 Hz below target 10 Hz").
    with Streamer(node.image_pub, scene(H, W), rate=5.0, prefix="diag_"):
        status = node.wait_status(
            lambda s, v: s.level == DiagnosticStatus.OK and int(v["Events in window"]) > 2,
            what="an OK status while frames flow",
        )
        v = values(status)
        # (the input rate's window may still hold the quiet seconds before the stream)
        assert v["Target"] == "input rate" and 0 < float(v["Target frequency (Hz)"]) < 7.0
        for key in (
            "Actual frequency (Hz)",
            "Target frequency (Hz)",
            "Events in window",
            "Events since startup",
            "Duration of window (s)",
            "Input frequency (Hz)",
            "Frames received",
            "Frames dropped",
            "Bad inputs",
            "Model",
            "Variant",
            "Backend",
            "Device",
            "Precision",
            "Input size",
            "Weights",
        ):
            assert key in v, key
        for stage in (
            "preprocess",
            "inference",
            "postprocess",
            "receipt to publish",
            "stamp to publish",
        ):
            for p in ("p50", "p90", "p99", "max"):
                assert float(v[f"Latency {stage} {p} (ms)"]) >= 0, (stage, p)
        import importlib.util

        # The default backend, auto, says what it chose.
        chosen = "openvino" if importlib.util.find_spec("openvino") else "torch"
        assert (v["Model"], v["Variant"], v["Backend"], v["Device"], v["Precision"]) == (
            "fplnet",
            "full",
            f"{chosen} (auto)",
            "cpu",
            "fp32",
        )
        assert v["Input size"] == f"{NETWORK_SIZE[0]}x{NETWORK_SIZE[1]}"
        assert float(v["Actual frequency (Hz)"]) > 0
        assert status.hardware_id == "cpu"

        # An unreachable target rate warns.
        assert node.probe.set_parameters(node.fqn, {"target_rate": 500.0})[0].successful
        try:
            status = node.wait_status(
                lambda s, v: s.level == DiagnosticStatus.WARN, what="a WARN below the target rate"
            )
            assert "below target" in status.message
            assert values(status)["Target frequency (Hz)"] == "500"
        finally:
            node.probe.set_parameters(node.fqn, {"target_rate": 0.0})
    # No input: STALE.
    status = node.wait_status(
        lambda s, v: s.level == DiagnosticStatus.STALE, what="STALE once frames stop"
    )
    assert "no input" in status.message


# ---------------------------------------------------------------- run-time model switches


def test_model_hot_swap_while_frames_flow(swap_node, weights) -> None:
    node = swap_node
    probe = node.probe
    with Streamer(node.image_pub, scene(H, W, seed=7), rate=10.0, prefix="swap_"):
        node.outputs["labels"].wait(1)
        result = probe.set_parameters(
            node.fqn, {"variant": "encoder", "weights": weights["encoder"]}, atomically=True
        )
        assert result.successful, result.reason
        node.wait_status(lambda s, v: v.get("Variant") == "encoder", what="the encoder variant")
        # Another model entirely, random weights (weights cleared in the same request).
        result = probe.set_parameters(
            node.fqn, {"model": "desanet", "variant": "", "weights": ""}, atomically=True
        )
        assert result.successful, result.reason
        node.wait_status(lambda s, v: v.get("Model") == "desanet", what="desanet", timeout=180)
        n = len(collected(node.outputs["labels"], "swap_"))
        wait_for(lambda: len(collected(node.outputs["labels"], "swap_")) > n + 2, what="outputs")
        # And back, all at once.
        result = probe.set_parameters(
            node.fqn,
            {"model": "fplnet", "variant": "", "weights": weights["full"]},
            atomically=True,
        )
        assert result.successful, result.reason
        node.wait_status(
            lambda s, v: v.get("Model") == "fplnet" and v.get("Variant") == "full",
            what="back to fplnet/full",
        )
    # Every frame published around the switches came out whole, whichever model served it.
    frames = {m.header.frame_id: m.header for m in collected(node.outputs["labels"], "swap_")}
    assert len(frames) > 5
    for name in ("labels", "color", "overlay"):
        for msg in collected(node.outputs[name], "swap_"):
            header = frames.get(msg.header.frame_id, msg.header)
            check_outputs({name: msg}, header, H, W, ANY_PALETTE, CITYSCAPES.num_classes)
    assert "pipeline switch failed" not in node.process.log()


def test_failed_switch_keeps_serving_and_reverts(swap_node, weights) -> None:
    from diagnostic_msgs.msg import DiagnosticStatus

    node = swap_node
    probe = node.probe
    with Streamer(node.image_pub, scene(H, W), rate=8.0, prefix="fail_"):
        # The header is fine, so the parameter is accepted; the build then fails.
        result = probe.set_parameters(node.fqn, {"weights": weights["misfit"]})[0]
        assert result.successful, result.reason
        status = node.wait_status(
            lambda s, v: s.level == DiagnosticStatus.WARN and "switch failed" in s.message,
            what="the failed switch in diagnostics",
        )
        assert "does not fit fplnet/full" in values(status)["Last error"]
        wait_for(
            lambda: probe.get_parameters(node.fqn, ["weights"])["weights"] == weights["full"],
            what="weights to revert",
        )
        n = len(collected(node.outputs["labels"], "fail_"))
        wait_for(
            lambda: len(collected(node.outputs["labels"], "fail_")) > n + 2,
            what="frames served after the failed switch",
        )
    assert values(node.status())["Model"] == "fplnet"
    log = node.process.log()
    assert "pipeline switch failed" in log and "reverted weights=" in log


# ---------------------------------------------------------------- int8 at the size asked


def test_an_input_size_the_engine_cannot_take_is_refused_at_once(node, weights, tmp_path) -> None:
    """`ros2 param set ... precision int8` at a size the model could not run once answered
    "successful" and reverted 2 s later; a model that cannot be reshaped is now refused in the
    parameter service itself, naming seg-quantize --input-size."""
    ov = pytest.importorskip("openvino")
    from seg_ros.inference.backends.openvino_backend import convert_from_torch
    from seg_ros.weights import load_model

    network, _ = load_model(weights["full"])
    static = tmp_path / "static.xml"
    ov.save_model(convert_from_torch(network, NETWORK_SIZE), static)
    names = ["engine", "input_height", "input_width"]
    before = node.probe.get_parameters(node.fqn, names)
    asked = {"engine": str(static), "input_height": 128, "input_width": 160}
    result = node.probe.set_parameters(node.fqn, asked, atomically=True)
    assert not result.successful
    assert "seg-quantize --input-size 128x160" in result.reason, result.reason
    assert node.probe.get_parameters(node.fqn, names) == before


def test_shipped_int8_serves_512x1024_and_agrees_with_fp32(ros_probe, tmp_path) -> None:
    from seg_ros.inference import Pipeline
    from seg_ros.paths import find_data
    from seg_ros.training.synthetic import scene as street_scene

    if find_data("models/fplnet_camvid_int8.xml") is None:
        pytest.skip("no shipped int8 model in this install")
    params = {
        "model": "fplnet",
        "backend": "openvino",
        "precision": "int8",
        "input_height": 512,
        "input_width": 1024,
        "target_rate": 0.0,
    }
    node = NodeUnderTest(ros_probe, "seg_int8", params, tmp_path, namespace=f"/int8_{os.getpid()}")
    try:
        node.wait_active(timeout=180)
        rng = np.random.default_rng(5)
        image = street_scene(rng, (240, 320), CAMVID.num_classes, CAMVID.palette)[0]
        out = node.roundtrip(image_msg(image, "rgb8", "int8_frame"))
        labels = to_array(out["labels"])
    finally:
        _closed_cleanly(node)
    fp32 = Pipeline(model="fplnet", backend="openvino", input_size=(512, 1024))
    reference = fp32(image).labels
    assert labels.shape == reference.shape == (240, 320)
    assert (labels == reference).mean() >= 0.95, (labels == reference).mean()


def test_class_names_follow_the_model_and_are_read_only(swap_node, tmp_path) -> None:
    import torch

    from seg_ros.models import build_model
    from seg_ros.weights import WeightsMetadata, save_weights

    node, probe = swap_node, swap_node.probe
    names = ["class_names", "class_colors"]
    values_now = probe.get_parameters(node.fqn, names)
    assert values_now["class_names"] == list(CAMVID.classes)
    assert values_now["class_colors"][:3] == list(CAMVID.palette[0])
    result = probe.set_parameters(node.fqn, {"class_names": ["mine"]})[0]
    assert not result.successful and "read-only" in result.reason
    # Another model with classes of its own: the parameters follow the switch.
    torch.manual_seed(0)
    own = ["ground", "obstacle", "person"]
    meta = WeightsMetadata(
        model="fplnet", variant="full", num_classes=3, dataset="own", class_names=own,
        palette=[[10, 20, 30], [40, 50, 60], [70, 80, 90]], input_size=list(NETWORK_SIZE),
    )  # fmt: skip
    path = save_weights(
        tmp_path / "own.safetensors", build_model("fplnet", "full", 3).state_dict(), meta
    )
    assert probe.set_parameters(node.fqn, {"weights": str(path)})[0].successful
    wait_for(
        lambda: probe.get_parameters(node.fqn, ["class_names"])["class_names"] == own,
        what="class_names to follow the switch",
    )
    assert probe.get_parameters(node.fqn, ["class_colors"])["class_colors"][-3:] == [70, 80, 90]


def test_compressed_outputs_decode_to_the_raw_ones_and_cost_nothing_unsubscribed(node) -> None:
    import time

    from sensor_msgs.msg import CompressedImage

    from seg_ros.image_codec import decode_compressed_msg

    probe = node.probe
    # Under the 512 KB shared-memory segment of the test's default (best-effort) camera: a
    # 640x480 frame would mostly be lost on the way in (docs/BENCHMARKS.md).
    h, w = 240, 320
    rgb = scene(h, w, seed=9)
    node.roundtrip(image_msg(rgb, "rgb8", "before_compressed"))
    status = node.wait_status(lambda s, v: True, what="a status")
    assert values(status)["Outputs compressed"] == "0"  # nobody subscribed: nothing encoded
    collectors = {
        name: probe.collect(CompressedImage, node.process.topic(f"segmentation/{name}/compressed"))
        for name in ("labels", "color", "overlay")
    }
    try:
        topic = node.process.topic("segmentation/labels/compressed")
        wait_for(lambda: probe.node.count_publishers(topic) == 1, what="the compressed publisher")
        time.sleep(1.0)  # the node's publishers see the new subscriptions
        raw = node.roundtrip(image_msg(rgb, "rgb8", "compressed_0"))
        got = {}
        for name, collector in collectors.items():
            wait_for(
                lambda c=collector: any(m.header.frame_id == "compressed_0" for m in c.snapshot()),
                what=f"{name}/compressed",
            )
            got[name] = next(m for m in collector.snapshot() if m.header.frame_id == "compressed_0")
        assert got["labels"].format == "mono8; png compressed mono8"
        assert got["color"].format == got["overlay"].format == "rgb8; jpeg compressed bgr8"
        labels = decode_compressed_msg(got["labels"]).array
        np.testing.assert_array_equal(labels, to_array(raw["labels"]))  # PNG: lossless
        for name in ("color", "overlay"):
            bgr = decode_compressed_msg(got[name]).array
            error = np.abs(bgr[:, :, ::-1].astype(int) - to_array(raw[name]).astype(int))
            assert error.mean() < 4.0, (name, error.mean())  # JPEG quality 90
        sizes = {name: len(msg.data) for name, msg in got.items()}
        print(f"bytes per {w}x{h} frame: raw labels {h * w}, colour/overlay {h * w * 3};"
              f" compressed {sizes}")  # fmt: skip
        assert sizes["labels"] < h * w / 4 and sizes["overlay"] < h * w * 3 / 4
        status = node.wait_status(lambda s, v: int(v["Outputs compressed"]) >= 3)
        assert values(status)["Latency compress p50 (ms)"] != "n/a"
    finally:
        for collector in collectors.values():
            probe.uncollect(collector)


def test_camera_info_is_paired_by_stamp_and_scaled_to_the_labels(swap_node) -> None:
    """A camera that publishes camera_info beside its image (as image_transport's camera
    publisher does): segmentation/camera_info carries the labels' stamp, frame and size, and
    the intrinsics scaled to it, at output_resolution input and network."""
    import time

    from sensor_msgs.msg import CameraInfo

    node, probe = swap_node, swap_node.probe
    info_pub = probe.publisher(CameraInfo, node.process.topic("camera_info"))
    labels_info = probe.collect(CameraInfo, node.process.topic("segmentation/camera_info"))
    wait_for(lambda: info_pub.get_subscription_count() > 0, what="the node's camera_info reader")
    wait_for(
        lambda: probe.node.count_publishers(node.process.topic("segmentation/camera_info")) > 0,
        what="segmentation/camera_info",
    )

    def frame_with_info(frame_id: str, sec: int) -> CameraInfo:
        info = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
        info.header.stamp.sec, info.header.frame_id = sec, "camera_optical"
        info.k = [100.0, 0.0, 60.0, 0.0, 90.0, 45.0, 0.0, 0.0, 1.0]
        info.p = [100.0, 0.0, 60.0, 0.0, 0.0, 90.0, 45.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        info_pub.publish(info)
        time.sleep(0.3)  # the camera_info first, as a camera driver sends the pair
        node.roundtrip(image_msg(scene(H, W, seed=2), "rgb8", frame_id, stamp=(sec, 0)))
        wait_for(
            lambda: any(m.header.stamp.sec == sec for m in labels_info.snapshot()),
            what=f"camera_info of {frame_id}",
        )
        return next(m for m in labels_info.snapshot() if m.header.stamp.sec == sec)

    out = frame_with_info("info_input", 4100)
    assert out.header.frame_id == "info_input" and (out.height, out.width) == (H, W)
    assert list(out.k) == [100.0, 0.0, 60.0, 0.0, 90.0, 45.0, 0.0, 0.0, 1.0]
    assert probe.set_parameters(node.fqn, {"output_resolution": "network"})[0].successful
    out = frame_with_info("info_network", 4200)
    h, w = NETWORK_SIZE
    assert (out.height, out.width) == (h, w)
    sx, sy = w / W, h / H
    np.testing.assert_allclose(list(out.k), [100 * sx, 0, 60 * sx, 0, 90 * sy, 45 * sy, 0, 0, 1])
    status = node.wait_status(lambda s, v: "2 received" in v.get("Camera info", ""))
    assert values(status)["Camera info"].startswith(node.process.topic("camera_info"))
