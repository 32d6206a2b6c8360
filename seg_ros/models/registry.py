"""Pick a network by name: ``build_model("rgpnet", "resnet18", num_classes=11)``.

Builders are named as ``module:function`` strings and imported on first use, so listing the
models costs nothing and a broken optional model cannot stop the others from loading.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # listing models and naming variants needs no torch (the ROS-side tools)
    from torch import nn

# name -> variant -> builder; the first variant listed is the default.
_BUILDERS: dict[str, dict[str, str]] = {
    "fplnet": {
        "full": "seg_ros.models.fplnet:fplnet",
        "encoder": "seg_ros.models.fplnet:fplnet_encoder",
    },
    "rgpnet": {
        "resnet18": "seg_ros.models.rgpnet:rgpnet_resnet18",
        "resnet50": "seg_ros.models.rgpnet:rgpnet_resnet50",
        "resnet101": "seg_ros.models.rgpnet:rgpnet_resnet101",
        "hardnet39ds": "seg_ros.models.rgpnet:rgpnet_hardnet39ds",
    },
    "desanet": {
        "resnet18": "seg_ros.models.desanet:desanet_resnet18",
        "hardnet68ds": "seg_ros.models.desanet:desanet_hardnet68ds",
    },
}


def list_models() -> dict[str, list[str]]:
    """Model names and their variants, default variant first."""
    return {name: list(variants) for name, variants in _BUILDERS.items()}


def default_variant(name: str) -> str:
    return next(iter(_variants(name)))


# How every layer says "the model's default variant" (ROS parameters have no null: "").
DEFAULT_VARIANT_NAMES = (None, "", "default")


def is_default_variant(variant: str | None) -> bool:
    return variant in DEFAULT_VARIANT_NAMES


def resolve_variant(name: str, variant: str | None) -> str:
    variants = _variants(name)
    if is_default_variant(variant):
        return next(iter(variants))
    if variant not in variants:
        raise ValueError(f"model {name!r} has no variant {variant!r}; choose from {list(variants)}")
    return variant


def build_model(
    name: str, variant: str | None = None, num_classes: int = 19, **options: object
) -> nn.Module:
    """Build a network with random weights (backbones are never downloaded).

    ``options`` go to the model's constructor (e.g. ``fusion="stage1"`` for FPLNet,
    ``backbone_weights="resnet18.pth"`` for RGPNet/DESANet).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    target = _variants(name)[resolve_variant(name, variant)]
    module_name, function = target.split(":")
    builder = getattr(importlib.import_module(module_name), function)
    return builder(num_classes=num_classes, **options)


def _variants(name: str) -> dict[str, str]:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(_BUILDERS)}") from None
