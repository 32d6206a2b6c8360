"""HarDNet-39DS and HarDNet-68DS (Chao et al., "HarDNet: A Low Memory Traffic Network").

Written from the reference definition (PingoLH/Pytorch-HarDNet, ``hardnet.py``) because timm
has no HarDNet. Only the depthwise-separable ("DS") forms are here: a 3x3 conv at stride 2, a
1x1 conv, a depthwise 3x3 at stride 2, then Harmonic Dense Blocks, each followed by a 1x1
transition and, where the architecture says so, a depthwise 3x3 at stride 2. Inside a block
every layer is a 1x1 conv + BN + ReLU6 followed by a depthwise 3x3 + BN (no activation).

Parameter names equal the reference's (``base.<i>.layers.<j>.layer1.conv.weight`` ...), so its
ImageNet checkpoints load unchanged. With a 1000-class head HarDNet-39DS has 3,488,228
parameters and HarDNet-68DS 4,180,602 (published: 3.5M and 4.2M).

Feature taps are the output of the last layer at each stride:

=========== ======================= ================================================
network     stride: channels        taps (index into ``base``)
=========== ======================= ================================================
39DS        4: 96, 8: 320,          1x1 transitions after HDB 1-4 (``base`` 4, 7, 10,
            16: 640, 32: 1024       13)
68DS        4: 128, 8: 320,         transitions after HDB 1, 3, 4, 5 (``base`` 4, 9, 12,
            16: 640, 32: 1024       15); HDB 2 and its 256-channel transition are at 1/8
                                    too, before HDB 3
68DS,       4: 128, 8: 320,         as above for 1/4 - 1/16; 1/32 is the depthwise
drop last   16: 640, 32: 640        stride-2 conv after the 640 transition (``base``
                                    13): the last HDB and its 1x1->1024 are left out
=========== ======================= ================================================
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from seg_ros.compat import zip_strict


class ConvLayer(nn.Sequential):
    """Bias-free conv, BN, ReLU6 (the reference's activation)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False
        )
        self.norm = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU6(inplace=True)


class DWConvLayer(nn.Sequential):
    """Depthwise 3x3 conv + BN; no activation, as in the reference."""

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)
        self.norm = nn.BatchNorm2d(channels)


class CombConvLayer(nn.Sequential):
    """The depthwise-separable layer of a DS block: 1x1 ConvLayer, then depthwise 3x3."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.layer1 = ConvLayer(in_channels, out_channels, 1)
        self.layer2 = DWConvLayer(out_channels)


def harmonic_links(
    layer: int, base_channels: int, growth: int, multiplier: float
) -> tuple[int, int, list[int]]:
    """Inputs and width of layer ``layer`` (1-based; 0 is the block input) of a HarDBlock.

    Layer k takes layer k - 2^i for every 2^i dividing k; its width is the growth rate times
    ``multiplier`` once per link beyond the first, rounded to an even number. Returns
    ``(out_channels, in_channels, links)``.
    """
    if layer == 0:
        return base_channels, 0, []
    links = [layer - 2**i for i in range(10) if layer % 2**i == 0]
    width = growth * multiplier ** (len(links) - 1)
    # Same rounding as the reference, so checkpoint shapes match.
    out_channels = int(int(width + 1) / 2) * 2
    in_channels = sum(harmonic_links(k, base_channels, growth, multiplier)[0] for k in links)
    return out_channels, in_channels, links


class HarDBlock(nn.Module):
    """Harmonic Dense Block (DS form); outputs the odd layers and the last one, concatenated.

    The block input is not part of the output (the reference's ``keepBase=False``).
    """

    def __init__(self, in_channels: int, growth: int, multiplier: float, n_layers: int) -> None:
        super().__init__()
        self.links: list[list[int]] = []
        layers = []
        self.out_channels = 0
        for i in range(1, n_layers + 1):
            out_ch, in_ch, links = harmonic_links(i, in_channels, growth, multiplier)
            self.links.append(links)
            layers.append(CombConvLayer(in_ch, out_ch))
            if i % 2 == 1 or i == n_layers:
                self.out_channels += out_ch
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for links, layer in zip_strict(self.links, self.layers):
            inputs = [outputs[k] for k in links]
            outputs.append(layer(inputs[0] if len(inputs) == 1 else torch.cat(inputs, 1)))
        last = len(outputs) - 1
        return torch.cat([t for i, t in enumerate(outputs) if i % 2 == 1 or i == last], 1)


class Arch(NamedTuple):
    stem: tuple[int, int]
    transitions: tuple[int, ...]  # width of the 1x1 after each block
    multiplier: float
    growth: tuple[int, ...]
    n_layers: tuple[int, ...]
    downsample: tuple[bool, ...]  # depthwise stride-2 conv after the transition


ARCHS = {
    "hardnet39ds": Arch(
        (24, 48), (96, 320, 640, 1024), 1.6, (16, 20, 64, 160), (4, 16, 8, 4), (1, 1, 1, 0)
    ),
    "hardnet68ds": Arch(
        (32, 64),
        (128, 256, 320, 640, 1024),
        1.7,
        (14, 16, 20, 40, 160),
        (8, 16, 16, 16, 4),
        (1, 0, 1, 1, 0),
    ),
}


def hardnet_layers(arch: Arch, drop_last_block: bool = False) -> tuple[list[nn.Module], list[int]]:
    """The reference's ``base`` list without its classifier, and each module's output stride."""
    c0, c1 = arch.stem
    layers: list[nn.Module] = [ConvLayer(3, c0, 3, 2), ConvLayer(c0, c1, 1), DWConvLayer(c1, 2)]
    strides = [2, 2, 4]
    channels = c1
    n_blocks = len(arch.n_layers) - int(drop_last_block)
    for i in range(n_blocks):
        block = HarDBlock(channels, arch.growth[i], arch.multiplier, arch.n_layers[i])
        channels = arch.transitions[i]
        layers += [block, ConvLayer(block.out_channels, channels, 1)]
        strides += [strides[-1]] * 2
        if arch.downsample[i]:
            layers.append(DWConvLayer(channels, 2))
            strides.append(strides[-1] * 2)
    return layers, strides


class HarDNet(nn.Module):
    """The reference ImageNet classifier (global pool, dropout 0.05, linear), for checking
    parameter counts and for fine-tuning a checkpoint before taking its trunk."""

    def __init__(self, arch: str = "hardnet68ds", num_classes: int = 1000) -> None:
        super().__init__()
        layers, _ = hardnet_layers(ARCHS[arch])
        head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.05),
            nn.Linear(ARCHS[arch].transitions[-1], num_classes),
        )
        self.base = nn.ModuleList([*layers, head])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.base:
            x = layer(x)
        return x


def hardnet39ds(num_classes: int = 1000) -> HarDNet:
    return HarDNet("hardnet39ds", num_classes)


def hardnet68ds(num_classes: int = 1000) -> HarDNet:
    return HarDNet("hardnet68ds", num_classes)
