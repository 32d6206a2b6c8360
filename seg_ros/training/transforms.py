"""Training augmentations on uint8 numpy arrays.

Written on numpy/cv2 rather than torchvision.transforms.v2 because each op must treat the image
and the label map differently (bilinear vs nearest, mean vs ignore padding) and cv2 does that
at a fraction of the cost, which matters when two CPU cores also run the network.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import cv2
import numpy as np

from seg_ros.labels import IGNORE_INDEX


@dataclass
class TrainTransform:
    """Random scale, crop (ignore-padded), flip, colour jitter and GridMask.

    ``resolution`` scales the whole output (image, label and crop) and is what progressive
    resizing changes between epochs.
    """

    crop: tuple[int, int] = (360, 480)  # height, width
    scale: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    color_jitter: float = 0.0  # brightness/contrast/saturation strength, 0 = off
    gridmask: tuple[int, int, float] | None = None  # (d_min, d_max, ratio), e.g. (96, 224, 0.6)
    gridmask_prob: float = 0.5
    resolution: float = 1.0

    def __call__(
        self, image: np.ndarray, label: np.ndarray, soft: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        """``soft``: optional HxWxC uint8 teacher probabilities, warped like the label (bilinear,
        zero-padded: an all-zero pixel has no target); returned third when given."""
        s = random.uniform(*self.scale) * self.resolution
        if s != 1.0:
            h, w = label.shape
            size = (max(1, round(w * s)), max(1, round(h * s)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
            label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
            if soft is not None:
                soft = cv2.resize(soft, size, interpolation=cv2.INTER_LINEAR)
        crop = (
            max(1, round(self.crop[0] * self.resolution)),
            max(1, round(self.crop[1] * self.resolution)),
        )
        image, label, soft = random_crop(image, label, crop, soft)
        if self.flip and random.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
            if soft is not None:
                soft = soft[:, ::-1]
        if self.color_jitter > 0:
            image = jitter_colour(image, self.color_jitter)
        if self.gridmask is not None and random.random() < self.gridmask_prob:
            d_min, d_max, ratio = self.gridmask
            image = grid_mask(
                image, round(d_min * self.resolution), round(d_max * self.resolution), ratio
            )
        out = (np.ascontiguousarray(image), np.ascontiguousarray(label))
        return out if soft is None else (*out, np.ascontiguousarray(soft))


def random_crop(
    image: np.ndarray,
    label: np.ndarray,
    size: tuple[int, int],
    soft: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Crop to ``size``; smaller inputs are padded (image with 0, label with ignore, ``soft``
    teacher probabilities with 0 = no target)."""
    ch, cw = size
    h, w = label.shape
    if h < ch or w < cw:
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
        if soft is not None:
            soft = np.pad(soft, ((0, ph), (0, pw), (0, 0)))
        h, w = label.shape
    y = random.randint(0, h - ch)
    x = random.randint(0, w - cw)
    window = (slice(y, y + ch), slice(x, x + cw))
    return image[window], label[window], None if soft is None else soft[window]


def jitter_colour(image: np.ndarray, strength: float) -> np.ndarray:
    out = image.astype(np.float32)
    out *= random.uniform(1 - strength, 1 + strength)  # brightness
    mean = out.mean()
    out = (out - mean) * random.uniform(1 - strength, 1 + strength) + mean  # contrast
    grey = out.mean(axis=2, keepdims=True)
    out = (out - grey) * random.uniform(1 - strength, 1 + strength) + grey  # saturation
    return np.clip(out, 0, 255).astype(np.uint8)


def grid_mask(image: np.ndarray, d_min: int, d_max: int, ratio: float) -> np.ndarray:
    """GridMask (Chen et al. 2020): zero a regular grid of squares at a random offset.

    ``ratio`` is the kept fraction of each grid period, as in the paper's ``r``; the label is
    left untouched, so the network must infer the hidden pixels from context.
    """
    h, w = image.shape[:2]
    d = random.randint(max(2, d_min), max(2, d_max))
    hole = max(1, round(d * (1 - ratio)))
    dy, dx = random.randint(0, d - 1), random.randint(0, d - 1)
    rows = ((np.arange(h) + dy) % d) < hole
    cols = ((np.arange(w) + dx) % d) < hole
    mask = rows[:, None] & cols[None, :]
    out = image.copy()
    out[mask] = 0
    return out
