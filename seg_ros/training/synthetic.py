"""Small synthetic datasets in the layouts the readers expect, for tests and smoke runs.

Each scene is a few class-coloured rectangles over a background with noise, so a network can
learn it in a handful of steps; the label ids are written exactly as the real datasets store
them (CamVid ids with 11 = void, Cityscapes labelIds, Mapillary palette PNGs with 65 =
unlabeled, a folder dataset with its classes YAML).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from seg_ros.labels import CAMVID, CITYSCAPES, MAPILLARY, generic_label_set


def scene(
    rng: np.random.Generator,
    size: tuple[int, int],
    num_classes: int,
    palette: Sequence[Sequence[int]],
    void: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image and its label map (class index per pixel, ``void`` on a few pixels)."""
    h, w = size
    label = np.full((h, w), rng.integers(num_classes), np.uint8)
    for _ in range(4):
        y0, x0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
        y1, x1 = rng.integers(y0 + 2, h + 1), rng.integers(x0 + 2, w + 1)
        label[y0:y1, x0:x1] = rng.integers(num_classes)
    colours = np.asarray(palette, np.float32)[:num_classes]
    image = colours[label] + rng.normal(0, 12, (h, w, 3))
    if void is not None:
        label[:1] = void  # a void top row, as annotation tools leave around borders
    return np.clip(image, 0, 255).astype(np.uint8), label


def _write_rgb(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _write_gray(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), label)


def write_camvid(
    root: str | Path,
    splits: dict[str, int] | None = None,
    size: tuple[int, int] = (32, 48),
    seed: int = 0,
) -> Path:
    """``<split>/*.png`` + ``<split>annot/*.png`` with CamVid ids (11 = void)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (splits or {"train": 8, "val": 2}).items():
        for i in range(count):
            image, label = scene(rng, size, CAMVID.num_classes, CAMVID.palette, void=11)
            _write_rgb(root / split / f"f{i:03d}.png", image)
            _write_gray(root / f"{split}annot" / f"f{i:03d}.png", label)
    return root


# trainId -> one Cityscapes labelId that maps to it (the inverse of the official table).
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)


def write_cityscapes(
    root: str | Path,
    splits: dict[str, int] | None = None,
    size: tuple[int, int] = (32, 64),
    seed: int = 0,
) -> Path:
    """``leftImg8bit/<split>/<city>/`` + ``gtFine/<split>/<city>/*_gtFine_labelIds.png``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    ids = np.asarray(CITYSCAPES_LABEL_IDS, np.uint8)
    for split, count in (splits or {"train": 4, "val": 2}).items():
        for i in range(count):
            city = ("aachen", "bremen")[i % 2]
            stem = f"{city}_{i:06d}_000019"
            image, train_ids = scene(rng, size, CITYSCAPES.num_classes, CITYSCAPES.palette)
            label_ids = ids[train_ids]
            label_ids[:1] = 1  # ego vehicle: ignored
            _write_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
            _write_gray(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label_ids)
    return root


def write_mapillary(
    root: str | Path,
    splits: dict[str, int] | None = None,
    size: tuple[int, int] = (32, 48),
    seed: int = 0,
) -> Path:
    """v1.2 layout: ``<split>/images/*.jpg`` + ``<split>/labels/*.png`` (palette PNGs)."""
    from PIL import Image  # Pillow writes the palette PNGs Mapillary ships; cv2 cannot

    root = Path(root)
    rng = np.random.default_rng(seed)
    flat_palette = [c for rgb in (*MAPILLARY.palette, (0, 0, 0)) for c in rgb]
    for split, count in (splits or {"training": 4, "validation": 2}).items():
        for i in range(count):
            image, label = scene(rng, size, MAPILLARY.num_classes, MAPILLARY.palette, void=65)
            _write_rgb(root / split / "images" / f"m{i:03d}.jpg", image)
            (root / split / "labels").mkdir(parents=True, exist_ok=True)
            png = Image.fromarray(label, mode="P")
            png.putpalette(flat_palette)
            png.save(root / split / "labels" / f"m{i:03d}.png")
    return root


def write_folder(
    root: str | Path,
    classes: Sequence[str] = ("background", "thing", "stuff"),
    splits: dict[str, int] | None = None,
    size: tuple[int, int] = (32, 48),
    seed: int = 0,
    palette: Sequence[Sequence[int]] | None = None,
) -> Path:
    """``<split>/images/*.png`` + ``<split>/labels/*.png`` + ``classes.yaml``."""
    import yaml

    root = Path(root)
    rng = np.random.default_rng(seed)
    colours = palette or generic_label_set(len(classes)).palette
    data: dict[str, object] = {"name": root.name, "classes": list(classes)}
    if palette is not None:
        data["palette"] = [list(c) for c in palette]
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    for split, count in (splits or {"train": 4, "val": 2}).items():
        for i in range(count):
            image, label = scene(rng, size, len(classes), colours, void=255)
            _write_rgb(root / split / "images" / f"x{i:03d}.png", image)
            _write_gray(root / split / "labels" / f"x{i:03d}.png", label)
    return root
