"""Building blocks shared by the three networks, and their one train-mode output."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """The "CBR" of the papers (docs/MODELS.md): bias-free conv, BatchNorm, ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int = 1,
        dilation: int | tuple[int, int] = 1,
    ) -> None:
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        d = (dilation, dilation) if isinstance(dilation, int) else dilation
        padding = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
        super().__init__(
            nn.Conv2d(in_channels, out_channels, k, stride, padding, d, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the bottom and right of an NCHW tensor up to a multiple of ``multiple``.

    The input is already normalised, so zero is the dataset's mean colour: the padding looks
    like a neutral border, not like black. Sizes stay symbolic so ONNX export keeps dynamic
    height and width.
    """
    h, w = x.shape[-2:]
    pad_h = (multiple - h % multiple) % multiple
    pad_w = (multiple - w % multiple) % multiple
    if isinstance(pad_h, int) and isinstance(pad_w, int) and pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h))


class TrainOutput(NamedTuple):
    """What every network returns in training mode; in eval mode it returns ``logits`` alone
    (the form export and inference see).

    ``aux`` is the auxiliary head's logits at the input size (DESANet), else ``None``.
    """

    logits: torch.Tensor
    aux: torch.Tensor | None = None


def as_train_output(outputs: torch.Tensor | TrainOutput | tuple) -> TrainOutput:
    """A network's output in either mode as a ``TrainOutput`` (a bare tensor has no aux)."""
    if isinstance(outputs, torch.Tensor):
        return TrainOutput(outputs)
    return TrainOutput(*outputs)
