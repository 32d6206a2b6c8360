"""Model evaluation on a dataset split: single scale, or multi-scale with flip."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seg_ros.compat import zip_strict
from seg_ros.training.datasets import SegmentationDataset
from seg_ros.training.metrics import ConfusionMatrix


def normalise(batch: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW (channels_last memory, no copy of the layout)."""
    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def _logits(model: nn.Module, x: torch.Tensor, amp_dtype: torch.dtype | None) -> torch.Tensor:
    with torch.autocast(
        x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
    ):
        out = model(x)
    if isinstance(out, (tuple, list)):  # a model left in training mode: (main, aux, ...)
        out = out[0]
    return out.float()


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    x: torch.Tensor,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    amp_dtype: torch.dtype | None = None,
    output_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Softmax probabilities at ``output_size`` (default: the input's), averaged over scales
    (and horizontal flips)."""
    h, w = output_size or tuple(x.shape[-2:])
    total = None
    for s in scales:
        xs = (
            x
            if s == 1.0
            else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        )
        views = [xs, xs.flip(-1)] if flip else [xs]
        for i, v in enumerate(views):
            logits = _logits(model, v, amp_dtype)
            if i == 1:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, (h, w), mode="bilinear", align_corners=False)
            p = logits.softmax(1)
            total = p if total is None else total + p
    return total


@torch.no_grad()
def predict_labels(
    model: nn.Module,
    x: torch.Tensor,
    output_size: tuple[int, int],
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """[N, H, W] class ids at ``output_size``."""
    if len(scales) == 1 and scales[0] == 1.0 and not flip:
        logits = _logits(model, x, amp_dtype)
        if logits.shape[-2:] != tuple(output_size):
            logits = F.interpolate(logits, output_size, mode="bilinear", align_corners=False)
        return logits.argmax(1)
    return predict_probabilities(model, x, scales, flip, amp_dtype, output_size).argmax(1)


def evaluate(
    model: nn.Module,
    dataset: SegmentationDataset,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = True,
    progress: bool = False,
    input_size: tuple[int, int] | None = None,
    indices: Iterable[int] | None = None,
) -> ConfusionMatrix:
    """Confusion matrix of ``model`` over ``dataset`` (void ignored).

    Frames run at their own size, or resized to ``input_size`` (height, width); predictions are
    scored at the label's resolution either way. ``indices``: a subset of the frames (each
    process of a distributed run takes its own share).
    """
    device = torch.device(device)
    model.eval()
    mean_t = torch.tensor(mean, device=device)
    std_t = torch.tensor(std, device=device)
    cm = ConfusionMatrix(dataset.label_set.num_classes)
    frames: Iterable[int] = range(len(dataset)) if indices is None else list(indices)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc=f"eval {dataset.name}", leave=False)
    for i in frames:
        image, label = dataset[i]
        x = normalise(torch.from_numpy(image)[None].to(device), mean_t, std_t)
        if input_size is not None and tuple(x.shape[-2:]) != tuple(input_size):
            x = F.interpolate(x, tuple(input_size), mode="bilinear", align_corners=False)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        prediction = predict_labels(model, x, label.shape, scales, flip, amp_dtype)
        cm.update(prediction, torch.from_numpy(label))
    return cm


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
    truth = cm.matrix.sum(1).numpy()
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
