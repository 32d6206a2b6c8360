"""What is cheap to know before building a pipeline: is the device there, is the runtime
installed. The node refuses a parameter change on these synchronously, with the reason,
instead of saying "successful" and reverting after a failed build; the build stays the final
word (it runs the same checks again, and the expensive ones)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from seg_ros.inference.config import PipelineConfig
from seg_ros.inference.errors import BackendUnavailableError


def unavailable(config: PipelineConfig, backend: str | None = None) -> str | None:
    """Why ``config`` cannot run on this machine, from cheap checks only, or None;
    ``backend``: the one ``config`` resolves to, where the caller has resolved it already."""
    from seg_ros.inference.errors import PipelineError
    from seg_ros.inference.pipeline import resolve_backend

    try:
        backend = backend or resolve_backend(config)
    except PipelineError as e:
        return str(e)
    from seg_ros.inference.backends import backend_class

    runtime = backend_class(backend).runtime  # (module, how to install it)
    if runtime is not None and importlib.util.find_spec(runtime[0]) is None:
        return f"backend {backend!r} is not installed here ({runtime[1]})"
    if config.device.startswith("cuda"):
        from seg_ros.inference.backends.torch_backend import resolve_device

        try:
            resolve_device(config.device)
        except BackendUnavailableError as e:
            return str(e)
    if backend == "onnxruntime" and config.device.startswith("cuda"):
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return (
                f"device {config.device!r} with onnxruntime needs its CUDA execution provider "
                f"(this onnxruntime has {ort.get_available_providers()}); install "
                "onnxruntime-gpu or use device 'cpu'"
            )
    if backend == "openvino" and (config.engine or config.precision == "int8"):
        return _openvino_model_problem(config)
    return None


def _openvino_model_problem(config: PipelineConfig) -> str | None:
    """Whether the OpenVINO model to run is there (the engine, or for int8 the model shipped
    for these weights) and can be reshaped to the input size asked: reading and reshaping an
    IR takes well under a second."""
    from seg_ros.inference.backends.openvino_backend import fit_input_size, int8_model, read_model
    from seg_ros.inference.errors import PipelineError
    from seg_ros.inference.loading import shipped_weights

    try:
        if config.engine:
            path = Path(config.engine).expanduser()
        else:
            weights = config.weights or shipped_weights(config.model)
            path = int8_model(config.model, Path(weights) if weights else None)
        size = config.input_size
        if size is None or 0 in size:
            return None  # the model's own size (or its aspect): nothing to reshape to check
        fit_input_size(read_model(path), (int(size[0]), int(size[1])), str(path))
    except PipelineError as e:
        return str(e)
    return None
