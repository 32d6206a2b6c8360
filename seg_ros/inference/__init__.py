"""Image -> labels without ROS: ``Pipeline`` = preprocess -> backend -> postprocess.

Backends: torch (CPU/CUDA, fp32/bf16/fp16), onnxruntime, tensorrt. ONNX and TensorRT export
live in ``export`` and ``engine``.
"""

from seg_ros.inference.config import PipelineConfig
from seg_ros.inference.errors import (
    BackendUnavailableError,
    ConfigError,
    EngineMismatchError,
    ParityError,
    PipelineError,
    PipelineWeightsError,
)
from seg_ros.inference.pipeline import Pipeline, SegmentationResult

__all__ = [
    "BackendUnavailableError",
    "ConfigError",
    "EngineMismatchError",
    "ParityError",
    "Pipeline",
    "PipelineConfig",
    "PipelineError",
    "PipelineWeightsError",
    "SegmentationResult",
]
