"""seg-make-bag: a dataset split written as a rosbag2 that reads back frame for frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags is not installed (pip install 'seg_ros[bag]')")

from seg_ros.bag.io import COMPRESSED, IMAGE, BagReader, decode_frame, decode_label
from seg_ros.tools.make_bag import main as make_bag
from seg_ros.training.datasets import build_dataset
from seg_ros.training.synthetic import write_camvid, write_folder


@pytest.fixture(scope="module")
def camvid_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_camvid(tmp_path_factory.mktemp("camvid"), {"val": 5}, size=(48, 64))


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_camvid_split_as_bag(tmp_path: Path, camvid_root: Path, storage: str) -> None:
    out = tmp_path / "val_bag"
    argv = [str(out), "--dataset", "camvid", "--data-root", str(camvid_root), "--split", "val"]
    argv += ["--storage", storage, "--rate", "4", "--frame-id", "cam0", "--start-time", "12.5"]
    assert make_bag(argv) == 0
    dataset = build_dataset("camvid", camvid_root, "val")
    with BagReader(out) as bag:
        assert bag.storage == storage
        info = bag.seg_ros_info()
        assert info["dataset"] == "camvid" and info["num_classes"] == "11"
        images, labels = {}, {}
        for m in bag.messages(bag.topics):
            assert m.frame_id == "cam0"
            if m.topic == info["image_topic"]:
                assert m.msg.encoding == "rgb8"
                images[m.stamp_ns] = decode_frame(m).array
            else:
                assert m.topic == info["label_topic"] and m.msg.encoding == "mono8"
                labels[m.stamp_ns] = decode_label(m)
    stamps = [12_500_000_000 + i * 250_000_000 for i in range(5)]
    assert sorted(images) == stamps and sorted(labels) == stamps
    for i, stamp in enumerate(stamps):
        image, label = dataset[i]
        np.testing.assert_array_equal(images[stamp], image)
        np.testing.assert_array_equal(labels[stamp], label)  # void (11) already 255


def test_compressed_images_without_labels(tmp_path: Path, camvid_root: Path) -> None:
    out = tmp_path / "jpeg_bag"
    argv = [str(out), "--dataset", "camvid", "--data-root", str(camvid_root)]
    argv += ["--image-format", "jpeg", "--no-labels", "--limit", "2", "--ros-distro", "humble"]
    assert make_bag(argv) == 0
    with BagReader(out) as bag:
        assert bag.topics == {"/camera/image_raw/compressed": COMPRESSED}
        assert bag.counts["/camera/image_raw/compressed"] == 2
        assert bag.seg_ros_info()["label_topic"] == ""


def test_folder_dataset(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "mine", classes=("ground", "thing"), size=(32, 40))
    out = tmp_path / "bag"
    argv = [str(out), "--dataset", "folder", "--data-root", str(root), "--split", "train"]
    argv += ["--image-topic", "/front/image", "--label-topic", "/front/gt"]
    assert make_bag(argv) == 0
    with BagReader(out) as bag:
        assert bag.topics == {"/front/gt": IMAGE, "/front/image": IMAGE}
        assert bag.seg_ros_info()["num_classes"] == "2"


def test_user_mistakes_are_errors(tmp_path: Path, camvid_root: Path, capsys) -> None:
    base = ["--dataset", "camvid", "--data-root", str(camvid_root)]
    existing = tmp_path / "exists"
    existing.mkdir()
    assert make_bag([str(existing), *base]) == 2
    assert "exists already" in capsys.readouterr().err
    assert make_bag([str(tmp_path / "a"), "--dataset", "camvid", "--data-root", "/nope"]) == 2
    assert "not found" in capsys.readouterr().err
    assert make_bag([str(tmp_path / "b"), *base, "--rate", "0"]) == 2
    assert "rate must be positive" in capsys.readouterr().err
    assert make_bag([str(tmp_path / "c"), *base, "--image-topic", "relative"]) == 2
    assert "should start with '/'" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
