"""Fold eval-mode BatchNorm into the convolution before it: one pass over memory instead of two.

Hand-written rather than ``torch.fx.experimental.optimization.fuse`` because that pass folds a
BN into a convolution module shared by two call sites (RGPNet's weight-shared decoder blocks),
silently corrupting the other site, and because FX cannot trace DESANet. Here folding happens
only where the order of execution is certain from the module structure (``nn.Sequential``,
torchvision's ResNet blocks and trunk) and only for convolutions used once.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)
# Containers whose children run in registration order, one after another.
_SEQUENTIAL_NAMES = ("Sequential", "IntermediateLayerGetter")
# torchvision ResNet blocks: conv_i feeds bn_i directly.
_BLOCK_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``model`` (eval) with foldable BatchNorms folded; returns it and the count."""
    model = copy.deepcopy(model).eval()
    uses: dict[int, int] = {}
    for _, m in model.named_modules(remove_duplicate=False):
        uses[id(m)] = uses.get(id(m), 0) + 1
    folded = 0
    for parent in list(model.modules()):
        for conv_name, bn_name in _pairs(parent):
            conv = getattr(parent, conv_name)
            bn_holder, bn_attr = _bn_target(parent, bn_name)
            if bn_holder is None:
                continue
            bn = getattr(bn_holder, bn_attr)
            if uses.get(id(conv), 0) != 1 or uses.get(id(bn), 0) != 1:
                continue
            fused = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
            setattr(parent, conv_name, fused)
            setattr(bn_holder, bn_attr, nn.Identity())
            folded += 1
    return model, folded


def _pairs(parent: nn.Module) -> list[tuple[str, str]]:
    names = [n for n, _ in parent.named_children()]
    children = dict(parent.named_children())
    pairs = []
    if type(parent).__name__ in _SEQUENTIAL_NAMES or isinstance(parent, nn.Sequential):
        for a, b in zip(names, names[1:]):
            if isinstance(children[a], _CONVS):
                pairs.append((a, b))
    elif _is_torchvision_block(parent):
        pairs = [(c, b) for c, b in _BLOCK_PAIRS if c in children and b in children]
    return [(c, b) for c, b in pairs if isinstance(children[c], _CONVS)]


def _bn_target(parent: nn.Module, name: str) -> tuple[nn.Module | None, str]:
    """Where the BN after a conv lives: ``parent.name`` itself, or the first child of a
    Sequential there (FPLNet's BR = Sequential(BatchNorm2d, PReLU))."""
    child = getattr(parent, name)
    if _plain_bn(child):
        return parent, name
    if isinstance(child, nn.Sequential) and len(child) and _plain_bn(child[0]):
        return child, "0"
    return None, ""


def _plain_bn(m: nn.Module) -> bool:
    return (
        isinstance(m, nn.BatchNorm2d)
        and m.track_running_stats
        and m.running_mean is not None
        and not m.training
    )


def _is_torchvision_block(m: nn.Module) -> bool:
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return isinstance(m, (BasicBlock, Bottleneck))


def count_batchnorm(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
