"""The smallest training run that still learns, shared by the training-loop and DDP tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_recipe(root: Path, output: Path, **overrides: Any) -> dict[str, Any]:
    """A training recipe (as seg-train reads it from YAML): two epochs of FPLNet's encoder on
    the CamVid-layout tree at ``root``, 32x48 crops, batches of 2, no mixed precision."""
    recipe: dict[str, Any] = {
        "model": "fplnet",
        "variant": "encoder",
        "dataset": "camvid",
        "data_root": str(root),
        "epochs": 2,
        "batch_size": 2,
        "lr": 0.01,
        "crop": [32, 48],
        "scale": [1.0, 1.0],
        "loss": {"main": ["ce"], "class_weights": "enet"},
        "amp": "off",
        "log_every": 100,
        "progress_bar": False,
        "output": str(output),
    }
    recipe.update(overrides)
    return recipe
