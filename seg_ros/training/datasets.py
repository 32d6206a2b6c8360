"""Dataset readers. Every reader yields (RGB uint8 HxWx3, label uint8 HxW with 255 = ignore).

The readers only find files and map label ids; decoding and caching live in one base class so
every dataset gets the same in-memory cache (CamVid's 367 frames are ~190 MB decoded, and on
two CPU cores PNG decoding would otherwise rival the network for time).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch.utils.data

from seg_ros.labels import CAMVID, IGNORE_INDEX, LabelSet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

Transform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class DatasetError(RuntimeError):
    """A dataset folder is missing, empty or inconsistent."""


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot decode image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path: Path) -> np.ndarray:
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise DatasetError(f"cannot decode label {path}")
    if label.ndim != 2 or label.dtype != np.uint8:
        raise DatasetError(f"label {path} must be a single-channel 8-bit PNG of class ids")
    return label


class SegmentationDataset(torch.utils.data.Dataset):
    """Image/label pairs with an id lookup table, optional cache and a numpy transform."""

    def __init__(
        self,
        samples: list[tuple[Path, Path]],
        label_set: LabelSet,
        lut: np.ndarray | None = None,
        transform: Transform | None = None,
        cache: bool = False,
        name: str = "",
    ) -> None:
        if not samples:
            raise DatasetError(f"{name or 'dataset'}: no image/label pairs found")
        self.samples = samples
        self.label_set = label_set
        self.lut = lut
        self.transform = transform
        self.name = name
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The decoded, id-mapped pair, before any transform."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        image_path, label_path = self.samples[index]
        image, label = read_image(image_path), read_label(label_path)
        if image.shape[:2] != label.shape:
            raise DatasetError(
                f"{image_path} is {image.shape[1]}x{image.shape[0]} but its label {label_path} "
                f"is {label.shape[1]}x{label.shape[0]}"
            )
        if self.lut is not None:
            label = self.lut[label]
        if self._cache is not None:
            self._cache[index] = (image, label)
        return image, label

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.load(index)
        if self.transform is not None:
            image, label = self.transform(image, label)
        return image, label

    def pixel_counts(self) -> np.ndarray:
        """Labelled pixels per class over the whole split (for class weights)."""
        counts = np.zeros(256, np.int64)
        for i in range(len(self)):
            counts += np.bincount(self.load(i)[1].ravel(), minlength=256)
        return counts[: self.label_set.num_classes]


def _pairs(image_dir: Path, label_dir: Path, label_name: Callable[[Path], str]) -> list:
    if not image_dir.is_dir():
        raise DatasetError(f"image folder not found: {image_dir}")
    if not label_dir.is_dir():
        raise DatasetError(f"label folder not found: {label_dir}")
    images = sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    pairs, missing = [], []
    for image in images:
        label = label_dir / image.relative_to(image_dir).parent / label_name(image)
        (pairs if label.is_file() else missing).append((image, label))
    if missing:
        raise DatasetError(
            f"{len(missing)} images in {image_dir} have no label, e.g. {missing[0][1]}"
        )
    return pairs


def camvid(root: str | Path, split: str = "train", **kwargs: object) -> SegmentationDataset:
    """CamVid in the SegNet layout: ``train/``, ``trainannot/``, ... ; id 11 (void) ignored."""
    root = Path(root)
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    lut[: CAMVID.num_classes] = np.arange(CAMVID.num_classes)
    pairs = _pairs(root / split, root / f"{split}annot", lambda p: p.with_suffix(".png").name)
    return SegmentationDataset(pairs, CAMVID, lut, name=f"camvid/{split}", **kwargs)


DATASETS: dict[str, Callable[..., SegmentationDataset]] = {"camvid": camvid}


def build_dataset(name: str, root: str | Path, split: str, **kwargs: object) -> SegmentationDataset:
    try:
        reader = DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}") from None
    return reader(root, split, **kwargs)
