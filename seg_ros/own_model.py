"""Your own segmentation model: an ONNX file seg_ros did not export, and the description beside
it (``model.onnx`` + ``model.onnx.yaml``) that says what seg_ros cannot read from the graph:

    name: lraspp               # optional; default: the file's stem
    classes: [background, road, car]   # index = class id; 255 stays unlabeled
    palette: [[0, 0, 0], [128, 64, 128], [0, 0, 142]]   # optional; default: a generated one
    mean: [0.485, 0.456, 0.406]  # RGB, 0-1 scale, as torchvision writes them
    std: [0.229, 0.224, 0.225]
    input_size: [520, 520]     # [H, W]; optional when the ONNX's spatial dims are fixed
    output: logits             # logits | probabilities | labels
    color_order: rgb           # optional: the channel order the network was trained on

``read_own_model`` validates the description against the graph and turns it into the same
``WeightsMetadata`` a seg_ros weights file carries, so everything downstream (pipeline, node,
evaluation) handles both alike. No torch here: the ONNX is the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg_ros.weights import FORMAT, IMAGENET_MEAN, IMAGENET_STD, WeightsError, WeightsMetadata

OUTPUT_KINDS = ("logits", "probabilities", "labels")
COLOR_ORDERS = ("rgb", "bgr")
REQUIRED = ("classes", "mean", "std", "output")
OPTIONAL = ("name", "palette", "input_size", "color_order")
VARIANT = "onnx"  # what WeightsMetadata.variant says for every model described here
DATASET = "own"  # and .dataset: the classes are the description's, no dataset table's


def is_onnx_model(path: str | Path | None) -> bool:
    """Whether ``weights`` names an ONNX model (by suffix: it decides how the file is read)."""
    return bool(path) and Path(str(path)).suffix.lower() == ".onnx"


def description_path(onnx_path: str | Path) -> Path:
    """Where a model's description lives: beside it, ``<file>.onnx.yaml``."""
    path = Path(onnx_path)
    return path.with_name(path.name + ".yaml")


def read_any_metadata(path: str | Path) -> WeightsMetadata:
    """What a ``weights`` file says of its model: a seg_ros safetensors header, or an own
    ONNX model's description checked against its graph (``WeightsError`` naming the problem)."""
    from seg_ros.weights import read_metadata

    return read_own_model(path).metadata if is_onnx_model(path) else read_metadata(path)


@dataclass(frozen=True)
class Tensor:
    """One graph input or output: its name, element type and dims (int, or a name when
    dynamic)."""

    name: str
    dtype: str
    dims: tuple[int | str, ...]

    def spatial(self) -> tuple[int, int] | None:
        """(H, W) when both are fixed in a rank-4 NCHW tensor, else None."""
        if len(self.dims) == 4 and all(isinstance(d, int) for d in self.dims[2:]):
            return int(self.dims[2]), int(self.dims[3])
        return None

    def text(self) -> str:
        return f"{self.name} {self.dtype} [{', '.join(str(d) for d in self.dims)}]"


@dataclass(frozen=True)
class Graph:
    """What the ONNX file itself says: its inputs and outputs, its opset and any seg_ros
    metadata (a file seg-export wrote)."""

    path: Path
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    opset: int
    metadata: dict[str, str]


def read_graph(path: str | Path) -> Graph:
    """Inputs, outputs and metadata of an ONNX file (the initializers are not inputs)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"ONNX model not found: {path}")
    try:
        import onnx
    except ImportError:
        raise WeightsError(
            f"{path}: reading an ONNX model needs the onnx package (pip install 'seg_ros[onnx]')"
        ) from None
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and others for a damaged file
        raise WeightsError(f"{path}: not a readable ONNX model ({e})") from None
    initializers = {t.name for t in proto.graph.initializer}

    def tensor(value: Any) -> Tensor:
        kind = value.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in kind.shape.dim
        )
        dtype = onnx.helper.tensor_dtype_to_np_dtype(kind.elem_type).name if kind.elem_type else "?"
        return Tensor(value.name, dtype, dims)

    inputs = tuple(tensor(v) for v in proto.graph.input if v.name not in initializers)
    outputs = tuple(tensor(v) for v in proto.graph.output)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    metadata = {p.key: p.value for p in proto.metadata_props}
    return Graph(path, inputs, outputs, opset, metadata)


@dataclass(frozen=True)
class OwnModel:
    """A described ONNX model: the file, its graph, and its metadata as seg_ros carries it."""

    path: Path
    description: Path | None  # None: a seg-export ONNX, described by its own metadata
    graph: Graph
    metadata: WeightsMetadata
    fixed_size: tuple[int, int] | None  # the ONNX's own (H, W) when its input is fixed

    @property
    def output(self) -> str:
        return self.metadata.output


def read_own_model(path: str | Path) -> OwnModel:
    """The ONNX at ``path`` with its description, checked against each other; ``WeightsError``
    naming the key (or the graph's part) that does not fit."""
    graph = read_graph(path)
    described = description_path(graph.path)
    if not described.is_file():
        if graph.metadata.get("format") == FORMAT:
            # seg-export's ONNX of a seg_ros network carries its description inside.
            meta = WeightsMetadata.from_strings(graph.metadata, str(graph.path))
            return OwnModel(graph.path, None, graph, meta, _check_graph(graph, meta, str(path)))
        raise WeightsError(
            f"{graph.path} has no description {described.name} beside it: write one "
            f"(`seg-export --describe {graph.path}` starts it) with classes, mean, std and output"
        )
    meta = read_description(described, graph)
    return OwnModel(graph.path, described, graph, meta, _check_graph(graph, meta, str(described)))


def read_description(path: Path, graph: Graph) -> WeightsMetadata:
    """The YAML description as WeightsMetadata, every key checked on its own."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        # one line: YAML's own message spans several, with a caret drawing
        raise WeightsError(f"{path}: not readable YAML ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a mapping of keys ({', '.join(REQUIRED)}, ...)")
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise WeightsError(
            f"{path}: unknown key {unknown[0]!r}; the keys are {list(REQUIRED + OPTIONAL)}"
        )
    missing = [k for k in REQUIRED if data.get(k) is None]
    if missing:
        raise WeightsError(f"{path}: key {missing[0]!r} is missing ({_HINTS[missing[0]]})")
    classes = data["classes"]
    if not isinstance(classes, list) or not classes or len(classes) > 255:
        raise WeightsError(f"{path}: key 'classes' must list 1 to 255 class names")
    if len({str(c) for c in classes}) != len(classes):
        raise WeightsError(f"{path}: key 'classes' names a class twice")
    output = _choice(data, "output", OUTPUT_KINDS, path)
    color_order = _choice({"color_order": "rgb", **data}, "color_order", COLOR_ORDERS, path)
    meta = WeightsMetadata(
        model=str(data.get("name") or graph.path.stem),
        variant=VARIANT,
        num_classes=len(classes),
        dataset=DATASET,
        class_names=[str(c) for c in classes],
        palette=_palette(data.get("palette"), len(classes), path),
        mean=_triple(data, "mean", path, 0.0),
        std=_triple(data, "std", path, 1e-6),
        input_size=_size(data.get("input_size"), path),
        training={"description": str(path)},
        output=output,
        color_order=color_order,
    )
    meta.validate(str(path))
    return meta


_HINTS = {
    "classes": "the class names, in class-id order",
    "mean": "RGB, 0-1 scale, e.g. [0.485, 0.456, 0.406]",
    "std": "RGB, 0-1 scale, e.g. [0.229, 0.224, 0.225]",
    "output": f"one of {list(OUTPUT_KINDS)}",
}


def _choice(data: dict, key: str, allowed: tuple[str, ...], path: Path) -> str:
    value = data[key]
    if value not in allowed:
        raise WeightsError(f"{path}: key {key!r} is {value!r}; choose from {list(allowed)}")
    return str(value)


def _triple(data: dict, key: str, path: Path, low: float) -> list[float]:
    value = data[key]
    ok = isinstance(value, list) and len(value) == 3
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or min(value) < low or max(value) > 1:
        raise WeightsError(
            f"{path}: key {key!r} must be 3 numbers on the 0-1 scale (RGB), got {value!r}"
        )
    return [float(v) for v in value]


def _palette(value: Any, count: int, path: Path) -> list[list[int]]:
    from seg_ros.labels import custom_label_set

    if value is not None and not isinstance(value, list):
        raise WeightsError(f"{path}: key 'palette' must be a list of [r, g, b]")
    try:
        labels = custom_label_set(path.name, [str(i) for i in range(count)], value)
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{path}: key 'palette': {e}") from None
    return [list(c) for c in labels.palette]


def _size(value: Any, path: Path) -> list[int]:
    if value is None:
        return []  # from the graph, or from the caller (a node's input_size)
    ok = isinstance(value, list) and len(value) == 2
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise WeightsError(f"{path}: key 'input_size' must be [height, width], got {value!r}")
    return [int(value[0]), int(value[1])]


def _check_graph(graph: Graph, meta: WeightsMetadata, source: str) -> tuple[int, int] | None:
    """Refuse a graph the description does not fit; the ONNX's fixed (H, W), if any."""
    name = graph.path.name
    if len(graph.inputs) != 1:
        raise WeightsError(
            f"{name} has {len(graph.inputs)} inputs ({_names(graph.inputs)}); seg_ros feeds one "
            "image input (N x 3 x H x W)"
        )
    if len(graph.outputs) != 1:
        raise WeightsError(
            f"{name} has {len(graph.outputs)} outputs ({_names(graph.outputs)}); seg_ros reads "
            "one: export the segmentation output only (e.g. torchvision's ['out'], no aux)"
        )
    image, out = graph.inputs[0], graph.outputs[0]
    if len(image.dims) != 4 or (isinstance(image.dims[1], int) and image.dims[1] != 3):
        raise WeightsError(f"{name}: input {image.text()} is not N x 3 x H x W")
    if image.dtype not in ("float32", "?"):
        raise WeightsError(
            f"{name}: input {image.text()} is not float32, which seg_ros feeds; export the "
            "model in fp32 (precision is chosen at run time: bf16, fp16, int8)"
        )
    if isinstance(image.dims[0], int) and image.dims[0] != 1:
        raise WeightsError(f"{name}: input {image.text()} has batch {image.dims[0]}; export 1")
    fixed = image.spatial()
    if fixed is not None and meta.input_size and tuple(meta.input_size) != fixed:
        raise WeightsError(
            f"{source}: key 'input_size' is {meta.input_size}, but {name}'s input is fixed at "
            f"{list(fixed)}"
        )
    if meta.output == "labels":
        one_channel = len(out.dims) == 4 and (out.dims[1] == 1 or isinstance(out.dims[1], str))
        if len(out.dims) != 3 and not one_channel:
            raise WeightsError(
                f"{source}: key 'output' is 'labels', but {name}'s output {out.text()} is not "
                "N x H x W (or N x 1 x H x W) class ids"
            )
        return fixed
    if len(out.dims) != 4:
        raise WeightsError(
            f"{source}: key 'output' is {meta.output!r}, but {name}'s output {out.text()} is not "
            "N x classes x H x W"
        )
    channels = out.dims[1]
    if isinstance(channels, int) and channels != meta.num_classes:
        raise WeightsError(
            f"{source}: key 'classes' names {meta.num_classes} classes, but {name}'s output "
            f"{out.text()} has {channels} channels"
        )
    return fixed


def _names(tensors: tuple[Tensor, ...]) -> str:
    return ", ".join(t.name for t in tensors)


def check_output(model_name: str, meta: WeightsMetadata, array: Any) -> None:
    """The output one real run gave, against the description (dynamic dims are only known
    then): ``WeightsError`` naming what does not fit."""
    shape = tuple(array.shape)
    if meta.output == "labels":
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[1] != 1):
            raise WeightsError(f"{model_name}: output of shape {shape} is not N x H x W labels")
        return
    if len(shape) != 4 or shape[1] != meta.num_classes:
        raise WeightsError(
            f"{model_name}: output of shape {shape}; the description's classes need "
            f"N x {meta.num_classes} x H x W"
        )


def confidence_problem(meta: WeightsMetadata, wanted: bool, threshold: float) -> str | None:
    """Why per-pixel confidence cannot be had from this model, or None: a model that outputs
    labels has dropped the scores it would come from."""
    if meta.output != "labels" or not (wanted or threshold > 0):
        return None
    what = "confidence" if wanted else f"min_confidence {threshold:g}"
    return (
        f"{what} needs scores, but {meta.model} outputs labels (its description's output); "
        "export its logits or probabilities for it"
    )


def probe_output(graph: Graph, size: tuple[int, int]) -> tuple[int, ...] | None:
    """The output's shape from one onnxruntime run on a blank image (dims a graph leaves
    dynamic, such as the class count after a Resize), or None where that cannot be had."""
    try:
        import numpy as np
        import onnxruntime as ort

        session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
        blank = np.zeros((1, 3, *size), np.float32)
        return tuple(session.run(None, {graph.inputs[0].name: blank})[0].shape)
    except Exception:  # no onnxruntime, or a graph it cannot run: the dims stay unknown
        return None


def starting_description(graph: Graph, probed: tuple[int, ...] | None = None) -> str:
    """A description to fill in, from what the graph shows (``seg-export --describe``) and,
    for dims it leaves dynamic, one probing run's output shape."""
    out = graph.outputs[0] if graph.outputs else None
    channels = out.dims[1] if out is not None and len(out.dims) == 4 else None
    if not isinstance(channels, int) and probed is not None and len(probed) == 4:
        channels = probed[1]
    count = channels if isinstance(channels, int) and channels > 1 else 2
    kind = "labels" if out is not None and (len(out.dims) == 3 or channels == 1) else "logits"
    if out is not None and out.dtype.startswith(("int", "uint")):
        kind = "labels"
    fixed = graph.inputs[0].spatial() if len(graph.inputs) == 1 else None
    names = ", ".join(f"class_{i}" for i in range(count))
    lines = [
        f"# The description of {graph.path.name} for seg_ros; edit what is marked TODO.",
        f"name: {graph.path.stem}",
        f"classes: [{names}]  # TODO: your class names, in class-id order"
        + ("" if isinstance(channels, int) else " (the output's class count is unknown)"),
        "# palette: [[r, g, b], ...]  # optional: one colour per class",
        f"mean: {list(IMAGENET_MEAN)}  # TODO: RGB, 0-1 scale (these are ImageNet's)",
        f"std: {list(IMAGENET_STD)}",
        f"output: {kind}  # logits | probabilities | labels",
        "color_order: rgb  # rgb | bgr: the channel order it was trained on",
    ]
    if fixed is None:
        lines.append("input_size: [512, 512]  # TODO: [H, W]; the ONNX's size is dynamic")
    else:
        lines.append(f"# input_size: {list(fixed)}  (fixed in the ONNX)")
    return "\n".join(lines) + "\n"
