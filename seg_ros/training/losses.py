"""Segmentation losses used by the three papers' recipes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seg_ros.labels import IGNORE_INDEX


def enet_class_weights(pixel_counts: Sequence[int] | np.ndarray, c: float = 1.02) -> torch.Tensor:
    """ENet weighting w = 1 / ln(c + p_class), p = the class's share of labelled pixels."""
    counts = torch.as_tensor(np.asarray(pixel_counts, dtype=np.float64))
    p = counts / counts.sum().clamp(min=1)
    return (1.0 / torch.log(c + p)).float()


class CrossEntropy(nn.Module):
    def __init__(self, weight: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits.float(), target, weight=self.weight, ignore_index=self.ignore_index
        )


class OhemCrossEntropy(nn.Module):
    """Online hard example mining: average the CE over pixels whose true-class probability is
    below ``thresh``, but always over at least ``min_kept`` of the hardest pixels."""

    def __init__(
        self,
        thresh: float = 0.7,
        min_kept: int = 100_000,
        weight: torch.Tensor | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        self.thresh = thresh
        self.min_kept = min_kept
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pixel_loss = F.cross_entropy(
            logits.float(),
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction="none",
        ).reshape(-1)
        valid = target.reshape(-1) != self.ignore_index
        losses = pixel_loss[valid]
        if losses.numel() == 0:
            return logits.sum() * 0.0
        # p_true < thresh  <=>  loss > -ln(thresh) for unweighted CE; weighting scales both.
        sorted_losses, _ = torch.sort(losses, descending=True)
        k = min(self.min_kept, sorted_losses.numel()) - 1
        threshold = min(-math.log(self.thresh), float(sorted_losses[k]))
        kept = sorted_losses[sorted_losses >= threshold] if k >= 0 else sorted_losses
        return kept.mean()


class SegmentationLoss(nn.Module):
    """Sum of main-output losses plus weighted auxiliary-output losses.

    Models return a tensor, or (main, aux, ...) in training mode; aux outputs are scored with
    ``aux_losses`` (the same losses as the main output when not given).
    """

    def __init__(
        self,
        main_losses: Sequence[nn.Module],
        aux_losses: Sequence[nn.Module] = (),
        aux_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.main_losses = nn.ModuleList(main_losses)
        self.aux_losses = nn.ModuleList(aux_losses or main_losses)
        self.aux_weight = aux_weight

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor):
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        main, *aux = outputs
        loss = sum(f(main, target) for f in self.main_losses)
        for a in aux:
            loss = loss + self.aux_weight * sum(f(a, target) for f in self.aux_losses)
        return loss


def build_loss(
    main: Sequence[str] = ("ce",),
    aux: Sequence[str] = (),
    aux_weight: float = 1.0,
    class_weights: torch.Tensor | None = None,
    ohem_thresh: float = 0.7,
    ohem_min_kept: int = 100_000,
) -> SegmentationLoss:
    """Build a loss from names: ``ce``, ``ohem_ce``."""

    def make(name: str) -> nn.Module:
        if name == "ce":
            return CrossEntropy(class_weights)
        if name == "ohem_ce":
            return OhemCrossEntropy(ohem_thresh, ohem_min_kept, class_weights)
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(LOSS_NAMES)}")

    return SegmentationLoss([make(n) for n in main], [make(n) for n in aux], aux_weight)


LOSS_NAMES = ("ce", "ohem_ce")
