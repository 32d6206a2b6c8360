"""The confusion-matrix and calibration metrics against figures worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seg_ros.metrics import CalibrationMeter, ConfusionMatrix


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


def test_ece_by_hand() -> None:
    # 4 pixels at confidence 1.0, 3 right (bin 14: accuracy 3/4, confidence 1.0); 4 pixels at
    # 0.4 (level 102), 2 right (bin 6: accuracy 1/2, confidence 0.4). ECE = 0.5 * 0.25 + 0.5 *
    # 0.1 = 0.175.
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    prediction = np.array([0, 0, 0, 1, 1, 1, 0, 0])
    confidence = np.array([255] * 4 + [102] * 4, np.uint8)
    meter = CalibrationMeter(2)
    meter.update(prediction, confidence, truth)
    assert meter.ece() == pytest.approx(0.175, abs=1e-9)
    bins = meter.reliability()
    assert bins[14]["accuracy"] == 0.75 and bins[6]["accuracy"] == 0.5
    assert bins[6]["confidence"] == pytest.approx(0.4) and bins[0]["share"] == 0.0


def test_perfectly_calibrated_is_zero_and_ignored_pixels_do_not_count() -> None:
    truth = np.array([0, 1, 255, 255])
    meter = CalibrationMeter(2)
    meter.update(np.array([0, 1, 0, 1]), np.array([255, 255, 3, 3], np.uint8), truth)
    assert meter.pixels == 2 and meter.ece() == 0.0
    assert math.isnan(CalibrationMeter(2).ece())


def test_coverage_table_keeps_the_pixels_at_or_above_each_threshold() -> None:
    truth = np.array([0, 0, 1, 1])
    prediction = np.array([0, 1, 1, 0])
    confidence = np.array([230, 100, 204, 51], np.uint8)  # 0.9, 0.39, 0.8, 0.2
    meter = CalibrationMeter(2)
    meter.update(prediction, confidence, truth)
    rows = {r["threshold"]: r for r in meter.coverage_table((0.0, 0.5, 0.8, 0.95))}
    assert rows[0.0]["coverage"] == 1.0 and rows[0.0]["pixel_accuracy"] == 0.5
    # at 0.5 and at exactly 0.8 (level 204) the two right pixels stay: both classes perfect
    assert rows[0.5]["coverage"] == 0.5 and rows[0.5]["miou"] == 1.0
    assert rows[0.8]["coverage"] == 0.5
    assert rows[0.95]["coverage"] == 0.0 and rows[0.95]["miou"] is None
    # the full-coverage row is the plain confusion matrix's mIoU
    plain = ConfusionMatrix(2)
    plain.update(prediction, truth)
    assert rows[0.0]["miou"] == pytest.approx(plain.miou())
