"""RGPNet: asymmetric encoder-decoder with an adaptor (Arani et al.).

A heavy encoder (ResNet-18/50/101 or HarDNet-39DS) gives C2..C5 at strides 4..32. Transfer
layers map them to fixed widths 64, 128, 256, 512; the adaptor mixes each level with the one
below it (strided conv) and the decoder output above it (transposed conv), eq. (1) of the paper;
a light decoder of weight-shared residual blocks runs top-down from 1/32 to 1/4, where a 1x1
classifier and a bilinear x4 upsampling give the logits. Layer widths: docs/MODELS.md.

Parameters: 17,764,811 (ResNet-18, 11 classes; paper 17.7M), 50,133,459 (ResNet-101, 19
classes; paper 50.1M), 9,442,109 (HarDNet-39DS, 65 classes; paper 9.4M).

Any input size works: the image is zero-padded (after normalisation) at the bottom/right to a
multiple of 32, the encoder's output stride, and the logits are cropped back to the input size.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from seg_ros.compat import zip_strict
from seg_ros.models.backbones import hardnet39ds_features, resnet_features
from seg_ros.models.common import ConvBNReLU, TrainOutput, pad_to_multiple

WIDTHS = (64, 128, 256, 512)  # decoder widths at strides 4, 8, 16, 32, for every backbone


class Transfer(nn.Sequential):
    """1x1 conv, BN, ReLU: encoder width to decoder width.

    The conv bias is redundant before BN, but the paper's parameter counts include it.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Up(nn.Sequential):
    """3x3 stride-2 transposed conv (exactly x2 in size), BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.ConvTranspose2d(in_channels, out_channels, 3, 2, 1, output_padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SharedResidualBlock(nn.Module):
    """Basic residual block whose two 3x3 convs are one weight tensor, with separate BNs:
    ``ReLU(x + BN2(W * ReLU(BN1(W * x))))``. Halves the decoder's weights at the same depth.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv(x)))
        return self.relu(x + self.bn2(self.conv(y)))


class RGPNet(nn.Module):
    """RGPNet around a given encoder.

    ``backbone`` returns its maps at strides 4, 8, 16, 32 and lists their widths in
    ``channels`` (``backbones.ResNetFeatures``, ``backbones.HarDNetFeatures``). Returns N x C x
    H x W logits in eval mode and ``TrainOutput(logits)`` in training mode (no aux head).
    """

    output_stride = 32

    def __init__(self, backbone: nn.Module, num_classes: int = 19) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = backbone
        w2, w3, w4, w5 = WIDTHS
        self.transfer = nn.ModuleList(
            Transfer(c, w) for c, w in zip_strict(self.backbone.channels, WIDTHS)
        )
        # down[i] brings level i+2 to level i+3, up[i] brings level i+3 to level i+2.
        self.down = nn.ModuleList(ConvBNReLU(a, b, 3, 2) for a, b in ((w2, w3), (w3, w4), (w4, w5)))
        self.up = nn.ModuleList(Up(b, a) for a, b in ((w2, w3), (w3, w4), (w4, w5)))
        self.decoder = nn.ModuleList(SharedResidualBlock(w) for w in WIDTHS)
        self.classifier = nn.Conv2d(w2, num_classes, 1)
        for module in (self.transfer, self.down, self.up, self.decoder):
            for m in module.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    # torchvision's ResNet init, so encoder and decoder start at one scale.
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor | TrainOutput:
        h, w = x.shape[-2:]
        features = self.backbone(pad_to_multiple(x, self.output_stride))
        t2, t3, t4, t5 = (t(c) for t, c in zip_strict(self.transfer, features))
        f2, f3, f4, f5 = self.decoder
        d5 = f5(t5 + self.down[2](t4))
        d4 = f4(t4 + self.down[1](t3) + self.up[2](d5))
        d3 = f3(t3 + self.down[0](t2) + self.up[1](d4))
        d2 = f2(t2 + self.up[0](d3))
        logits = F.interpolate(
            self.classifier(d2), scale_factor=4.0, mode="bilinear", align_corners=False
        )
        logits = logits[..., :h, :w]
        return TrainOutput(logits) if self.training else logits


def rgpnet_resnet18(num_classes: int = 19, *, backbone_weights: str | Path | None = None) -> RGPNet:
    """RGPNet-R18, the papers' main variant (17.8M parameters with 11 classes).

    Args:
        num_classes: output classes.
        backbone_weights: a user-given torchvision ImageNet ResNet-18 state dict for the
            encoder (safetensors or .pth); never downloaded.
    """
    return RGPNet(resnet_features(18, backbone_weights), num_classes)


def rgpnet_resnet50(num_classes: int = 19, *, backbone_weights: str | Path | None = None) -> RGPNet:
    """RGPNet-R50.

    Args:
        num_classes: output classes.
        backbone_weights: a user-given torchvision ImageNet ResNet-50 state dict.
    """
    return RGPNet(resnet_features(50, backbone_weights), num_classes)


def rgpnet_resnet101(
    num_classes: int = 19, *, backbone_weights: str | Path | None = None
) -> RGPNet:
    """RGPNet-R101 (50.1M parameters with 19 classes).

    Args:
        num_classes: output classes.
        backbone_weights: a user-given torchvision ImageNet ResNet-101 state dict.
    """
    return RGPNet(resnet_features(101, backbone_weights), num_classes)


def rgpnet_hardnet39ds(
    num_classes: int = 19, *, backbone_weights: str | Path | None = None
) -> RGPNet:
    """RGPNet with a HarDNet-39DS encoder (9.4M parameters with 65 classes).

    Args:
        num_classes: output classes.
        backbone_weights: a user-given ImageNet checkpoint of the reference HarDNet-39DS.
    """
    return RGPNet(hardnet39ds_features(backbone_weights), num_classes)
