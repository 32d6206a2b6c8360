"""The seg_ros weights file: a safetensors state dict plus metadata that describes the model.

safetensors rather than pickle so that opening a weights file can never execute code. The
metadata travels inside the same file, so a model and its class names, palette and
normalisation can never be separated or disagree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seg_ros.models.registry import is_default_variant
from seg_ros.paths import atomic_write

FORMAT = "seg_ros.weights/1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# Why torch refuses an ONNX model: the one wording, for the pipeline, the node and the tools.
TORCH_RUNS_OWN_NETWORKS = (
    "an ONNX model runs on onnxruntime, openvino or tensorrt; the torch backend runs only "
    "seg_ros' own networks (fplnet, rgpnet, desanet) from safetensors weights"
)


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable, or does not describe the requested model."""


@dataclass
class WeightsMetadata:
    model: str
    variant: str
    num_classes: int
    dataset: str
    class_names: list[str]
    palette: list[list[int]]
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    input_size: list[int] = field(default_factory=lambda: [360, 480])  # height, width
    model_options: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    # What the network's one output holds (logits | probabilities | labels: own models,
    # seg_ros.own_model) and the channel order it takes; seg_ros networks: logits, rgb.
    output: str = "logits"
    color_order: str = "rgb"

    def to_strings(self) -> dict[str, str]:
        out = {"format": FORMAT}
        for key, value in asdict(self).items():
            out[key] = value if isinstance(value, str) else json.dumps(value)
        return out

    @classmethod
    def from_strings(cls, raw: dict[str, str], source: str = "") -> WeightsMetadata:
        if raw.get("format") != FORMAT:
            raise WeightsError(
                f"{source}: not a seg_ros weights file (metadata format {raw.get('format')!r}, "
                f"expected {FORMAT!r})"
            )
        required = ("model", "variant", "num_classes", "dataset", "class_names", "palette")
        missing = [k for k in required if k not in raw]
        if missing:
            raise WeightsError(f"{source}: metadata lacks {', '.join(missing)}")
        kwargs: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name in raw:
                plain = name in ("model", "variant", "dataset", "output", "color_order")
                kwargs[name] = raw[name] if plain else _json(raw[name], name, source)
        meta = cls(**kwargs)
        meta.validate(source)
        return meta

    def validate(self, source: str = "") -> None:
        if len(self.class_names) != self.num_classes:
            raise WeightsError(
                f"{source}: {len(self.class_names)} class names for {self.num_classes} classes"
            )
        if len(self.palette) != self.num_classes or any(len(c) != 3 for c in self.palette):
            raise WeightsError(f"{source}: palette must hold {self.num_classes} RGB triples")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise WeightsError(f"{source}: mean/std must be 3 values with std > 0")
        if self.output not in ("logits", "probabilities", "labels"):
            raise WeightsError(
                f"{source}: output {self.output!r} is not logits, probabilities or labels"
            )
        if self.color_order not in ("rgb", "bgr"):
            raise WeightsError(f"{source}: color_order {self.color_order!r} is not rgb or bgr")


def _json(text: str, name: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise WeightsError(f"{source}: metadata {name!r} is not valid JSON: {e}") from None


def save_weights(path: str | Path, state_dict: dict, metadata: WeightsMetadata) -> Path:
    from safetensors.torch import save_file

    metadata.validate(str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors refuses shared or non-contiguous storage; BN's num_batches_tracked is kept.
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata.to_strings())
    return path


def save_half_weights(source: str | Path, path: str | Path) -> Path:
    """Copy a weights file with its floating-point parameters stored as fp16: half the size on
    disk (how the larger shipped networks sit in models/), loaded into fp32 networks as usual.
    BatchNorm statistics stay fp32: small running variances would lose their precision."""
    state, meta = load_weights(source)
    half = {
        k: v.half()
        if v.is_floating_point() and not k.endswith(("running_mean", "running_var"))
        else v
        for k, v in state.items()
    }
    return save_weights(path, half, meta)


def read_metadata(path: str | Path) -> WeightsMetadata:
    """Read only the header: cheap, and enough to know the model before building it (an
    own ONNX model and its description: ``seg_ros.own_model.read_any_metadata``)."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as e:  # safetensors raises several types for a damaged header
        raise WeightsError(f"{path}: cannot read safetensors header ({e})") from None
    return WeightsMetadata.from_strings(raw, str(path))


def load_weights(path: str | Path) -> tuple[dict, WeightsMetadata]:
    from safetensors.torch import load_file

    path = _existing(path)
    meta = read_metadata(path)
    try:
        state = load_file(str(path))
    except Exception as e:
        raise WeightsError(f"{path}: corrupt or truncated safetensors data ({e})") from None
    return state, meta


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix in (".pth", ".pt", ".ckpt"):
        raise WeightsError(
            f"{path}: seg_ros reads safetensors weights only (pickle files can run code); "
            "convert it with seg-train's checkpoint export"
        )
    return path


def model_mismatch(
    meta: WeightsMetadata, source: str, model: str, variant: str | None = None
) -> str | None:
    """Why a file (weights, an engine's metadata) holding ``meta`` is not the ``model`` and
    ``variant`` asked (a default variant: any), or None; the one wording of it."""
    from seg_ros.models import resolve_variant

    if meta.model != model:
        return f"{source} holds a {meta.model!r} network, but model {model!r} was asked"
    if not is_default_variant(variant):
        wanted = resolve_variant(model, variant)
        if wanted != meta.variant:
            return f"{source} holds {meta.model} variant {meta.variant!r}, but {wanted!r} was asked"
    return None


def load_model(
    path: str | Path, model: str | None = None, variant: str | None = None
) -> tuple[Any, WeightsMetadata]:
    """Build the network a weights file describes and load it, in eval mode (logits out;
    ``.train()`` for fine-tuning, where it returns a ``TrainOutput``).

    ``model``/``variant``, when given, are what the caller expects: a file for another network
    is refused with both names in the message rather than loaded into the wrong layers.
    """
    from seg_ros.models import build_model

    if Path(path).suffix.lower() == ".onnx":  # seg_ros.own_model.is_onnx_model, one layer up
        raise WeightsError(f"{path}: {TORCH_RUNS_OWN_NETWORKS}")
    state, meta = load_weights(path)
    if model is not None:
        mismatch = model_mismatch(meta, str(path), model, variant)
        if mismatch:
            raise WeightsError(mismatch)
    net = build_model(meta.model, meta.variant, meta.num_classes, **meta.model_options)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            details.append(
                f"{len(wrong)} of the wrong shape (e.g. {k}: file {tuple(state[k].shape)}, "
                f"model {tuple(expected[k].shape)})"
            )
        raise WeightsError(
            f"{path} does not fit {meta.model}/{meta.variant}: tensors " + "; ".join(details)
        )
    net.load_state_dict(state)
    return net.eval(), meta
