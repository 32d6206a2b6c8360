"""Confusion-matrix metrics (per-class IoU, mIoU, pixel accuracy, with the ignore label left
out) and their report: one home for seg-eval, training's validation, the int8 check, the demo
and the bag evaluation. numpy only, so the ROS-side tools score without torch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from seg_ros.compat import zip_strict
from seg_ros.labels import IGNORE_INDEX


def _as_array(values: Any) -> np.ndarray:
    # A torch tensor (on any device) or an array; torch stays an optional import here.
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


class ConfusionMatrix:
    """Accumulates truth x prediction counts.

    The matrix has one extra column for predictions outside the class range (a pipeline's 255
    "unlabeled"): such a pixel is a miss for its true class but no false positive for any class.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, prediction: Any, target: Any) -> None:
        prediction = _as_array(prediction).reshape(-1).astype(np.int64)
        target = _as_array(target).reshape(-1).astype(np.int64)
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {prediction.shape} and target {target.shape} differ")
        n = self.num_classes
        valid = (target != IGNORE_INDEX) & (target >= 0) & (target < n)
        index = target[valid] * (n + 1) + np.clip(prediction[valid], 0, n)
        self.matrix += np.bincount(index, minlength=n * (n + 1)).reshape(n, n + 1)

    def merge(self, other: ConfusionMatrix) -> None:
        self.matrix += other.matrix

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for classes absent from both truth and prediction."""
        m = self.matrix.astype(np.float64)
        tp = np.diag(m[:, : self.num_classes])
        union = m.sum(1) + m[:, : self.num_classes].sum(0) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        m = self.matrix.astype(np.float64)
        total = m.sum()
        return float(np.diag(m[:, : self.num_classes]).sum() / total) if total > 0 else math.nan


def report(cm: ConfusionMatrix, class_names: Sequence[str]) -> dict[str, Any]:
    """mIoU, pixel accuracy and per-class IoU as plain JSON-able values (absent classes: None)."""
    iou = cm.iou()
    return {
        "miou": _number(cm.miou()),
        "pixel_accuracy": _number(cm.pixel_accuracy()),
        "iou": {name: _number(v) for name, v in zip_strict(class_names, iou)},
        "pixels": int(cm.matrix.sum()),
    }


def format_table(cm: ConfusionMatrix, class_names: Sequence[str]) -> str:
    """Per-class IoU (in %) as a text table, then mIoU and pixel accuracy."""
    iou = cm.iou()
    width = max(10, *(len(n) for n in class_names))
    truth = cm.matrix.sum(1)
    lines = [f"{'class':<{width}}  {'IoU %':>7}  {'pixels':>12}", "-" * (width + 23)]
    for name, value, count in zip_strict(class_names, iou, truth):
        shown = "-" if np.isnan(value) else f"{100 * value:.2f}"
        lines.append(f"{name:<{width}}  {shown:>7}  {int(count):>12}")
    lines.append("-" * (width + 23))
    lines.append(f"{'mIoU':<{width}}  {_percent(cm.miou()):>7}")
    lines.append(f"{'pixel acc.':<{width}}  {_percent(cm.pixel_accuracy()):>7}")
    return "\n".join(lines)


def _number(v: float) -> float | None:
    return None if math.isnan(v) else round(float(v), 6)


def _percent(v: float) -> str:
    return "-" if math.isnan(v) else f"{100 * v:.2f}"
