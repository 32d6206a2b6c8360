"""The node's parameters: one table of names, defaults, descriptors and checks.

Checks happen in two steps. ``check_value`` looks at one value on its own (a choice, a size)
and runs even while parameters are being declared, so a bad command-line override stops the
node with a clear reason. ``check_settings`` looks at the whole set (a variant of the chosen
model, a weights file for the chosen model) and is cheap enough to run inside the parameter
service: it reads only the weights file's header, never the tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any

from seg_ros.inference.config import (
    BACKENDS,
    MAX_WORKSPACE_MB,
    MIN_SIDE,
    MIN_WORKSPACE_MB,
    OUTPUT_RESOLUTIONS,
    PRECISIONS,
    PipelineConfig,
    field_problem,
)

TRANSPORTS = ("raw", "compressed")
INPUT_QOS = ("auto", "sensor_data", "reliable")
MAX_SIDE = 8192


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    choices: tuple[str, ...] | None = None
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    constraints: str = ""
    read_only: bool = False
    rebuilds: bool = False  # a change builds a new pipeline (off the hot path)
    live: bool = False  # a pipeline option read on every frame: applied without a rebuild


# Parameters that are PipelineConfig fields: same name, same default ("" where it has None,
# as ROS parameters have no null), checked by the same rules (inference/config.py).
PIPELINE_PARAMS = (
    "model",
    "variant",
    "weights",
    "backend",
    "device",
    "precision",
    "engine",
    "trt_workspace_mb",
    "output_resolution",
    "overlay_alpha",
    "min_confidence",
)


def _default(name: str) -> Any:
    value = PipelineConfig.__dataclass_fields__[name].default
    return "" if value is None else value


def _models() -> tuple[str, ...]:
    from seg_ros.models import list_models

    return tuple(list_models())


SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("model", _default("model"), "Network to run.", choices=_models(), rebuilds=True),
    ParamSpec(
        "variant",
        _default("variant"),
        "Variant of the model (backbone); empty = the weights' variant or the model's default.",
        constraints="a variant of the chosen model, or empty",
        rebuilds=True,
    ),
    ParamSpec(
        "weights",
        _default("weights"),
        "seg_ros safetensors weights; empty = the shipped weights for the model if installed, "
        "else random init (with a loud warning).",
        constraints="an existing .safetensors file for the chosen model, or empty",
        rebuilds=True,
    ),
    ParamSpec(
        "backend",
        _default("backend"),
        "Inference runtime; auto = OpenVINO on a CPU where it is installed, else PyTorch "
        "(diagnostics say which runs).",
        choices=BACKENDS,
        rebuilds=True,
    ),
    ParamSpec(
        "device",
        _default("device"),
        "Device to run on.",
        constraints="cpu, cuda or cuda:N; OpenVINO also gpu, gpu.N, npu",
        rebuilds=True,
    ),
    ParamSpec(
        "precision",
        _default("precision"),
        "Arithmetic precision.",
        choices=PRECISIONS,
        rebuilds=True,
    ),
    ParamSpec(
        "engine",
        _default("engine"),
        "ONNX file (onnxruntime, openvino), OpenVINO IR .xml (openvino) or TensorRT engine "
        "(tensorrt); empty = export/convert/build on the fly.",
        rebuilds=True,
    ),
    ParamSpec(
        "trt_workspace_mb",
        _default("trt_workspace_mb"),
        "TensorRT builder workspace (MiB) for an engine built on the fly (engine empty).",
        int_range=(MIN_WORKSPACE_MB, MAX_WORKSPACE_MB),
        rebuilds=True,
    ),
    ParamSpec(
        "input_width",
        0,
        "Network input width in pixels; 0 = follow input_height with the weights' aspect "
        "ratio (both 0 = the weights' training size).",
        int_range=(0, MAX_SIDE),
        constraints=f"0 or {MIN_SIDE}..{MAX_SIDE}",
        rebuilds=True,
    ),
    ParamSpec(
        "input_height",
        0,
        "Network input height in pixels; 0 = follow input_width with the weights' aspect "
        "ratio (both 0 = the weights' training size).",
        int_range=(0, MAX_SIDE),
        constraints=f"0 or {MIN_SIDE}..{MAX_SIDE}",
        rebuilds=True,
    ),
    ParamSpec(
        "output_resolution",
        _default("output_resolution"),
        "Outputs at the camera's resolution (input) or the network's (network, cheaper).",
        choices=OUTPUT_RESOLUTIONS,
        live=True,
    ),
    ParamSpec(
        "overlay_alpha",
        _default("overlay_alpha"),
        "Weight of the colour mask in the overlay (0 = camera image only, 1 = mask only).",
        float_range=(0.0, 1.0),
        live=True,
    ),
    ParamSpec("publish_labels", True, "Publish segmentation/labels (mono8 class ids)."),
    ParamSpec("publish_color", True, "Publish segmentation/color (rgb8 colour mask)."),
    ParamSpec("publish_overlay", True, "Publish segmentation/overlay (rgb8 image + mask)."),
    ParamSpec(
        "publish_confidence",
        False,
        "Publish segmentation/confidence (mono8: the winning class's softmax probability "
        "x 255, computed while subscribed).",
    ),
    ParamSpec(
        "min_confidence",
        _default("min_confidence"),
        "Pixels whose winning class has a lower softmax probability are labelled 255 "
        "(unlabeled) in labels, color and overlay. 0 = off.",
        float_range=(0.0, 1.0),
        live=True,
    ),
    ParamSpec(
        "input_transport",
        "raw",
        "raw: subscribe to 'image' (sensor_msgs/Image); compressed: 'image/compressed'.",
        choices=TRANSPORTS,
    ),
    ParamSpec(
        "input_qos",
        "auto",
        "auto: reliable while every publisher of the input is reliable (large frames from "
        "default-configured cameras need it), else best effort, re-checked each second; "
        "sensor_data: best effort, depth 1 (matches any publisher); reliable: reliable, depth 1.",
        choices=INPUT_QOS,
    ),
    ParamSpec(
        "max_batch",
        0,
        "With several cameras: at most this many of their frames run through the network as "
        "one batch. 0 = as many as the backend gains from (torch on CUDA 8; torch on a CPU, "
        "openvino, onnxruntime, tensorrt 1, i.e. one at a time); 1 = never batch; torch "
        "takes up to 8.",
        int_range=(0, 16),
    ),
    ParamSpec(
        "batch_wait_ms",
        5.0,
        "With batching: how long a frame may wait for the other cameras' frames to fill its "
        "batch (ms), the most batching adds to its latency; 0 = batch only frames already "
        "waiting.",
        float_range=(0.0, 100.0),
    ),
    ParamSpec(
        "target_rate",
        0.0,
        "Expected output rate (Hz); diagnostics warn below 90% of it. 0 = the input rate: warn "
        "when the node answers under 90% of the frames it receives (drops).",
        float_range=(0.0, 1000.0),
    ),
    ParamSpec(
        "diagnostics_period",
        1.0,
        "Seconds between /diagnostics messages.",
        float_range=(0.1, 60.0),
    ),
    ParamSpec(
        "autostart",
        True,
        "Configure and activate on start (plain `ros2 run`); false = wait for lifecycle "
        "transitions.",
        read_only=True,
    ),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}
REBUILD_PARAMS = frozenset(s.name for s in SPECS if s.rebuilds)
LIVE_PARAMS = frozenset(s.name for s in SPECS if s.live)


def descriptor(spec: ParamSpec) -> Any:
    """The rcl_interfaces ParameterDescriptor the node declares ``spec`` with."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    constraints = spec.constraints
    if spec.choices:
        constraints = "one of: " + ", ".join(spec.choices)
    d = ParameterDescriptor(
        description=spec.description,
        additional_constraints=constraints,
        read_only=spec.read_only,
    )
    if spec.int_range:
        d.integer_range = [IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1])]
    if spec.float_range:
        lo, hi = spec.float_range
        d.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi)]
    return d


def check_value(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``name`` on its own, or None."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return None
    if name in PIPELINE_PARAMS:
        return field_problem(name, value if value != "" else None)
    if spec.choices and value not in spec.choices:
        return f"{name} {value!r} is not allowed; choose from {list(spec.choices)}"
    if name in ("input_width", "input_height") and value != 0 and value < MIN_SIDE:
        return f"{name} {value} is too small: use 0 (the weights' size) or at least {MIN_SIDE}"
    return None


class _SettingsMethods:
    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Any:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def pipeline_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(REBUILD_PARAMS)}

    def pipeline_config(self) -> PipelineConfig:
        values = {n: getattr(self, n) for n in PIPELINE_PARAMS}
        values = {n: (None if v == "" else v) for n, v in values.items()}
        size = None
        if self.input_width or self.input_height:
            # One side 0 follows the other (the weights' aspect ratio): `ros2 param set` and
            # `ros2 param load` change one parameter at a time.
            size = (int(self.input_height), int(self.input_width))
        for name in ("overlay_alpha", "min_confidence"):
            values[name] = float(values[name])
        return PipelineConfig(**values, input_size=size)


# Typed values of all parameters, a field per spec with its default: the table above is the
# one place a parameter is named.
NodeSettings = make_dataclass(
    "NodeSettings",
    [(s.name, type(s.default), field(default=s.default)) for s in SPECS],
    bases=(_SettingsMethods,),
)
NodeSettings.__doc__ = "Typed values of all parameters (names and defaults from SPECS)."


def node_parameters(values: dict[str, Any]) -> dict[str, Any]:
    """PipelineConfig field values (``input_size`` included) as the node's parameters: the
    inverse of ``NodeSettings.pipeline_config`` for what the tools pass to a node."""
    params = {}
    for name, value in values.items():
        if name == "input_size":
            params["input_height"], params["input_width"] = (int(v) for v in value)
        elif name in PIPELINE_PARAMS:
            params[name] = value
        else:
            raise ValueError(f"{name!r} is not a pipeline setting the node has")
    return params


def check_settings(settings: NodeSettings) -> str | None:
    """Why this combination of values cannot build a pipeline, found without building it."""
    from seg_ros.inference.availability import unavailable
    from seg_ros.inference.errors import PipelineError

    try:
        config = settings.pipeline_config().validate()
    except PipelineError as e:
        return str(e)
    return _check_engine(settings) or _check_weights(settings) or unavailable(config)


def _check_engine(settings: NodeSettings) -> str | None:
    if not settings.engine:
        return None
    from seg_ros.inference.backends import backend_class
    from seg_ros.inference.errors import PipelineError
    from seg_ros.inference.pipeline import resolve_backend

    try:
        cls = backend_class(resolve_backend(settings.pipeline_config()))
        if not cls.takes_engine:
            cls.read_engine(Path(settings.engine))  # raises, naming the backends that take one
    except PipelineError as e:
        return str(e)
    if not Path(settings.engine).expanduser().is_file():
        return f"engine file not found: {settings.engine}"
    return None


def _check_weights(settings: NodeSettings) -> str | None:
    """The header only: the file exists, is seg_ros weights, and is for this model."""
    from seg_ros.weights import WeightsError, read_metadata

    if not settings.weights:
        return None
    try:
        meta = read_metadata(settings.weights)
    except WeightsError as e:
        return f"weights: {e}"
    if meta.model != settings.model:
        return (
            f"weights {settings.weights} hold {meta.model!r}, but model is "
            f"{settings.model!r}; set model and weights together (set_parameters_atomically) "
            "or clear weights"
        )
    if settings.variant and settings.variant != meta.variant:
        return (
            f"weights {settings.weights} hold {meta.model} variant {meta.variant!r}, but "
            f"variant is {settings.variant!r}; clear variant to follow the weights"
        )
    return None
