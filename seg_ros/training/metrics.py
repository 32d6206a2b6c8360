"""Confusion-matrix metrics: per-class IoU and mIoU with the ignore label left out."""

from __future__ import annotations

import numpy as np
import torch

from seg_ros.labels import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulates truth x prediction counts.

    The matrix has one extra column for predictions outside the class range (a pipeline's 255
    "unlabeled"): such a pixel is a miss for its true class but no false positive for any class.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes + 1, dtype=torch.int64)

    def update(
        self, prediction: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray
    ) -> None:
        prediction = torch.as_tensor(prediction).reshape(-1).to(torch.int64).cpu()
        target = torch.as_tensor(target).reshape(-1).to(torch.int64).cpu()
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {prediction.shape} and target {target.shape} differ")
        n = self.num_classes
        valid = (target != IGNORE_INDEX) & (target < n)
        index = target[valid] * (n + 1) + prediction[valid].clamp(0, n)
        self.matrix += torch.bincount(index, minlength=n * (n + 1)).reshape(n, n + 1)

    def merge(self, other: ConfusionMatrix) -> None:
        self.matrix += other.matrix

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for classes absent from both truth and prediction."""
        m = self.matrix.double()
        tp = m[:, : self.num_classes].diag()
        union = m.sum(1) + m[:, : self.num_classes].sum(0) - tp
        nan = torch.full_like(tp, float("nan"))
        return torch.where(union > 0, tp / union.clamp(min=1), nan).numpy()

    def miou(self) -> float:
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        m = self.matrix.double()
        total = m.sum()
        return float(m[:, : self.num_classes].diag().sum() / total) if total > 0 else float("nan")
