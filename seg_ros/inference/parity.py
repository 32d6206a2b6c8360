"""The parity guard: a fast path (torch.compile, bf16, fp16, ONNX Runtime, a TensorRT engine)
is used only after it has been shown to give the labels fp32 eager PyTorch gives.

Why a guard at all: fast paths fail silently. ``torch.compile`` with freezing folds BatchNorm
into a preceding ConvTranspose2d along the wrong axis (FPLNet's decoder has that pattern) and
returns confident, wrong labels with no error.

What is compared: labels on the pixels where fp32 eager's decision is clear (its top-2 logit
margin exceeds a small fraction of the logit range). On near ties any rounding flips the
label, which says nothing about correctness; a randomly initialised network is near ties almost
everywhere, so counting them would reject every reduced-precision path for it. A wrong
kernel, in contrast, changes clear decisions too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from seg_ros.inference.errors import ParityError

# Pixels whose fp32 top-2 margin is below this fraction of the logits' range count as ties.
TIE_MARGIN = 0.02


@dataclass
class ParityReport:
    what: str
    agreement: float  # share of all pixels with the same label
    decisive_agreement: float  # share of the clearly decided pixels with the same label
    decisive_fraction: float  # share of pixels that are clearly decided
    max_abs_error: float  # largest logit difference
    logit_range: float  # max |logit| of the reference
    passed: bool
    min_agreement: float

    def as_dict(self) -> dict[str, float | str | bool]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.what}: labels agree on {self.agreement:.2%} of pixels "
            f"({self.decisive_agreement:.2%} of the {self.decisive_fraction:.1%} clearly "
            f"decided, required {self.min_agreement:.2%}); max |logit error| "
            f"{self.max_abs_error:.3g} at logit range {self.logit_range:.3g}"
        )


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of equal labels in two same-shaped label maps."""
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} vs {b.shape}")
    return float(np.count_nonzero(a == b)) / max(a.size, 1)


def compare_logits(
    reference: np.ndarray,
    candidate: np.ndarray,
    what: str,
    min_agreement: float,
    candidate_labels: np.ndarray | None = None,
) -> ParityReport:
    """Compare NxCxHxW logits of fp32 eager (``reference``) and a fast path (``candidate``).

    ``candidate_labels`` (HxW or NxHxW): the labels the fast path really outputs, when it does
    not take them as the argmax of ``candidate`` (a backend with its own argmax).
    """
    reference = np.asarray(reference, np.float32)
    candidate = np.asarray(candidate, np.float32)
    if reference.shape != candidate.shape:
        raise ParityError(
            f"{what}: logits of shape {candidate.shape}, fp32 eager gives {reference.shape}"
        )
    if not np.isfinite(candidate).all():
        return ParityReport(what, 0.0, 0.0, 1.0, float("inf"), 0.0, False, min_agreement)
    ref_labels = reference.argmax(1)
    cand_labels = candidate.argmax(1)
    if candidate_labels is not None:
        cand_labels = np.asarray(candidate_labels).reshape(ref_labels.shape)
    same = ref_labels == cand_labels
    top2 = np.partition(reference, -2, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    logit_range = float(np.abs(reference).max())
    decisive = margin > TIE_MARGIN * max(logit_range, 1e-12)
    n_decisive = int(np.count_nonzero(decisive))
    decisive_agreement = (
        float(np.count_nonzero(same & decisive)) / n_decisive if n_decisive else 1.0
    )
    report = ParityReport(
        what=what,
        agreement=float(same.mean()),
        decisive_agreement=decisive_agreement,
        decisive_fraction=n_decisive / same.size,
        max_abs_error=float(np.abs(candidate - reference).max()),
        logit_range=logit_range,
        passed=decisive_agreement >= min_agreement,
        min_agreement=min_agreement,
    )
    return report


def require(report: ParityReport) -> ParityReport:
    """Raise ParityError unless the report passed."""
    if not report.passed:
        raise ParityError(f"parity check failed, not using it: {report.summary()}")
    return report


def reference_logits(
    network: Any, image: np.ndarray, mean: list[float], std: list[float]
) -> np.ndarray:
    """fp32 eager PyTorch logits (1xCxHxW numpy) of ``network`` for an RGB uint8 image at
    network size: the yardstick every fast path is held against."""
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        return network.eval()((x / 255.0 - m) / s).float().numpy()


def synthetic_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic HxWx3 uint8 RGB street-like picture: sky, buildings, road, a few
    objects, texture. Real structure, not noise, so the network's decisions look like those
    on a photograph."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    horizon = height // 2
    sky = np.linspace(200, 120, horizon, dtype=np.float32)[:, None]
    img[:horizon] = np.stack([sky * 0.6, sky * 0.75, sky], -1).astype(np.uint8)
    img[horizon:] = (90, 90, 95)  # road
    x = 0
    while x < width:  # buildings along the horizon
        bw = int(rng.integers(width // 12, width // 5))
        bh = int(rng.integers(height // 8, horizon))
        color = tuple(int(c) for c in rng.integers(60, 200, 3))
        cv2.rectangle(img, (x, horizon - bh), (x + bw, horizon), color, -1)
        x += bw
    cv2.rectangle(img, (0, horizon), (width, horizon + height // 20), (150, 150, 150), -1)
    for _ in range(4):  # cars and people
        cx, cy = int(rng.integers(0, width)), int(rng.integers(horizon, height))
        s = int(rng.integers(height // 16, height // 5))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(img, (cx, cy - s // 2), (cx + s, cy), color, -1)
    cv2.line(
        img, (width // 2, height), (width // 2, horizon), (230, 230, 230), max(1, width // 100)
    )
    noise = rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
