"""Confusion-matrix metrics (per-class IoU, mIoU, pixel accuracy, with the ignore label left
out) and their report: one home for seg-eval, training's validation, the int8 check, the demo
and the bag evaluation; and the calibration of a per-pixel confidence (expected calibration
error, mIoU against coverage). numpy only, so the ROS-side tools score without torch."""

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


# Kept-pixel thresholds of the coverage table: 0 keeps everything (the plain mIoU).
COVERAGE_THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
CALIBRATION_BINS = 15  # equal-width bins over [0, 1], as in Guo et al. 2017


class CalibrationMeter:
    """How far a per-pixel confidence can be trusted, over the labelled pixels.

    ``update`` takes predicted ids, the mono8 confidence the node publishes (255 = 1.0) and the
    truth. It keeps, per confidence level (256 of them), pixel counts and correct counts per
    class pair, so the expected calibration error and a confusion matrix for any threshold
    come out exactly at the end: ``ece()``, ``coverage_table()``.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        # [confidence level, truth, prediction (+1 column for 255)]: 256 x n x (n + 1) counts
        self.counts = np.zeros((256, num_classes, num_classes + 1), np.int64)

    def update(self, prediction: Any, confidence: Any, target: Any) -> None:
        prediction = _as_array(prediction).reshape(-1).astype(np.int64)
        confidence = _as_array(confidence).reshape(-1).astype(np.int64)
        target = _as_array(target).reshape(-1).astype(np.int64)
        if not prediction.shape == confidence.shape == target.shape:
            raise ValueError(
                f"prediction {prediction.shape}, confidence {confidence.shape} and target "
                f"{target.shape} differ"
            )
        n = self.num_classes
        valid = (target != IGNORE_INDEX) & (target >= 0) & (target < n)
        index = (np.clip(confidence[valid], 0, 255) * n + target[valid]) * (n + 1) + np.clip(
            prediction[valid], 0, n
        )
        self.counts += np.bincount(index, minlength=self.counts.size).reshape(self.counts.shape)

    @property
    def pixels(self) -> int:
        return int(self.counts.sum())

    def ece(self, bins: int = CALIBRATION_BINS) -> float:
        """Expected calibration error: sum over confidence bins of (share of pixels) x
        |accuracy - mean confidence|; NaN without pixels."""
        if self.pixels == 0:
            return math.nan
        rows = self._bins(bins)
        return float(sum(share * abs(acc - conf) for share, acc, conf in rows if share))

    def _bins(self, bins: int) -> list[tuple[float, float, float]]:
        """(share of pixels, accuracy, mean confidence) per equal-width bin; 0s when empty."""
        n = self.num_classes
        per_level = self.counts.sum((1, 2)).astype(np.float64)
        correct = np.einsum("lcc->l", self.counts[:, :, :n]).astype(np.float64)
        levels = np.arange(256) / 255.0
        total = max(per_level.sum(), 1.0)
        which = np.minimum((levels * bins).astype(int), bins - 1)
        rows = []
        for b in range(bins):
            count = per_level[which == b].sum()
            if not count:
                rows.append((0.0, 0.0, 0.0))
                continue
            accuracy = correct[which == b].sum() / count
            mean = (per_level[which == b] * levels[which == b]).sum() / count
            rows.append((count / total, accuracy, mean))
        return rows

    def reliability(self, bins: int = CALIBRATION_BINS) -> list[dict[str, float | None]]:
        """Per bin: its range, share of pixels, accuracy and mean confidence (the diagram)."""
        return [
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "share": _number(share),
                "accuracy": _number(acc) if share else None,
                "confidence": _number(conf) if share else None,
            }
            for b, (share, acc, conf) in enumerate(self._bins(bins))
        ]

    def kept(self, threshold: float) -> ConfusionMatrix:
        """The confusion matrix of the pixels at or above ``threshold`` (min_confidence's
        rule, to the mono8 step: a pixel below it would be 255)."""
        cm = ConfusionMatrix(self.num_classes)
        first = math.ceil(threshold * 255.0 - 1e-9)  # levels whose value >= threshold
        cm.matrix = self.counts[max(first, 0) :].sum(0)
        return cm

    def coverage_table(
        self, thresholds: Sequence[float] = COVERAGE_THRESHOLDS
    ) -> list[dict[str, float | None]]:
        """Per threshold: the share of labelled pixels kept, and mIoU / pixel accuracy over
        them (the discarded pixels left out, not counted as misses)."""
        total = self.pixels
        rows = []
        for t in thresholds:
            cm = self.kept(t)
            rows.append(
                {
                    "threshold": float(t),
                    "coverage": _number(cm.matrix.sum() / total) if total else None,
                    "miou": _number(cm.miou()),
                    "pixel_accuracy": _number(cm.pixel_accuracy()),
                }
            )
        return rows

    def summary(self) -> dict[str, Any]:
        return {
            "ece": _number(self.ece()),
            "bins": CALIBRATION_BINS,
            "pixels": self.pixels,
            "coverage": self.coverage_table(),
            "reliability": self.reliability(),
        }


def _number(v: float) -> float | None:
    return None if math.isnan(v) else round(float(v), 6)


def _percent(v: float) -> str:
    return "-" if math.isnan(v) else f"{100 * v:.2f}"
