"""Inference backends, looked up by name; each module is imported only when used (torch,
onnxruntime, openvino and tensorrt are optional)."""

from __future__ import annotations

import importlib
from typing import Any

from seg_ros.inference.backends.base import Backend, BuildContext, EngineInfo

# name -> (module, class)
_BACKENDS = {
    "torch": ("seg_ros.inference.backends.torch_backend", "TorchBackend"),
    "onnxruntime": ("seg_ros.inference.backends.onnxruntime_backend", "OnnxRuntimeBackend"),
    "openvino": ("seg_ros.inference.backends.openvino_backend", "OpenVINOBackend"),
    "tensorrt": ("seg_ros.inference.backends.tensorrt_backend", "TensorRTBackend"),
}
BACKEND_NAMES = tuple(_BACKENDS)
__all__ = ["BACKEND_NAMES", "Backend", "BuildContext", "EngineInfo", "backend_class"]


def backend_class(name: str) -> Any:
    """The Backend subclass called ``name`` (KeyError for an unknown name)."""
    module, cls = _BACKENDS[name]
    return getattr(importlib.import_module(module), cls)


def engine_backends() -> str:
    """The backends that run a given engine file, for messages ('a', 'b' and 'c')."""
    names = [f"{n!r}" for n in BACKEND_NAMES if backend_class(n).engine_kinds]
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
