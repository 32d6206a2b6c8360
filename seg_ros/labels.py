"""Class names and colour palettes of the datasets seg_ros knows.

One table per dataset so that a weights file, the colour mask and the evaluation report all
agree on what class id 7 means and how it is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

IGNORE_INDEX = 255


@dataclass(frozen=True)
class LabelSet:
    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


CITYSCAPES = LabelSet(
    "cityscapes",
    (
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
        "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
        "bus", "train", "motorcycle", "bicycle",
    ),
    (
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
        (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ),
)  # fmt: skip

# SegNet's 11-class CamVid; id 11 (void) is mapped to IGNORE_INDEX when read.
CAMVID = LabelSet(
    "camvid",
    (
        "sky", "building", "pole", "road", "sidewalk", "tree", "sign/symbol", "fence", "car",
        "pedestrian", "bicyclist",
    ),
    (
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
        (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
        (0, 128, 192),
    ),
)  # fmt: skip

# Mapillary Vistas v1.2: the 65 evaluated labels of the dataset's config.json, in id order (label
# PNG value = index here; 65 = "Unlabeled" is mapped to IGNORE_INDEX when read). Names are the
# config's "readable" names. Taken from the copy of config.json embedded in
# facebookresearch/Mask2Former, mask2former/data/datasets/register_mapillary_vistas.py.
MAPILLARY = LabelSet(
    "mapillary",
    (
        "Bird", "Ground Animal", "Curb", "Fence", "Guard Rail", "Barrier", "Wall", "Bike Lane",
        "Crosswalk - Plain", "Curb Cut", "Parking", "Pedestrian Area", "Rail Track", "Road",
        "Service Lane", "Sidewalk", "Bridge", "Building", "Tunnel", "Person", "Bicyclist",
        "Motorcyclist", "Other Rider", "Lane Marking - Crosswalk", "Lane Marking - General",
        "Mountain", "Sand", "Sky", "Snow", "Terrain", "Vegetation", "Water", "Banner", "Bench",
        "Bike Rack", "Billboard", "Catch Basin", "CCTV Camera", "Fire Hydrant", "Junction Box",
        "Mailbox", "Manhole", "Phone Booth", "Pothole", "Street Light", "Pole",
        "Traffic Sign Frame", "Utility Pole", "Traffic Light", "Traffic Sign (Back)",
        "Traffic Sign (Front)", "Trash Can", "Bicycle", "Boat", "Bus", "Car", "Caravan",
        "Motorcycle", "On Rails", "Other Vehicle", "Trailer", "Truck", "Wheeled Slow",
        "Car Mount", "Ego Vehicle",
    ),
    (
        (165, 42, 42), (0, 192, 0), (196, 196, 196), (190, 153, 153), (180, 165, 180),
        (90, 120, 150), (102, 102, 156), (128, 64, 255), (140, 140, 200), (170, 170, 170),
        (250, 170, 160), (96, 96, 96), (230, 150, 140), (128, 64, 128), (110, 110, 110),
        (244, 35, 232), (150, 100, 100), (70, 70, 70), (150, 120, 90), (220, 20, 60),
        (255, 0, 0), (255, 0, 100), (255, 0, 200), (200, 128, 128), (255, 255, 255),
        (64, 170, 64), (230, 160, 50), (70, 130, 180), (190, 255, 255), (152, 251, 152),
        (107, 142, 35), (0, 170, 30), (255, 255, 128), (250, 0, 30), (100, 140, 180),
        (220, 220, 220), (220, 128, 128), (222, 40, 40), (100, 170, 30), (40, 40, 40),
        (33, 33, 33), (100, 128, 160), (142, 0, 0), (70, 100, 150), (210, 170, 100),
        (153, 153, 153), (128, 128, 128), (0, 0, 80), (250, 170, 30), (192, 192, 192),
        (220, 220, 0), (140, 140, 20), (119, 11, 32), (150, 0, 255), (0, 60, 100),
        (0, 0, 142), (0, 0, 90), (0, 0, 230), (0, 80, 100), (128, 64, 64), (0, 0, 110),
        (0, 0, 70), (0, 0, 192), (32, 32, 32), (120, 10, 10),
    ),
)  # fmt: skip

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (CITYSCAPES, CAMVID, MAPILLARY)}


def get_label_set(name: str) -> LabelSet:
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(LABEL_SETS)}") from None


def generic_label_set(num_classes: int) -> LabelSet:
    """Names and a deterministic, well-spread palette for a dataset seg_ros has no table for."""
    palette = []
    for i in range(num_classes):
        # Bit-reversal spreads neighbouring ids over distant colours (the PASCAL VOC scheme).
        r = g = b = 0
        c = i + 1
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette.append((r, g, b))
    return LabelSet(
        f"generic{num_classes}", tuple(f"class_{i}" for i in range(num_classes)), tuple(palette)
    )


def custom_label_set(
    name: str, classes: Sequence[str], palette: Sequence[Sequence[int]] | None = None
) -> LabelSet:
    """A label set for a user's own dataset; without a palette, the generic one is used."""
    if not classes:
        raise ValueError(f"label set {name!r} needs at least one class name")
    if palette is None:
        palette = generic_label_set(len(classes)).palette
    if len(palette) != len(classes):
        raise ValueError(
            f"label set {name!r}: {len(palette)} palette colours for {len(classes)} classes"
        )
    colours = []
    for colour in palette:
        if len(colour) != 3 or not all(0 <= int(c) <= 255 for c in colour):
            raise ValueError(f"label set {name!r}: palette entry {colour!r} is not an RGB triple")
        colours.append((int(colour[0]), int(colour[1]), int(colour[2])))
    return LabelSet(name, tuple(str(c) for c in classes), tuple(colours))


def load_label_set(path: str | Path, name: str | None = None) -> LabelSet:
    """A folder dataset's classes YAML: ``classes: [road, car, ...]``, optional ``palette:
    [[r, g, b], ...]`` and ``name:`` (default: the name of the folder holding the file)."""
    import yaml

    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    if isinstance(data, list):  # a bare list of names is a classes file too
        data = {"classes": data}
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise ValueError(f"{path}: expected a 'classes:' list of class names")
    label_name = data.get("name") or name or path.resolve().parent.name
    return custom_label_set(str(label_name), data["classes"], data.get("palette"))


def class_mismatch(model: Sequence[str], data: Sequence[str]) -> str | None:
    """Why a model's classes cannot be scored against a dataset's, or None: ids are compared,
    so the names must match id for id (a swapped pair would score one class as another)."""
    if len(model) != len(data):
        return f"the model predicts {len(model)} classes, the dataset has {len(data)}"
    for i, (a, b) in enumerate(zip(model, data)):
        if a.strip().lower() != b.strip().lower():
            return f"class id {i} is {a!r} for the model but {b!r} in the dataset's classes"
    return None
