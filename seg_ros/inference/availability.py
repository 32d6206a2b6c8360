"""What is cheap to know before building a pipeline: is the device there, is the runtime
installed. The node refuses a parameter change on these synchronously, with the reason,
instead of saying "successful" and reverting after a failed build; the build stays the final
word (it runs the same checks again, and the expensive ones)."""

from __future__ import annotations

import importlib.util

from seg_ros.inference.config import PipelineConfig
from seg_ros.inference.errors import BackendUnavailableError

# backend -> (module to import, what to install)
RUNTIMES = {
    "onnxruntime": ("onnxruntime", "pip install onnxruntime (onnxruntime-gpu for CUDA)"),
    "tensorrt": ("tensorrt", "pip install tensorrt; on Jetson JetPack's python3-libnvinfer"),
}


def unavailable(config: PipelineConfig) -> str | None:
    """Why ``config`` cannot run on this machine, from cheap checks only, or None."""
    runtime = RUNTIMES.get(config.backend)
    if runtime is not None and importlib.util.find_spec(runtime[0]) is None:
        return f"backend {config.backend!r} is not installed here ({runtime[1]})"
    if config.device.startswith("cuda"):
        from seg_ros.inference.backends.torch_backend import resolve_device

        try:
            resolve_device(config.device)
        except BackendUnavailableError as e:
            return str(e)
    if config.backend == "onnxruntime" and config.device.startswith("cuda"):
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return (
                f"device {config.device!r} with onnxruntime needs its CUDA execution provider "
                f"(this onnxruntime has {ort.get_available_providers()}); install "
                "onnxruntime-gpu or use device 'cpu'"
            )
    return None
