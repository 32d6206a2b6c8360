"""seg_ros.bag: real rosbag2 files (sqlite3 and mcap, Humble and Kilted definitions) written and
read back with rosbags, stamp pairing, and the errors a user meets."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from camera_images import mosaic

pytest.importorskip("rosbags", reason="rosbags is not installed (pip install 'seg_ros[bag]')")

from seg_ros.bag.dataset_bag import BagLayout, write_split_bag
from seg_ros.bag.evaluation import BagEvaluation, ClassInfo, FrameSource
from seg_ros.bag.io import (
    COMPRESSED,
    IMAGE,
    BagError,
    BagReader,
    BagWriter,
    copy_bag,
    decode_frame,
    decode_label,
)
from seg_ros.bag.matching import DuplicateStampError, StampJoin
from seg_ros.labels import CAMVID
from seg_ros.training.synthetic import scene

H, W = 48, 64
START = 1_700_000_000 * 10**9
STORAGES = ("sqlite3", "mcap")
DISTROS = ("humble", "kilted")


def frames(count: int = 6, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [scene(rng, (H, W), CAMVID.num_classes, CAMVID.palette, void=255) for _ in range(count)]


def make_bag(path: Path, storage: str = "mcap", distro: str = "kilted", **layout) -> Path:
    layout = BagLayout(start_ns=START, **layout)
    write_split_bag(path, frames(), CAMVID, layout, storage=storage, distro=distro)
    return path


def camvid_classes() -> ClassInfo:
    return ClassInfo(list(CAMVID.classes), [list(c) for c in CAMVID.palette], "camvid")


@pytest.mark.parametrize("distro", DISTROS)
@pytest.mark.parametrize("storage", STORAGES)
def test_split_bag_reads_back_exactly(tmp_path: Path, storage: str, distro: str) -> None:
    path = make_bag(tmp_path / "bag", storage, distro, rate=5.0, frame_id="cam_optical")
    expected = frames()
    with BagReader(path) as bag:
        assert bag.storage == storage
        assert bag.topics == {"/camera/image_raw": IMAGE, "/ground_truth/labels": IMAGE}
        assert bag.counts == {"/camera/image_raw": 6, "/ground_truth/labels": 6}
        info = bag.seg_ros_info()
        assert info["image_topic"] == "/camera/image_raw"
        assert info["num_classes"] == "11"
        assert json.loads(info["class_names"]) == list(CAMVID.classes)
        images, labels = [], []
        for m in bag.messages(["/camera/image_raw", "/ground_truth/labels"]):
            assert m.frame_id == "cam_optical"
            assert m.log_time_ns == m.stamp_ns  # recorded when stamped
            if m.topic == "/camera/image_raw":
                decoded = decode_frame(m)
                assert decoded.color_order == "rgb"
                images.append((m.stamp_ns, decoded.array))
            else:
                labels.append((m.stamp_ns, decode_label(m)))
    assert [s for s, _ in images] == [START + i * 200_000_000 for i in range(6)]
    assert [s for s, _ in labels] == [s for s, _ in images]
    for (_, image), (_, label), (want_image, want_label) in zip(
        images, labels, expected, strict=True
    ):
        np.testing.assert_array_equal(image, want_image)
        np.testing.assert_array_equal(label, want_label)


def test_a_bag_without_message_definitions_reads_with_the_distro_typestore(
    tmp_path: Path,
) -> None:
    """Humble's sqlite3 bags carry no definitions; the named distro's typestore reads them."""
    path = make_bag(tmp_path / "bag", "sqlite3", "humble")
    (db,) = path.glob("*.db3")
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM message_definitions")
    for distro in ("humble", "jazzy", "kilted"):
        with BagReader(path, distro) as bag:
            first = next(bag.messages(["/camera/image_raw"]))
            np.testing.assert_array_equal(decode_frame(first).array, frames()[0][0])


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_frames(tmp_path: Path, fmt: str) -> None:
    path = make_bag(tmp_path / "bag", image_format=fmt)
    with BagReader(path) as bag:
        assert bag.topics["/camera/image_raw/compressed"] == COMPRESSED
        m = next(bag.messages(["/camera/image_raw/compressed"]))
        assert f"{fmt} compressed" in m.msg.format
        decoded = decode_frame(m)
    rgb = decoded.rgb()
    assert rgb.shape == (H, W, 3)
    diff = np.abs(rgb.astype(int) - frames()[0][0].astype(int))
    assert diff.max() == 0 if fmt == "png" else diff.mean() < 12


@pytest.mark.parametrize("storage", STORAGES)
def test_a_rosbag2_folder_named_dot_bag_reads(tmp_path: Path, storage: str) -> None:
    # rosbags alone takes "*.bag" for ROS 1 and fails on the folder (the card's val.bag).
    with BagReader(make_bag(tmp_path / "val.bag", storage)) as bag:
        assert bag.storage == storage
        assert bag.counts == {"/camera/image_raw": 6, "/ground_truth/labels": 6}


def test_missing_topic_lists_the_bags_topics(tmp_path: Path) -> None:
    with BagReader(make_bag(tmp_path / "bag")) as bag:
        with pytest.raises(BagError) as e:
            bag.resolve_topic("/camera/rgb", [IMAGE], "image")
        assert "/camera/image_raw" in str(e.value)
        assert "/ground_truth/labels" in str(e.value)
        # A relative name is the absolute one; a wrong type is named.
        assert bag.resolve_topic("camera/image_raw", [IMAGE], "image") == "/camera/image_raw"
        with pytest.raises(BagError, match="must be sensor_msgs/msg/CompressedImage"):
            bag.resolve_topic("/camera/image_raw", [COMPRESSED], "image")


def test_unreadable_bags_say_so(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="not found"):
        BagReader(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="cannot read bag"):
        BagReader(tmp_path / "empty")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "metadata.yaml").write_text("rosbag2_bagfile_information: [not: a, bag\n")
    with pytest.raises(BagError, match="cannot read bag"):
        BagReader(garbage)
    bag = make_bag(tmp_path / "bag", "mcap")
    (mcap,) = bag.glob("*.mcap")
    mcap.write_bytes(mcap.read_bytes()[:200])
    with pytest.raises(BagError, match="cannot read bag"), BagReader(bag) as reader:
        list(reader.messages(reader.topics))


def test_labels_must_be_mono8(tmp_path: Path) -> None:
    path = tmp_path / "bag"
    with BagWriter(path, "sqlite3") as bag:
        bag.write_image("/labels", 1, np.zeros((4, 4, 3), np.uint8), "rgb8", 1, "f")
    with BagReader(path) as bag:
        m = next(bag.messages(["/labels"]))
        with pytest.raises(BagError, match="mono8 class ids"):
            decode_label(m)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_a_raw_bayer_recording_decodes_to_its_picture(tmp_path: Path, storage: str) -> None:
    """A machine-vision camera's image_raw as rosbag2 records it (bayer_rggb8, written by
    rosbags, not by seg_ros' encoder) is read as the RGB picture it mosaics."""
    rgb, _ = scene(np.random.default_rng(2), (48, 64), CAMVID.num_classes, CAMVID.palette)
    raw = mosaic(rgb, "rggb")
    path = tmp_path / "bayer"
    with BagWriter(path, storage) as bag:
        bag.add_topic("/cam/image_raw", IMAGE)
        msg = bag.store.types[IMAGE](
            header=bag.header(5, "cam"), height=48, width=64, encoding="bayer_rggb8",
            is_bigendian=0, step=64, data=raw.reshape(-1),
        )  # fmt: skip
        bag.write("/cam/image_raw", 5, msg)
    with BagReader(path) as bag:
        decoded = decode_frame(next(bag.messages(["/cam/image_raw"])))
    assert decoded.color_order == "rgb" and decoded.array.shape == rgb.shape
    inner = (slice(2, -2), slice(2, -2))
    assert np.abs(decoded.array[inner].astype(int) - rgb[inner]).mean() < 12


def test_writer_never_overwrites_and_leaves_no_half_bag(tmp_path: Path) -> None:
    path = make_bag(tmp_path / "bag")
    with pytest.raises(BagError, match="exists already"):
        BagWriter(path)
    broken = tmp_path / "broken"
    bad = [(np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.uint8))] * 2
    bad.append((np.zeros((H, W, 3), np.uint8), np.zeros((H + 1, W), np.uint8)))
    with pytest.raises(BagError, match="label is 64x49 but the image is 64x48"):
        write_split_bag(broken, bad, CAMVID)
    assert not broken.exists()


def test_copy_keeps_every_message_and_definition(tmp_path: Path) -> None:
    source = make_bag(tmp_path / "in", "sqlite3", "humble")
    with BagReader(source) as reader, BagWriter(tmp_path / "out", "mcap") as writer:
        assert copy_bag(reader, writer) == []
        writer.write_image("/extra", START, np.zeros((2, 2), np.uint8), "mono8", START, "x")
    with BagReader(source) as a, BagReader(tmp_path / "out") as b:
        assert b.counts == {**a.counts, "/extra": 1}
        raw_a = [(c.topic, t, bytes(d)) for c, t, d in a.raw_messages()]
        raw_b = [(c.topic, t, bytes(d)) for c, t, d in b.raw_messages() if c.topic != "/extra"]
        assert raw_a == raw_b


def test_stamp_join_pairs_in_any_order_and_refuses_duplicates() -> None:
    join: StampJoin[str, str] = StampJoin("image", "label")
    assert join.add_b(3, "L3") is None  # label first
    assert join.add_a(1, "I1") is None
    assert join.add_a(3, "I3") == "L3"
    assert join.add_b(1, "L1") == "I1"
    assert join.add_a(2, "I2") is None  # never labelled
    assert join.add_b(9, "L9") is None  # no such frame
    assert join.pairs == 2
    assert join.waiting_a() == {2: "I2"}
    assert join.waiting_b() == {9: "L9"}
    with pytest.raises(DuplicateStampError, match="two label messages"):
        join.add_b(1, "again")


def test_frame_source_pairs_shuffled_labels_by_stamp(tmp_path: Path) -> None:
    """Labels recorded late and out of order, one frame unlabelled, one orphan label: every
    label meets its own frame."""
    data = frames()
    path = tmp_path / "bag"
    with BagWriter(path, "mcap") as bag:
        for i, (image, _) in enumerate(data):
            bag.write_image("/img", START + i, image, "rgb8", START + i, "cam")
        order = [5, 3, 0, 4, 1]  # frame 2 has no label
        for k, i in enumerate(order):
            t = START + 100 + k
            bag.write_image("/gt", t, data[i][1], "mono8", START + i, "cam")
        bag.write_image("/gt", START + 200, data[0][1], "mono8", START + 77, "cam")
    evaluation = BagEvaluation(camvid_classes(), "/gt", len(data), samples=0)
    with BagReader(path) as reader:
        source = FrameSource(reader, "/img", "/gt", evaluation)
        for index, message in source:
            # A perfect "prediction": the frame's own label, so any mispairing shows as error.
            truth = data[index][1].copy()
            truth[truth == 255] = 0
            evaluation.add_prediction(index, message.stamp_ns, truth, {"x": 1.0}, 0.0)
    assert evaluation.labelled_frames == 5
    assert source.labels_without_frame() == 1
    assert evaluation.label_stamps_unpaired() == [START + 77]
    accuracy = evaluation.accuracy()
    assert accuracy["pixel_accuracy"] == 1.0
    assert [r.labelled for r in evaluation.records] == [True, True, False, True, True, True]


def test_frame_source_limit_still_reads_late_labels(tmp_path: Path) -> None:
    data = frames()
    path = tmp_path / "bag"
    with BagWriter(path, "sqlite3") as bag:
        for i, (image, label) in enumerate(data):
            bag.write_image("/img", START + i, image, "rgb8", START + i, "cam")
            # Each label logged after the next frame, as a slow annotator would.
            bag.write_image("/gt", START + i + 1, label, "mono8", START + i, "cam")
    evaluation = BagEvaluation(camvid_classes(), "/gt", 2, samples=1)
    with BagReader(path) as reader:
        source = FrameSource(reader, "/img", "/gt", evaluation, limit=2)
        for index, message in source:
            image = decode_frame(message).rgb() if evaluation.wants_sample(index) else None
            pred = np.zeros((H, W), np.uint8)
            evaluation.add_prediction(index, message.stamp_ns, pred, {}, 0.0, image)
    assert source.frames == 2
    assert evaluation.labelled_frames == 2
    (sample,) = evaluation.sample_list()
    assert sample.index == 0 and sample.truth is not None


def test_label_size_and_class_ids_are_checked(tmp_path: Path) -> None:
    evaluation = BagEvaluation(camvid_classes(), "/gt", 2)
    evaluation.add_label(1, np.zeros((H, W + 1), np.uint8))
    with pytest.raises(BagError, match=r"is 65x48, but its image is 64x48"):
        evaluation.add_prediction(0, 1, np.zeros((H, W), np.uint8), {}, 0.0)
    label = np.zeros((H, W), np.uint8)
    label[0, 0] = 11  # CamVid's void id, unmapped: another label set's ids
    evaluation.add_label(2, label)
    with pytest.raises(BagError, match=r"class id 11.*predicts 11 classes"):
        evaluation.add_prediction(1, 2, np.zeros((H, W), np.uint8), {}, 0.0)


def test_mcap_with_ros1_style_schema_names_is_read(tmp_path) -> None:
    """mcap's own (non-ROS) writers name the schema ``sensor_msgs/Image``: accepted."""
    pytest.importorskip("mcap", reason="the mcap package (test extra) is not installed")
    from mcap.writer import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types = store.types
    msgdef = store.generate_msgdef("sensor_msgs/msg/Image")[0]
    path = tmp_path / "foreign.mcap"
    with path.open("wb") as f:
        writer = Writer(f)
        writer.start(profile="ros2")
        schema = writer.register_schema("sensor_msgs/Image", "ros2msg", msgdef.encode())
        channel = writer.register_channel("/cam/image", "cdr", schema)
        for i in range(2):
            header = types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=i), frame_id="cam"
            )
            msg = types["sensor_msgs/msg/Image"](
                header=header, height=2, width=3, encoding="rgb8", is_bigendian=0, step=9,
                data=np.full(18, 10 * i, np.uint8),
            )  # fmt: skip
            raw = bytes(store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            writer.add_message(channel, log_time=10**9 + i, data=raw, publish_time=10**9 + i)
        writer.finish()
    with BagReader(path) as reader:
        assert reader.topics == {"/cam/image": "sensor_msgs/msg/Image"}
        assert reader.image_topics() == ["/cam/image"]
        got = list(reader.messages(["/cam/image"]))
    assert [m.msg.data[0] for m in got] == [0, 10]
