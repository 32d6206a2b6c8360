"""Dataset readers. Every reader yields (RGB uint8 HxWx3, label uint8 HxW with 255 = ignore).

The readers only find files and map label ids; decoding and caching live in one base class so
every dataset gets the same in-memory cache (CamVid's 367 frames are ~190 MB decoded, and on
two CPU cores PNG decoding would otherwise rival the network for time).

Readers: ``camvid`` (SegNet layout), ``cityscapes`` (fine, 19 trainIds), ``mapillary`` (Vistas
v1.2, 65 classes) and ``folder`` (images + label PNGs + a classes YAML).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch.utils.data

from seg_ros.labels import (
    CAMVID,
    CITYSCAPES,
    IGNORE_INDEX,
    MAPILLARY,
    LabelSet,
    load_label_set,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

Transform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class DatasetError(RuntimeError):
    """A dataset folder is missing, empty or inconsistent."""


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot decode image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path: Path, indexed: bool = False) -> np.ndarray:
    """A label PNG of class ids. ``indexed``: a palette PNG whose indices are the ids (Mapillary);
    cv2 would expand its palette to colours, so Pillow reads those."""
    if not indexed:
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if label is None:
            raise DatasetError(f"cannot decode label {path}")
        if label.ndim == 2 and label.dtype == np.uint8:
            return label
    from PIL import Image

    try:
        with Image.open(path) as png:
            mode = png.mode
            label = np.asarray(png) if mode in ("P", "L") else None
    except OSError as e:
        raise DatasetError(f"cannot decode label {path}: {e}") from None
    if label is None or label.dtype != np.uint8:
        raise DatasetError(
            f"label {path} must be a single-channel 8-bit PNG of class ids (or a palette PNG), "
            f"not mode {mode}"
        )
    return label


def resize_pair(
    image: np.ndarray, label: np.ndarray, max_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shrink so the long side is at most ``max_size`` (area filter for the image, nearest for
    the ids); Mapillary's 12-megapixel frames are otherwise too big to cache or crop cheaply."""
    h, w = label.shape
    scale = max_size / max(h, w)
    if scale >= 1:
        return image, label
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    return image, label


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
        max_size: int | None = None,
        indexed_labels: bool = False,
    ) -> None:
        if not samples:
            raise DatasetError(f"{name or 'dataset'}: no image/label pairs found")
        self.samples = samples
        self.label_set = label_set
        self.lut = lut
        self.transform = transform
        self.name = name
        self.max_size = max_size
        self.indexed_labels = indexed_labels
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The decoded, id-mapped pair, before any transform."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        image_path, label_path = self.samples[index]
        image = read_image(image_path)
        label = read_label(label_path, self.indexed_labels)
        if image.shape[:2] != label.shape:
            raise DatasetError(
                f"{image_path} is {image.shape[1]}x{image.shape[0]} but its label {label_path} "
                f"is {label.shape[1]}x{label.shape[0]}"
            )
        if self.max_size:
            image, label = resize_pair(image, label, self.max_size)
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

    @property
    def caching(self) -> bool:
        return self._cache is not None

    def set_cache(self, enabled: bool) -> None:
        if not enabled:
            self._cache = None
        elif self._cache is None:
            self._cache = {}

    def cache_bytes_estimate(self) -> int:
        """Decoded size of the whole split, extrapolated from its first frame."""
        image, label = self.load(0)
        return (image.nbytes + label.nbytes) * len(self)

    def preload(self) -> None:
        """Decode every frame into the cache now, e.g. before DataLoader workers fork, so they
        share one copy of the decoded frames instead of each decoding its own."""
        if self._cache is not None:
            for i in range(len(self)):
                self.load(i)

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


def camvid_sequence(path: Path) -> str:
    """The recording a CamVid frame comes from: its name's prefix (``0016E5_07959.png``)."""
    return path.name.split("_", 1)[0]


def camvid(root: str | Path, split: str = "train", **kwargs: object) -> SegmentationDataset:
    """CamVid in the SegNet layout: ``train/``, ``trainannot/``, ... ; id 11 (void) ignored.

    Splits join with ``+`` (``train+val``); ``@`` keeps only some recordings of a folder
    (``train@0006R0``) and a trailing ``-`` drops recordings from the whole split
    (``train+val-0006R0``), so a held-out recording can stand in for new sequences: SegNet's
    val is later frames of a recording that train holds, which flatters."""
    root = Path(root)
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    lut[: CAMVID.num_classes] = np.arange(CAMVID.num_classes)
    parts, minus, dropped = split.partition("-")
    drop = {d for d in dropped.split(",") if d}
    if minus and not drop:
        raise DatasetError(f"camvid split {split!r}: name the recordings after '-'")
    pairs = []
    for part in parts.split("+"):
        folder, _, kept = part.partition("@")
        keep = {k for k in kept.split(",") if k}
        found = _pairs(root / folder, root / f"{folder}annot", lambda p: p.with_suffix(".png").name)
        if keep:
            missing = keep - {camvid_sequence(image) for image, _ in found}
            if missing:
                raise DatasetError(
                    f"camvid split {split!r}: {folder}/ has no frames of {sorted(missing)}"
                )
            found = [pair for pair in found if camvid_sequence(pair[0]) in keep]
        pairs += found
    if drop:
        pairs = [pair for pair in pairs if camvid_sequence(pair[0]) not in drop]
    return SegmentationDataset(pairs, CAMVID, lut, name=f"camvid/{split}", **kwargs)


# Cityscapes labelId -> trainId, the official table (cityscapesscripts/helpers/labels.py);
# embedded because that package would pull matplotlib and more into installs for 34 numbers.
CITYSCAPES_TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip


def cityscapes(
    root: str | Path, split: str = "train", annotations: str = "gtFine", **kwargs: object
) -> SegmentationDataset:
    """Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
    ``<annotations>/<split>/<city>/*_<annotations>_labelIds.png``; 19 trainIds, rest ignored."""
    root = Path(root)
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        lut[label_id] = train_id
    pairs = _pairs(
        root / "leftImg8bit" / split,
        root / annotations / split,
        lambda p: p.name.replace("_leftImg8bit", f"_{annotations}_labelIds"),
    )
    return SegmentationDataset(pairs, CITYSCAPES, lut, name=f"cityscapes/{split}", **kwargs)


# The v1.2 release names its splits training/validation/testing; recipes may say train/val.
MAPILLARY_SPLITS = {"train": "training", "val": "validation", "test": "testing"}


def mapillary(root: str | Path, split: str = "training", **kwargs: object) -> SegmentationDataset:
    """Mapillary Vistas v1.2: ``<split>/images/*.jpg`` + ``<split>/labels/*.png`` (palette PNGs
    of ids 0-65); the 65 evaluated classes, 65 = unlabeled ignored. Frames are up to 12 MP:
    pass ``max_size`` (long side, e.g. 2048) to shrink them when read."""
    root = Path(root)
    sub = split if (root / split).is_dir() else MAPILLARY_SPLITS.get(split, split)
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    lut[: MAPILLARY.num_classes] = np.arange(MAPILLARY.num_classes)
    pairs = _pairs(
        root / sub / "images", root / sub / "labels", lambda p: p.with_suffix(".png").name
    )
    kwargs.setdefault("indexed_labels", True)
    return SegmentationDataset(pairs, MAPILLARY, lut, name=f"mapillary/{sub}", **kwargs)


def folder(
    root: str | Path, split: str = "train", classes: str | Path | None = None, **kwargs: object
) -> SegmentationDataset:
    """A user's dataset: ``<split>/images/`` + ``<split>/labels/`` (or ``images/<split>/`` +
    ``labels/<split>/``), label PNGs of class indices named like their images, and a classes
    YAML (``classes: [...]``, optional ``palette``, default ``<root>/classes.yaml``). Label
    values outside the class range (e.g. 255) are ignored."""
    root = Path(root)
    classes_file = Path(classes) if classes else root / "classes.yaml"
    if not classes_file.is_file():
        raise DatasetError(f"classes file not found: {classes_file}")
    try:
        label_set = load_label_set(classes_file, root.resolve().name)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    if label_set.num_classes >= IGNORE_INDEX:
        raise DatasetError(f"{classes_file}: 8-bit label PNGs hold at most 255 classes")
    image_dir, label_dir = root / split / "images", root / split / "labels"
    if not image_dir.is_dir() and (root / "images" / split).is_dir():
        image_dir, label_dir = root / "images" / split, root / "labels" / split
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    lut[: label_set.num_classes] = np.arange(label_set.num_classes)
    pairs = _pairs(image_dir, label_dir, lambda p: p.with_suffix(".png").name)
    return SegmentationDataset(pairs, label_set, lut, name=f"{label_set.name}/{split}", **kwargs)


DATASETS: dict[str, Callable[..., SegmentationDataset]] = {
    "camvid": camvid,
    "cityscapes": cityscapes,
    "mapillary": mapillary,
    "folder": folder,
}


def build_dataset(name: str, root: str | Path, split: str, **kwargs: object) -> SegmentationDataset:
    """A reader by name; ``kwargs`` go to it (``cache``, ``max_size``, ``classes``, ...)."""
    try:
        reader = DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}") from None
    return reader(root, split, **kwargs)
