"""Scoring the deployed path: a Pipeline's labels (its runtime, precision and input size)
against ground truth, as seg-eval --backend and seg-quantize's int8 check do."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def pipeline_confusion(
    pipeline: Any, pairs: Iterable[tuple[np.ndarray, np.ndarray]], classes: int
) -> Any:
    """ConfusionMatrix of a pipeline's labels (the deployed path: its backend, precision and
    input size) against labels at label resolution, void ignored."""
    from seg_ros.inference.postprocess import resize_labels
    from seg_ros.metrics import ConfusionMatrix

    cm = ConfusionMatrix(classes)
    for image, label in pairs:
        labels = pipeline(image, want_color=False, want_overlay=False).labels
        if labels.shape != label.shape[:2]:
            labels = resize_labels(labels, tuple(label.shape[:2]))
        cm.update(labels, label)
    return cm


def miou_of(pipeline: Any, pairs: Iterable[tuple[np.ndarray, np.ndarray]], classes: int) -> float:
    """mIoU (%) of a pipeline's labels at label resolution, void ignored."""
    return 100.0 * pipeline_confusion(pipeline, pairs, classes).miou()
