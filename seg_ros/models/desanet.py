"""DESANet: dual encoder with self-attention (Chang et al., Sensors 2021).

A shallow spatial path (ending in a deformable conv) and a context path (ResNet-18 or
HarDNet-68DS) meet at 1/8 of the input; a skip from 1/4 feeds the decoder. The paper's figure is
not in its text, so the head follows the reconstruction in docs/MODELS.md. With 19 classes, the
classifier included and the auxiliary head excluded, DESANet-RN has 15,198,503 parameters
(paper: 15.3M, the reconstruction in docs/MODELS.md 15.20M) and DESANet-HN 6,128,979 (paper: 6.2M,
reconstruction 6.13M).

Choices the text leaves open, taken so that the parameter counts land (and because they are the
usual ones): every upsample is bilinear (align_corners=False); the spatial path and the context
path both reach exactly 1/8 of the padded input; the decoder's 3x3 is a CBR; scSE combines its
channel and spatial branches with an element-wise max; the strip-pooling attention keeps the full
128 channels (no reduction) and its final 1x1 conv has a bias, as in SPNet.

Any input size works: the image is zero-padded (after normalisation) at the bottom/right to a
multiple of 32, the context path's output stride, and the logits are cropped back to the input
size. In training mode ``forward`` returns ``TrainOutput(logits, aux)``, both at the input size;
in eval mode only the main logits (this is the form ONNX export sees).

The deformable conv's fp32 fallback, CPU form and ONNX export live in ``deform.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d

from seg_ros.models.backbones import hardnet68ds_features, resnet_features
from seg_ros.models.common import ConvBNReLU, TrainOutput, pad_to_multiple
from seg_ros.models.deform import (
    ONNX_MIN_OPSET,
    deform_conv_for_training,
    deform_conv_fp32,
)


def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # Sizing from the target tensor (not a scale factor) keeps the export's shapes symbolic and
    # the two paths aligned even if a backbone rounds an odd size differently.
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class SCSE(nn.Module):
    """Concurrent spatial and channel squeeze-and-excitation, combined by element-wise max."""

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        self.channel = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )
        self.spatial = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.max(x * self.channel(x), x * self.spatial(x))


class StripPoolingAttention(nn.Module):
    """Sigmoid attention map from strip pooling (Hou et al., SPNet), same shape as the input.

    Averages over the width (an H x 1 strip) and over the height (1 x W), runs a 3x1 and a 1x3
    conv along each strip, broadcasts both back to H x W and fuses them with a 1x1 conv. Unlike
    global pooling this keeps long, thin context (poles, road edges) that a single vector loses.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_h = nn.Sequential(
            nn.Conv2d(channels, channels, (3, 1), padding=(1, 0), bias=False),
            nn.BatchNorm2d(channels),
        )
        self.conv_w = nn.Sequential(
            nn.Conv2d(channels, channels, (1, 3), padding=(0, 1), bias=False),
            nn.BatchNorm2d(channels),
        )
        self.fuse = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # mean() rather than AdaptiveAvgPool2d((None, 1)): it exports as ReduceMean with
        # dynamic height and width.
        h = self.conv_h(x.mean(3, keepdim=True))
        w = self.conv_w(x.mean(2, keepdim=True))
        return torch.sigmoid(self.fuse(F.relu(h + w)))


class RefinementModule(nn.Module):
    """BiSeNet's attention refinement module with strip pooling instead of global pooling."""

    def __init__(self, in_channels: int, out_channels: int = 128) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels, 3)
        self.attention = StripPoolingAttention(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x * self.attention(x)


class FactorizedDilatedBranch(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(
            ConvBNReLU(in_channels, out_channels, (3, 1), dilation=(dilation, 1)),
            ConvBNReLU(out_channels, out_channels, (1, 3), dilation=(1, dilation)),
        )


class FASPPM(nn.Module):
    """Factorized atrous spatial pyramid pooling with strip-pooling attention and a residual."""

    def __init__(
        self, channels: int = 128, branch_channels: int = 256, rates: tuple[int, ...] = (6, 12, 18)
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvBNReLU(channels, branch_channels, 1)]
            + [FactorizedDilatedBranch(channels, branch_channels, r) for r in rates]
        )
        self.project = ConvBNReLU(branch_channels * (len(rates) + 1), channels, 1)
        self.attention = StripPoolingAttention(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(torch.cat([branch(x) for branch in self.branches], 1))
        return y * self.attention(x) + x


class FeatureFusionModule(nn.Module):
    """BiSeNet's FFM: 1x1 CBR on the concatenation, re-weighted by a channel attention."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels, 1)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.Sigmoid(),
        )

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        f = self.conv(torch.cat([spatial, context], 1))
        return f * self.attention(f) + f


class SpatialPath(nn.Module):
    """Three strided CBRs, a deformable conv and scSE; returns (1/4 map for the skip, 1/8 map)."""

    def __init__(self, channels: int = 64, out_channels: int = 128) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBNReLU(3, channels, 7, stride=2), ConvBNReLU(channels, channels, 3, stride=2)
        )
        self.down = ConvBNReLU(channels, channels, 3, stride=2)
        # DCNv1: one (dy, dx) pair per kernel tap, no modulation mask.
        self.offset = nn.Conv2d(channels, 2 * 3 * 3, 3, padding=1)
        self.deform = DeformConv2d(channels, out_channels, 3, padding=1, bias=False)
        self.deform_out = nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
        self.scse = SCSE(out_channels)
        # Zero offsets start the deformable conv as a plain 3x3 conv, as in the DCN paper.
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        quarter = self.stem(x)
        x = self.down(quarter)
        offset = self.offset(x)
        if self.training and torch.is_grad_enabled():
            x = deform_conv_for_training(self.deform, x, offset)
        else:  # eval and export keep torchvision's op (ONNX DeformConv, OpenVINO's frontend)
            x = deform_conv_fp32(self.deform, x, offset)
        return quarter, self.scse(self.deform_out(x))


class DESANet(nn.Module):
    """DESANet with a given context backbone.

    ``backbone`` returns its maps at strides 4, 8, 16, 32 and lists their widths in
    ``channels`` (``ResNetFeatures``, ``HarDNetFeatures``); the 1/8 map is not used.
    """

    output_stride = 32
    # What an ONNX exporter needs for the deformable conv (deform.py).
    onnx_min_opset = ONNX_MIN_OPSET

    def __init__(self, backbone: nn.Module, num_classes: int = 19) -> None:
        super().__init__()
        self.num_classes = num_classes
        c2, _, c4, c5 = backbone.channels
        self.backbone = backbone
        self.spatial = SpatialPath(64, 128)
        self.refine32 = RefinementModule(c5, 128)
        self.fasppm = FASPPM(128, 256)
        self.up16 = ConvBNReLU(128, 128, 3)
        self.refine16 = RefinementModule(c4, 128)
        self.up8 = ConvBNReLU(128, 128, 3)
        self.context_scse = SCSE(128)
        self.ffm = FeatureFusionModule(256, 256)
        self.fuse = ConvBNReLU(256, 256, 3)
        self.skip = nn.Sequential(
            ConvBNReLU(c2 + 64, 64, 3, dilation=1),
            ConvBNReLU(64, 64, 3, dilation=3),
            ConvBNReLU(64, 64, 3, dilation=6),
        )
        self.decoder = ConvBNReLU(256 + 64, 128, 3)
        self.classifier = nn.Conv2d(128, num_classes, 1)
        self.aux_head = nn.Sequential(ConvBNReLU(128, 64, 3), nn.Conv2d(64, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor | TrainOutput:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.output_stride)
        spatial4, spatial8 = self.spatial(x)
        c2, _, c4, c5 = self.backbone(x)

        r32 = self.fasppm(self.refine32(c5))
        r16 = self.up16(_upsample(r32, c4)) + self.refine16(c4)
        context8 = self.context_scse(self.up8(_upsample(r16, spatial8)))

        fused = self.fuse(self.ffm(spatial8, context8))
        skip = self.skip(torch.cat([c2, spatial4], 1))
        y = self.decoder(torch.cat([_upsample(fused, skip), skip], 1))
        main = _upsample(self.classifier(y), x)[..., :h, :w]
        if not self.training:
            return main
        aux = _upsample(self.aux_head(context8), x)[..., :h, :w]
        return TrainOutput(main, aux)


def desanet_resnet18(
    num_classes: int = 19, *, backbone_weights: str | Path | None = None
) -> DESANet:
    """DESANet-RN: a ResNet-18 context path (15.2M parameters with 19 classes).

    Args:
        num_classes: output classes.
        backbone_weights: a user-given torchvision ImageNet ResNet-18 state dict for the
            context path (safetensors or .pth); never downloaded.
    """
    return DESANet(resnet_features(18, backbone_weights), num_classes)


def desanet_hardnet68ds(
    num_classes: int = 19, *, backbone_weights: str | Path | None = None
) -> DESANet:
    """DESANet-HN: HarDNet-68DS without its last HDB and its 1x1->1024 transition (taps 128
    @1/4, 640 @1/16, 640 @1/32); 6.1M parameters with 19 classes.

    Args:
        num_classes: output classes.
        backbone_weights: a user-given ImageNet checkpoint of the reference HarDNet-68DS.
    """
    return DESANet(hardnet68ds_features(backbone_weights, drop_last_block=True), num_classes)
