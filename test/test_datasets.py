"""Dataset readers on tiny generated trees: file pairing, id mapping, palette PNGs, caching."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from seg_ros.labels import CAMVID, CITYSCAPES, IGNORE_INDEX, MAPILLARY, load_label_set
from seg_ros.training.datasets import (
    CITYSCAPES_TRAIN_IDS,
    DatasetError,
    SegmentationDataset,
    build_dataset,
    read_label,
)
from seg_ros.training.synthetic import (
    write_camvid,
    write_cityscapes,
    write_folder,
    write_mapillary,
)


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def test_camvid_pairs_frames_and_ignores_void(tmp_path: Path) -> None:
    write_camvid(tmp_path, {"train": 3, "val": 2})
    train = build_dataset("camvid", tmp_path, "train")
    assert len(train) == 3
    assert train.label_set is CAMVID
    image, label = train[0]
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8
    assert label.shape == (32, 48) and label.dtype == np.uint8
    # the generator's void row (id 11) becomes the ignore index, the rest stays 0..10
    assert (label[0] == IGNORE_INDEX).all()
    assert label[1:].max() < CAMVID.num_classes
    assert len(build_dataset("camvid", tmp_path, "val")) == 2


def test_camvid_maps_ids_exactly(tmp_path: Path) -> None:
    write_png(tmp_path / "train" / "a.png", np.zeros((2, 3, 3), np.uint8))
    write_png(tmp_path / "trainannot" / "a.png", np.array([[0, 10, 11], [3, 12, 200]], np.uint8))
    _, label = build_dataset("camvid", tmp_path, "train")[0]
    assert label.tolist() == [[0, 10, 255], [3, 255, 255]]


def test_camvid_splits_select_and_drop_recordings(tmp_path: Path) -> None:
    names = {"train": ["0001TP_0", "0001TP_1", "0006R0_0", "0016E5_0"], "val": ["0016E5_9"]}
    for split, stems in names.items():
        for stem in stems:
            write_png(tmp_path / split / f"{stem}.png", np.zeros((2, 3, 3), np.uint8))
            write_png(tmp_path / f"{split}annot" / f"{stem}.png", np.zeros((2, 3), np.uint8))

    def stems(split: str) -> list[str]:
        return [image.stem for image, _ in build_dataset("camvid", tmp_path, split).samples]

    assert stems("train@0006R0") == ["0006R0_0"]
    assert stems("train@0001TP,0016E5") == ["0001TP_0", "0001TP_1", "0016E5_0"]
    assert stems("train+val-0006R0") == ["0001TP_0", "0001TP_1", "0016E5_0", "0016E5_9"]
    assert stems("train+val-0006R0,0001TP") == ["0016E5_0", "0016E5_9"]
    with pytest.raises(DatasetError, match=r"train/ has no frames of \['Seq05VD'\]"):
        build_dataset("camvid", tmp_path, "train@Seq05VD")
    with pytest.raises(DatasetError, match="no image/label pairs"):
        build_dataset("camvid", tmp_path, "val-0016E5")
    with pytest.raises(DatasetError, match="name the recordings"):
        build_dataset("camvid", tmp_path, "train-")


def test_missing_label_and_unknown_dataset_are_explained(tmp_path: Path) -> None:
    write_png(tmp_path / "train" / "a.png", np.zeros((2, 3, 3), np.uint8))
    (tmp_path / "trainannot").mkdir()
    with pytest.raises(DatasetError, match="have no label"):
        build_dataset("camvid", tmp_path, "train")
    with pytest.raises(DatasetError, match="image folder not found"):
        build_dataset("camvid", tmp_path, "test")
    with pytest.raises(DatasetError, match="unknown dataset"):
        build_dataset("kitti", tmp_path, "train")


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, {"train": 3, "val": 1})
    train = build_dataset("cityscapes", tmp_path, "train")
    assert len(train) == 3 and train.label_set is CITYSCAPES
    image, label = train[0]
    assert image.shape == (32, 64, 3)
    assert (label[0] == IGNORE_INDEX).all()  # ego vehicle (id 1)
    assert label[1:].max() < 19

    # every official id by hand: 7 road -> 0, 26 car -> 13, 33 bicycle -> 18; 0-6, 9, 10,
    # 14-16, 18, 29, 30 and -1 (255 in a PNG) are ignored
    ids = np.arange(35, dtype=np.uint8).reshape(5, 7)
    root = tmp_path / "hand"
    write_png(root / "leftImg8bit/val/ulm/ulm_000000_000019_leftImg8bit.png", np.zeros((5, 7, 3)))
    write_png(root / "gtFine/val/ulm/ulm_000000_000019_gtFine_labelIds.png", ids)
    _, label = build_dataset("cityscapes", root, "val")[0]
    expected = [CITYSCAPES_TRAIN_IDS.get(i, 255) for i in range(35)]
    assert label.ravel().tolist() == expected
    assert [label.ravel()[i] for i in (7, 26, 33)] == [0, 13, 18]
    assert sorted(set(CITYSCAPES_TRAIN_IDS.values())) == list(range(19))


def test_mapillary_reads_palette_labels(tmp_path: Path) -> None:
    write_mapillary(tmp_path, {"training": 2, "validation": 1})
    # recipes may name the v1.2 splits train/val
    train = build_dataset("mapillary", tmp_path, "train")
    assert len(train) == 2 and train.label_set is MAPILLARY
    assert len(build_dataset("mapillary", tmp_path, "validation")) == 1
    image, label = train[0]
    assert image.shape == (32, 48, 3)
    assert (label[0] == IGNORE_INDEX).all()  # 65 = unlabeled
    assert label[1:].max() < 65
    # the raw file is a palette PNG: cv2 would have expanded it to colours
    raw = read_label(train.samples[0][1], indexed=True)
    assert raw.ndim == 2 and raw[0, 0] == 65


def test_mapillary_label_set_is_the_official_table() -> None:
    assert MAPILLARY.num_classes == 65
    assert MAPILLARY.classes[0] == "Bird" and MAPILLARY.classes[-1] == "Ego Vehicle"
    assert MAPILLARY.palette[MAPILLARY.classes.index("Road")] == (128, 64, 128)
    assert MAPILLARY.palette[MAPILLARY.classes.index("Bike Lane")] == (128, 64, 255)
    assert len(set(MAPILLARY.palette)) == 65


def test_max_size_shrinks_image_and_label_alike(tmp_path: Path) -> None:
    write_mapillary(tmp_path, {"training": 1}, size=(40, 80))
    image, label = build_dataset("mapillary", tmp_path, "training", max_size=20)[0]
    assert image.shape == (10, 20, 3) and label.shape == (10, 20)
    assert set(np.unique(label)) <= set(range(65)) | {255}


def test_folder_dataset_with_classes_yaml(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "fields", ("soil", "crop", "weed"), {"train": 2, "val": 1})
    train = build_dataset("folder", root, "train")
    assert train.label_set.classes == ("soil", "crop", "weed")
    assert train.label_set.name == "fields"
    assert len(train.label_set.palette) == 3
    _, label = train[0]
    assert (label[0] == IGNORE_INDEX).all() and label[1:].max() < 3

    # images/<split> + labels/<split> layout, a palette, and out-of-range ids ignored
    alt = tmp_path / "alt"
    write_png(alt / "images" / "val" / "a.jpg", np.zeros((2, 2, 3), np.uint8))
    write_png(alt / "labels" / "val" / "a.png", np.array([[0, 1], [2, 7]], np.uint8))
    (alt / "classes.yaml").write_text(
        yaml.safe_dump({"classes": ["a", "b", "c"], "palette": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]})
    )
    data = build_dataset("folder", alt, "val")
    assert data.label_set.palette[1] == (4, 5, 6)
    assert data[0][1].tolist() == [[0, 1], [2, 255]]


def test_folder_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="classes file not found"):
        build_dataset("folder", tmp_path, "train")
    (tmp_path / "classes.yaml").write_text("classes: [a, b]\npalette: [[1, 2, 3]]\n")
    with pytest.raises(DatasetError, match="palette colours"):
        build_dataset("folder", tmp_path, "train")
    (tmp_path / "bad.yaml").write_text("nothing: here\n")
    with pytest.raises(ValueError, match="classes"):
        load_label_set(tmp_path / "bad.yaml")


def test_cache_holds_decoded_frames_and_preloads(tmp_path: Path) -> None:
    write_camvid(tmp_path, {"train": 3})
    data = build_dataset("camvid", tmp_path, "train", cache=True)
    assert isinstance(data, SegmentationDataset) and data.caching
    data.preload()
    assert len(data._cache) == 3
    first = data.load(0)
    assert data.load(0)[0] is first[0]  # served from memory, not decoded again
    assert data.cache_bytes_estimate() == 3 * 32 * 48 * 4
    counts = data.pixel_counts()
    assert counts.shape == (11,) and counts.sum() == 3 * 31 * 48  # void row left out
    data.set_cache(False)
    assert not data.caching
