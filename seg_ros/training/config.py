"""Training recipes: a flat dataclass read from YAML (config/train/*.yaml) plus overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class LossConfig:
    main: list[str] = field(default_factory=lambda: ["ce"])
    aux: list[str] = field(default_factory=list)
    aux_weight: float = 1.0
    class_weights: str = "none"  # "enet" = 1/ln(1.02 + p) from the training split, or "none"
    ohem_thresh: float = 0.7
    ohem_min_kept: int = 100_000
    relax_kernel: int = 5  # label relaxation window (k x k)
    rmi_radius: int = 3
    rmi_pool: int = 4
    rmi_bce_weight: float = 0.5  # the RMI reference's lambda: weight of its sigmoid BCE term


@dataclass
class DistillConfig:
    """Distillation from trained networks (``teachers``: seg_ros weights files; none = off)."""

    teachers: list[str] = field(default_factory=list)
    scales: list[float] = field(default_factory=lambda: [1.0])  # teachers' test-time scales
    flip: bool = False  # also average the teachers' horizontally flipped predictions
    weight: float = 1.0  # of the soft-target cross-entropy, added to the loss on the labels


@dataclass
class TrainConfig:
    model: str = "fplnet"
    variant: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "camvid"
    data_root: str = "../shared/data/camvid"
    train_split: str = "train"
    val_split: str = "val"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 100
    batch_size: int = 8
    lr: float = 0.045
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    warmup_epochs: float = 0.0
    crop: list[int] = field(default_factory=lambda: [360, 480])  # height, width
    scale: list[float] = field(default_factory=lambda: [0.5, 2.0])
    flip: bool = True
    color_jitter: float = 0.0
    gridmask: list[float] | None = None  # [d_min, d_max, ratio]
    progressive: list[list[float]] | None = None  # [[from_epoch, resolution], ...]
    loss: LossConfig = field(default_factory=LossConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    amp: str = "auto"  # auto | bf16 | fp16 | off
    channels_last: bool = True
    val_every: int = 1
    val_amp: bool = False  # validate in fp32 so model selection sees the shipped precision
    val_input_size: list[int] | None = None  # [h, w] the network sees when validating; scored
    # at the labels' own size (a paper's "512x1024 input" on 1024x2048 Cityscapes)
    workers: int = 0
    cache: bool = True  # keep decoded frames in memory when the split fits (else read each time)
    init: str | None = None  # seg_ros weights to start from; tensors of matching shape load
    output: str = "runs/train"
    seed: int = 0
    log_every: int = 10
    max_steps_per_epoch: int | None = None  # for smoke tests
    progress_bar: bool = True  # a tqdm bar per epoch when stderr is a terminal
    sync_bn: bool = True  # SyncBatchNorm across processes (CUDA only; gloo has no SyncBN)

    def __post_init__(self) -> None:
        # YAML 1.1 reads a bare ``amp: off`` as false (and ``on`` as true).
        if isinstance(self.amp, bool):
            self.amp = "auto" if self.amp else "off"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        loss = _section(data, "loss", LossConfig)
        distill = _section(data, "distill", DistillConfig)
        return cls(loss=loss, distill=distill, **data)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        for key, value in (overrides or {}).items():
            apply_override(data, key, value)
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _section(data: dict[str, Any], name: str, kind: type) -> Any:
    """Pop the nested ``name:`` mapping of a recipe and build ``kind`` from it, refusing keys it
    does not have (a misspelt option must not be silently ignored)."""
    values = data.pop(name, {}) or {}
    unknown = set(values) - {f.name for f in dataclasses.fields(kind)}
    if unknown:
        raise ValueError(f"unknown {name} option(s): {', '.join(sorted(unknown))}")
    return kind(**values)


def apply_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b=c`` style overrides from the command line (values parsed as YAML)."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = yaml.safe_load(value) if isinstance(value, str) else value
