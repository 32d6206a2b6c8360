"""ONNX Runtime backend: the CPU execution provider here; CUDA / TensorRT providers on a GPU.

The provider list is checked after the session is made: ONNX Runtime quietly runs a whole
session on the CPU when a GPU provider fails to load, and a user who asked for CUDA must hear
that instead.

Throughput mode on the CPU keeps one frame in flight per thread: one session, run from that
many worker threads, each run on one intra-op thread (``InferenceSession.run`` is thread-safe).
A memory-bound network uses two cores better as two one-thread runs than as one two-thread
run (FPLNet at 360x480 on a 2-core Xeon: 17.2 against 14.2 frames a second).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.inference.backends.base import Backend, BuildContext, EngineInfo
from seg_ros.inference.backends.in_flight import InFlight
from seg_ros.inference.config import cuda_index
from seg_ros.inference.errors import BackendUnavailableError, ConfigError, PipelineError
from seg_ros.inference.postprocess import argmax_nchw
from seg_ros.inference.preprocess import normalisation_constants, normalise_nchw


def providers_for(device: str, precision: str, available: list[str]) -> list[Any]:
    """The provider list for a device and precision, or BackendUnavailableError naming what is
    missing. Pure logic, so it is testable without a GPU."""
    if device == "cpu":
        if precision != "fp32":
            raise ConfigError(
                f"precision {precision!r} is not available for onnxruntime on the CPU (its CPU "
                "kernels are fp32); use backend 'torch' for bf16"
            )
        return ["CPUExecutionProvider"]
    index = cuda_index(device)
    if precision == "bf16":
        raise ConfigError("precision 'bf16' is not available for onnxruntime; use fp32 or fp16")
    providers: list[Any] = []
    if "TensorrtExecutionProvider" in available:
        providers.append(
            (
                "TensorrtExecutionProvider",
                {"device_id": index, "trt_fp16_enable": precision == "fp16"},
            )
        )
    elif precision == "fp16":
        raise BackendUnavailableError(
            "precision 'fp16' with onnxruntime needs its TensorrtExecutionProvider, which this "
            f"onnxruntime lacks (it has {available}); use backend 'tensorrt' or 'torch'"
        )
    if "CUDAExecutionProvider" in available:
        providers.append(("CUDAExecutionProvider", {"device_id": index}))
    if not providers:
        raise BackendUnavailableError(
            f"device {device!r} was asked, but this onnxruntime has no CUDA or TensorRT "
            f"execution provider (it has {available}); install onnxruntime-gpu or use 'cpu'"
        )
    # Nodes a GPU provider cannot run go to the CPU provider, as ONNX Runtime always does.
    providers.append("CPUExecutionProvider")
    return providers


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    # The ONNX it runs is exported for one 1x3xHxW frame (a fixed shape, as TensorRT needs).
    max_batch = 1
    precisions = ("fp32", "fp16")
    engine_kinds = ("ONNX",)
    runtime = ("onnxruntime", "pip install onnxruntime (onnxruntime-gpu for CUDA)")

    @classmethod
    def build(cls, ctx: BuildContext) -> OnnxRuntimeBackend:
        c, meta = ctx.config, ctx.metadata
        onnx_path = Path(c.engine) if c.engine else ctx.export_onnx()
        return cls(
            onnx_path, meta.mean, meta.std, c.device, c.precision, c.threads, c.inference_mode
        )

    @classmethod
    def read_engine(cls, path: Path) -> EngineInfo:
        return onnx_engine_info(path)

    def __init__(
        self,
        onnx_path: str | Path,
        mean: list[float],
        std: list[float],
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        inference_mode: str = "latency",
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailableError(
                "backend 'onnxruntime' needs the onnxruntime package (pip install seg_ros[onnx])"
            ) from e
        super().__init__()
        self.device = device
        self.precision = precision
        providers = providers_for(device, precision, ort.get_available_providers())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        slots = self._slots(inference_mode, device, threads)
        if slots > 1:
            options.intra_op_num_threads = 1  # the threads go to frames, one each
            options.inter_op_num_threads = 1
        elif threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        path = Path(onnx_path)
        if not path.is_file():
            raise PipelineError(f"ONNX file not found: {path}")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # ORT raises its own exception types for bad files and providers
            raise PipelineError(f"onnxruntime cannot load {path}: {e}") from None
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        got = self.session.get_providers()
        if wanted not in got:
            raise BackendUnavailableError(
                f"onnxruntime did not start {wanted} for {device!r} (session runs on {got})"
            )
        self.notes["providers"] = ", ".join(got)
        self.notes["onnx"] = str(path)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self._scale, self._bias = normalisation_constants(mean, std)
        if slots > 1:
            self.in_flight = slots
            # one session, run from ``slots`` threads: its weights are shared, not copied
            self._in_flight = InFlight([None] * slots, self._run_slot, "seg_ros-onnxruntime")
            self.notes["onnxruntime_runs"] = f"{slots} at once, one thread each"

    def _slots(self, mode: str, device: str, threads: int | None) -> int:
        """Frames in flight for ``mode``: one per CPU thread in throughput mode, else 1 (with
        the reason in ``in_flight_note``)."""
        if mode != "throughput":
            return 1
        if device != "cpu":
            self.in_flight_note = (
                "onnxruntime's GPU providers run one frame at a time here; backend tensorrt "
                "for a GPU"
            )
            return 1
        n = threads or len(os.sched_getaffinity(0))
        if n < 2:
            self.in_flight_note = "onnxruntime was given 1 thread: one frame at a time"
        return n

    def prepare(self, image: np.ndarray) -> np.ndarray:
        # A new array per frame: with frames in flight each run holds its own input.
        return normalise_nchw(image, self._scale, self._bias)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def _run_slot(self, _slot: None, batch: np.ndarray) -> np.ndarray:
        return self.infer(batch)

    def labels(self, logits: np.ndarray) -> np.ndarray:
        return argmax_nchw(logits)

    def to_numpy(self, logits: np.ndarray) -> np.ndarray:
        return np.asarray(logits, np.float32)


def onnx_engine_info(path: Path) -> EngineInfo:
    """An ONNX file's seg_ros metadata and, for a fixed-size export, its size."""
    from seg_ros.inference.export import read_onnx_metadata

    raw = read_onnx_metadata(path)
    size = None
    if raw.get("onnx_dynamic") == "false" and "onnx_input_size" in raw:
        h, w = (int(v) for v in raw["onnx_input_size"].split("x"))
        size = (h, w)
    return EngineInfo(raw, size)
