"""DCNv1 as bilinear sampling + one 1x1 convolution, for the CPU.

torchvision's CPU ``deform_conv2d`` samples pixel by pixel in scalar code and has no bf16
kernel: at 512x1024 it is about a quarter of DESANet's time on one core. The same operator is
``grid_sample`` of the input at the kh*kw offset positions (vectorised) followed by a 1x1 conv
over the stacked samples (oneDNN, bf16/AMX where the model runs in bf16).

Sampling follows torchvision's kernel: bilinear, with every neighbour outside the image read
as zero, which is ``grid_sample(padding_mode="zeros", align_corners=True)`` in pixel units.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class SampledDeformConv2d(nn.Module):
    """Drop-in replacement for ``torchvision.ops.DeformConv2d`` (no mask, groups 1)."""

    def __init__(self, dcn: Any) -> None:
        super().__init__()
        out_channels, in_channels, kh, kw = dcn.weight.shape
        self.kernel = (kh, kw)
        self.stride = _pair(dcn.stride)
        self.padding = _pair(dcn.padding)
        self.dilation = _pair(dcn.dilation)
        # (O, C, kh, kw) -> (O, C*kh*kw, 1, 1): channel c*K + k, the layout grid_sample gives.
        self.weight = nn.Parameter(
            dcn.weight.detach().reshape(out_channels, in_channels * kh * kw, 1, 1).clone(),
            requires_grad=False,
        )
        self.bias = (
            None
            if dcn.bias is None
            else nn.Parameter(dcn.bias.detach().clone(), requires_grad=False)
        )

    @staticmethod
    def supports(dcn: Any) -> bool:
        return getattr(dcn, "groups", 1) == 1

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: Any = None) -> torch.Tensor:
        if mask is not None:
            raise ValueError("SampledDeformConv2d implements DCNv1 (no modulation mask)")
        n, _, h, w = x.shape
        kh, kw = self.kernel
        k = kh * kw
        ho, wo = offset.shape[-2:]
        if offset.shape[1] != 2 * k:
            raise ValueError(
                f"expected {2 * k} offset channels (one offset group), got {offset.shape[1]}"
            )
        offset = offset.float().reshape(n, k, 2, ho, wo)
        dev = x.device
        tap_y = (torch.arange(kh, device=dev) * self.dilation[0]).repeat_interleave(kw)
        tap_x = (torch.arange(kw, device=dev) * self.dilation[1]).repeat(kh)
        base_y = torch.arange(ho, device=dev) * self.stride[0] - self.padding[0]
        base_x = torch.arange(wo, device=dev) * self.stride[1] - self.padding[1]
        py = base_y.view(1, 1, ho, 1) + tap_y.view(1, k, 1, 1) + offset[:, :, 0]
        px = base_x.view(1, 1, 1, wo) + tap_x.view(1, k, 1, 1) + offset[:, :, 1]
        grid = torch.stack(
            (px * (2.0 / max(w - 1, 1)) - 1.0, py * (2.0 / max(h - 1, 1)) - 1.0), -1
        ).reshape(n, k * ho, wo, 2)
        sampled = F.grid_sample(
            x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )  # (N, C, K*Ho, Wo) -> (N, C*K, Ho, Wo): a view, matching the weight layout
        sampled = sampled.reshape(n, -1, ho, wo).to(self.weight.dtype)
        sampled = sampled.contiguous(memory_format=torch.channels_last)
        return F.conv2d(sampled, self.weight, self.bias)


def replace_deform_convs(model: nn.Module) -> list[str]:
    """Swap every supported torchvision DeformConv2d in ``model`` for the sampled form."""
    from torchvision.ops import DeformConv2d

    replaced = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, DeformConv2d) and SampledDeformConv2d.supports(child):
                setattr(module, child_name, SampledDeformConv2d(child))
                replaced.append(f"{name}.{child_name}" if name else child_name)
    return replaced


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))
