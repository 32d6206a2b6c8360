"""seg-bag-eval live: a bag replayed over real DDS into real segmentation nodes, one started by
the tool and one already running; no timing assertions, generous timeouts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("rosbags", reason="rosbags is not installed (pip install 'seg_ros[bag]')")
pytest.importorskip("rclpy", reason="the ROS 2 wheels (ros-rclpy) are not installed")

from ros_fixtures import NodeProcess
from weights_helpers import make_weights

from seg_ros.bag.io import IMAGE, BagReader, decode_label
from seg_ros.tools.bag_eval import main as bag_eval
from seg_ros.tools.make_bag import main as make_bag
from seg_ros.training.synthetic import write_camvid

H, W = 48, 64
FRAMES = 6
OUTPUTS = {"/segmentation/labels", "/segmentation/color", "/segmentation/overlay"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bag_replay")
    root = write_camvid(d / "camvid", {"val": FRAMES}, size=(H, W), seed=5)
    weights = make_weights(d / "fplnet.safetensors", "fplnet", "encoder")  # 48x64 network
    bags = {}
    for name, extra in (("raw", ["--storage", "sqlite3"]), ("png", ["--image-format", "png"])):
        bags[name] = d / f"val_{name}"
        argv = [str(bags[name]), "--dataset", "camvid", "--data-root", str(root), *extra]
        assert make_bag([*argv, "--start-time", "50"]) == 0
    return {"weights": weights, **bags}


def report_of(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def check_live_report(report: dict) -> None:
    frames = report["frames"]
    assert frames["in"] == FRAMES
    assert frames["out"] + frames["dropped"] == FRAMES
    assert frames["out"] >= 1, "no frame made it through the node"
    assert frames["labelled"] == frames["out"]
    assert report["accuracy"] is not None
    assert report["latency_ms"]["end_to_end"]["count"] == frames["out"]
    live = report["live"]
    assert live["warmup_frames"] >= 1
    # The node's own view, from its /diagnostics after the replay.
    assert int(live["node_counters"]["Frames received"]) >= frames["out"]
    assert "inference" in live["node_latency_ms"]
    assert report["model"]["variant"] == "encoder"
    assert report["model"]["input_size"] == f"{H}x{W}"


def test_live_mode_starts_its_own_node(data, tmp_path: Path) -> None:
    out, out_bag = tmp_path / "live", tmp_path / "live_bag"
    argv = [str(data["raw"]), "--mode", "live", "--weights", str(data["weights"])]
    argv += ["--out", str(out), "--output-bag", str(out_bag), "--startup-timeout", "180"]
    assert bag_eval(argv) == 0
    report = report_of(out)
    check_live_report(report)
    assert report["live"]["node"] == "started"
    assert report["live"]["node_exit_code"] == 0
    # The node started here publishes its confidence too, so the replay is calibrated.
    assert "confidence" in report["live"]["outputs"]
    assert report["accuracy"]["calibration"]["pixels"] == report["accuracy"]["pixels"]
    assert "active" in Path(report["live"]["node_log"]).read_text()
    for png in ("latency.png", "iou.png", "samples.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    # Where no frame was dropped, live scores what offline scores: same network, same frames.
    if report["frames"]["dropped"] == 0:
        offline = tmp_path / "offline"
        argv = [str(data["raw"]), "--weights", str(data["weights"]), "--out", str(offline)]
        assert bag_eval([*argv, "--samples", "0"]) == 0
        assert report_of(offline)["accuracy"] == report["accuracy"]

    with BagReader(out_bag) as bag:
        assert set(bag.topics) == {"/camera/image_raw", "/ground_truth/labels"} | OUTPUTS
        for topic in OUTPUTS:
            assert bag.topics[topic] == IMAGE
            assert bag.counts[topic] == report["frames"]["out"]
        frame_stamps = set()
        for m in bag.messages(["/camera/image_raw", "/segmentation/labels"]):
            if m.topic == "/camera/image_raw":
                frame_stamps.add(m.stamp_ns)
            else:
                # The bag's own stamps, not the replay's, so outputs line up with their frames.
                assert m.stamp_ns in frame_stamps
                assert m.frame_id == "camera"
                assert decode_label(m).shape == (H, W)


def test_live_mode_with_a_running_node_and_compressed_frames(data, tmp_path: Path) -> None:
    namespace = f"/bag_replay_{os.getpid()}"
    params = {"weights": str(data["weights"]), "input_transport": "compressed"}
    node = NodeProcess("running_seg", params, tmp_path, namespace=namespace)
    try:
        out = tmp_path / "live"
        argv = [str(data["png"]), "--mode", "live", "--node-running", "--namespace", namespace]
        argv += ["--node-name", "running_seg", "--weights", str(data["weights"])]
        argv += ["--out", str(out), "--startup-timeout", "180", "--rate-factor", "2"]
        assert bag_eval(argv) == 0, node.log()[-3000:]
        assert node.alive()
    finally:
        node.stop()
    report = report_of(out)
    check_live_report(report)
    assert report["live"]["node"] == "running"
    # A running node was not told to publish its confidence: no calibration, and it says so.
    assert "calibration" not in report["accuracy"]
    assert any("no calibration" in note for note in report["notes"])
    assert report["bag"]["image_type"] == "sensor_msgs/msg/CompressedImage"
    assert report["live"]["node_log"] is None


def test_live_mode_without_a_node_says_so(data, tmp_path: Path, capsys) -> None:
    argv = [str(data["raw"]), "--mode", "live", "--node-running", "--namespace", "/nobody_here"]
    argv += ["--weights", str(data["weights"]), "--startup-timeout", "3", "--out", str(tmp_path)]
    assert bag_eval(argv) == 2
    err = capsys.readouterr().err
    assert "no segmentation node answered on /nobody_here/image within 3 s" in err
