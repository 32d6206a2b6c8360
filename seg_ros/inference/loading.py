"""Which network a pipeline runs: its weights (given, shipped, or none) and their metadata."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg_ros.inference.errors import ConfigError, PipelineWeightsError
from seg_ros.models.registry import is_default_variant
from seg_ros.weights import WeightsError, WeightsMetadata, read_metadata

log = logging.getLogger("seg_ros.inference")

DEFAULT_INPUT_SIZE = (512, 1024)  # height, width; what a network gets when no weights say more
RANDOM_INIT_SEED = 0  # random-init networks are the same in every process (tests, benchmarks)


@dataclass
class LoadedNetwork:
    network: Any  # torch nn.Module in eval mode, fp32, on the CPU
    metadata: WeightsMetadata
    weights_path: Path | None
    random_init: bool


def shipped_weights(model: str) -> Path | None:
    """The weights installed with the package for ``model`` (``models/<model>_camvid``)."""
    from seg_ros.paths import find_data

    return find_data(f"models/{model}_camvid.safetensors")


def random_metadata(model: str, variant: str, num_classes: int | None) -> WeightsMetadata:
    """Metadata for a randomly initialised network: a known dataset's names when the class
    count matches one (19 = cityscapes by default), generic ones otherwise."""
    from seg_ros.labels import LABEL_SETS, generic_label_set

    num_classes = num_classes or 19
    preferred = ["cityscapes", *sorted(LABEL_SETS)]
    known = [LABEL_SETS[n] for n in preferred if LABEL_SETS[n].num_classes == num_classes]
    labels = known[0] if known else generic_label_set(num_classes)
    return WeightsMetadata(
        model=model,
        variant=variant,
        num_classes=num_classes,
        dataset=labels.name,
        class_names=list(labels.classes),
        palette=[list(c) for c in labels.palette],
        input_size=list(DEFAULT_INPUT_SIZE),
        training={"random_init": True},
    )


def choose_weights(model: str, variant: str | None, weights: str | None) -> Path | None:
    """The weights file to load, or None for random init (the caller warns)."""
    if weights:
        return Path(weights).expanduser()
    shipped = shipped_weights(model)
    if shipped is None:
        return None
    if not is_default_variant(variant):
        try:
            shipped_variant = read_metadata(shipped).variant
        except WeightsError as e:
            raise PipelineWeightsError(f"shipped weights for {model!r} are unusable: {e}") from e
        if shipped_variant != variant:
            log.warning(
                "the shipped weights %s are for %s variant %r, not %r: not using them",
                shipped,
                model,
                shipped_variant,
                variant,
            )
            return None
    return shipped


def load_network(
    model: str, variant: str | None, weights: str | None, num_classes: int | None
) -> LoadedNetwork:
    """Build the network and load its weights, checking the file against what was asked."""
    import torch

    from seg_ros.models import build_model, resolve_variant
    from seg_ros.weights import load_model

    path = choose_weights(model, variant, weights)
    if path is not None:
        try:
            network, meta = load_model(path, model, variant)
        except WeightsError as e:
            raise PipelineWeightsError(str(e)) from e
        if num_classes is not None and num_classes != meta.num_classes:
            raise ConfigError(
                f"num_classes {num_classes} was asked, but {path} holds a {meta.num_classes}-class "
                f"model ({meta.dataset}); leave num_classes unset with weights"
            )
        return LoadedNetwork(network.eval(), meta, path, random_init=False)

    variant = resolve_variant(model, variant)
    log.warning(
        "NO WEIGHTS for %s/%s: running a RANDOMLY INITIALISED network; its labels are "
        "meaningless (pass weights=... or install models/%s_camvid.safetensors)",
        model,
        variant,
        model,
    )
    with torch.random.fork_rng():
        torch.manual_seed(RANDOM_INIT_SEED)
        network = build_model(model, variant, num_classes or 19)
    return LoadedNetwork(network.eval(), random_metadata(model, variant, num_classes), None, True)
