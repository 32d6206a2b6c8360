"""What differs between the Python (3.8, JetPack 5's, to 3.12) and torch (2.0, NVIDIA's JetPack 5
wheels, to 2.14) releases seg_ros supports, in one place. Importing it never imports torch."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

if sys.version_info >= (3, 10):

    def zip_strict(*iterables: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
        """``zip(..., strict=True)``: a length mismatch is a bug, never a silent truncation."""
        return zip(*iterables, strict=True)  # novermin (3.10+ branch)

else:

    def zip_strict(*iterables: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
        """``zip(..., strict=True)`` for Python < 3.10 (no ``strict``): materialises the inputs,
        which are short everywhere seg_ros zips (class names, layers, percentiles)."""
        seqs = [list(it) for it in iterables]
        lengths = {len(s) for s in seqs}
        if len(lengths) > 1:
            raise ValueError(f"zip_strict: arguments differ in length {sorted(lengths)}")
        return zip(*seqs)


# The oldest torch/torchvision seg_ros supports: NVIDIA's wheels for JetPack 5.1 (Xavier).
MIN_TORCH = (2, 0)
MIN_TORCHVISION = (0, 15)
# Newer torch APIs seg_ros uses, each only from the release that has it.
TORCH_ONNX_DYNAMO_FLAG = (2, 5)  # torch.onnx.export(dynamo=...)
TORCH_DYNAMO_EXPORTER = (2, 6)  # torch.onnx.export(dynamo=True, dynamic_shapes=Dim.AUTO ...)
TORCH_AMP_GRAD_SCALER = (2, 3)  # torch.amp.GradScaler (before: torch.cuda.amp.GradScaler)


def release(version: str) -> tuple[int, int]:
    """(major, minor) of a version string, NVIDIA's too (``2.1.0a0+41361538.nv23.06``)."""
    found = re.match(r"(\d+)\.(\d+)", version)
    if found is None:
        raise ValueError(f"not a version: {version!r}")
    return int(found.group(1)), int(found.group(2))


def torch_release() -> tuple[int, int]:
    import torch

    return release(torch.__version__)


def torchscript_export_kwargs() -> dict[str, Any]:
    """Keyword arguments that select the TorchScript ONNX exporter: the default up to torch 2.8
    and ``dynamo=False`` from then on; the flag itself does not exist before 2.5."""
    return {"dynamo": False} if torch_release() >= TORCH_ONNX_DYNAMO_FLAG else {}


def torchscript_max_opset() -> int:
    """The newest opset this torch's TorchScript exporter writes (torch 2.0: 18)."""
    import torch.onnx

    constants = getattr(torch.onnx, "_constants", None)
    return int(getattr(constants, "ONNX_MAX_OPSET", 17))


def grad_scaler(enabled: bool) -> Any:
    import torch

    if torch_release() >= TORCH_AMP_GRAD_SCALER:
        return torch.amp.GradScaler(enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)
