"""Every recipe under config/train parses, names known parts and builds a working loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seg_ros.models import resolve_variant
from seg_ros.paths import SOURCE_ROOT, resolve_recipe
from seg_ros.training.config import TrainConfig
from seg_ros.training.datasets import DATASETS
from seg_ros.training.losses import build_loss
from seg_ros.training.trainer import autocast_dtype

RECIPES = sorted((SOURCE_ROOT / "config" / "train").glob("*.yaml"))
NUM_CLASSES = {"camvid": 11, "cityscapes": 19, "mapillary": 65}


def test_there_is_a_recipe_per_model_and_dataset() -> None:
    names = {p.stem for p in RECIPES}
    for model in ("fplnet", "rgpnet", "desanet"):
        for dataset in ("cityscapes", "camvid"):
            assert f"{model}_{dataset}" in names
    assert "rgpnet_mapillary" in names
    assert {"fplnet_cityscapes_encoder", "fplnet_camvid_encoder"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_parses_and_builds_its_loss(path: Path) -> None:
    config = TrainConfig.from_yaml(path)
    assert resolve_recipe(path.stem) == path
    resolve_variant(config.model, config.variant)
    assert config.dataset in DATASETS
    assert len(config.crop) == 2 and config.scale[0] <= config.scale[1]
    assert config.gridmask is None or len(config.gridmask) == 3
    for start, factor in config.progressive or []:
        assert 0 <= start < config.epochs and 0 < factor <= 1
    autocast_dtype(config.amp, torch.device("cpu"))
    for teacher in config.distill.teachers:
        assert (SOURCE_ROOT / teacher).is_file(), f"{path.name}: teacher {teacher} not shipped"
    # an init the repository carries must be there (runs/ elsewhere is a local training output)
    if config.init and config.init.startswith(("models/", "runs/checkpoints/")):
        assert (SOURCE_ROOT / config.init).is_file(), f"{path.name}: init {config.init} missing"

    classes = NUM_CLASSES[config.dataset]
    weights = torch.ones(classes) if config.loss.class_weights == "enet" else None
    loss = build_loss(
        config.loss.main,
        config.loss.aux,
        config.loss.aux_weight,
        weights,
        config.loss.ohem_thresh,
        config.loss.ohem_min_kept,
        config.loss.relax_kernel,
        config.loss.rmi_radius,
        config.loss.rmi_pool,
        config.loss.rmi_bce_weight,
    )
    logits = torch.randn(2, classes, 32, 32, requires_grad=True)
    target = torch.randint(0, classes, (2, 32, 32))
    outputs = (logits, logits * 0.5) if config.loss.aux else logits
    value = loss(outputs, target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


def test_papers_settings_are_in_the_recipes() -> None:
    rgp = TrainConfig.from_yaml(resolve_recipe("rgpnet_cityscapes"))
    assert (rgp.loss.ohem_thresh, rgp.loss.ohem_min_kept) == (0.6, 5000)
    assert rgp.progressive == [[0, 0.25], [100, 0.5], [130, 1.0]]
    assert "ohem_label_relaxation" in rgp.loss.main and rgp.loss.relax_kernel == 5
    assert (rgp.lr, rgp.weight_decay, rgp.batch_size, rgp.crop) == (1e-3, 1e-4, 12, [1024, 1024])

    desa = TrainConfig.from_yaml(resolve_recipe("desanet_cityscapes"))
    assert desa.loss.main == ["ohem_ce", "rmi"] and desa.loss.aux == ["ohem_ce"]
    assert (desa.loss.rmi_radius, desa.loss.rmi_pool, desa.loss.ohem_thresh) == (3, 4, 0.7)
    assert desa.gridmask == [96, 224, 0.6] and desa.color_jitter > 0
    assert (desa.lr, desa.batch_size, desa.weight_decay) == (0.005, 3, 5e-4)

    enc = TrainConfig.from_yaml(resolve_recipe("fplnet_cityscapes_encoder"))
    full = TrainConfig.from_yaml(resolve_recipe("fplnet_cityscapes"))
    assert (enc.epochs, enc.batch_size, full.epochs, full.batch_size) == (500, 12, 1000, 6)
    assert enc.lr == full.lr == 0.045 and enc.loss.class_weights == "enet"
    assert full.init == f"{enc.output}/best.safetensors"
