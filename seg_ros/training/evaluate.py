"""Model evaluation on a dataset split: single scale, or multi-scale with flip."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seg_ros.training.datasets import SegmentationDataset
from seg_ros.training.metrics import ConfusionMatrix


def normalise(batch: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW (channels_last memory, no copy of the layout)."""
    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    x: torch.Tensor,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Softmax probabilities at the input size, averaged over scales (and flips)."""
    h, w = x.shape[-2:]
    total = None
    for s in scales:
        xs = (
            x
            if s == 1.0
            else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        )
        views = [xs, xs.flip(-1)] if flip else [xs]
        for i, v in enumerate(views):
            with torch.autocast(
                x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
            ):
                logits = model(v)
            logits = logits.float()
            if i == 1:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, (h, w), mode="bilinear", align_corners=False)
            p = logits.softmax(1)
            total = p if total is None else total + p
    return total


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
) -> ConfusionMatrix:
    """Confusion matrix of ``model`` over ``dataset`` (frames at their own size, void ignored)."""
    device = torch.device(device)
    model.eval()
    mean_t = torch.tensor(mean, device=device)
    std_t = torch.tensor(std, device=device)
    cm = ConfusionMatrix(dataset.label_set.num_classes)
    indices = range(len(dataset))
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"eval {dataset.name}", leave=False)
    for i in indices:
        image, label = dataset[i]
        x = normalise(torch.from_numpy(image)[None].to(device), mean_t, std_t)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if len(scales) == 1 and scales[0] == 1.0 and not flip:
            with (
                torch.no_grad(),
                torch.autocast(
                    device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
                ),
            ):
                prediction = model(x).argmax(1)
        else:
            prediction = predict_probabilities(model, x, scales, flip, amp_dtype).argmax(1)
        cm.update(prediction, torch.from_numpy(label))
    return cm
