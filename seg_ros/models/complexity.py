"""Parameter and multiply-accumulate counts, without running the network.

MACs are counted by torch's FlopCounterMode on the meta device, so a 1024x2048 ResNet-101
costs no memory or compute; torchvision's deformable conv is not in torch's table, so its
formula comes from ``deform.py``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, include_aux: bool = False) -> int:
    """Parameters of the deployed network: training-only heads (``aux_head*``) are left out,
    as the papers count them."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if include_aux or not name.startswith("aux_head")
    )


def count_macs(
    name: str,
    variant: str | None,
    input_size: tuple[int, int],
    num_classes: int = 19,
    **options: object,
) -> int:
    """Multiply-accumulates of one eval-mode forward pass at ``input_size`` (height, width)."""
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)

    from seg_ros.models.deform import flop_formulas
    from seg_ros.models.registry import build_model

    with torch.device("meta"):
        model = build_model(name, variant, num_classes, **options).eval()
        x = torch.empty(1, 3, *input_size)
    counter = FlopCounterMode(display=False, custom_mapping=flop_formulas())
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2
