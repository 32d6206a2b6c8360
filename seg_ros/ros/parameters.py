"""The node's parameters: one table of names, defaults, descriptors and checks.

Checks happen in two steps. ``check_value`` looks at one value on its own (a choice, a size)
and runs even while parameters are being declared, so a bad command-line override stops the
node with a clear reason. ``check_settings`` looks at the whole set (a variant of the chosen
model, a weights file for the chosen model) and is cheap enough to run inside the parameter
service: it reads only the weights file's header, never the tensors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from seg_ros.inference.config import (
    BACKENDS,
    INFERENCE_MODES,
    MAX_WORKSPACE_MB,
    MIN_SIDE,
    MIN_WORKSPACE_MB,
    OUTPUT_RESOLUTIONS,
    PRECISIONS,
    PipelineConfig,
    field_problem,
)
from seg_ros.ros.contract import OUTPUTS

TRANSPORTS = ("raw", "compressed")
INPUT_QOS = ("auto", "sensor_data", "reliable")
MAX_SIDE = 8192


@dataclass(frozen=True)
class ParamSpec:
    name: str
    description: str
    choices: tuple[str, ...] | None = None
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    constraints: str = ""
    read_only: bool = False
    rebuilds: bool = False  # a change builds a new pipeline (off the hot path)
    live: bool = False  # a pipeline option read on every frame: applied without a rebuild

    @property
    def default(self) -> Any:
        return _default(self.name)


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
    "inference_mode",
)
_PIPELINE = PipelineConfig()
SINGLE_CAMERA = ("",)  # the default: one camera on 'image', in the node's namespace


@dataclass(frozen=True)
class NodeSettings:
    """Typed values of all parameters; its fields are the names and defaults of the table
    below (``test_options`` checks that they match). Frozen: a change makes a new one, so a
    thread holding one never sees it half-changed."""

    model: str = _PIPELINE.model
    variant: str = ""
    weights: str = ""
    backend: str = _PIPELINE.backend
    device: str = _PIPELINE.device
    precision: str = _PIPELINE.precision
    engine: str = ""
    trt_workspace_mb: int = _PIPELINE.trt_workspace_mb
    input_width: int = 0
    input_height: int = 0
    output_resolution: str = _PIPELINE.output_resolution
    inference_mode: str = _PIPELINE.inference_mode
    overlay_alpha: float = _PIPELINE.overlay_alpha
    publish_labels: bool = True
    publish_color: bool = True
    publish_overlay: bool = True
    publish_confidence: bool = False
    jpeg_quality: int = 90
    min_confidence: float = _PIPELINE.min_confidence
    input_transport: str = "raw"
    input_qos: str = "auto"
    max_batch: int = 0
    batch_wait_ms: float = 5.0
    target_rate: float = 0.0
    diagnostics_period: float = 1.0
    autostart: bool = True
    cameras: tuple[str, ...] = SINGLE_CAMERA

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> NodeSettings:
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in values.items() if k in names}
        if "cameras" in kept:
            kept["cameras"] = tuple(kept["cameras"])
        return cls(**kept)

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

    @property
    def camera_names(self) -> list[str]:
        """The cameras served; [""] for the single-camera node."""
        return list(self.cameras) if self.cameras != SINGLE_CAMERA else [""]


def _default(name: str) -> Any:
    return NodeSettings.__dataclass_fields__[name].default


def _models() -> tuple[str, ...]:
    from seg_ros.models import list_models

    return tuple(list_models())


SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("model", "Network to run.", choices=_models(), rebuilds=True),
    ParamSpec(
        "variant",
        "Variant of the model (backbone); empty = the weights' variant or the model's default.",
        constraints="a variant of the chosen model, or empty",
        rebuilds=True,
    ),
    ParamSpec(
        "weights",
        "seg_ros safetensors weights, or your own model.onnx with model.onnx.yaml beside it "
        "(model and variant are then its description's); empty = the shipped weights for the "
        "model if installed, else random init (with a loud warning).",
        constraints="an existing .safetensors file for the chosen model, a described .onnx, "
        "or empty",
        rebuilds=True,
    ),
    ParamSpec(
        "backend",
        "Inference runtime; auto = OpenVINO on a CPU where it is installed, else PyTorch "
        "(diagnostics say which runs).",
        choices=BACKENDS,
        rebuilds=True,
    ),
    ParamSpec(
        "device",
        "Device to run on.",
        constraints="cpu, cuda or cuda:N; OpenVINO also gpu, gpu.N, npu",
        rebuilds=True,
    ),
    ParamSpec(
        "precision",
        "Arithmetic precision.",
        choices=PRECISIONS,
        rebuilds=True,
    ),
    ParamSpec(
        "engine",
        "ONNX file (onnxruntime, openvino), OpenVINO IR .xml (openvino) or TensorRT engine "
        "(tensorrt); empty = export/convert/build on the fly.",
        rebuilds=True,
    ),
    ParamSpec(
        "trt_workspace_mb",
        "TensorRT builder workspace (MiB) for an engine built on the fly (engine empty).",
        int_range=(MIN_WORKSPACE_MB, MAX_WORKSPACE_MB),
        rebuilds=True,
    ),
    ParamSpec(
        "input_width",
        "Network input width in pixels; 0 = follow input_height with the weights' aspect "
        "ratio (both 0 = the weights' training size).",
        int_range=(0, MAX_SIDE),
        constraints=f"0 or {MIN_SIDE}..{MAX_SIDE}",
        rebuilds=True,
    ),
    ParamSpec(
        "input_height",
        "Network input height in pixels; 0 = follow input_width with the weights' aspect "
        "ratio (both 0 = the weights' training size).",
        int_range=(0, MAX_SIDE),
        constraints=f"0 or {MIN_SIDE}..{MAX_SIDE}",
        rebuilds=True,
    ),
    ParamSpec(
        "output_resolution",
        "Outputs at the camera's resolution (input) or the network's (network, cheaper).",
        choices=OUTPUT_RESOLUTIONS,
        live=True,
    ),
    ParamSpec(
        "inference_mode",
        "latency: one frame in the network at a time, every thread on it (the lowest latency "
        "per frame); throughput: as many frames in flight as the runtime gains from (OpenVINO "
        "streams, onnxruntime on the CPU one per thread, TensorRT two contexts; the others run "
        "one at a time and diagnostics say so), the most frames a second. Outputs leave in "
        "the order the frames came either way.",
        choices=INFERENCE_MODES,
        rebuilds=True,
    ),
    ParamSpec(
        "overlay_alpha",
        "Weight of the colour mask in the overlay (0 = camera image only, 1 = mask only).",
        float_range=(0.0, 1.0),
        live=True,
    ),
    ParamSpec("publish_labels", "Publish segmentation/labels (mono8 class ids)."),
    ParamSpec("publish_color", "Publish segmentation/color (rgb8 colour mask)."),
    ParamSpec("publish_overlay", "Publish segmentation/overlay (rgb8 image + mask)."),
    ParamSpec(
        "publish_confidence",
        "Publish segmentation/confidence (mono8: the winning class's softmax probability "
        "x 255, computed while subscribed).",
    ),
    ParamSpec(
        "jpeg_quality",
        "JPEG quality of segmentation/color/compressed and segmentation/overlay/compressed "
        "(labels/compressed is PNG: lossless, the class ids survive). Compressed outputs are "
        "encoded only while subscribed.",
        int_range=(1, 100),
    ),
    ParamSpec(
        "min_confidence",
        "Pixels whose winning class has a lower softmax probability are labelled 255 "
        "(unlabeled) in labels, color and overlay. 0 = off.",
        float_range=(0.0, 1.0),
        live=True,
    ),
    ParamSpec(
        "input_transport",
        "raw: subscribe to 'image' (sensor_msgs/Image); compressed: 'image/compressed'.",
        choices=TRANSPORTS,
    ),
    ParamSpec(
        "input_qos",
        "auto: reliable while every publisher of the input is reliable (large frames from "
        "default-configured cameras need it), else best effort, re-checked each second; "
        "sensor_data: best effort, depth 1 (matches any publisher); reliable: reliable, depth 1.",
        choices=INPUT_QOS,
    ),
    ParamSpec(
        "max_batch",
        "With several cameras: at most this many of their frames run through the network as "
        "one batch. 0 = as many as the backend gains from (torch on CUDA 8; torch on a CPU, "
        "openvino, onnxruntime, tensorrt 1, i.e. one at a time); 1 = never batch; torch "
        "takes up to 8.",
        int_range=(0, 16),
    ),
    ParamSpec(
        "batch_wait_ms",
        "With batching: how long a frame may wait for the other cameras' frames to fill its "
        "batch (ms), the most batching adds to its latency; 0 = batch only frames already "
        "waiting.",
        float_range=(0.0, 100.0),
    ),
    ParamSpec(
        "target_rate",
        "Expected output rate (Hz); diagnostics warn below 90% of it. 0 = the input rate: warn "
        "when the node answers under 90% of the frames it receives (drops).",
        float_range=(0.0, 1000.0),
    ),
    ParamSpec(
        "diagnostics_period",
        "Seconds between /diagnostics messages.",
        float_range=(0.1, 60.0),
    ),
    ParamSpec(
        "autostart",
        "Configure and activate on start (plain `ros2 run`); false = wait for lifecycle "
        "transitions.",
        read_only=True,
    ),
    ParamSpec(
        "cameras",
        "Several cameras, one network: namespaces (front, left, /robot/rear); each camera's "
        "input is <camera>/image and its outputs <camera>/segmentation/..., with its own "
        "header, newest-frame slot and diagnostics status. [''] (default): one camera on "
        "'image'. Read-only: set at start.",
        constraints="namespaces: letters, digits, _ and /",
        read_only=True,
    ),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}
REBUILD_PARAMS = frozenset(s.name for s in SPECS if s.rebuilds)
LIVE_PARAMS = frozenset(s.name for s in SPECS if s.live)
OUTPUTS_FLAGS = frozenset(output.flag for output in OUTPUTS.values())


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
    if name == "cameras":
        return check_cameras(list(value) if value is not None else [])
    if spec.choices and value not in spec.choices:
        return f"{name} {value!r} is not allowed; choose from {list(spec.choices)}"
    if name in ("input_width", "input_height") and value != 0 and value < MIN_SIDE:
        return f"{name} {value} is too small: use 0 (the weights' size) or at least {MIN_SIDE}"
    return None


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


def declare_parameters(node: Any) -> None:
    """Declare every parameter of the table on ``node`` (an rclpy Node); a value given at
    start that ``check_value`` refuses stops it with InvalidParameterValueException."""
    from rclpy.exceptions import InvalidParameterValueException, ParameterUninitializedException

    for spec in SPECS:
        # cameras is declared with a value: rclpy infers [] as a byte array, and an
        # uninitialised parameter makes get_parameters answer nothing for *every* name
        node.declare_parameter(spec.name, ros_value(spec.default), descriptor(spec))
    try:
        node.get_parameter("cameras")
    except ParameterUninitializedException:  # rcl reads `cameras: []` as "not set"
        raise InvalidParameterValueException(
            "cameras",
            [],
            "cameras: an empty list; leave it out for one camera on 'image', or list the cameras",
        ) from None


def check_change(changes: dict[str, Any], current: Any = None) -> str | None:
    """Why a parameter change must be refused, or None: each value on its own, then (once
    declared: ``current`` reads the NodeSettings in force) the whole set it would make."""
    for name, value in changes.items():
        reason = check_value(name, value)
        if reason:
            return reason
    if current is None or not changes.keys() & (REBUILD_PARAMS | LIVE_PARAMS):
        return None
    return check_settings(NodeSettings.from_values({**dataclasses.asdict(current()), **changes}))


def check_cameras(names: list[str]) -> str | None:
    """Why a ``cameras`` list cannot be served, or None."""
    if tuple(names) == SINGLE_CAMERA:
        return None
    stripped = [n.strip("/") for n in names]
    if any(not n for n in stripped):
        return f"cameras: an empty camera name in {names}"
    if len(set(stripped)) != len(stripped):
        return f"cameras: a camera is listed twice in {names}"
    bad = [n for n in names if not all(c.isalnum() or c in "_/" for c in n) or "//" in n]
    if bad:
        return f"cameras: {bad} are not namespaces (letters, digits, _ and /)"
    return None


def ros_value(value: Any) -> Any:
    """A setting's value as a ROS parameter takes it (string arrays as lists)."""
    return list(value) if isinstance(value, tuple) else value


def check_settings(settings: NodeSettings) -> str | None:
    """Why this combination of values cannot build a pipeline, found without building it."""
    from seg_ros.inference.availability import unavailable
    from seg_ros.inference.errors import PipelineError
    from seg_ros.inference.pipeline import resolve_backend

    try:
        config = settings.pipeline_config().validate()
        backend = resolve_backend(config)  # once per change: the checks below share it
    except PipelineError as e:
        return str(e)
    return (
        _check_engine(settings, backend) or _check_weights(settings) or unavailable(config, backend)
    )


def _check_engine(settings: NodeSettings, backend: str) -> str | None:
    if not settings.engine:
        return None
    from seg_ros.inference.backends import backend_class
    from seg_ros.inference.errors import PipelineError

    try:
        cls = backend_class(backend)
        if not cls.engine_kinds:
            cls.read_engine(Path(settings.engine))  # raises, naming the backends that take one
    except PipelineError as e:
        return str(e)
    if not Path(settings.engine).expanduser().is_file():
        return f"engine file not found: {settings.engine}"
    return None


def _check_weights(settings: NodeSettings) -> str | None:
    """The header only: the file exists, is seg_ros weights, and is for this model; an ONNX
    (an own model) with a description that fits it, and the outputs it can give."""
    from seg_ros.own_model import confidence_problem, is_onnx_model, read_any_metadata
    from seg_ros.weights import WeightsError, model_mismatch

    if not settings.weights:
        return None
    try:
        meta = read_any_metadata(settings.weights)
    except WeightsError as e:
        return f"weights: {e}"
    if is_onnx_model(settings.weights):  # model and variant are the description's
        return confidence_problem(meta, settings.publish_confidence, settings.min_confidence)
    mismatch = model_mismatch(meta, f"weights {settings.weights}", settings.model, settings.variant)
    if mismatch is None:
        return None
    if meta.model != settings.model:
        hint = "set model and weights together (set_parameters_atomically) or clear weights"
        return f"{mismatch}; {hint}"
    return f"{mismatch}; clear variant to follow the weights"
