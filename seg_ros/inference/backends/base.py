"""The interface the pipeline drives: prepare (normalise) -> infer (logits) -> labels (argmax)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class Backend(ABC):
    """One network on one runtime, device and precision, at a fixed input size."""

    name: str = ""
    device: str = "cpu"
    precision: str = "fp32"

    def __init__(self) -> None:
        # Human-readable facts for describe(): what was compiled, built, checked, and how.
        self.notes: dict[str, str] = {}

    @abstractmethod
    def prepare(self, image: np.ndarray) -> Any:
        """Network-sized HxWx3 uint8 RGB -> the runtime's normalised 1x3xHxW input."""

    @abstractmethod
    def infer(self, batch: Any) -> Any:
        """Run the network; return its logits in the runtime's own type, computation finished
        (so the pipeline's timings are honest on asynchronous devices)."""

    @abstractmethod
    def labels(self, logits: Any) -> np.ndarray:
        """Argmax over classes of ``infer``'s output: an HxW uint8 numpy array."""

    @abstractmethod
    def to_numpy(self, logits: Any) -> np.ndarray:
        """``infer``'s output as a float32 NxCxHxW numpy array (for parity checks)."""

    def describe(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "device": self.device,
            "precision": self.precision,
            **self.notes,
        }
