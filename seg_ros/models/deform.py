"""Everything seg_ros knows about torchvision's deformable convolution (DESANet's spatial path).

One module for it because six layers meet the op: training (a vectorised backward), the network
(fp32 under autocast), the torch backend (a faster CPU form, fp32 inside a bf16 model), the ONNX
exporters (ONNX DeformConv), the MAC counter (torch's table lacks it), and export/engine checks
that ask whether a network has it.

- **Autocast.** torchvision's CPU ``deform_conv2d`` has no bf16/fp16 kernel (training with bf16
  autocast crashed): ``deform_conv_fp32`` runs it in fp32; at 1/8 resolution that costs a few
  milliseconds.
- **CPU inference.** The scalar CPU kernel samples pixel by pixel: at 512x1024 it is about a
  quarter of DESANet's time on one core. ``SampledDeformConv2d`` is the same operator as
  ``grid_sample`` at the kh*kw offset positions (vectorised) followed by a 1x1 conv over the
  stacked samples (oneDNN, bf16/AMX where the model runs in bf16). Sampling follows
  torchvision's kernel: bilinear, every neighbour outside the image read as zero, which is
  ``grid_sample(padding_mode="zeros", align_corners=True)`` in pixel units.
- **Training.** The same sampled form with the DeformConv2d's own parameters
  (``deform_conv_for_training``): torchvision's scalar CPU backward was about a fifth of a
  DESANet step; the gradients are the same (test_desanet.py), the state dict unchanged, and
  eval and export keep torchvision's op.
- **ONNX.** torchvision registers no exporter for ``deform_conv2d``, but ONNX has DeformConv
  since opset 19 (``ONNX_MIN_OPSET``), with torchvision's offset layout; ONNX Runtime's CPU
  provider and TensorRT's parser (from 10.1) implement it. Export with::

      torch.onnx.export(model.eval(), (x,), dynamo=True, opset_version=19,  # or higher
                        custom_translation_table=onnx_custom_translations())

  or, with the legacy ``dynamo=False`` exporter, call ``register_onnx_symbolic()`` first.
  OpenVINO's ONNX reader has no DeformConv; its PyTorch frontend converts the op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d

# ONNX's DeformConv exists from this opset on.
ONNX_MIN_OPSET = 19


def has_deform_conv(network: nn.Module) -> bool:
    """Whether ``network`` holds a deformable convolution (in either form)."""
    return any(isinstance(m, (DeformConv2d, SampledDeformConv2d)) for m in network.modules())


def deform_conv_fp32(deform: nn.Module, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``deform(x, offset)``, in fp32 when autocast is on (see the module docstring)."""
    # The meta device (the MAC counter's) has no autocast to ask about.
    if x.device.type != "meta" and torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return deform(x.float(), offset.float())
    return deform(x, offset)


def keep_deform_convs_fp32(model: nn.Module, dtype: torch.dtype) -> list[str]:
    """In a model cast to ``dtype`` on the CPU, run each torchvision DeformConv2d in fp32,
    casting at its borders; returns their names. The rest of the network stays in ``dtype``."""
    names = []
    for name, module in model.named_modules():
        if isinstance(module, DeformConv2d):
            module.float()
            module.register_forward_pre_hook(_to_float32)
            module.register_forward_hook(lambda _m, _i, out, d=dtype: out.to(d))
            names.append(name)
    return names


def _to_float32(_module: Any, args: tuple) -> tuple:
    return tuple(a.float() for a in args)


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
        sampled = sample_taps(x, offset, self.kernel, self.stride, self.padding, self.dilation)
        sampled = sampled.to(self.weight.dtype).contiguous(memory_format=torch.channels_last)
        return F.conv2d(sampled, self.weight, self.bias)


def sample_taps(
    x: torch.Tensor,
    offset: torch.Tensor,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> torch.Tensor:
    """The input at every kernel tap's offset position, fp32 (N, C*kh*kw, Ho, Wo), channel
    c*K + k: a 1x1 conv with the kernel reshaped to (O, C*K, 1, 1) completes the DCN."""
    n, _, h, w = x.shape
    kh, kw = kernel
    k = kh * kw
    ho, wo = offset.shape[-2:]
    if offset.shape[1] != 2 * k:
        raise ValueError(
            f"expected {2 * k} offset channels (one offset group), got {offset.shape[1]}"
        )
    offset = offset.float().reshape(n, k, 2, ho, wo)
    dev = x.device
    tap_y = (torch.arange(kh, device=dev) * dilation[0]).repeat_interleave(kw)
    tap_x = (torch.arange(kw, device=dev) * dilation[1]).repeat(kh)
    base_y = torch.arange(ho, device=dev) * stride[0] - padding[0]
    base_x = torch.arange(wo, device=dev) * stride[1] - padding[1]
    py = base_y.view(1, 1, ho, 1) + tap_y.view(1, k, 1, 1) + offset[:, :, 0]
    px = base_x.view(1, 1, 1, wo) + tap_x.view(1, k, 1, 1) + offset[:, :, 1]
    grid = torch.stack(
        (px * (2.0 / max(w - 1, 1)) - 1.0, py * (2.0 / max(h - 1, 1)) - 1.0), -1
    ).reshape(n, k * ho, wo, 2)
    sampled = F.grid_sample(
        x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )  # (N, C, K*Ho, Wo) -> (N, C*K, Ho, Wo): a view, matching the weight layout
    return sampled.reshape(n, -1, ho, wo)


def deform_conv_for_training(
    deform: nn.Module, x: torch.Tensor, offset: torch.Tensor
) -> torch.Tensor:
    """``deform(x, offset)`` in fp32 through the sampled form, with gradients to the
    DeformConv2d's own parameters (its state dict is unchanged). Training only: torchvision's
    scalar CPU backward took ~4x as long (2.1 s vs 0.54 s forward + backward for a batch of 8
    at DESANet's 1/8 map of a 288x384 crop, one thread), about a fifth of a DESANet step."""
    if not SampledDeformConv2d.supports(deform):
        return deform_conv_fp32(deform, x, offset)
    with torch.autocast(x.device.type, enabled=False):
        sampled = sample_taps(
            x.float(),
            offset.float(),
            tuple(deform.weight.shape[-2:]),
            _pair(deform.stride),
            _pair(deform.padding),
            _pair(deform.dilation),
        )
        weight = deform.weight.float().reshape(deform.weight.shape[0], -1, 1, 1)
        bias = None if deform.bias is None else deform.bias.float()
        return F.conv2d(sampled, weight, bias)


def replace_deform_convs(model: nn.Module) -> list[str]:
    """Swap every supported torchvision DeformConv2d in ``model`` for the sampled form."""
    replaced = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, DeformConv2d) and SampledDeformConv2d.supports(child):
                setattr(module, child_name, SampledDeformConv2d(child))
                replaced.append(f"{name}.{child_name}" if name else child_name)
    return replaced


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def deform_conv2d_flops(
    input_shape: torch.Size,
    weight_shape: torch.Size,
    *args: object,
    out_shape: torch.Size,
    **kwargs: object,
) -> int:
    """FLOPs of ``torchvision::deform_conv2d`` for ``FlopCounterMode(custom_mapping=...)``.

    Same product as a dense conv; the bilinear sampling is cheap next to it and is left out, as
    papers do when they quote DCN FLOPs.
    """
    n, c_out, h, w = out_shape
    _, c_in_per_group, kh, kw = weight_shape
    return 2 * n * c_out * c_in_per_group * kh * kw * h * w


def flop_formulas() -> dict[Any, Callable[..., int]]:
    """The ``custom_mapping`` that teaches torch's FLOP counter the deformable conv."""
    return {torch.ops.torchvision.deform_conv2d: deform_conv2d_flops}


# The exporters pass the op's 14 arguments positionally.
def _onnx_deform_conv2d(
    x,
    weight,
    offset,
    mask,
    bias,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dilation_h: int,
    dilation_w: int,
    groups: int,
    offset_groups: int,
    use_mask: bool,
):
    """``torchvision::deform_conv2d`` as ONNX DeformConv, for the dynamo exporter.

    torchvision's offset layout, a (dy, dx) pair per kernel tap, is the one ONNX specifies.
    DCNv1 is traced with a dummy mask and ``use_mask=False``, so the mask is dropped then.
    """
    from onnxscript import opset19 as op

    return op.DeformConv(
        x,
        weight,
        offset,
        bias,
        mask if use_mask else None,
        dilations=[dilation_h, dilation_w],
        group=groups,
        kernel_shape=[weight.shape[2], weight.shape[3]],
        offset_group=offset_groups,
        pads=[pad_h, pad_w, pad_h, pad_w],
        strides=[stride_h, stride_w],
    )


def onnx_custom_translations() -> dict[Callable[..., object], Callable[..., object]]:
    """The ``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``.

    The exported model needs ``opset_version >= 19`` (``ONNX_MIN_OPSET``): below that ONNX has no
    DeformConv and the exporter's down-conversion fails.
    """
    return {torch.ops.torchvision.deform_conv2d.default: _onnx_deform_conv2d}


def register_onnx_symbolic() -> None:
    """Teach the legacy TorchScript exporter (``dynamo=False``) DeformConv; process-wide.

    Only for callers that still use the deprecated exporter; ``opset_version >= 19`` as above.
    """
    from torch.onnx import symbolic_helper

    @symbolic_helper.parse_args(
        "v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "b"
    )
    def deform_conv2d(
        g, x, weight, offset, mask, bias, sh, sw, ph, pw, dh, dw, groups, offset_groups, use_mask
    ):
        inputs = [x, weight, offset, bias] + ([mask] if use_mask else [])
        return g.op(
            "DeformConv",
            *inputs,
            dilations_i=[dh, dw],
            group_i=groups,
            kernel_shape_i=weight.type().sizes()[2:],
            offset_group_i=offset_groups,
            pads_i=[ph, pw, ph, pw],
            strides_i=[sh, sw],
        )

    torch.onnx.register_custom_op_symbolic(
        "torchvision::deform_conv2d", deform_conv2d, ONNX_MIN_OPSET
    )
