"""Segmentation losses used by the three papers' recipes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seg_ros.labels import IGNORE_INDEX
from seg_ros.models.common import TrainOutput, as_train_output


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


def ohem_mean(pixel_loss: torch.Tensor, thresh: float, min_kept: int) -> torch.Tensor:
    """Mean over the hard pixels: those whose loss is at least -ln(thresh) (true-class
    probability at most ``thresh`` for plain CE), but never fewer than the ``min_kept`` largest.

    ``topk`` rather than a full sort: selection is linear in the pixel count, a sort is not.
    """
    n = pixel_loss.numel()
    if n == 0:
        return pixel_loss.sum()
    hard = pixel_loss >= -math.log(thresh)
    k = min(min_kept, n)
    kept = int(hard.sum())
    if kept >= k:
        return pixel_loss[hard].mean() if kept else pixel_loss.sum() * 0.0
    return pixel_loss.topk(k, sorted=False).values.mean()


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
        if not valid.any():
            return logits.sum() * 0.0
        # With class weights the threshold applies to the weighted loss, as in the recipes'
        # reference implementations.
        return ohem_mean(pixel_loss[valid], self.thresh, self.min_kept)


def present_labels(target: torch.Tensor, num_classes: int, kernel: int = 5) -> torch.Tensor:
    """[N, C, H, W] bool: which labels occur in each pixel's ``kernel`` x ``kernel`` window
    (ignored pixels, any label outside 0..C-1, contribute no label)."""
    return dilate(one_hot_nchw(target, num_classes), kernel)


def one_hot_nchw(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[N, C, H, W] bool one-hot of [N, H, W] labels; a label outside 0..C-1 (ignored) is all
    False. Made in place by comparison: ``F.one_hot`` builds int64 [N, H, W, C] and needs a
    permuted copy and a mask on top (4x the time at 8x11x288x384)."""
    classes = torch.arange(num_classes, device=target.device).view(1, -1, 1, 1)
    return target.unsqueeze(1) == classes


def dilate(mask: torch.Tensor, kernel: int) -> torch.Tensor:
    """[..., H, W] bool: True where a ``kernel`` x ``kernel`` window around the pixel holds a True.

    Written by hand: it is ``max_pool2d(stride=1)`` on 0/1 values, which on the CPU took 318 ms
    for 8x11x288x384 (a quarter of an RGPNet training step); OR-ing shifted bool slices, rows
    then columns (the square window is separable), takes 12 ms and gives the same map.
    """
    r = kernel // 2
    for dim in (-1, -2):
        grown = mask.clone()
        n = mask.shape[dim]
        for shift in range(1, min(r, n - 1) + 1):
            grown.narrow(dim, shift, n - shift).logical_or_(mask.narrow(dim, 0, n - shift))
            grown.narrow(dim, 0, n - shift).logical_or_(mask.narrow(dim, shift, n - shift))
        mask = grown
    return mask


def border_mask(target: torch.Tensor, num_classes: int, kernel: int = 5) -> torch.Tensor:
    """[N, H, W] bool: pixels whose window holds more than one label (label relaxation's
    border pixels)."""
    return present_labels(target, num_classes, kernel).sum(1) > 1


class LabelRelaxation(nn.Module):
    """Label relaxation (Zhu et al. 2019, as RGPNet uses it with progressive resizing).

    On border pixels, whose ``kernel`` x ``kernel`` window holds several labels, the loss is
    -log of the summed probability of the labels present; elsewhere the window holds only the
    pixel's own label and this is plain cross-entropy. ``ohem_thresh`` set: OHEM selection
    over those per-pixel losses (OHEM-CE away from borders).
    """

    def __init__(
        self,
        kernel: int = 5,
        weight: torch.Tensor | None = None,
        ignore_index: int = IGNORE_INDEX,
        ohem_thresh: float | None = None,
        ohem_min_kept: int = 100_000,
    ) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"label relaxation kernel must be odd and positive, got {kernel}")
        self.kernel = kernel
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.ohem_thresh = ohem_thresh
        self.ohem_min_kept = ohem_min_kept

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """[N, H, W] relaxed loss; 0 where the pixel itself is ignored."""
        num_classes = logits.shape[1]
        valid = (target != self.ignore_index) & (target < num_classes)
        present = present_labels(torch.where(valid, target, num_classes), num_classes, self.kernel)
        # Ignored pixels count every class as present, so their (unused) loss is a finite 0 and
        # logsumexp's backward never meets an all -inf row.
        present |= ~valid.unsqueeze(1)
        log_p = F.log_softmax(logits.float(), dim=1).masked_fill(~present, float("-inf"))
        return -torch.logsumexp(log_p, dim=1) * valid

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.pixel_loss(logits, target)
        valid = (target != self.ignore_index) & (target < logits.shape[1])
        if not valid.any():
            return logits.sum() * 0.0
        w = self.weight[target[valid]] if self.weight is not None else None
        losses = loss[valid] if w is None else loss[valid] * w
        if self.ohem_thresh is not None:
            return ohem_mean(losses, self.ohem_thresh, self.ohem_min_kept)
        # the weighted mean F.cross_entropy takes, so it equals CE on border-free labels
        return losses.mean() if w is None else losses.sum() / w.sum()


class RegionMutualInformation(nn.Module):
    """RMI loss (Zhao et al. 2019, "Region Mutual Information Loss for Semantic Segmentation").

    Follows the authors' reference (ZJULearning/RMI, losses/rmi/rmi.py, ``forward_sigmoid``
    with their training settings: radius 3, average pooling 4 with stride 4 and padding 2,
    lambda 0.5): ``bce_weight`` x per-class sigmoid BCE plus (1 - ``bce_weight``) x the RMI
    lower bound. The bound treats each pixel's radius x radius neighbourhood of one class as a
    9-d vector, Y from the one-hot labels and P from the sigmoid probabilities, and minimises
    1/2 log det(Cov(Y) - Cov(Y,P) Cov(P)^-1 Cov(Y,P)^T), the posterior variance of Y given P
    (covariances not divided by the point count, as in the reference, to avoid underflow), per
    class averaged over the batch, divided by the dimension and summed over classes. Computed
    in float64 like the reference; neighbourhoods come from ``unfold`` rather than slicing.
    """

    POS_ALPHA = 5e-4  # keeps the covariance matrices positive definite
    CLIP_MIN = 1e-6

    def __init__(
        self,
        radius: int = 3,
        pool: int = 4,
        bce_weight: float = 0.5,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        if radius < 1 or pool < 1:
            raise ValueError(f"RMI radius and pool must be positive, got {radius}, {pool}")
        self.radius = radius
        self.pool = pool
        self.bce_weight = bce_weight
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        num_classes = logits.shape[1]
        valid = (target != self.ignore_index) & (target < num_classes)
        mask = valid.unsqueeze(1).float()
        onehot = one_hot_nchw(torch.where(valid, target, num_classes), num_classes).float()
        loss = logits.new_zeros(())
        if self.bce_weight > 0:
            bce = F.binary_cross_entropy_with_logits(logits, onehot, weight=mask, reduction="sum")
            bce = bce / (valid.sum() + 1.0)
            loss = loss + self.bce_weight * bce
        if self.bce_weight < 1:
            probs = logits.sigmoid() * mask + self.CLIP_MIN
            loss = loss + (1 - self.bce_weight) * self.lower_bound(onehot, probs)
        return loss

    def lower_bound(self, labels: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        if self.pool > 1:
            pad = self.pool // 2
            labels = F.avg_pool2d(labels, self.pool, self.pool, padding=pad)
            probs = F.avg_pool2d(probs, self.pool, self.pool, padding=pad)
        n, c, h, w = labels.shape
        if min(h, w) < self.radius:
            raise ValueError(
                f"RMI needs at least {self.radius} x {self.radius} cells after pooling by "
                f"{self.pool}; the prediction is {h} x {w}"
            )
        d = self.radius * self.radius
        # [N, C*d, L] with channels outermost -> [N, C, d, L]: one d-vector per position.
        y = F.unfold(labels, self.radius).view(n, c, d, -1).double()
        p = F.unfold(probs, self.radius).view(n, c, d, -1).double()
        y = y - y.mean(-1, keepdim=True)
        p = p - p.mean(-1, keepdim=True)
        eye = torch.eye(d, dtype=y.dtype, device=y.device) * self.POS_ALPHA
        cov_y = y @ y.transpose(-2, -1)
        cov_p = p @ p.transpose(-2, -1)
        cov_yp = y @ p.transpose(-2, -1)
        posterior = cov_y - cov_yp @ torch.linalg.solve(cov_p + eye, cov_yp.transpose(-2, -1))
        chol = torch.linalg.cholesky(posterior + eye)
        log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1) + 1e-8).sum(-1)
        per_class = (0.5 * log_det).mean(0) / d  # [C]
        return per_class.sum().float()


class SoftTargetCrossEntropy(nn.Module):
    """Pixel-wise distillation (Hinton et al. 2015; Liu et al. 2019 for segmentation):
    cross-entropy to a teacher's probabilities, which has the KL divergence's gradient.

    ``soft``: NxHxWxC uint8 probabilities x 255 (as :mod:`seg_ros.training.teacher` stores them);
    all-zero pixels (crop padding) have no target and are left out.
    """

    def forward(self, logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        target = soft.permute(0, 3, 1, 2).float()
        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(logits, target.shape[-2:], mode="bilinear", align_corners=False)
        total = target.sum(1)
        valid = total > 0
        if not valid.any():
            return logits.sum() * 0.0
        target = target / total.clamp_min(1.0).unsqueeze(1)
        per_pixel = -(target * logits.float().log_softmax(1)).sum(1)
        return per_pixel[valid].mean()


class SegmentationLoss(nn.Module):
    """Sum of main-output losses plus weighted auxiliary-output losses.

    Takes a model's ``TrainOutput`` (or bare logits); its aux output, where the model has one,
    is scored with ``aux_losses`` (the same losses as the main output when not given).
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

    def forward(self, outputs: torch.Tensor | TrainOutput, target: torch.Tensor):
        out = as_train_output(outputs)
        loss = sum(f(out.logits, target) for f in self.main_losses)
        if out.aux is not None:
            loss = loss + self.aux_weight * sum(f(out.aux, target) for f in self.aux_losses)
        return loss


def build_loss(
    main: Sequence[str] = ("ce",),
    aux: Sequence[str] = (),
    aux_weight: float = 1.0,
    class_weights: torch.Tensor | None = None,
    ohem_thresh: float = 0.7,
    ohem_min_kept: int = 100_000,
    relax_kernel: int = 5,
    rmi_radius: int = 3,
    rmi_pool: int = 4,
    rmi_bce_weight: float = 0.5,
) -> SegmentationLoss:
    """Build a loss from names (summed): ``ce``, ``ohem_ce``, ``label_relaxation``,
    ``ohem_label_relaxation``, ``rmi``. DESANet's is ``main=[ohem_ce, rmi], aux=[ohem_ce]``."""

    def make(name: str) -> nn.Module:
        if name == "ce":
            return CrossEntropy(class_weights)
        if name == "ohem_ce":
            return OhemCrossEntropy(ohem_thresh, ohem_min_kept, class_weights)
        if name == "label_relaxation":
            return LabelRelaxation(relax_kernel, class_weights)
        if name == "ohem_label_relaxation":
            return LabelRelaxation(
                relax_kernel, class_weights, ohem_thresh=ohem_thresh, ohem_min_kept=ohem_min_kept
            )
        if name == "rmi":
            return RegionMutualInformation(rmi_radius, rmi_pool, rmi_bce_weight)
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(LOSS_NAMES)}")

    return SegmentationLoss([make(n) for n in main], [make(n) for n in aux], aux_weight)


LOSS_NAMES = ("ce", "ohem_ce", "label_relaxation", "ohem_label_relaxation", "rmi")
