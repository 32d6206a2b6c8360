"""Distillation: teacher maps computed once per frame, warped with their labels, and the
soft-target loss they feed; real weights files and a real (tiny) training run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from training_helpers import tiny_recipe

from seg_ros.labels import IGNORE_INDEX
from seg_ros.training.config import TrainConfig
from seg_ros.training.datasets import build_dataset
from seg_ros.training.losses import SoftTargetCrossEntropy
from seg_ros.training.synthetic import write_camvid
from seg_ros.training.teacher import TeacherError, TeacherTargets
from seg_ros.training.trainer import BEST, Trainer
from seg_ros.training.transforms import TrainTransform
from seg_ros.weights import WeightsError, load_weights, save_weights


@pytest.fixture(scope="module")
def camvid_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_camvid(tmp_path_factory.mktemp("camvid"), {"train": 6, "val": 2})


@pytest.fixture(scope="module")
def teacher(camvid_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A (briefly) trained network's weights file, as a teacher."""
    out = tmp_path_factory.mktemp("teacher")
    Trainer(TrainConfig.from_dict(tiny_recipe(camvid_root, out, epochs=1)), device="cpu").fit()
    return out / BEST


def test_soft_maps_follow_their_labels_through_scale_crop_and_flip() -> None:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, (5, 6)).repeat(12, 0).repeat(12, 1).astype(np.uint8)
    soft = (np.eye(4, dtype=np.uint8)[label] * 255).astype(np.uint8)  # one-hot of the label
    image = np.zeros((*label.shape, 3), np.uint8)
    random.seed(1)
    # crops larger than some scaled frames, so padding is exercised too
    t = TrainTransform(crop=(64, 80), scale=(0.6, 1.5), flip=True)
    for _ in range(20):
        _, out_label, out_soft = t(image, label, soft)
        assert out_soft.shape == (64, 80, 4) and out_soft.dtype == np.uint8
        padded = out_label == IGNORE_INDEX
        assert (out_soft[padded] == 0).all()  # no target where the frame was padded
        # away from class edges (where bilinear blends and nearest picks) they agree exactly
        kernel = np.ones((5, 5), np.uint8)
        inner = (cv2.dilate(out_label, kernel) == cv2.erode(out_label, kernel)) & ~padded
        assert inner.sum() > 50
        np.testing.assert_array_equal(out_soft[inner].argmax(-1), out_label[inner])


def test_soft_target_loss_is_the_teachers_entropy_when_the_student_matches() -> None:
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(2, 5, 4, 6), 1)
    soft = (p.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
    q = soft.permute(0, 3, 1, 2).float()
    q = q / q.sum(1, keepdim=True)
    loss = SoftTargetCrossEntropy()
    entropy = -(q * q.clamp_min(1e-12).log()).sum(1).mean()
    assert loss(q.clamp_min(1e-12).log(), soft).item() == pytest.approx(entropy.item(), rel=1e-4)
    # any other student costs more (Gibbs' inequality)
    assert loss(torch.randn(2, 5, 4, 6), soft) > entropy
    # pixels with no target (all zero: padding) are left out, whatever the student says there
    padded = soft.clone()
    padded[:, :2] = 0
    student = torch.randn(2, 5, 4, 6)
    changed = student.clone()
    changed[:, :, :2] = 100 * torch.randn(2, 5, 2, 6)
    assert loss(student, padded).item() == pytest.approx(loss(changed, padded).item())
    # a student at half resolution is upsampled to the targets'
    assert torch.isfinite(loss(torch.randn(2, 5, 2, 3), soft))


def test_a_distilled_run_computes_the_teacher_maps_once_and_adds_their_loss(
    camvid_root: Path, teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    distill = {"teachers": [str(teacher)], "scales": [0.75, 1.0], "flip": True, "weight": 1.0}
    run = tmp_path / "run"
    Trainer(TrainConfig.from_dict(tiny_recipe(camvid_root, run, distill=distill)), "cpu").fit()
    assert "6 of 6 frames to compute" in capsys.readouterr().out
    (folder,) = run.glob("teacher-*")
    maps = sorted(folder.glob("*.npy"))
    assert len(maps) == 6
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["scales"] == [0.75, 1.0] and manifest["flip"] is True
    assert len(manifest["teachers"][0]["sha256"]) == 64

    # each map is the teacher's multi-scale + flip softmax at the label's size
    frames = build_dataset("camvid", camvid_root, "train")
    image, label = frames.load(0)
    soft = np.load(maps[0])
    assert soft.shape == (*label.shape, 11)
    assert np.abs(soft.astype(int).sum(-1) - 255).max() <= 6  # rounding of 11 classes
    expected = TeacherTargets([teacher], frames, [0.75, 1.0], True).predict(image, label.shape)
    np.testing.assert_array_equal(soft, expected)

    # resuming (two more epochs) reuses the maps instead of recomputing them
    stamps = [m.stat().st_mtime_ns for m in maps]
    cfg = TrainConfig.from_dict(tiny_recipe(camvid_root, run, distill=distill, epochs=3))
    Trainer(cfg, "cpu").fit()
    assert "frames to compute" not in capsys.readouterr().out
    assert [m.stat().st_mtime_ns for m in maps] == stamps

    # the same run without a teacher: same seed, same augmentations, so the first epoch's
    # loss differs by the soft-target term, which is positive
    plain = Trainer(TrainConfig.from_dict(tiny_recipe(camvid_root, tmp_path / "plain")), "cpu")
    plain.fit()
    distilled = json.loads((run / "history.json").read_text())
    assert distilled[0]["loss"] > plain.history[0]["loss"] + 0.1


def test_other_teacher_settings_get_their_own_maps(
    camvid_root: Path, teacher: Path, tmp_path: Path
) -> None:
    frames = build_dataset("camvid", camvid_root, "train")
    a = TeacherTargets([teacher], frames).prepare(tmp_path)
    b = TeacherTargets([teacher], frames, flip=True).prepare(tmp_path)
    assert a != b and len(list(a.glob("*.npy"))) == len(list(b.glob("*.npy"))) == 6


def test_missing_corrupt_or_foreign_teachers_fail_before_training(
    camvid_root: Path, teacher: Path, tmp_path: Path
) -> None:
    def trainer(teachers: list[str]) -> Trainer:
        recipe = tiny_recipe(camvid_root, tmp_path / "run", distill={"teachers": teachers})
        return Trainer(TrainConfig.from_dict(recipe), "cpu")

    with pytest.raises(TeacherError, match=r"not found: .*nowhere\.safetensors"):
        trainer([str(tmp_path / "nowhere.safetensors")])
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(teacher.read_bytes()[:1000])
    with pytest.raises(WeightsError, match=r"corrupt\.safetensors"):
        trainer([str(corrupt)])
    # a teacher of another label set (here: CamVid's classes renamed)
    state, meta = load_weights(teacher)
    meta.class_names = [f"class{i}" for i in range(11)]
    foreign = save_weights(tmp_path / "foreign.safetensors", state, meta)
    with pytest.raises(TeacherError, match=r"foreign\.safetensors predicts"):
        trainer([str(foreign)])
    assert not (tmp_path / "run").exists()  # nothing was written for the failed runs


def test_unknown_distill_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown distill option"):
        TrainConfig.from_dict({"distill": {"teacher": "x.safetensors"}})
