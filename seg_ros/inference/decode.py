"""Labels and confidence from the outputs an own model may have instead of logits
(seg_ros.own_model: ``probabilities`` or ``labels``); logits are the backends' own job."""

from __future__ import annotations

import numpy as np

from seg_ros.labels import IGNORE_INDEX


def label_map(output: np.ndarray, num_classes: int) -> np.ndarray:
    """N x H x W (or N x 1 x H x W) class ids -> HxW uint8; ids outside the classes (a
    network's own "void", or a wrong export) become unlabeled (255) rather than wrapping."""
    ids = np.asarray(output).reshape(output.shape[-2:])
    out = ids.astype(np.uint8)
    out[(ids < 0) | (ids >= num_classes)] = IGNORE_INDEX
    return out


def max_probability(output: np.ndarray) -> np.ndarray:
    """1 x C x H x W probabilities -> HxW float32, the winning class's probability (what the
    softmax of logits gives; a model that outputs probabilities has taken it already)."""
    return np.asarray(output[0], np.float32).max(axis=0)
