"""A resume point small enough to commit: a run's weights in fp16 and its progress, no optimizer.

``last.pt`` holds fp32 weights and SGD's momentum (142 MB for RGPNet-R18, 50 MB for DESANet-HN),
and a build machine replaced between sessions takes it along. Half-precision weights alone are
a quarter of that (DESANet-HN: ~12 MB), small enough for the repository. A run resumed from
them starts its momentum again from zero, which SGD at momentum 0.9 rebuilds within a few dozen
steps, and continues from weights rounded to fp16 (a relative error of 5e-4, below the bf16
rounding that mixed-precision training applies in every forward pass); the epoch, step, history
and seeds carry on, so the schedule and the augmentations are those of an unbroken run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from seg_ros.paths import atomic_write

RESUME_POINT = "resume_point.safetensors"
FORMAT = "seg_ros-resume-point/1"
_PROGRESS = ("epoch", "step", "best_miou", "train_seconds", "history")
_FP16_MAX = torch.finfo(torch.float16).max


class ResumePointError(ValueError):
    pass


def _half(tensor: torch.Tensor) -> torch.Tensor:
    # A tensor fp16 cannot hold (a BatchNorm variance past 65504) keeps its precision.
    if tensor.is_floating_point() and bool((tensor.abs() <= _FP16_MAX).all()):
        return tensor.half()
    return tensor


def _format_of(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("format")
    except Exception:  # not a safetensors file at all
        return None


def write_resume_point(checkpoint: Path, out: Path) -> int:
    """Write ``out`` from a run's ``last.pt``; returns its size in bytes.

    Refuses to replace a file that is not a resume point itself."""
    from safetensors.torch import save_file

    if out.exists() and _format_of(out) != FORMAT:
        raise ResumePointError(f"{out} exists and is not a seg_ros resume point; not replacing it")
    # weights_only: a checkpoint is data, never code.
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    tensors = {name: _half(t.detach()).contiguous() for name, t in state["model"].items()}
    metadata = {"format": FORMAT, "config": state["config"]}
    metadata.update({key: json.dumps(state[key]) for key in _PROGRESS})
    with atomic_write(out) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return out.stat().st_size


def read_resume_point(path: Path) -> dict[str, Any]:
    """The parts of a ``last.pt`` state a resume point keeps (fp32 weights, progress, config)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise ResumePointError(f"{path} is not a seg_ros resume point")
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except ResumePointError:
        raise
    except Exception as e:  # safetensors raises several types for a damaged file
        raise ResumePointError(f"{path}: corrupt or truncated resume point ({e})") from None
    state: dict[str, Any] = {key: json.loads(metadata[key]) for key in _PROGRESS}
    state["config"] = metadata["config"]
    state["model"] = {
        name: t.float() if t.dtype == torch.float16 else t for name, t in tensors.items()
    }
    return state
