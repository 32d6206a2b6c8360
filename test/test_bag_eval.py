"""seg-bag-eval offline: the report, the errors a user meets, the output bag, and mIoU equal to
seg-eval's on the same frames with the same (tiny, freshly initialised) weights."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags is not installed (pip install 'seg_ros[bag]')")

from weights_helpers import make_weights

from seg_ros.bag.io import IMAGE, BagReader, BagWriter, decode_label
from seg_ros.labels import CITYSCAPES
from seg_ros.tools.bag_eval import main as bag_eval
from seg_ros.tools.evaluate import main as seg_eval
from seg_ros.tools.make_bag import main as make_bag
from seg_ros.training.synthetic import write_camvid

H, W = 48, 64  # frame size = the weights' network input: see test_offline_miou_equals_seg_eval
FRAMES = 6
REPORT_KEYS = {
    "tool", "mode", "bag", "model", "frames", "accuracy", "latency_definition", "latency_ms",
    "fps", "notes", "files", "out_dir", "seconds",
}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bag_eval")
    root = write_camvid(d / "camvid", {"val": FRAMES}, size=(H, W), seed=3)
    weights = make_weights(d / "fplnet.safetensors", "fplnet", "encoder")  # 48x64, 11 classes
    bags = {}
    for storage in ("sqlite3", "mcap"):
        for distro in ("humble", "kilted"):
            bag = d / f"val_{storage}_{distro}"
            argv = [str(bag), "--dataset", "camvid", "--data-root", str(root), "--split", "val"]
            argv += ["--storage", storage, "--ros-distro", distro, "--start-time", "100"]
            assert make_bag(argv) == 0
            bags[f"{storage}_{distro}"] = bag
    for fmt in ("png", "jpeg"):
        bag = d / f"val_{fmt}"
        argv = [str(bag), "--dataset", "camvid", "--data-root", str(root), "--start-time", "100"]
        assert make_bag([*argv, "--image-format", fmt]) == 0
        bags[fmt] = bag
    return {"root": root, "weights": weights, "dir": d, **bags}


def run(bag: Path, out: Path, *extra: str, weights: Path | None = None) -> dict:
    argv = [str(bag), "--out", str(out), *extra]
    if weights is not None:
        argv += ["--weights", str(weights)]
    assert bag_eval(argv) == 0
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def seg_eval_result(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("seg_eval") / "eval.json"
    argv = [str(data["weights"]), "--data-root", str(data["root"]), "--split", "val"]
    assert seg_eval([*argv, "--quiet", "--device", "cpu", "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("bag", ["sqlite3_humble", "sqlite3_kilted", "mcap_humble", "mcap_kilted"])
def test_offline_miou_equals_seg_eval(data, seg_eval_result, tmp_path: Path, bag: str) -> None:
    """Same frames, same weights, same scoring: the same figures. seg-eval runs frames at
    their own size, the pipeline at the weights' input size; they agree because the two are
    equal here (48x64); at other sizes they resize differently (the report says so).

    Identical on the machine this was written on; the tolerance (well under one frame's worth
    of pixels) is for near-tie logits of a random network, which the pipeline's folded
    BatchNorm may round the other way on another CPU. A frame paired with the wrong label
    would move pixel accuracy by far more.
    """
    report = run(data[bag], tmp_path / "r", "--samples", "0", weights=data["weights"])
    accuracy = report["accuracy"]
    assert accuracy["pixels"] == seg_eval_result["pixels"]
    assert accuracy["pixel_accuracy"] == pytest.approx(seg_eval_result["pixel_accuracy"], abs=1e-3)
    assert accuracy["miou"] == pytest.approx(seg_eval_result["miou"], abs=2e-3)
    assert accuracy["iou"].keys() == seg_eval_result["iou"].keys()


def test_report_contents(data, tmp_path: Path) -> None:
    out = tmp_path / "report"
    report = run(data["mcap_kilted"], out, "--samples", "3", weights=data["weights"])
    assert set(report) >= REPORT_KEYS
    assert report["mode"] == "offline"
    assert report["bag"]["image_topic"] == "/camera/image_raw"
    assert report["bag"]["label_topic"] == "/ground_truth/labels"
    assert report["bag"]["recorded_fps"] == pytest.approx(10.0)
    assert report["frames"] == {
        "in": FRAMES, "out": FRAMES, "dropped": 0, "labelled": FRAMES, "labels_read": FRAMES,
        "labels_without_frame": 0,
    }  # fmt: skip
    assert report["model"]["model"] == "fplnet" and report["model"]["variant"] == "encoder"
    assert set(report["accuracy"]["iou"]) == set(
        json.loads(report["bag"]["seg_ros"]["class_names"])
    )
    for stage in ("decode", "preprocess", "inference", "postprocess", "end_to_end"):
        figures = report["latency_ms"][stage]
        assert figures["count"] == FRAMES
        assert figures["p50"] <= figures["p90"] <= figures["p99"] <= figures["max"]
    assert report["fps"]["wall"] > 0 and report["fps"]["pipeline"] > 0
    markdown = (out / "report.md").read_text()
    for text in ("# seg-bag-eval", "mIoU", "## Per-class IoU", "## Latency (ms)", "samples.png"):
        assert text in markdown
    for png in ("latency.png", "iou.png", "samples.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = cv2.imread(str(out / png))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
    rows = (out / "frames.csv").read_text().splitlines()
    assert rows[0].startswith("index,stamp_ns,time_s,labelled,decode_ms")
    assert len(rows) == 1 + FRAMES


def test_calibration_against_a_softmax_computed_here(data, tmp_path: Path) -> None:
    """ECE and the coverage table of the report, recomputed from the same pipeline's logits
    pixel by pixel (frames are at the network's size, so nothing is resized)."""
    from seg_ros.inference import Pipeline
    from seg_ros.training.datasets import camvid

    out = tmp_path / "report"
    report = run(data["mcap_kilted"], out, "--samples", "0", weights=data["weights"])
    calibration = report["accuracy"]["calibration"]
    pipeline = Pipeline(weights=str(data["weights"]))
    levels, right, kept_truth, kept_pred = [], [], [], []
    for image, truth in camvid(data["root"], "val"):
        logits = pipeline.logits(np.ascontiguousarray(image))
        z = logits[0] - logits[0].max(0)
        p = np.exp(z).max(0) / np.exp(z).sum(0)
        valid = truth != 255
        levels.append(np.rint(p * 255)[valid])
        right.append((logits[0].argmax(0) == truth)[valid])
        kept_truth.append(truth[valid])
        kept_pred.append(logits[0].argmax(0)[valid])
    level, correct = np.concatenate(levels), np.concatenate(right)
    confidence = level / 255.0
    which = np.minimum((confidence * 15).astype(int), 14)
    ece = sum(
        (which == b).mean() * abs(correct[which == b].mean() - confidence[which == b].mean())
        for b in range(15)
        if (which == b).any()
    )
    assert calibration["ece"] == pytest.approx(ece, abs=1e-5)
    assert calibration["pixels"] == level.size
    rows = {r["threshold"]: r for r in calibration["coverage"]}
    assert rows[0.0]["miou"] == pytest.approx(report["accuracy"]["miou"], abs=1e-6)
    assert rows[0.0]["coverage"] == 1.0
    for threshold, row in rows.items():
        keep = level >= np.ceil(threshold * 255 - 1e-9)
        assert row["coverage"] == pytest.approx(keep.mean(), abs=1e-6), threshold
        expected = correct[keep].mean() if keep.any() else None  # nothing kept: no figure
        assert row["pixel_accuracy"] == pytest.approx(expected, abs=1e-6), threshold
    assert "## Confidence" in (out / "report.md").read_text()
    assert (out / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    plain = run(data["mcap_kilted"], tmp_path / "plain", "--samples", "0", "--no-calibration",
                weights=data["weights"])  # fmt: skip
    assert "calibration" not in plain["accuracy"]
    assert plain["accuracy"]["miou"] == report["accuracy"]["miou"]
    assert not (tmp_path / "plain" / "calibration.png").exists()


def test_without_labels_only_latency(data, tmp_path: Path) -> None:
    report = run(data["sqlite3_kilted"], tmp_path / "r", "--no-labels", "--limit", "2",
                 weights=data["weights"])  # fmt: skip
    assert report["accuracy"] is None
    assert report["frames"]["in"] == 2 and report["frames"]["labelled"] == 0
    assert not (tmp_path / "r" / "iou.png").exists()
    assert "mIoU" not in (tmp_path / "r" / "report.md").read_text()


def test_compressed_input(data, tmp_path: Path) -> None:
    """PNG frames are lossless: the raw bag's figures exactly. JPEG ones are scored too."""
    raw = run(data["mcap_kilted"], tmp_path / "raw", "--samples", "0", weights=data["weights"])
    png = run(data["png"], tmp_path / "png", "--samples", "0", weights=data["weights"])
    assert png["bag"]["image_type"] == "sensor_msgs/msg/CompressedImage"
    assert png["bag"]["image_topic"] == "/camera/image_raw/compressed"
    assert png["accuracy"] == raw["accuracy"]
    jpeg = run(data["jpeg"], tmp_path / "jpeg", weights=data["weights"])
    assert jpeg["frames"]["labelled"] == FRAMES
    assert 0 <= jpeg["accuracy"]["pixel_accuracy"] <= 1


def test_output_bag_has_the_outputs_added(data, tmp_path: Path) -> None:
    out_bag = tmp_path / "with_outputs"
    run(data["sqlite3_humble"], tmp_path / "r", "--output-bag", str(out_bag),
        "--output-storage", "mcap", weights=data["weights"])  # fmt: skip
    with BagReader(data["sqlite3_humble"]) as source, BagReader(out_bag) as bag:
        assert bag.storage == "mcap"
        new = {"/segmentation/labels", "/segmentation/color", "/segmentation/overlay"}
        assert set(bag.topics) == set(source.topics) | new
        assert all(bag.topics[t] == IMAGE and bag.counts[t] == FRAMES for t in new)
        stamps = {}
        for m in bag.messages(bag.topics):
            stamps.setdefault(m.topic, []).append((m.stamp_ns, m.frame_id, m.log_time_ns))
            if m.topic == "/segmentation/labels":
                labels = decode_label(m)
                assert labels.shape == (H, W) and labels.max() < 11
            if m.topic == "/segmentation/overlay":
                assert m.msg.encoding == "rgb8" and (m.msg.height, m.msg.width) == (H, W)
    for topic in new:
        assert stamps[topic] == stamps["/camera/image_raw"]  # header and log time of the frame


def test_output_bag_with_a_limit_holds_only_the_evaluated_span(data, tmp_path: Path) -> None:
    out_bag = tmp_path / "limited"
    run(data["sqlite3_humble"], tmp_path / "r", "--output-bag", str(out_bag), "--limit", "2",
        weights=data["weights"])  # fmt: skip
    with BagReader(out_bag) as bag:
        assert bag.counts["/camera/image_raw"] == 2
        assert bag.counts["/segmentation/labels"] == 2
        assert all(count <= 2 for count in bag.counts.values()), bag.counts


# ---------------------------------------------------------------- errors


def test_missing_topic_lists_the_topics(data, tmp_path: Path, capsys) -> None:
    argv = [str(data["mcap_kilted"]), "--image-topic", "/front/image", "--out", str(tmp_path)]
    assert bag_eval([*argv, "--weights", str(data["weights"])]) == 2
    err = capsys.readouterr().err
    assert "no image topic '/front/image'" in err
    assert "/camera/image_raw" in err and "/ground_truth/labels" in err
    argv = [str(data["mcap_kilted"]), "--label-topic", "/gt", "--out", str(tmp_path)]
    assert bag_eval([*argv, "--weights", str(data["weights"])]) == 2
    assert "no label topic '/gt'" in capsys.readouterr().err


def test_ambiguous_image_topic_asks_for_one(data, tmp_path: Path, capsys) -> None:
    bag = tmp_path / "two_cameras"
    with BagWriter(bag, "sqlite3") as writer:
        for topic in ("/left/image", "/right/image"):
            writer.write_image(topic, 1, np.zeros((H, W, 3), np.uint8), "rgb8", 1, "c")
    argv = [str(bag), "--weights", str(data["weights"]), "--out", str(tmp_path / "r0")]
    assert bag_eval(argv) == 2
    err = capsys.readouterr().err
    assert "pass --image-topic" in err and "/left/image" in err and "/right/image" in err
    report = run(bag, tmp_path / "r", "--image-topic", "/right/image", weights=data["weights"])
    assert report["frames"]["in"] == 1 and report["bag"]["label_topic"] is None


def test_unreadable_bag(data, tmp_path: Path, capsys) -> None:
    (tmp_path / "not_a_bag").mkdir()
    assert bag_eval([str(tmp_path / "not_a_bag"), "--weights", str(data["weights"])]) == 2
    assert "cannot read bag" in capsys.readouterr().err
    assert bag_eval([str(tmp_path / "missing"), "--weights", str(data["weights"])]) == 2
    assert "bag not found" in capsys.readouterr().err


def test_label_topic_with_other_dimensions(data, tmp_path: Path, capsys) -> None:
    bag = tmp_path / "bad_labels"
    with BagWriter(bag, "mcap") as writer:
        for i in range(2):
            stamp = 10**9 + i
            writer.write_image("/cam", stamp, np.zeros((H, W, 3), np.uint8), "rgb8", stamp, "c")
            label = np.zeros((H // 2, W // 2), np.uint8)
            writer.write_image("/gt", stamp, label, "mono8", stamp, "c")
    argv = [str(bag), "--label-topic", "/gt", "--weights", str(data["weights"])]
    assert bag_eval([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "label stamped 1.000000000 is 32x24, but its image is 64x48" in err


def test_class_count_that_does_not_fit_the_model(data, tmp_path: Path, capsys) -> None:
    # The bag says its labels are CamVid's 11 classes; these weights predict Cityscapes' 19.
    import torch

    from seg_ros.models import build_model
    from seg_ros.weights import WeightsMetadata, save_weights

    torch.manual_seed(0)
    meta = WeightsMetadata(
        model="fplnet", variant="encoder", num_classes=19, dataset="cityscapes",
        class_names=list(CITYSCAPES.classes), palette=[list(c) for c in CITYSCAPES.palette],
        input_size=[H, W],
    )  # fmt: skip
    cityscapes = tmp_path / "cs.safetensors"
    save_weights(cityscapes, build_model("fplnet", "encoder", 19).state_dict(), meta)
    argv = [str(data["mcap_kilted"]), "--weights", str(cityscapes), "--out", str(tmp_path / "r")]
    assert bag_eval(argv) == 2
    err = capsys.readouterr().err
    assert "camvid ids (11 classes)" in err and "19 classes (cityscapes)" in err
    # Without the bag's metadata, the ids themselves give it away.
    bag = tmp_path / "plain"
    with BagWriter(bag, "sqlite3") as writer:
        label = np.full((H, W), 30, np.uint8)
        writer.write_image("/cam", 5, np.zeros((H, W, 3), np.uint8), "rgb8", 5, "c")
        writer.write_image("/gt", 5, label, "mono8", 5, "c")
    argv = [str(bag), "--label-topic", "/gt", "--weights", str(data["weights"])]
    assert bag_eval([*argv, "--out", str(tmp_path / "r2")]) == 2
    assert "holds class id 30" in capsys.readouterr().err


def test_labels_that_match_no_frame(data, tmp_path: Path, capsys) -> None:
    bag = tmp_path / "off_by_one"
    with BagWriter(bag, "sqlite3") as writer:
        writer.write_image("/cam", 5, np.zeros((H, W, 3), np.uint8), "rgb8", 5, "c")
        writer.write_image("/gt", 5, np.zeros((H, W), np.uint8), "mono8", 6, "c")
    argv = [str(bag), "--label-topic", "/gt", "--weights", str(data["weights"])]
    assert bag_eval([*argv, "--out", str(tmp_path / "r")]) == 2
    assert "none of the 1 labels on /gt has the stamp of a frame" in capsys.readouterr().err


def test_existing_output_bag_is_refused(data, tmp_path: Path, capsys) -> None:
    argv = [str(data["mcap_kilted"]), "--weights", str(data["weights"]), "--out", str(tmp_path)]
    assert bag_eval([*argv, "--output-bag", str(data["sqlite3_kilted"])]) == 2
    assert "exists already" in capsys.readouterr().err


def test_live_only_flags_are_refused_offline(data, tmp_path: Path, capsys) -> None:
    argv = [str(data["mcap_kilted"]), "--node-running", "--rate-factor", "2"]
    assert bag_eval([*argv, "--out", str(tmp_path)]) == 2
    assert "--node-running, --rate-factor only apply to --mode live" in capsys.readouterr().err
