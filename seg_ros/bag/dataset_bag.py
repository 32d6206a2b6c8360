"""A dataset split as a rosbag2: the frames on an image topic, their labels on a label topic
with the same stamps, at a fixed rate, as a camera and an annotator would have recorded them.

The bag also records, in its metadata's custom_data, which topics hold what and the label set,
so seg-bag-eval needs no flags for them and refuses a model with another class count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg_ros.bag.io import COMPRESSED, DEFAULT_DISTRO, IMAGE, NS, BagError, BagWriter
from seg_ros.labels import LabelSet

IMAGE_FORMATS = ("raw", "jpeg", "png")


@dataclass
class BagLayout:
    image_topic: str = "/camera/image_raw"
    label_topic: str | None = "/ground_truth/labels"
    frame_id: str = "camera"
    rate: float = 10.0  # frames per second
    image_format: str = "raw"  # raw: Image rgb8; jpeg/png: CompressedImage on <topic>/compressed
    start_ns: int | None = None  # first stamp; None = now

    def check(self) -> None:
        if not self.rate > 0:
            raise BagError(f"rate must be positive, got {self.rate}")
        if self.image_format not in IMAGE_FORMATS:
            raise BagError(
                f"image format must be one of {IMAGE_FORMATS}, got {self.image_format!r}"
            )
        for topic in (self.image_topic, self.label_topic):
            if topic is not None and not topic.startswith("/"):
                raise BagError(f"topics in a bag are absolute: {topic!r} should start with '/'")
        if self.label_topic is not None and self.label_topic == self.image_topic:
            raise BagError("the image and label topics must differ")
        if self.start_ns is not None and self.start_ns < 0:
            raise BagError(f"start time must not be negative, got {self.start_ns} ns")

    @property
    def written_image_topic(self) -> str:
        if self.image_format == "raw":
            return self.image_topic
        return self.image_topic.rstrip("/") + "/compressed"  # image_transport's convention


def write_split_bag(
    path: str | Path,
    frames: Iterable[tuple[np.ndarray, np.ndarray | None]],
    label_set: LabelSet,
    layout: BagLayout | None = None,
    storage: str = "mcap",
    distro: str = DEFAULT_DISTRO,
    source: str = "",
    progress: Callable[[int], None] | None = None,
) -> dict[str, object]:
    """Write (RGB uint8 image, label uint8 or None) pairs; return what was written."""
    layout = layout or BagLayout()
    layout.check()
    start = layout.start_ns if layout.start_ns is not None else time.time_ns()
    image_topic = layout.written_image_topic
    count = 0
    with BagWriter(path, storage, distro) as bag:
        bag.add_topic(image_topic, IMAGE if layout.image_format == "raw" else COMPRESSED)
        if layout.label_topic:
            bag.add_topic(layout.label_topic, IMAGE)
        for i, (image, label) in enumerate(frames):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise BagError(f"frame {i}: expected an HxWx3 uint8 RGB image, got {image.shape}")
            # Stamps from the frame number, not accumulated: no drift over long splits.
            stamp = start + round(i * NS / layout.rate)
            if layout.image_format == "raw":
                bag.write_image(image_topic, stamp, image, "rgb8", stamp, layout.frame_id)
            else:
                bag.write_compressed(
                    image_topic, stamp, image, layout.image_format, stamp, layout.frame_id
                )
            if layout.label_topic and label is not None:
                if label.shape != image.shape[:2]:
                    raise BagError(
                        f"frame {i}: label is {label.shape[1]}x{label.shape[0]} but the image is "
                        f"{image.shape[1]}x{image.shape[0]}"
                    )
                bag.write_image(layout.label_topic, stamp, label, "mono8", stamp, layout.frame_id)
            count += 1
            if progress is not None:
                progress(count)
        if count == 0:
            raise BagError("no frames to write")
        info = {
            "image_topic": image_topic,
            "label_topic": layout.label_topic or "",
            "dataset": label_set.name,
            "num_classes": str(label_set.num_classes),
            "class_names": json.dumps(list(label_set.classes)),
            "rate": f"{layout.rate:g}",
            "source": source,
        }
        for key, value in info.items():
            bag.set_info(key, value)
    return {
        "path": str(path),
        "storage": storage,
        "frames": count,
        "image_topic": image_topic,
        "label_topic": layout.label_topic,
        "start_ns": start,
        "duration_s": (count - 1) / layout.rate,
    }
