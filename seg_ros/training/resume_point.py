"""A resume point small enough to commit: a run's weights in fp16 and its progress, no optimizer.

``last.pt`` holds fp32 weights and SGD's momentum (142 MB for RGPNet-R18, 50 MB for DESANet-HN),
and a build machine replaced between sessions takes it along. Half-precision weights alone are
a quarter of that (DESANet-HN: ~12 MB), small enough for the repository. A run resumed from
them starts its momentum again from zero, which SGD at momentum 0.9 rebuilds within a few dozen
steps, and continues from weights rounded to fp16 (a relative error of 5e-4, below the bf16
rounding that mixed-precision training applies in every forward pass); the epoch, step, history
and seeds carry on, so the schedule and the augmentations are those of an unbroken run.

Where fp16 is still too large (RGPNet-R18: 35.6 MB), ``weights="int8"`` stores every weight
matrix and kernel as int8 with one fp32 scale per output channel (symmetric, max |w| / 127), the
rest in fp16: about half the fp16 size. Each weight is then off by at most half its channel's
step (0.4% of the channel's largest weight): coarser than fp16, a perturbation that SGD at the
schedule's learning rate outweighs within an epoch, and far less than starting over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from seg_ros.paths import atomic_write

RESUME_POINT = "resume_point.safetensors"
# /2 may hold int8 tensors, which a /1 reader would load as if they were the weights: a new
# number makes old readers refuse the file instead.
FORMAT = "seg_ros-resume-point/2"
READABLE = ("seg_ros-resume-point/1", FORMAT)
WEIGHTS = ("fp16", "int8")
SCALE = "::scale"  # suffix of an int8 tensor's per-channel scales (no state-dict name has "::")
_PROGRESS = ("epoch", "step", "best_miou", "train_seconds", "history")
_FP16_MAX = torch.finfo(torch.float16).max


class ResumePointError(ValueError):
    pass


def _half(tensor: torch.Tensor) -> torch.Tensor:
    # A tensor fp16 cannot hold (a BatchNorm variance past 65504) keeps its precision.
    if tensor.is_floating_point() and bool((tensor.abs() <= _FP16_MAX).all()):
        return tensor.half()
    return tensor


def _int8(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output channel (dim 0) and its fp32 scales."""
    flat = tensor.float().reshape(tensor.shape[0], -1)
    scale = flat.abs().amax(1).clamp_min(torch.finfo(torch.float32).tiny) / 127
    q = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(tensor.shape), scale


def _compact(state: dict[str, torch.Tensor], weights: str) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, tensor in state.items():
        if weights == "int8" and tensor.is_floating_point() and tensor.dim() >= 2:
            tensors[name], tensors[name + SCALE] = _int8(tensor.detach())
        else:
            tensors[name] = _half(tensor.detach())
    return {name: t.contiguous() for name, t in tensors.items()}


def _expanded(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = {}
    for name, t in tensors.items():
        if name.endswith(SCALE):
            continue
        if name + SCALE in tensors:
            scale = tensors[name + SCALE].view(-1, *([1] * (t.dim() - 1)))
            state[name] = t.float() * scale
        else:
            state[name] = t.float() if t.dtype == torch.float16 else t
    return state


def _format_of(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("format")
    except Exception:  # not a safetensors file at all
        return None


def write_resume_point(checkpoint: Path, out: Path, weights: str = "fp16") -> int:
    """Write ``out`` from a run's ``last.pt`` with ``weights`` "fp16" or "int8" (see the module
    docstring); returns its size in bytes. Refuses to replace a file that is not a resume point
    itself."""
    from safetensors.torch import save_file

    if weights not in WEIGHTS:
        raise ResumePointError(f"resume point weights must be one of {WEIGHTS}, not {weights!r}")
    if out.exists() and _format_of(out) not in READABLE:
        raise ResumePointError(f"{out} exists and is not a seg_ros resume point; not replacing it")
    # weights_only: a checkpoint is data, never code.
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    tensors = _compact(state["model"], weights)
    metadata = {"format": FORMAT, "weights": weights, "config": state["config"]}
    metadata.update({key: json.dumps(state[key]) for key in _PROGRESS})
    with atomic_write(out) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return out.stat().st_size


def read_resume_point(path: Path) -> dict[str, Any]:
    """The parts of a ``last.pt`` state a resume point keeps (fp32 weights, progress, config),
    and ``weights``: the precision they were kept in."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") not in READABLE:
                raise ResumePointError(f"{path} is not a seg_ros resume point")
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except ResumePointError:
        raise
    except Exception as e:  # safetensors raises several types for a damaged file
        raise ResumePointError(f"{path}: corrupt or truncated resume point ({e})") from None
    state: dict[str, Any] = {key: json.loads(metadata[key]) for key in _PROGRESS}
    state["config"] = metadata["config"]
    state["weights"] = metadata.get("weights", "fp16")
    state["model"] = _expanded(tensors)
    return state
