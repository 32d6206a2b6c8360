"""Encoder trunks for RGPNet and DESANet, and loading a user's ImageNet checkpoint into them.

Every trunk returns its maps at strides 4, 8, 16, 32 as a list and names their widths in
``channels``, so a network takes any of them as a module (``RGPNet(backbone, ...)``,
``DESANet(backbone, ...)``). Nothing is ever downloaded: ``weights`` is a file the user gives.
Where each HarDNet tap sits is tabled in ``hardnet.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models._utils import IntermediateLayerGetter

from seg_ros.models.hardnet import ARCHS, ConvLayer, DWConvLayer, hardnet_layers

RESNET_DEPTHS = (18, 50, 101)


class ResNetFeatures(IntermediateLayerGetter):
    """torchvision ResNet trunk returning ``[C2, C3, C4, C5]``.

    Parameter names are torchvision's, so its ImageNet state dicts load (``fc`` is skipped).
    """

    strides = (4, 8, 16, 32)

    def __init__(self, depth: int = 18, weights: str | Path | None = None) -> None:
        builders = {18: resnet.resnet18, 50: resnet.resnet50, 101: resnet.resnet101}
        if depth not in builders:
            raise ValueError(f"no ResNet-{depth}; choose from {sorted(builders)}")
        net = builders[depth](weights=None)
        super().__init__(net, {f"layer{i}": f"c{i + 1}" for i in range(1, 5)})
        expansion = 1 if depth == 18 else 4
        self.channels = [c * expansion for c in (64, 128, 256, 512)]
        if weights is not None:
            load_backbone_weights(self, weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(super().forward(x).values())


class HarDNetFeatures(nn.Module):
    """HarDNet-DS trunk returning ``[f4, f8, f16, f32]``, the maps at strides 4, 8, 16, 32.

    ``channels`` lists their widths and ``tap_indices`` the ``base`` entries they come from.
    ``drop_last_block`` leaves out the last HDB and its transition (DESANet's HarDNet-68DS).
    ``weights``: an ImageNet checkpoint of the reference classifier (safetensors or .pth,
    read with ``weights_only=True``); its head and any dropped layers are ignored.
    """

    strides = (4, 8, 16, 32)

    def __init__(
        self,
        arch: str = "hardnet68ds",
        drop_last_block: bool = False,
        weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown HarDNet {arch!r}; choose from {sorted(ARCHS)}")
        layers, strides = hardnet_layers(ARCHS[arch], drop_last_block)
        self.base = nn.ModuleList(layers)
        self.tap_indices = [max(i for i, s in enumerate(strides) if s == t) for t in self.strides]
        self.channels = [_out_channels(layers[i]) for i in self.tap_indices]
        if weights is not None:
            load_backbone_weights(self, weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, layer in enumerate(self.base):
            x = layer(x)
            if i in self.tap_indices:
                features.append(x)
        return features


def _out_channels(module: nn.Module) -> int:
    if isinstance(module, ConvLayer):
        return module.conv.out_channels
    if isinstance(module, DWConvLayer):
        return module.dwconv.out_channels
    raise TypeError(f"no tap after {type(module).__name__}")


def resnet_features(depth: int = 18, weights: str | Path | None = None) -> ResNetFeatures:
    """ResNet-18 (64, 128, 256, 512 channels) or ResNet-50/101 (256, 512, 1024, 2048).

    Args:
        depth: 18, 50 or 101.
        weights: a torchvision ImageNet state dict of that depth (``fc`` is ignored).
    """
    return ResNetFeatures(depth, weights)


def hardnet39ds_features(
    weights: str | Path | None = None, drop_last_block: bool = False
) -> HarDNetFeatures:
    """HarDNet-39DS trunk: 96, 320, 640, 1024 channels at strides 4, 8, 16, 32.

    Args:
        weights: an ImageNet checkpoint of the reference HarDNet-39DS classifier.
        drop_last_block: leave out the last HDB and its transition.
    """
    return HarDNetFeatures("hardnet39ds", drop_last_block, weights)


def hardnet68ds_features(
    weights: str | Path | None = None, drop_last_block: bool = False
) -> HarDNetFeatures:
    """HarDNet-68DS trunk: 128, 320, 640, 1024 channels at strides 4, 8, 16, 32.

    Args:
        weights: an ImageNet checkpoint of the reference HarDNet-68DS classifier.
        drop_last_block: leave out the last HDB and its 1x1->1024 transition; the taps are
            then 128, 320, 640, 640 (see ``hardnet.py``).
    """
    return HarDNetFeatures("hardnet68ds", drop_last_block, weights)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors or PyTorch checkpoint file, never unpickling arbitrary objects.

    A ``state_dict``/``model`` entry (training checkpoints) is unwrapped and a ``module.``
    prefix (DataParallel) removed.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Mapping = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), Mapping):
            state = state[key]
    return {_unprefixed(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _unprefixed(key: str, prefix: str = "module.") -> str:
    # str.removeprefix is Python 3.9+; JetPack 5 is 3.8.
    return key[len(prefix) :] if key.startswith(prefix) else key


def load_backbone_weights(module: nn.Module, path: str | Path) -> list[str]:
    """Load an ImageNet checkpoint into a backbone; return the file's keys it did not use.

    Keys the backbone lacks (the classifier head, dropped layers) are skipped; every weight
    the backbone has must be in the file, and shapes must agree, or this raises.
    """
    result = module.load_state_dict(read_state_dict(path), strict=False)
    # Checkpoints older than PyTorch 0.4.1 have no BN step counters; they are not weights.
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(
            f"{path} lacks {len(missing)} of the backbone's weights, e.g. {missing[:3]}; "
            "is it a checkpoint of this backbone?"
        )
    return list(result.unexpected_keys)
