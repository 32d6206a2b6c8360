"""Augmentations: ignore padding, scale/crop/flip keep image and label aligned, GridMask."""

from __future__ import annotations

import random

import cv2
import numpy as np

from seg_ros.labels import IGNORE_INDEX
from seg_ros.training.transforms import TrainTransform, grid_mask, random_crop


def test_crop_pads_the_label_with_ignore() -> None:
    image = np.full((4, 6, 3), 200, np.uint8)
    label = np.ones((4, 6), np.uint8)
    out_image, out_label, _ = random_crop(image, label, (8, 10))
    assert out_image.shape == (8, 10, 3) and out_label.shape == (8, 10)
    assert (out_label[4:] == IGNORE_INDEX).all() and (out_label[:, 6:] == IGNORE_INDEX).all()
    assert (out_label[:4, :6] == 1).all()
    assert (out_image[4:] == 0).all()


def test_transform_keeps_image_and_label_aligned() -> None:
    # the label is a function of the image (class = red // 50), so any misaligned
    # resize/crop/flip between the two shows up as a mismatch
    rng = np.random.default_rng(0)
    label = rng.integers(0, 5, (6, 8)).repeat(8, 0).repeat(8, 1).astype(np.uint8)
    image = np.stack([label * 50, label, label], -1).astype(np.uint8)
    random.seed(0)
    t = TrainTransform(crop=(32, 40), scale=(0.5, 2.0), flip=True)
    for _ in range(20):
        out_image, out_label = t(image, label)
        assert out_label.shape == (32, 40)
        # away from class edges (where bilinear blends the image, and cv2's nearest sits up to
        # a pixel off bilinear's sample grid) the two must agree exactly
        kernel = np.ones((5, 5), np.uint8)
        inner = cv2.dilate(out_label, kernel) == cv2.erode(out_label, kernel)
        inner &= out_label != IGNORE_INDEX
        inner[:2], inner[-2:], inner[:, :2], inner[:, -2:] = False, False, False, False  # crop edge
        assert inner.sum() > 100
        assert (out_image[..., 0][inner] // 50 == out_label[inner]).all()


def test_resolution_scales_the_crop() -> None:
    t = TrainTransform(crop=(32, 48), scale=(1.0, 1.0), flip=False, resolution=0.25)
    image, label = t(np.zeros((32, 48, 3), np.uint8), np.zeros((32, 48), np.uint8))
    assert image.shape == (8, 12, 3) and label.shape == (8, 12)


def test_grid_mask_hides_the_right_share() -> None:
    random.seed(1)
    image = np.full((200, 200, 3), 255, np.uint8)
    masked = grid_mask(image, 20, 20, ratio=0.6)
    hidden = (masked[..., 0] == 0).mean()
    # squares of side (1 - 0.6) d in every d x d cell: 0.16 of the image
    assert abs(hidden - 0.16) < 0.02
