"""Model evaluation on a dataset split: single scale, or multi-scale with flip."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seg_ros.metrics import ConfusionMatrix
from seg_ros.models.common import as_train_output
from seg_ros.training.datasets import SegmentationDataset


def normalise(batch: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW (channels_last memory, no copy of the layout)."""
    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def _logits(model: nn.Module, x: torch.Tensor, amp_dtype: torch.dtype | None) -> torch.Tensor:
    with torch.autocast(
        x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
    ):
        out = model(x)
    # A model left in training mode returns a TrainOutput.
    return as_train_output(out).logits.float()


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
