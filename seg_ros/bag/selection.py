"""What a bag evaluation reads and writes: its image and label topics, the output topics, the
storage, the recorded rate, and the checks that the model's classes fit the bag's labels."""

from __future__ import annotations

from typing import Any

from seg_ros.bag.io import IMAGE, IMAGE_TYPES, BagError
from seg_ros.ros.contract import OUTPUTS_ON_BY_DEFAULT as OUTPUT_NAMES


def choose_label_topic(
    reader: Any, info: dict[str, str], asked: str | None = None, no_labels: bool = False
) -> str | None:
    """The ground-truth topic: the one asked for, else the one the bag's metadata names."""
    if no_labels:
        return None
    if asked:
        return reader.resolve_topic(asked, (IMAGE,), "label")
    recorded = info.get("label_topic")
    if recorded:
        return reader.resolve_topic(recorded, (IMAGE,), "label (named in the bag's metadata)")
    return None


def choose_image_topic(
    reader: Any, info: dict[str, str], label_topic: str | None, asked: str | None = None
) -> str:
    """The camera topic: the one asked for, the metadata's, or the only image topic left."""
    if asked:
        topic = reader.resolve_topic(asked, IMAGE_TYPES, "image")
    elif info.get("image_topic"):
        topic = reader.resolve_topic(info["image_topic"], IMAGE_TYPES, "image (bag metadata)")
    else:
        candidates = [t for t in reader.image_topics() if t != label_topic]
        if len(candidates) != 1:
            raise BagError(
                f"{reader.path} has {len(candidates)} image topics besides the labels; pass "
                f"--image-topic. Its topics:\n{reader.describe_topics()}"
            )
        topic = candidates[0]
    if topic == label_topic:
        raise BagError(f"{topic} cannot be both the image and the label topic")
    return topic


def output_topics(prefix: str, reader: Any) -> dict[str, str]:
    """``<prefix>/labels``, ``/color``, ``/overlay`` (the node's default outputs); refused
    where the bag has one already."""
    if not prefix.startswith("/"):
        raise BagError(f"--output-prefix must start with '/', got {prefix!r}")
    topics = {name: f"{prefix.rstrip('/')}/{name}" for name in OUTPUT_NAMES}
    clash = [t for t in topics.values() if t in reader.topics]
    if clash:
        raise BagError(f"the bag already has {', '.join(clash)}; choose another --output-prefix")
    return topics


def storage_of(reader: Any) -> str:
    storage = reader.storage
    return storage if storage in ("sqlite3", "mcap") else "mcap"


def recorded_fps(frames: int, duration_s: float) -> float | None:
    return round((frames - 1) / duration_s, 3) if frames > 1 and duration_s > 0 else None


def check_class_count(classes: Any, info: dict[str, str], label_topic: str | None) -> None:
    """The bag's labels and the model must use one label set, or the mIoU means nothing."""
    recorded = info.get("num_classes")
    if label_topic and recorded and int(recorded) != classes.num_classes:
        raise BagError(
            f"the bag's labels are {info.get('dataset', '?')} ids ({recorded} classes), but the "
            f"model predicts {classes.num_classes} classes ({classes.dataset or '?'}); use "
            "weights trained on that label set, or --no-labels for latency only"
        )
    if label_topic and "class_names" in info:
        import json

        from seg_ros.labels import class_mismatch

        problem = class_mismatch(list(classes.names), json.loads(info["class_names"]))
        if problem:
            raise BagError(
                f"the bag's labels and the model disagree: {problem}; score a model with the "
                "bag's classes, or --no-labels for latency only"
            )


def labels_never_paired(label_topic: str | None, evaluation: Any, frames_out: int) -> bool:
    """Labels were read and frames answered, yet no label met its frame: the stamps differ,
    which is a recording problem to report, not an mIoU of nothing."""
    return bool(
        label_topic and evaluation.labels_read() and not evaluation.labelled_frames and frames_out
    )
