"""Pure-torch segmentation networks: FPLNet, RGPNet, DESANet. Nothing here knows ROS."""

from seg_ros.models.registry import (
    build_model,
    default_variant,
    is_default_variant,
    list_models,
    resolve_variant,
)

__all__ = [
    "build_model",
    "default_variant",
    "is_default_variant",
    "list_models",
    "resolve_variant",
]
