"""The errors a pipeline user sees: one base class, so a caller (the node) catches one type."""

from __future__ import annotations

from seg_ros.weights import WeightsError


class PipelineError(RuntimeError):
    """A pipeline could not be built or run: bad config, weights, or an unavailable backend."""


class ConfigError(PipelineError, ValueError):
    """A config field holds a value the pipeline does not accept; the message names both."""


class PipelineWeightsError(PipelineError, WeightsError):
    """A weights file is missing, corrupt, or describes another model.

    Both a ``PipelineError`` (for pipeline users) and a ``WeightsError`` (for code that loads
    weights directly), so either ``except`` catches it.
    """


class BackendUnavailableError(PipelineError):
    """The requested backend, device or precision cannot run here (never silently replaced)."""


class ParityError(PipelineError):
    """A fast path (compile, bf16, fp16, an engine) disagrees with fp32 eager beyond tolerance."""


class EngineMismatchError(PipelineError):
    """A saved TensorRT engine was built for another TensorRT version, GPU or input size."""
