"""The interface the pipeline drives: prepare (normalise) -> infer (logits) -> labels (argmax).

The seam: each backend builds itself (``build``) from what the pipeline knows (the network,
its metadata, the config, the input size, and helpers for cached ONNX exports) and reads its
own engine files (``read_engine``). The pipeline looks backends up by name
(``seg_ros.inference.backends.backend_class``) and never branches on which one it runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.inference.backends.in_flight import Done, Failed, InFlight
from seg_ros.inference.errors import ConfigError


@dataclass
class EngineInfo:
    """What a backend's engine file says about itself."""

    metadata: dict[str, str] = field(default_factory=dict)  # seg_ros metadata ({}: none)
    input_size: tuple[int, int] | None = None  # the size it is built for; None = any size


@dataclass
class BuildContext:
    """Everything a backend may build itself from."""

    config: Any  # PipelineConfig (validated; backend resolved, never "auto")
    metadata: Any  # WeightsMetadata: classes, palette, mean/std
    network: Any  # the fp32 eager torch module on the CPU; None when only an engine is given
    input_size: tuple[int, int]  # (height, width) the network runs at
    export_onnx: Callable[[], Path]  # an ONNX of ``network`` at ``input_size`` (cached)
    artifact: Callable[[str], Path]  # a cache path for this network, size and ``suffix``
    random_init: bool = False  # nothing built from a random network is worth caching
    weights_path: Path | None = None  # the weights file the network came from
    onnx_model: Path | None = None  # an own model's ONNX (seg_ros.own_model): the network


class Backend(ABC):
    """One network on one runtime, device and precision, at a fixed input size."""

    name: str = ""
    device: str = "cpu"
    precision: str = "fp32"
    # How many frames one infer_many call can run as one batch (1: the engine's input is
    # fixed at one frame, or batching does not pay; each backend says which), and how many
    # it batches unless told otherwise (the node's max_batch 0).
    max_batch: int = 1
    auto_batch: int = 1
    # How many frames ``start`` keeps in the network at once (config.inference_mode
    # throughput, where the runtime gains from it), and why one where more was asked.
    in_flight: int = 1
    in_flight_note: str = ""

    def __init__(self) -> None:
        # Human-readable facts for describe(): what was compiled, built, checked, and how.
        self.notes: dict[str, str] = {}

    @classmethod
    @abstractmethod
    def build(cls, ctx: BuildContext) -> Backend:
        """This backend for ``ctx``, or a PipelineError (subclass) naming what is missing."""

    # What it can run, as data: PipelineConfig.validate, the node's parameter checks and
    # inference/availability.py read these, so each capability is stated once, here.
    device_kinds: tuple[str, ...] = ("cpu", "cuda")  # see config.device_kind
    precisions: tuple[str, ...] = ("fp32",)
    engine_kinds: tuple[str, ...] = ()  # the engine files it runs (none: it builds its own)
    reshapes_engine = False  # True: runs a fixed-size engine at another input size
    runtime: tuple[str, str] | None = None  # (module it imports, how to install it)

    @classmethod
    def read_engine(cls, path: Path) -> EngineInfo:
        """The metadata and fixed input size stored with an engine file of this backend."""
        from seg_ros.inference.backends import engine_backends

        raise ConfigError(f"engine is for backends {engine_backends()}, not {cls.name!r}; clear it")

    @classmethod
    def min_agreement(cls, config: Any) -> float:
        """The share of labels that must equal fp32 eager PyTorch's in the build-time parity
        check (int8 paths are held to their recorded validation accuracy instead)."""
        return config.parity_min_agreement

    @abstractmethod
    def prepare(self, image: np.ndarray) -> Any:
        """Network-sized HxWx3 uint8 RGB -> the runtime's normalised 1x3xHxW input."""

    @abstractmethod
    def infer(self, batch: Any) -> Any:
        """Run the network; return its logits in the runtime's own type, computation finished
        (so the pipeline's timings are honest on asynchronous devices)."""

    def infer_many(self, batches: list[Any]) -> list[Any]:
        """``infer`` for up to ``max_batch`` prepared frames as one batch: their logits in
        the same order, each as ``infer`` returns it for one. Backends with ``max_batch > 1``
        override it; the others run one frame (their buffers are reused by the next)."""
        if len(batches) != 1:
            raise ValueError(f"{self.name} runs one frame at a time, not {len(batches)}")
        return [self.infer(batches[0])]

    # The slots of a backend whose call blocks, where it keeps frames in flight (onnxruntime,
    # TensorRT); OpenVINO overrides start and wait_idle with its own request queue.
    _in_flight: InFlight | None = None

    def start(self, batch: Any, done: Done, failed: Failed | None = None) -> None:
        """Run the network on ``batch`` and call ``done(logits)`` with the logits, which are
        valid only inside the call. One frame at a time: at once, on the caller's thread, and
        a failure is raised. With ``in_flight > 1`` it returns at once and calls ``done`` from
        the runtime's thread, or ``failed(error)`` when the network failed there, waiting
        first only while ``in_flight`` frames are in the network already."""
        if self._in_flight is None:
            done(self.infer(batch))
        else:
            self._in_flight.start(batch, done, failed)

    def wait_idle(self) -> None:
        """Return once every frame ``start`` was given has called its ``done``/``failed``."""
        if self._in_flight is not None:
            self._in_flight.wait_idle()

    @abstractmethod
    def labels(self, logits: Any) -> np.ndarray:
        """Argmax over classes of ``infer``'s output: an HxW uint8 numpy array."""

    @abstractmethod
    def to_numpy(self, logits: Any) -> np.ndarray:
        """``infer``'s output as a float32 NxCxHxW numpy array (for parity checks)."""

    def confidence(self, logits: Any) -> np.ndarray:
        """The winning class's softmax probability per pixel: HxW float32 in (0, 1].

        CPU runtimes hand numpy logits already; a GPU backend overrides it to reduce on the
        device and copy back one plane instead of C.
        """
        from seg_ros.inference.postprocess import max_softmax_nchw

        return max_softmax_nchw(self.to_numpy(logits))

    def describe(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "device": self.device,
            "precision": self.precision,
            **self.notes,
        }
