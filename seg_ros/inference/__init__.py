"""Image -> labels without ROS: ``Pipeline`` = preprocess -> backend -> postprocess.

Backends: torch (CPU/CUDA, fp32/bf16/fp16), onnxruntime, openvino (CPU fp32/bf16, int8 from
seg-quantize), tensorrt. ONNX export lives in ``export``, TensorRT engines in ``engine``; the
deformable conv's CPU form is the models layer's (``seg_ros.models.deform``).
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
