"""TensorRT backend (TensorRT 10 Python API, also 8.5+ as on Jetson Xavier's JetPack 5): runs a
saved engine with ``execute_async_v3``.

Buffers are torch CUDA tensors (no pycuda): the input is normalised on the GPU, the engine
writes logits into a preallocated tensor, and argmax runs there too, so only the uint8 label
map crosses back to the host. Works the same on desktop GPUs and Jetson.

Throughput mode keeps two frames in flight: two more execution contexts of the one engine, each
with its own CUDA stream and buffers, so one frame's copies, argmax and host work overlap the
other's network (the engine's weights are shared; each context adds its activations).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.inference.backends.base import Backend, BuildContext, EngineInfo
from seg_ros.inference.backends.in_flight import InFlight
from seg_ros.inference.backends.torch_backend import (
    argmax_labels,
    normalisation_tensors,
    resolve_device,
)
from seg_ros.inference.config import cuda_index
from seg_ros.inference.errors import PipelineError
from seg_ros.inference.tensorrt_engine import (
    check_sidecar,
    gpu_identity,
    import_tensorrt,
    read_sidecar,
    shared_logger,
    tensorrt_version,
)

log = logging.getLogger("seg_ros.inference")

_TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT32": "int32", "INT64": "int64"}
IN_FLIGHT = 2  # contexts in throughput mode: a copy/argmax stage overlapping one network run


@dataclass
class Slot:
    """One execution context with its CUDA stream and its own input and output buffers."""

    context: Any
    stream: Any  # torch.cuda.Stream
    buffers: dict[str, Any]


class TensorRTBackend(Backend):
    name = "tensorrt"
    # Engines are built and checked for one fixed 1x3xHxW input (seg-export, the sidecar):
    # batches would need an optimisation profile over N, not built yet.
    max_batch = 1
    device_kinds = ("cuda",)
    precisions = ("fp32", "fp16")
    engine_kinds = ("TensorRT engine",)
    runtime = ("tensorrt", "pip install tensorrt; on Jetson JetPack's python3-libnvinfer")

    @classmethod
    def build(cls, ctx: BuildContext) -> TensorRTBackend:
        from seg_ros.inference.tensorrt_engine import build_engine

        c, meta = ctx.config, ctx.metadata
        trt = import_tensorrt()  # fail before any export work when TensorRT is missing
        if c.engine:
            engine = Path(c.engine)
        else:
            # Keyed on what makes an engine valid: TensorRT version, GPU and device too, so an
            # upgrade or another GPU builds a new one instead of reusing a stale one.
            resolve_device(c.device)  # there, or why not
            index = cuda_index(c.device)
            _, capability = gpu_identity(index)
            major, minor = tensorrt_version(trt)
            engine = ctx.artifact(
                f"_{c.precision}_trt{major}.{minor}_sm{capability}_cuda{index}.engine"
            )
            if engine.is_file():
                log.info("using the TensorRT engine cached at %s", engine)
            else:
                log.warning("no engine given: building a TensorRT %s engine at %s (takes "
                            "minutes)", c.precision, engine)  # fmt: skip
                build_engine(
                    ctx.export_onnx(),
                    engine,
                    ctx.input_size,
                    c.precision,
                    workspace=c.trt_workspace_mb << 20,
                    device_index=index,
                    metadata=meta.to_strings(),
                )
        return cls(
            engine, meta.mean, meta.std, c.device, c.precision, ctx.input_size, c.inference_mode
        )

    @classmethod
    def read_engine(cls, path: Path) -> EngineInfo:
        info = read_sidecar(path)
        return EngineInfo(info.metadata, (int(info.input_size[0]), int(info.input_size[1])))

    def __init__(
        self,
        engine_path: str | Path,
        mean: list[float],
        std: list[float],
        device: str = "cuda",
        precision: str = "fp32",
        input_size: tuple[int, int] | None = None,
        inference_mode: str = "latency",
    ) -> None:
        import torch

        super().__init__()
        trt = import_tensorrt()
        self.torch_device = resolve_device(device)
        self.device = str(self.torch_device)
        self.precision = precision
        index = self.torch_device.index or 0
        engine_path = Path(engine_path)
        if not engine_path.is_file():
            raise PipelineError(f"TensorRT engine not found: {engine_path}")
        info = read_sidecar(engine_path)
        gpu, capability = gpu_identity(index)
        # The engine's precision is its own (fp16 engines are the usual Jetson build): taken
        # from its sidecar and reported, not an error against the node's default fp32.
        check_sidecar(info, trt.__version__, gpu, capability, input_size, None, str(engine_path))
        if info.precision != precision:
            self.notes["precision_from_engine"] = f"{info.precision} (asked {precision})"
            precision = info.precision
        self.precision = precision
        self.info = info

        torch.cuda.set_device(index)
        self.logger = shared_logger(trt)  # plugins registered before deserializing
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise PipelineError(f"TensorRT could not deserialize {engine_path} (corrupt file?)")
        self._engine_path = engine_path
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.input_name = name
        self.slot = self._slot()  # infer's own: a frame in flight never shares it
        self.output_name = next(n for n in self.slot.buffers if n != self.input_name)
        # Contexts of an engine with dynamic shapes may not share its one optimisation profile
        # at once; seg_ros' own exports are fixed-size, a user's ONNX may not be.
        dynamic = -1 in tuple(self.engine.get_tensor_shape(self.input_name))
        if inference_mode == "throughput" and dynamic:
            self.in_flight_note = (
                "this engine has dynamic input shapes and one optimisation profile, which two "
                "contexts may not share: one frame at a time (export the ONNX at a fixed size)"
            )
        elif inference_mode == "throughput":
            slots = [self._slot() for _ in range(IN_FLIGHT)]
            self._in_flight = InFlight(slots, self._run_slot, "seg_ros-tensorrt")
            self.in_flight = IN_FLIGHT
            self.notes["tensorrt_contexts"] = (
                f"{IN_FLIGHT} for frames in flight, 1 for single calls"
            )
        self._scale, self._bias = normalisation_tensors(mean, std, self.torch_device)
        self.notes.update(
            {
                "engine": str(engine_path),
                "tensorrt": trt.__version__,
                "gpu": f"{gpu} sm{capability}",
            }
        )

    def _slot(self) -> Slot:
        """A new execution context of the engine, with its stream and buffers."""
        import torch

        context = self.engine.create_execution_context()
        if context is None:
            raise PipelineError(
                f"TensorRT could not create an execution context for {self._engine_path} "
                "(out of GPU memory?)"
            )
        shape = (1, 3, *self.info.input_size)
        if context.set_input_shape(self.input_name, shape) is False:
            raise PipelineError(
                f"{self._engine_path} does not accept input shape {shape} (its profile)"
            )
        buffers: dict[str, Any] = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = getattr(torch, _TORCH_DTYPES[self.engine.get_tensor_dtype(name).name])
            dims = tuple(context.get_tensor_shape(name))
            buffers[name] = torch.empty(dims, dtype=dtype, device=self.torch_device)
            context.set_tensor_address(name, buffers[name].data_ptr())
        return Slot(context, torch.cuda.Stream(self.torch_device), buffers)

    def prepare(self, image: np.ndarray) -> Any:
        import torch

        if not image.flags.writeable:  # e.g. a view of a ROS message buffer: torch warns
            image = image.copy()
        x = torch.from_numpy(image).to(self.torch_device, non_blocking=True)
        x = x.permute(2, 0, 1).unsqueeze(0).float()
        # One frame at a time: written straight into the engine's input buffer (contiguous
        # NCHW, the engine's dtype). In flight: a tensor of its own, copied into its slot's.
        buffer = self.slot.buffers[self.input_name]
        same = buffer.dtype == x.dtype and self._in_flight is None
        out = buffer if same else x.new_empty(buffer.shape)
        return torch.addcmul(self._bias, x, self._scale, out=out)

    def infer(self, batch: Any) -> Any:
        return self._run_slot(self.slot, batch)

    def _run_slot(self, slot: Slot, batch: Any) -> Any:
        import torch

        # The current CUDA device is per thread; the node infers on a thread of its own.
        with torch.cuda.device(self.torch_device):
            target = slot.buffers[self.input_name]
            if batch.data_ptr() != target.data_ptr():
                target.copy_(batch)
            torch.cuda.current_stream(self.torch_device).synchronize()
            if not slot.context.execute_async_v3(slot.stream.cuda_stream):
                raise PipelineError("TensorRT execute_async_v3 failed (see its log)")
            slot.stream.synchronize()
            return slot.buffers[self.output_name]

    def labels(self, logits: Any) -> np.ndarray:
        return argmax_labels(logits)

    def to_numpy(self, logits: Any) -> np.ndarray:
        return logits.float().cpu().numpy()
