"""Class names and colour palettes of the datasets seg_ros knows.

One table per dataset so that a weights file, the colour mask and the evaluation report all
agree on what class id 7 means and how it is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

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

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (CITYSCAPES, CAMVID)}


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
