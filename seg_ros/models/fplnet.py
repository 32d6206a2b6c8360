"""FPLNet: Factorized Pyramidal Learning network (Atif et al.).

Ultra-light encoder-decoder trained from scratch. The layer plan follows Table II of the paper
as summarised in docs/MODELS.md; with 20 classes the encoder-only form has 419,931 parameters
(paper: 419,994) and the full network 499,887 (paper: 0.49M).

Any input size works: the image is zero-padded (after normalisation) at the bottom/right to a
multiple of 8, the network's output stride, and the logits are cropped back to the input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from seg_ros.models.common import TrainOutput, pad_to_multiple

FUSIONS = ("pairwise", "stage1")


class BR(nn.Sequential):
    """BatchNorm (eps 1e-3) followed by a per-channel PReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(channels, eps=1e-3), nn.PReLU(channels))


class ConvBR(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), BR(out_channels)
        )


class FactorizedBranch(nn.Sequential):
    """One pyramid branch: 3x1 and 1x3 dilated convs with a PReLU between them."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__(
            nn.Conv2d(
                channels,
                channels,
                (3, 1),
                padding=(dilation, 0),
                dilation=(dilation, 1),
                bias=False,
            ),
            nn.PReLU(channels),
            nn.Conv2d(
                channels,
                channels,
                (1, 3),
                padding=(0, dilation),
                dilation=(1, dilation),
                bias=False,
            ),
        )


class FPLModule(nn.Module):
    """Factorized Pyramidal Learning module (also the downsampler, with ``stride=2``).

    1x1 reduction to C/n, a symmetric 3x3 (pyramid stage 1), n parallel factorized dilated
    branches, parameter-free Pairwise Feature Fusion, concatenation back to C, identity residual
    when the shapes match, BR.

    ``fusion="pairwise"`` fuses adjacent branches: [b1, b1+b2, b2+b3, b3+b4] (the default, an
    inference from the paper's text); ``fusion="stage1"`` adds the 3x3 output to every branch.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        dilations: Sequence[int] = (1, 2, 4, 8),
        fusion: str = "pairwise",
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if out_channels % len(dilations):
            raise ValueError(
                f"out_channels={out_channels} is not divisible by {len(dilations)} branches"
            )
        q = out_channels // len(dilations)
        self.fusion = fusion
        self.reduce = nn.Conv2d(in_channels, q, 1, bias=False)
        self.conv = nn.Conv2d(q, q, 3, stride, 1, bias=False)
        self.branches = nn.ModuleList(FactorizedBranch(q, d) for d in dilations)
        self.residual = stride == 1 and in_channels == out_channels
        self.out = BR(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.reduce(x))
        b = [branch(y) for branch in self.branches]
        if self.fusion == "pairwise":
            fused = [b[0]] + [b[i - 1] + b[i] for i in range(1, len(b))]
        else:
            fused = [bi + y for bi in b]
        out = torch.cat(fused, 1)
        if self.residual:
            out = out + x
        return self.out(out)


class FPLEncoder(nn.Module):
    """Stages 1-3 with the image pyramid and the FIR units; returns 259 channels at 1/8."""

    def __init__(
        self,
        blocks: tuple[int, int] = (4, 8),
        dilations: Sequence[int] = (1, 2, 4, 8),
        fusion: str = "pairwise",
    ) -> None:
        super().__init__()

        def fpl(cin: int, cout: int, stride: int = 1) -> FPLModule:
            return FPLModule(cin, cout, stride, dilations, fusion)

        self.pool = nn.AvgPool2d(3, 2, 1)
        self.stage1 = nn.Sequential(ConvBR(3, 32, 2), ConvBR(32, 32), ConvBR(32, 32))
        self.stage1_out = BR(35)
        self.down2 = fpl(35, 64, 2)
        self.stage2 = nn.Sequential(*(fpl(64, 64) for _ in range(blocks[0])))
        self.fir2 = BR(131)
        self.down3 = fpl(131, 128, 2)
        self.stage3 = nn.Sequential(*(fpl(128, 128) for _ in range(blocks[1])))
        self.fir3 = BR(259)
        self.out_channels = 259

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        img2 = self.pool(image)
        img4 = self.pool(img2)
        img8 = self.pool(img4)
        x = self.stage1_out(torch.cat([self.stage1(image), img2], 1))
        shallow = self.down2(x)
        deep = self.stage2(shallow)
        x = self.fir2(torch.cat([shallow + deep, deep, img4], 1))
        shallow = self.down3(x)
        deep = self.stage3(shallow)
        return self.fir3(torch.cat([shallow + deep, deep, img8], 1))


class FPLDecoder(nn.Sequential):
    """Purely sequential decoder (no skips): 1/8 -> 1/4 -> 1/2 -> 1/1."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dilations: Sequence[int] = (1, 2, 4, 8),
        fusion: str = "pairwise",
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 64, 1, bias=False),
            BR(64),
            nn.ConvTranspose2d(64, 64, 3, 2, 1, output_padding=1, bias=False),
            BR(64),
            FPLModule(64, 64, 1, dilations, fusion),
            FPLModule(64, 64, 1, dilations, fusion),
            nn.ConvTranspose2d(64, 16, 3, 2, 1, output_padding=1, bias=False),
            BR(16),
            FPLModule(16, 16, 1, dilations, fusion),
            FPLModule(16, 16, 1, dilations, fusion),
            nn.ConvTranspose2d(16, num_classes, 2, 2),
        )


class FPLNet(nn.Module):
    """FPLNet, full (encoder + decoder) or encoder-only (1x1 classifier, bilinear x8).

    The encoder's parameter names are the same in both forms, so the second training stage
    loads the first stage's encoder with ``load_state_dict(..., strict=False)``. Returns the
    logits in eval mode and ``TrainOutput(logits)`` in training mode (no aux head).
    """

    output_stride = 8

    def __init__(
        self,
        num_classes: int = 19,
        encoder_only: bool = False,
        blocks: tuple[int, int] = (4, 8),
        dilations: Sequence[int] = (1, 2, 4, 8),
        fusion: str = "pairwise",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.encoder_only = encoder_only
        self.encoder = FPLEncoder(blocks, dilations, fusion)
        if encoder_only:
            self.head = nn.Conv2d(self.encoder.out_channels, num_classes, 1)
        else:
            self.decoder = FPLDecoder(self.encoder.out_channels, num_classes, dilations, fusion)

    def forward(self, x: torch.Tensor) -> torch.Tensor | TrainOutput:
        h, w = x.shape[-2:]
        features = self.encoder(pad_to_multiple(x, self.output_stride))
        if self.encoder_only:
            logits = nn.functional.interpolate(
                self.head(features), scale_factor=8.0, mode="bilinear", align_corners=False
            )
        else:
            logits = self.decoder(features)
        logits = logits[..., :h, :w]
        return TrainOutput(logits) if self.training else logits


def fplnet(
    num_classes: int = 19,
    *,
    blocks: tuple[int, int] = (4, 8),
    dilations: Sequence[int] = (1, 2, 4, 8),
    fusion: str = "pairwise",
) -> FPLNet:
    """FPLNet with its decoder (0.49M parameters with 20 classes); the shipped model.

    Args:
        num_classes: output classes.
        blocks: FPL modules in stages 2 and 3.
        dilations: the pyramid's branch dilations (their count divides every width).
        fusion: ``"pairwise"`` (adjacent branches) or ``"stage1"`` (see ``FPLModule``).
    """
    return FPLNet(num_classes, False, blocks, dilations, fusion)


def fplnet_encoder(
    num_classes: int = 19,
    *,
    blocks: tuple[int, int] = (4, 8),
    dilations: Sequence[int] = (1, 2, 4, 8),
    fusion: str = "pairwise",
) -> FPLNet:
    """FPLNet's encoder with a 1x1 classifier and bilinear x8 (the paper's first stage).

    Args:
        num_classes: output classes.
        blocks: FPL modules in stages 2 and 3.
        dilations: the pyramid's branch dilations.
        fusion: ``"pairwise"`` or ``"stage1"``.
    """
    return FPLNet(num_classes, True, blocks, dilations, fusion)
