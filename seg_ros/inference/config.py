"""What a pipeline is asked to be, and the checks that turn a bad request into a clear error."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seg_ros.inference.backends import BACKEND_NAMES
from seg_ros.inference.errors import ConfigError

BACKENDS = ("auto", *BACKEND_NAMES)
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
# cpu | cuda | cuda:N for every backend; OpenVINO's own device names for OpenVINO.
DEVICE_PATTERN = r"cpu|cuda(:\d+)?|gpu(\.\d+)?|npu"
OPENVINO_ONLY_DEVICES = r"gpu(\.\d+)?|npu"
OUTPUT_RESOLUTIONS = ("input", "network")
COMPILE_MODES = ("off", "inductor", "inductor-freezing")
# latency: one frame in the network at a time, all threads on it; throughput: as many frames
# in flight as the runtime gains from (OpenVINO streams, onnxruntime runs on the CPU, TensorRT
# contexts), each on fewer threads.
INFERENCE_MODES = ("latency", "throughput")
COLOR_ORDERS = ("rgb", "bgr")
# Every network here pads to its output stride internally; sizes this small are certainly a
# mistake (width and height swapped with a scale, or a typo).
MIN_SIDE = 32
MIN_WORKSPACE_MB, MAX_WORKSPACE_MB = 64, 65536


@dataclass
class PipelineConfig:
    model: str = "fplnet"
    variant: str | None = None  # None = the registry default (or the weights' variant)
    # safetensors path; None = the shipped models/<model>_camvid.safetensors when installed,
    # else random init with a loud warning.
    weights: str | None = None
    # "auto" (OpenVINO on a CPU where installed, else torch; see resolve_backend) | "torch" |
    # "onnxruntime" | "openvino" | "tensorrt"
    backend: str = "auto"
    device: str = "cpu"  # "cpu" | "cuda" | "cuda:N"; OpenVINO also "gpu", "gpu.N", "npu"
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16" | "int8" (OpenVINO, a quantized model)
    # ONNX file (onnxruntime), OpenVINO IR .xml (openvino: the int8 model from seg-quantize) or
    # TensorRT engine; None = export/build one on the fly.
    engine: str | None = None
    # Network (height, width); None = the weights' input_size (512x1024 without weights). One
    # side 0 = that side follows the other with the weights' aspect ratio.
    input_size: tuple[int, int] | None = None
    output_resolution: str = "input"  # "input" | "network"
    inference_mode: str = "latency"  # see INFERENCE_MODES
    overlay_alpha: float = 0.5
    # Per-pixel confidence: the winning class's softmax probability, computed where the logits
    # are. ``confidence`` returns it (SegmentationResult.confidence); pixels below
    # ``min_confidence`` are labelled 255 (unlabeled). Both apply from the next frame.
    confidence: bool = False
    min_confidence: float = 0.0
    num_classes: int | None = None  # random init only (default 19, cityscapes palette)
    # torch backend only: "off", "inductor" (torch.compile) or "inductor-freezing" (weights
    # frozen into the graph). Compiled models must pass the parity check or the build fails.
    # Off by default: on this CPU it gains little (see README) and costs a minute at start.
    compile: str = "off"
    # Fast paths (compile, bf16, fp16, engines) are checked against fp32 eager on a synthetic
    # image before use: the share of pixels whose label must agree.
    parity_min_agreement: float = 0.99
    parity_check: bool = True
    threads: int | None = None  # CPU threads for torch/onnxruntime; None = the library's choice
    # TensorRT builder workspace for an engine built on the fly (MiB); a Jetson Xavier with
    # 8 GB shared memory may need less than the desktop default.
    trt_workspace_mb: int = 2048

    def validate(self) -> PipelineConfig:
        """Check every field; raise ``ConfigError`` naming the field and the allowed values."""
        from seg_ros.models import is_default_variant, list_models

        for name in SINGLE_FIELD_CHECKS:
            problem = field_problem(name, getattr(self, name))
            if problem:
                raise ConfigError(problem)
        variants = list_models()[self.model]
        if not is_default_variant(self.variant) and self.variant not in variants:
            _bad("variant", self.variant, variants, f" for model {self.model!r}")
        self._check_own_model()
        if self.backend != "auto":  # auto picks a backend that runs them (resolve_backend)
            problem = backend_problem(self.backend, self.device, self.precision)
            if problem:
                raise ConfigError(problem)
        if self.input_size is not None:
            size = self.input_size
            ok = (
                isinstance(size, (tuple, list))
                and len(size) == 2
                and all(isinstance(s, int) and not isinstance(s, bool) for s in size)
                and all(s == 0 or s >= MIN_SIDE for s in size)
                and max(size) > 0
            )
            if not ok:
                raise ConfigError(
                    f"input_size must be (height, width) with integers >= {MIN_SIDE} (one of "
                    f"them may be 0: it then follows the weights' aspect ratio), got {size!r}"
                )
            self.input_size = (int(size[0]), int(size[1]))
        if self.num_classes is not None and (
            not isinstance(self.num_classes, int) or not 1 <= self.num_classes <= 255
        ):
            # 255 is the unlabeled id of the uint8 label map.
            raise ConfigError(f"num_classes must be in [1, 255], got {self.num_classes!r}")
        if not 0 <= self.parity_min_agreement <= 1:
            raise ConfigError(
                f"parity_min_agreement must be in [0, 1], got {self.parity_min_agreement!r}"
            )
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer, got {self.threads!r}")
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise ConfigError(
                "precision 'fp16' needs device 'cuda' (CPUs here run 'fp32' or 'bf16'), "
                f"got device {self.device!r}"
            )
        return self

    def _check_own_model(self) -> None:
        """An ONNX in ``weights`` is an own model (seg_ros.own_model): the options that only
        make sense for a seg_ros network built in torch are refused, naming them."""
        from seg_ros.own_model import is_onnx_model
        from seg_ros.weights import TORCH_RUNS_OWN_NETWORKS

        if not is_onnx_model(self.weights):
            return
        if self.backend == "torch":
            raise ConfigError(
                f"backend 'torch' cannot run {self.weights}: {TORCH_RUNS_OWN_NETWORKS}"
            )
        if self.num_classes is not None:
            raise ConfigError(
                f"num_classes is for random init; {self.weights}'s description names its classes"
            )


# Fields judged on their own (field_problem), before the rules that join several fields.
SINGLE_FIELD_CHECKS = (
    "model",
    "backend",
    "precision",
    "output_resolution",
    "inference_mode",
    "compile",
    "device",
    "overlay_alpha",
    "min_confidence",
    "trt_workspace_mb",
)
CHOICES = {
    "backend": BACKENDS,
    "precision": PRECISIONS,
    "output_resolution": OUTPUT_RESOLUTIONS,
    "inference_mode": INFERENCE_MODES,
    "compile": COMPILE_MODES,
}


def _model_problem(value: object) -> str | None:
    from seg_ros.models import list_models

    models = sorted(list_models())
    return None if value in models else _not_allowed("model", value, models)


def _device_problem(value: object) -> str | None:
    if isinstance(value, str) and re.fullmatch(DEVICE_PATTERN, value):
        return None
    return _not_allowed("device", value, ["cpu", "cuda", "cuda:N", "gpu", "gpu.N", "npu"])


def _unit_interval(name: str) -> Callable[[object], str | None]:
    def problem(value: object) -> str | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
        return None if ok else f"{name} must be in [0, 1], got {value!r}"

    return problem


def _workspace_problem(value: object) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and MIN_WORKSPACE_MB <= value <= MAX_WORKSPACE_MB:
        return None
    return (
        f"trt_workspace_mb must be an integer in [{MIN_WORKSPACE_MB}, {MAX_WORKSPACE_MB}] "
        f"(MiB), got {value!r}"
    )


_FIELD_CHECKS = {
    "model": _model_problem,
    "device": _device_problem,
    "overlay_alpha": _unit_interval("overlay_alpha"),
    "min_confidence": _unit_interval("min_confidence"),
    "trt_workspace_mb": _workspace_problem,
}


def field_problem(name: str, value: object) -> str | None:
    """Why ``value`` is not acceptable for PipelineConfig field ``name`` on its own, or None:
    the one statement of each single-field rule (the node's parameter checks use it too)."""
    if name in CHOICES:
        return None if value in CHOICES[name] else _not_allowed(name, value, CHOICES[name])
    check = _FIELD_CHECKS.get(name)
    return check(value) if check else None


# device kind -> how a message names its devices
DEVICE_KINDS = {"cpu": "'cpu'", "cuda": "'cuda' or 'cuda:N'", "openvino": "'gpu', 'gpu.N' or 'npu'"}


def device_kind(device: str) -> str:
    """cpu, cuda (cuda, cuda:N) or openvino (OpenVINO's own devices: gpu, gpu.N, npu)."""
    if device.startswith("cuda"):
        return "cuda"
    return "openvino" if re.fullmatch(OPENVINO_ONLY_DEVICES, device) else "cpu"


def backend_problem(backend: str, device: str, precision: str) -> str | None:
    """Why ``backend`` cannot run ``device`` and ``precision``, from its declared
    capabilities (``Backend.device_kinds``, ``precisions``), or None."""
    from seg_ros.inference.backends import backend_class

    cls = backend_class(backend)
    kind = device_kind(device)
    if kind not in cls.device_kinds:
        if kind == "openvino":
            return (
                f"device {device!r} is an OpenVINO device; use backend 'openvino' (or cpu/cuda "
                "for the others)"
            )
        wanted = " or ".join(DEVICE_KINDS[k] for k in cls.device_kinds)
        return f"backend {backend!r} needs device {wanted}, got {device!r}"
    if precision not in cls.precisions:
        return _not_allowed("precision", precision, cls.precisions, f" for backend {backend!r}")
    return None


def cuda_index(device: str) -> int:
    """N of "cuda:N" (0 for "cuda"): the one reading of a CUDA device's index."""
    _, _, index = device.partition(":")
    return int(index) if index else 0


def _not_allowed(name: str, value: object, allowed: Any, where: str = "") -> str:
    return f"{name} {value!r} is not allowed{where}; choose from {list(allowed)}"


def _bad(name: str, value: object, allowed: Any, where: str = "") -> None:
    raise ConfigError(_not_allowed(name, value, allowed, where))
