"""The confusion-matrix metrics against a matrix built by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seg_ros.metrics import ConfusionMatrix


def test_iou_against_a_hand_built_matrix() -> None:
    # truth row x prediction column, 3 classes:
    #          pred 0  1  2
    # truth 0:      3  1  0
    # truth 1:      0  2  2
    # truth 2:      1  0  0      (class 2 is never predicted right)
    truth = [0, 0, 0, 0, 1, 1, 1, 1, 2]
    pred = [0, 0, 0, 1, 1, 1, 2, 2, 0]
    cm = ConfusionMatrix(3)
    cm.update(np.array(pred), np.array(truth))
    assert cm.matrix[:, :3].tolist() == [[3, 1, 0], [0, 2, 2], [1, 0, 0]]
    # IoU = tp / (row + column - tp): 3/(4+4-3), 2/(4+3-2), 0/(1+2-0)
    assert cm.iou().tolist() == pytest.approx([3 / 5, 2 / 5, 0.0])
    assert cm.miou() == pytest.approx((3 / 5 + 2 / 5 + 0) / 3)
    assert cm.pixel_accuracy() == pytest.approx(5 / 9)


def test_void_is_ignored_and_unlabeled_predictions_are_misses() -> None:
    cm = ConfusionMatrix(2)
    truth = torch.tensor([[0, 1, 255, 255], [1, 1, 0, 0]])
    pred = torch.tensor([[0, 1, 0, 1], [255, 1, 0, 1]])
    cm.update(pred, truth)
    # void truth pixels count nowhere; a 255 prediction is a miss for class 1 only
    assert cm.matrix.tolist() == [[2, 1, 0], [0, 2, 1]]
    assert cm.iou().tolist() == pytest.approx([2 / 3, 2 / 4])
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)


def test_absent_classes_are_nan_and_left_out_of_the_mean() -> None:
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    iou = cm.iou()
    assert math.isnan(iou[2])
    assert cm.miou() == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert math.isnan(ConfusionMatrix(2).miou())


def test_merge_adds_counts() -> None:
    a, b = ConfusionMatrix(2), ConfusionMatrix(2)
    a.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    b.update(torch.tensor([1]), torch.tensor([1]))
    a.merge(b)
    assert a.matrix.tolist() == [[1, 1, 0], [0, 1, 0]]
    with pytest.raises(ValueError, match="differ"):
        a.update(torch.tensor([0, 1]), torch.tensor([0]))
