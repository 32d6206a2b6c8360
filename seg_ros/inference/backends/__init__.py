"""Backends run a network on prepared input and hand back logits and labels.

Each lives in its own module and imports its runtime (torch, onnxruntime, tensorrt) only when
built, so asking for one never needs the others installed.
"""

from seg_ros.inference.backends.base import Backend

__all__ = ["Backend"]
