"""OpenVINO backend: Intel's runtime for CPUs (and Intel GPUs/NPUs), fp32, bf16 where the CPU
has it, and int8 models made by ``seg-quantize`` (NNCF post-training quantization).

Without an engine the network is converted from the PyTorch module itself
(``openvino.convert_model``), not from ONNX: OpenVINO's ONNX reader has no ``DeformConv``, its
PyTorch frontend converts DESANet's deformable convolution (DeformableConvolution). The
converted model is cached as IR (.xml + .bin) like the ONNX exports.

Engines (``engine``): an OpenVINO IR .xml or an ONNX file. seg_ros writes its metadata into the
IR's runtime info (``rt_info["seg_ros"]``): classes, palette, normalisation, input size and,
for int8, the accuracy the quantized model kept on the validation split.
"""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.inference.backends.base import Backend, BuildContext, EngineInfo
from seg_ros.inference.errors import BackendUnavailableError, ConfigError, PipelineError
from seg_ros.inference.postprocess import argmax_nchw
from seg_ros.inference.preprocess import normalisation_constants, normalise_nchw
from seg_ros.paths import atomic_write

log = logging.getLogger("seg_ros.inference")
RT_INFO_KEY = "seg_ros"
# An int8 model's labels differ from fp32 where the network is unsure; what it must keep is
# its validation accuracy (recorded by seg-quantize). The synthetic-scene parity check only
# guards against a broken model.
INT8_MIN_AGREEMENT = 0.9
_PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def import_openvino() -> Any:
    try:
        import openvino as ov
    except ImportError as e:
        raise BackendUnavailableError(
            "backend 'openvino' needs the openvino package (pip install seg_ros[openvino])"
        ) from e
    return ov


@functools.lru_cache(maxsize=None)
def core() -> Any:
    """One OpenVINO Core per process (it holds the plugins and their caches)."""
    return import_openvino().Core()


def openvino_device(device: str) -> str:
    """seg_ros' device name -> OpenVINO's (cpu -> CPU, gpu.1 -> GPU.1, npu -> NPU)."""
    if device.startswith("cuda"):
        raise ConfigError(f"device {device!r} is not an OpenVINO device; use cpu, gpu or npu")
    return device.upper()


def read_metadata(model: Any) -> dict[str, str]:
    """seg_ros' strings in an OpenVINO model's runtime info ({} when it has none)."""
    info = model.get_rt_info()
    if RT_INFO_KEY not in info:
        return {}
    keys = model.get_rt_info([RT_INFO_KEY]).astype(dict)
    return {str(k): model.get_rt_info([RT_INFO_KEY, str(k)]).astype(str) for k in keys}


def write_metadata(model: Any, values: dict[str, str]) -> None:
    for key, value in values.items():
        model.set_rt_info(str(value), [RT_INFO_KEY, key])


def is_int8(model: Any) -> bool:
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def convert_from_torch(network: Any, input_size: tuple[int, int], dynamic: bool = False) -> Any:
    """The fp32 PyTorch module as an OpenVINO model with a static 1x3xHxW input, or with any
    height and width (``dynamic``: traced at ``input_size``, sizes kept symbolic, so the model
    can later be reshaped to any size; a static trace bakes in its padding and crop)."""
    import torch

    ov = import_openvino()
    example = torch.zeros(1, 3, *input_size)
    with torch.no_grad(), warnings.catch_warnings():
        # convert_model traces with torch.jit, which PyTorch 2.9+ deprecates on every call: the
        # user can do nothing about it, and it filled the node's console at each conversion.
        warnings.filterwarnings("ignore", r"`torch\.jit\.trace", FutureWarning)
        shape = (1, 3, -1, -1) if dynamic else (1, 3, *input_size)
        return ov.convert_model(network.eval(), example_input=example, input=[shape])


def fit_input_size(model: Any, size: tuple[int, int], source: str, same_size: bool = True) -> Any:
    """``model`` with its input set to 1x3xHxW (OpenVINO reshapes in place), or ConfigError
    where its output would not come out at that size: an IR traced at a fixed size keeps that
    size's padding and crop, so only a model saved with symbolic sizes (seg-quantize's) can be
    reshaped faithfully."""
    h, w = size
    shape = model.input(0).get_partial_shape()
    if shape.is_static and tuple(shape.to_shape())[2:] == (h, w):
        return model
    saved = "any size" if shape.is_dynamic else f"{shape[2].get_length()}x{shape[3].get_length()}"
    try:
        model.reshape([1, 3, h, w])
        out = model.output(0).get_partial_shape()
        fits = out.is_static and (not same_size or tuple(out.to_shape())[-2:] == (h, w))
    except Exception:  # OpenVINO raises RuntimeError subclasses of its own
        fits = False
    if not fits:
        raise ConfigError(
            f"{source} was made for {saved} and cannot run at {h}x{w}: make one for this size "
            f"with seg-quantize --input-size {h}x{w} (and set engine to it), or leave "
            "input_size unset"
        )
    return model


class OpenVINOBackend(Backend):
    name = "openvino"
    # One frame at a time: batching does not pay on a CPU (docs/BENCHMARKS.md).
    max_batch = 1
    device_kinds = ("cpu", "openvino")
    precisions = ("fp32", "bf16", "fp16", "int8")
    engine_kinds = ("OpenVINO IR .xml", "ONNX")
    runtime = ("openvino", "pip install 'seg_ros[openvino]'")
    reshapes_engine = True  # an IR or ONNX runs at the size asked (fit_input_size)

    @classmethod
    def build(cls, ctx: BuildContext) -> OpenVINOBackend:
        c, meta = ctx.config, ctx.metadata
        ov = import_openvino()
        engine = Path(c.engine) if c.engine else None
        if engine is None and c.precision == "int8":
            engine = int8_model(meta.model, ctx.weights_path)
        own = ctx.onnx_model is not None
        engine = engine or ctx.onnx_model  # an own model's ONNX is read like an engine
        if engine is not None:
            source = str(engine)
            # An own model may answer at a stride of its input; seg_ros' networks may not.
            model = fit_input_size(read_model(engine), ctx.input_size, source, same_size=not own)
        elif ctx.network is None:
            raise PipelineError("backend 'openvino' needs weights or an engine")
        else:
            # Random-init networks are converted for this run only, never cached.
            cached = None if ctx.random_init else ctx.artifact(".xml")
            if cached is not None and cached.is_file():
                log.info("using the OpenVINO model cached at %s", cached)
                model = core().read_model(str(cached))
                source = str(cached)
            else:
                log.info("converting %s/%s to OpenVINO", meta.model, meta.variant)
                model = convert_from_torch(ctx.network, ctx.input_size)
                source = "converted from PyTorch"
                if cached is not None:
                    from seg_ros.inference.artifacts import prune

                    cached.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_write(cached, companions=(ir_weights,)) as tmp:
                        ov.save_model(model, str(tmp), compress_to_fp16=False)
                    prune(keep=cached)
                    source = f"converted from PyTorch, cached at {cached}"
        return cls(
            model, meta.mean, meta.std, c.device, c.precision, c.threads, source, c.inference_mode
        )

    @classmethod
    def read_engine(cls, path: Path) -> EngineInfo:
        model = read_model(path)
        raw = read_metadata(model)
        if not raw and path.suffix.lower() == ".onnx":
            from seg_ros.inference.backends.onnxruntime_backend import onnx_engine_info

            return onnx_engine_info(path)
        shape = model.input(0).get_partial_shape()
        size = None
        if shape.is_static and len(shape) == 4:
            size = (int(shape[2].get_length()), int(shape[3].get_length()))
        return EngineInfo(raw, size)

    @classmethod
    def min_agreement(cls, config: Any) -> float:
        if config.precision == "int8":
            return min(config.parity_min_agreement, INT8_MIN_AGREEMENT)
        return config.parity_min_agreement

    def __init__(
        self,
        model: Any,
        mean: list[float],
        std: list[float],
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        source: str = "",
        inference_mode: str = "latency",
    ) -> None:
        super().__init__()
        ov_device = openvino_device(device)
        available = core().available_devices
        if not any(d == ov_device or d.startswith(ov_device + ".") for d in available):
            raise BackendUnavailableError(
                f"OpenVINO has no device {ov_device} here (it has {available})"
            )
        if precision == "fp16" and ov_device.startswith("CPU"):
            raise ConfigError("precision 'fp16' is not for OpenVINO's CPU; use fp32, bf16 or int8")
        capabilities = core().get_property(ov_device, "OPTIMIZATION_CAPABILITIES")
        if precision == "bf16" and "BF16" not in capabilities:
            raise BackendUnavailableError(
                f"this {ov_device} has no bf16 (OpenVINO reports {list(capabilities)}); use fp32"
            )
        quantized = is_int8(model)
        if quantized and precision != "int8":
            raise ConfigError(
                f"{source} is an int8 model; set precision 'int8' to run it (the accuracy it "
                "kept is in its metadata)"
            )
        if precision == "int8" and not quantized:
            raise ConfigError(
                f"precision 'int8' was asked, but {source} is not quantized; make an int8 "
                "model with seg-quantize"
            )
        self.device = device
        self.precision = precision
        throughput = inference_mode == "throughput"
        config: dict[str, Any] = {
            # THROUGHPUT: OpenVINO splits the threads into streams, one request each.
            "PERFORMANCE_HINT": "THROUGHPUT" if throughput else "LATENCY",
            "INFERENCE_PRECISION_HINT": _PRECISION_HINTS.get(precision, "f32"),
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.compiled = core().compile_model(model, ov_device, config)
        except Exception as e:  # OpenVINO raises RuntimeError subclasses of its own
            raise PipelineError(f"OpenVINO cannot compile the model for {ov_device}: {e}") from None
        self.request = self.compiled.create_infer_request()
        self.queue = None
        if throughput:
            self._start_queue()
        self._scale, self._bias = normalisation_constants(mean, std)
        self.notes["openvino"] = import_openvino().__version__.split("-")[0]
        self.notes["openvino_model"] = source
        meta = read_metadata(model)
        if "int8_val_miou" in meta:
            self.notes["int8_accuracy"] = (
                f"val mIoU {meta['int8_val_miou']} (fp32 {meta.get('fp32_val_miou', '?')}) on "
                f"{meta.get('int8_validation', '?')}"
            )

    def _start_queue(self) -> None:
        """An async request queue as deep as the streams OpenVINO chose for the threads."""
        requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        streams = self.compiled.get_property("NUM_STREAMS")
        if requests < 2:
            self.in_flight_note = (
                f"OpenVINO chose {requests} request for these threads: one frame at a time"
            )
            return
        self.queue = import_openvino().AsyncInferQueue(self.compiled, requests)
        self.queue.set_callback(_request_done)
        self.in_flight = requests
        self.notes["streams"] = str(streams)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        # A new array per frame: with frames in flight each request holds its own input.
        return normalise_nchw(image, self._scale, self._bias)

    def start(self, batch: Any, done: Any, failed: Any = None) -> None:
        if self.queue is None:
            super().start(batch, done, failed)
            return
        self.queue.start_async({0: batch}, done)  # waits while every request is busy

    def wait_idle(self) -> None:
        if self.queue is not None:
            self.queue.wait_all()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        # The output tensor's memory is the request's own and is overwritten by the next
        # frame: the pipeline takes labels from it before then; to_numpy copies.
        self.request.infer({0: batch})
        return self.request.get_output_tensor(0).data

    def labels(self, logits: np.ndarray) -> np.ndarray:
        return argmax_nchw(logits)

    def to_numpy(self, logits: np.ndarray) -> np.ndarray:
        return np.array(logits, np.float32)


def _request_done(request: Any, done: Any) -> None:
    # OpenVINO's thread; the output is the request's own memory, reused by its next frame, so
    # ``done`` takes what it needs (the labels) before returning.
    done(request.get_output_tensor(0).data)


def shipped_int8(model: str, weights: Path | None) -> Path | None:
    """The int8 model shipped for ``model`` (models/<model>_camvid_int8.xml), if it was
    quantized from exactly these weights (its metadata records their digest)."""
    from seg_ros.inference.artifacts import file_digest
    from seg_ros.paths import find_data

    path = find_data(f"models/{model}_camvid_int8.xml")
    if path is None or weights is None:
        return None
    recorded = read_metadata(read_model(path)).get("fp32_weights_digest")
    return path if recorded == file_digest(weights) else None


def int8_model(model: str, weights: Path | None) -> Path:
    """The int8 model to run when no engine is given: the shipped one made from these
    weights, or ConfigError saying how to make one."""
    path = shipped_int8(model, weights)
    if path is None:
        raise ConfigError(
            f"precision 'int8' runs a quantized model, and none is shipped for {model} with "
            "these weights: make one with seg-quantize (it checks the accuracy kept on a "
            "validation split) and set engine to its .xml"
        )
    return path


def ir_weights(xml: Path) -> Path:
    """The .bin an OpenVINO IR's .xml reads its weights from."""
    return xml.with_suffix(".bin")


def read_model(path: Path) -> Any:
    if not path.is_file():
        raise PipelineError(f"OpenVINO model not found: {path}")
    if path.suffix.lower() == ".xml" and not ir_weights(path).is_file():
        raise PipelineError(f"{path} has no weights file {ir_weights(path).name} beside it")
    try:
        return core().read_model(str(path))
    except Exception as e:  # a damaged .xml/.bin or a foreign file
        raise PipelineError(f"OpenVINO cannot read {path}: {e}") from None
