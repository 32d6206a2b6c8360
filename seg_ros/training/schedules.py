"""Learning-rate schedules."""

from __future__ import annotations


def poly_lr(
    base_lr: float, step: int, total_steps: int, power: float = 0.9, warmup_steps: int = 0
) -> float:
    """Poly decay, lr = base * (1 - step/total)^power, after an optional linear warmup."""
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(step, total_steps) / max(1, total_steps)
    return base_lr * (1.0 - progress) ** power
