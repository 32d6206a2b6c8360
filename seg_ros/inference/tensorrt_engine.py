"""TensorRT engines: build from ONNX, save with a sidecar, load with checks.

An engine is compiled for one TensorRT version and one GPU (and here one input size): loaded
anywhere else it either fails deep inside TensorRT or, worse, runs slowly. The sidecar
(``<engine>.json``) records what it was built for, and ``check_sidecar`` compares that with the
machine before TensorRT sees the file, so the user reads which of the three differs.

The sidecar logic is plain Python (testable without a GPU); building and loading need
``tensorrt`` (10.x; 8.5+ on Jetson Xavier) and a CUDA-capable PyTorch.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seg_ros.inference.errors import BackendUnavailableError, EngineMismatchError, PipelineError
from seg_ros.paths import atomic_write
from seg_ros.weights import WeightsMetadata

log = logging.getLogger("seg_ros.inference")

SIDECAR_FORMAT = "seg_ros.engine/1"
DEFAULT_WORKSPACE = 2 << 30  # bytes; Jetson Xavier users may want less (--workspace)


@dataclass
class EngineSidecar:
    """What an engine was built for, as stored next to it."""

    tensorrt: str
    gpu: str
    compute_capability: str
    input_size: list[int]  # height, width
    precision: str
    input_name: str = "image"
    output_name: str = "logits"
    onnx: str = ""
    metadata: dict[str, str] = field(default_factory=dict)  # seg_ros weights metadata strings
    format: str = SIDECAR_FORMAT


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def write_sidecar(engine_path: str | Path, info: EngineSidecar) -> Path:
    path = sidecar_path(engine_path)
    with atomic_write(path) as tmp:  # a sidecar is either whole or absent
        tmp.write_text(json.dumps(asdict(info), indent=2) + "\n")
    return path


def read_sidecar(engine_path: str | Path) -> EngineSidecar:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise EngineMismatchError(
            f"{engine_path} has no sidecar {path.name}: cannot tell which TensorRT version, GPU "
            "and input size it was built for; rebuild it with seg-export --tensorrt"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EngineMismatchError(f"{path}: unreadable sidecar ({e})") from None
    if not isinstance(raw, dict) or raw.get("format") != SIDECAR_FORMAT:
        raise EngineMismatchError(f"{path}: not a seg_ros engine sidecar ({SIDECAR_FORMAT})")
    known = EngineSidecar.__dataclass_fields__
    missing = [k for k in ("tensorrt", "gpu", "compute_capability", "input_size", "precision")
               if k not in raw]  # fmt: skip
    if missing:
        raise EngineMismatchError(f"{path}: sidecar lacks {', '.join(missing)}")
    return EngineSidecar(**{k: v for k, v in raw.items() if k in known})


def check_sidecar(
    info: EngineSidecar,
    tensorrt_version: str,
    gpu: str,
    compute_capability: str,
    input_size: tuple[int, int] | None = None,
    precision: str | None = None,
    source: str = "engine",
) -> None:
    """Raise EngineMismatchError naming every difference between the sidecar and here."""
    problems = []
    if info.tensorrt != tensorrt_version:
        problems.append(f"built with TensorRT {info.tensorrt}, this is TensorRT {tensorrt_version}")
    if info.gpu != gpu or info.compute_capability != compute_capability:
        problems.append(
            f"built for {info.gpu} (sm {info.compute_capability}), this GPU is {gpu} "
            f"(sm {compute_capability})"
        )
    if input_size is not None and tuple(info.input_size) != tuple(input_size):
        problems.append(
            f"built for input {info.input_size[0]}x{info.input_size[1]}, "
            f"{input_size[0]}x{input_size[1]} was asked"
        )
    if precision is not None and info.precision != precision:
        problems.append(f"built for {info.precision}, {precision} was asked")
    if problems:
        raise EngineMismatchError(
            f"{source} does not fit here: " + "; ".join(problems) + ". Rebuild it on this machine "
            "(seg-export --tensorrt, or leave engine unset to build one on the fly)"
        )


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendUnavailableError(
            "backend 'tensorrt' needs the TensorRT Python package (pip install tensorrt; on Jetson "
            "JetPack's python3-libnvinfer); it is not installed"
        ) from e
    major, minor = tensorrt_version(trt)
    # 8.5 brought the name-based tensor API and execute_async_v3 used here; it is what JetPack 5
    # ships for Jetson Xavier (TensorRT 10 needs JetPack 6, i.e. Orin).
    if (major, minor) < (8, 5):
        raise BackendUnavailableError(f"TensorRT >= 8.5 is needed, found {trt.__version__}")
    return trt


def tensorrt_version(trt: Any) -> tuple[int, int]:
    """(major, minor) of the TensorRT module given: the one parse of its version."""
    major, minor = (int(v) for v in trt.__version__.split(".")[:2])
    return major, minor


# ONNX ops that need a newer TensorRT than the oldest supported (8.5): op -> (first version
# whose ONNX parser imports it, how). DeformConv: onnx-tensorrt 10.1, through the
# ModulatedDeformConv2d plugin that only init_libnvinfer_plugins registers.
TENSORRT_OPS_SINCE = {"DeformConv": ((10, 1), "the ModulatedDeformConv2d plugin")}


def check_onnx_for_tensorrt(onnx_path: str | Path, version: tuple[int, int]) -> None:
    """BackendUnavailableError naming each op of ``onnx_path`` this TensorRT cannot import."""
    import onnx

    ops = {node.op_type for node in onnx.load(str(onnx_path), load_external_data=False).graph.node}
    for op, (since, how) in TENSORRT_OPS_SINCE.items():
        if op in ops and version < since:
            raise BackendUnavailableError(
                f"{onnx_path} uses ONNX {op}, which TensorRT imports from "
                f"{since[0]}.{since[1]} on ({how}); this is TensorRT {version[0]}.{version[1]}. "
                "Run this model on another backend (torch, onnxruntime) here, or upgrade TensorRT"
            )


@functools.lru_cache(maxsize=None)
def shared_logger(trt: Any) -> Any:
    """One trt.Logger for the process (TensorRT warns about a second one), with TensorRT's
    plugins registered against it (DESANet's DeformConv needs one): call it before parsing
    and before deserializing."""
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    return logger


def fp16_flag(trt: Any) -> Any:
    """The builder flag for fp16, or a clear refusal where there is none (TensorRT 11 builds
    strongly typed networks: precision comes from the ONNX's own types)."""
    flag = getattr(trt.BuilderFlag, "FP16", None)
    if flag is None:
        raise BackendUnavailableError(
            f"TensorRT {trt.__version__} has no fp16 builder flag (strongly typed networks take "
            "their precision from the ONNX); build fp32 engines there, or use TensorRT 8.5-10.x "
            "for fp16"
        )
    return flag


def gpu_identity(device_index: int) -> tuple[str, str]:
    """(name, compute capability) of a CUDA device, through torch."""
    import torch

    major, minor = torch.cuda.get_device_capability(device_index)
    return torch.cuda.get_device_name(device_index), f"{major}.{minor}"


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    input_size: tuple[int, int],
    precision: str = "fp32",
    workspace: int = DEFAULT_WORKSPACE,
    device_index: int = 0,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Build a TensorRT engine for one input size from an ONNX file; write it and its sidecar.

    The optimisation profile pins min = opt = max to ``input_size`` (batch 1): the pipeline
    always feeds that size, and a single-shape profile lets TensorRT pick the best tactics.
    """
    if precision not in ("fp32", "fp16"):
        raise PipelineError(f"TensorRT engines are built in fp32 or fp16, not {precision!r}")
    trt = import_tensorrt()
    check_onnx_for_tensorrt(onnx_path, tensorrt_version(trt))
    fp16 = fp16_flag(trt) if precision == "fp16" else None  # refuse before any work
    import torch

    torch.cuda.set_device(device_index)
    logger = shared_logger(trt)  # plugins registered before the parser runs
    builder = trt.Builder(logger)
    # Explicit batch is the only mode from TensorRT 10 on (the flag is deprecated there); 8.x
    # needs it asked for, or the ONNX parser refuses the network.
    flags = 0
    if tensorrt_version(trt)[0] < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise PipelineError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    if precision == "fp16":
        # No platform_has_fast_fp16 check: deprecated in TensorRT 10.5, and every GPU TensorRT
        # 8.5+ supports computes fp16; the parity guard judges the result.
        config.set_flag(fp16)
    input_tensor = network.get_input(0)
    shape = (1, 3, *input_size)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_tensor.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise PipelineError(f"TensorRT failed to build an engine from {onnx_path} (see its log)")
    engine_path = Path(engine_path)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    # Engine and sidecar each written whole and renamed into place: a kill mid-write never
    # leaves a half engine that a later start would take for a cached one.
    with atomic_write(engine_path, companions=(sidecar_path,)) as tmp:
        tmp.write_bytes(bytes(serialized))
        gpu, capability = gpu_identity(device_index)
        write_sidecar(
            tmp,
            EngineSidecar(
                tensorrt=trt.__version__,
                gpu=gpu,
                compute_capability=capability,
                input_size=list(input_size),
                precision=precision,
                input_name=input_tensor.name,
                output_name=network.get_output(0).name,
                onnx=str(onnx_path),
                metadata=metadata or {},
            ),
        )
    log.info("built TensorRT %s engine %s for %s on %s", precision, engine_path, shape, gpu)
    return engine_path


def engine_io(trt: Any, engine: Any) -> dict[str, tuple[str, tuple[int, ...], str]]:
    """name -> (``input``/``output``, shape, dtype name) of a deserialized engine (8.5+ API)."""
    io = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
        io[name] = (
            mode,
            tuple(int(d) for d in engine.get_tensor_shape(name)),
            engine.get_tensor_dtype(name).name,
        )
    return io


def sidecar_for_engine(
    engine_path: str | Path,
    metadata: dict[str, str],
    precision: str = "fp32",
    device_index: int = 0,
) -> Path:
    """Write the sidecar of an engine seg_ros did not build (``trtexec --onnx=...``): the engine
    is deserialized here and its own I/O must be what the pipeline feeds and reads: one input
    1x3xHxW (fixed), one output 1xCxHxW with C = the weights' classes. Returns the sidecar."""
    if precision not in ("fp32", "fp16"):
        raise PipelineError(f"TensorRT engines are fp32 or fp16, not {precision!r}")
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise PipelineError(f"TensorRT engine not found: {engine_path}")
    if sidecar_path(engine_path).exists():
        raise PipelineError(f"{sidecar_path(engine_path)} exists already; not overwriting it")
    trt = import_tensorrt()
    import torch

    torch.cuda.set_device(device_index)
    runtime = trt.Runtime(shared_logger(trt))  # plugins registered before deserializing
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise PipelineError(
            f"TensorRT {trt.__version__} could not deserialize {engine_path}: corrupt, or built "
            "by another TensorRT version or for another GPU"
        )
    io = engine_io(trt, engine)
    inputs = [(n, s) for n, (m, s, _) in io.items() if m == "input"]
    outputs = [(n, s) for n, (m, s, _) in io.items() if m == "output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise PipelineError(f"{engine_path}: expected one input and one output, found {io}")
    (in_name, in_shape), (out_name, out_shape) = inputs[0], outputs[0]
    if len(in_shape) != 4 or in_shape[:2] != (1, 3) or min(in_shape) <= 0:
        raise PipelineError(
            f"{engine_path}: input {in_name!r} is {in_shape}, not a fixed 1x3xHxW image "
            "(build it from a fixed-size ONNX: seg-export --onnx without --dynamic)"
        )
    meta = WeightsMetadata.from_strings(metadata, str(engine_path))
    expected = (1, meta.num_classes, *in_shape[2:])
    if out_shape != expected:
        raise PipelineError(
            f"{engine_path}: output {out_name!r} is {out_shape}, the weights' {meta.model} "
            f"gives {expected} ({meta.num_classes} classes)"
        )
    gpu, capability = gpu_identity(device_index)
    info = EngineSidecar(
        tensorrt=trt.__version__,
        gpu=gpu,
        compute_capability=capability,
        input_size=list(in_shape[2:]),
        precision=precision,
        input_name=in_name,
        output_name=out_name,
        onnx="(built outside seg_ros)",
        metadata=metadata,
    )
    return write_sidecar(engine_path, info)
