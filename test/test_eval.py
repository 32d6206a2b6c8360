"""Evaluation: the loop's confusion matrix, input resizing, multi-scale + flip, and seg-eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from seg_ros.labels import CAMVID
from seg_ros.metrics import format_table, report
from seg_ros.models import build_model
from seg_ros.tools.evaluate import main as seg_eval
from seg_ros.training.datasets import build_dataset
from seg_ros.training.evaluate import evaluate, predict_labels
from seg_ros.training.synthetic import write_camvid
from seg_ros.weights import WeightsMetadata, save_weights


class Constant(nn.Module):
    """Predicts one class everywhere, at whatever size it is given."""

    def __init__(self, num_classes: int, cls: int) -> None:
        super().__init__()
        self.num_classes, self.cls = num_classes, cls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.num_classes, *x.shape[-2:])
        out[:, self.cls] = 1
        return out


class SignOfRed(nn.Module):
    """Class 0 where the red channel is positive, 1 where negative: follows the image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[:, 0], -x[:, 0]], 1)


@pytest.fixture(scope="module")
def camvid_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_camvid(tmp_path_factory.mktemp("camvid"), {"val": 3}, size=(24, 40))


def test_evaluate_counts_every_labelled_pixel(camvid_root: Path) -> None:
    data = build_dataset("camvid", camvid_root, "val")
    labels = np.stack([data[i][1] for i in range(len(data))])
    counts = np.bincount(labels[labels != 255], minlength=11)
    for kwargs in ({}, {"input_size": (12, 16)}, {"scales": (0.5, 1.0, 1.5), "flip": True}):
        cm = evaluate(Constant(11, 3), data, [0.5] * 3, [0.2] * 3, **kwargs)
        # everything predicted "road": row sums are the true counts, all in column 3
        assert cm.matrix.sum(1).tolist() == counts.tolist()
        assert cm.matrix[:, 3].tolist() == counts.tolist()
        iou = cm.iou()
        assert iou[3] == pytest.approx(counts[3] / counts.sum())
    # a subset of frames, as each process of a distributed run takes
    cm = evaluate(Constant(11, 3), data, [0.5] * 3, [0.2] * 3, indices=[1])
    assert cm.matrix.sum() == (data[1][1] != 255).sum()


def test_flip_views_are_flipped_back() -> None:
    x = torch.ones(1, 3, 4, 8)
    x[..., 4:] = -1  # left half class 0, right half class 1
    single = predict_labels(SignOfRed(), x, (4, 8))
    assert single[0, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    # a flipped view not flipped back would vote the mirror image and tie every pixel
    both = predict_labels(SignOfRed(), x, (4, 8), scales=(0.5, 1.0, 2.0), flip=True)
    assert torch.equal(single, both)
    # scored at the requested size, whatever size the network ran at
    assert predict_labels(SignOfRed(), x, (8, 16)).shape == (1, 8, 16)


def test_table_and_report(camvid_root: Path) -> None:
    data = build_dataset("camvid", camvid_root, "val")
    cm = evaluate(Constant(11, 3), data, [0.5] * 3, [0.2] * 3)
    table = format_table(cm, CAMVID.classes)
    assert "mIoU" in table and "pixel acc." in table and "bicyclist" in table
    result = report(cm, CAMVID.classes)
    assert set(result["iou"]) == set(CAMVID.classes)
    assert result["miou"] == pytest.approx(cm.miou(), abs=1e-6)
    json.dumps(result)  # None for absent classes, never NaN


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model("fplnet", "encoder", 11)
    meta = WeightsMetadata(
        "fplnet", "encoder", 11, "camvid", list(CAMVID.classes), [list(c) for c in CAMVID.palette]
    )
    return save_weights(tmp_path_factory.mktemp("w") / "w.safetensors", model.state_dict(), meta)


def test_seg_eval_single_scale(
    weights: Path, camvid_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "single.json"
    argv = [str(weights), "--data-root", str(camvid_root), "--json", str(out), "--quiet"]
    assert seg_eval([*argv, "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "fplnet/encoder on camvid/val (3 frames" in printed
    result = json.loads(out.read_text())
    assert result["frames"] == 3 and result["scales"] == [1.0] and not result["flip"]
    assert set(result["iou"]) == set(CAMVID.classes)
    assert 0 <= result["miou"] <= 1 and 0 <= result["pixel_accuracy"] <= 1


def test_seg_eval_multi_scale_flip(weights: Path, camvid_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ms.json"
    argv = [str(weights), "--dataset", "camvid", "--data-root", str(camvid_root), "--quiet"]
    argv += ["--scales", "0.5", "0.75", "1", "1.25", "--flip", "--input-size", "32x48"]
    assert seg_eval([*argv, "--json", str(out), "--limit", "2"]) == 0
    result = json.loads(out.read_text())
    assert result["scales"] == [0.5, 0.75, 1.0, 1.25] and result["flip"]
    assert result["input_size"] == [32, 48] and result["frames"] == 2
    # scored at label size: every labelled pixel of the two frames
    data = build_dataset("camvid", camvid_root, "val")
    assert result["pixels"] == sum(int((data[i][1] != 255).sum()) for i in range(2))


def test_seg_eval_explains_bad_input(
    weights: Path, camvid_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert seg_eval([str(tmp_path / "none.safetensors"), "--data-root", "x"]) == 2
    assert "not found" in capsys.readouterr().err
    folder = tmp_path / "two"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "val" / "labels").mkdir(parents=True)
    (folder / "classes.yaml").write_text("classes: [a, b]\n")
    import cv2

    cv2.imwrite(str(folder / "val" / "images" / "a.png"), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(folder / "val" / "labels" / "a.png"), np.zeros((4, 4), np.uint8))
    assert seg_eval([str(weights), "--dataset", "folder", "--data-root", str(folder)]) == 2
    assert "predicts 11 classes" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino"])
def test_seg_eval_scores_the_deployed_path_like_the_module(
    weights: Path, camvid_root: Path, tmp_path: Path, backend: str
) -> None:
    """--backend runs each frame through the Pipeline on that runtime; at fp32 its labels are
    the module's, so the confusion counts agree with the module path's almost exactly."""
    if backend != "torch":
        pytest.importorskip(backend)
    base = [str(weights), "--data-root", str(camvid_root), "--quiet", "--input-size", "32x48"]
    module, deployed = tmp_path / "module.json", tmp_path / "deployed.json"
    assert seg_eval([*base, "--device", "cpu", "--json", str(module)]) == 0
    assert seg_eval([*base, "--backend", backend, "--json", str(deployed)]) == 0
    a, b = json.loads(module.read_text()), json.loads(deployed.read_text())
    assert b["backend"] == backend and a["backend"] == "module"
    assert a["pixels"] == b["pixels"]  # both scored at label resolution
    assert abs(a["pixel_accuracy"] - b["pixel_accuracy"]) < 0.02


def test_seg_eval_refuses_what_the_deployed_path_cannot_do(
    weights: Path, camvid_root: Path, capsys: pytest.CaptureFixture
) -> None:
    base = [str(weights), "--data-root", str(camvid_root), "--quiet"]
    assert seg_eval([*base, "--backend", "torch", "--flip"]) == 2
    assert "single-scale" in capsys.readouterr().err
    assert seg_eval([*base, "--precision", "int8"]) == 2
    assert "add --backend" in capsys.readouterr().err
    assert seg_eval([*base, "--backend", "torch", "--precision", "int8"]) == 2
    assert "precision 'int8'" in capsys.readouterr().err


def _leaning(model: nn.Module, cls: int | None, path: Path) -> Path:
    """``model``'s weights, with the classifier's bias pushed far towards ``cls`` (if given):
    a member whose softmax is ~1 for that class everywhere outvotes any other in a mean."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if cls is not None:
        last_bias = [k for k, v in state.items() if k.endswith(".bias") and v.shape == (11,)][-1]
        state[last_bias][cls] += 100.0
    meta = WeightsMetadata(
        "fplnet",
        "encoder",
        11,
        "camvid",
        list(CAMVID.classes),
        [list(c) for c in CAMVID.palette],
        input_size=[24, 40],
    )
    return save_weights(path, state, meta)


def test_seg_eval_ensemble_scores_the_members_mean(
    camvid_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    torch.manual_seed(0)
    model = build_model("fplnet", "encoder", 11)
    plain = _leaning(model, None, tmp_path / "plain.safetensors")
    base = ["--data-root", str(camvid_root), "--quiet", "--device", "cpu"]

    def score(*argv: str) -> dict:
        out = tmp_path / "r.json"
        assert seg_eval([*argv, *base, "--json", str(out)]) == 0
        return json.loads(out.read_text())

    alone = score(str(plain))
    # the mean of a network with itself is that network
    assert score(str(plain), "--ensemble", str(plain))["iou"] == alone["iou"]
    data = build_dataset("camvid", camvid_root, "val")
    labels = np.concatenate([data.load(i)[1].ravel() for i in range(len(data))])
    labels = labels[labels != 255]
    for cls in (3, 5):
        leaning = _leaning(model, cls, tmp_path / f"leaning{cls}.safetensors")
        both = score(str(plain), "--ensemble", str(leaning))
        # the confident member decides every pixel: the pixels of cls are all that is right
        assert both["pixel_accuracy"] == pytest.approx(float((labels == cls).mean()), abs=1e-6)
        assert both["ensemble"] == [str(leaning)]
    assert "mean softmax of fplnet/encoder + fplnet/encoder" in capsys.readouterr().out
    assert seg_eval([str(plain), "--ensemble", str(plain), *base, "--input-size", "24x40"]) == 2
    assert "drop --input-size" in capsys.readouterr().err
    assert seg_eval([str(plain), "--ensemble", str(plain), *base[:-2], "--device", "cuda"]) == 2
    assert "drop --device" in capsys.readouterr().err
    assert seg_eval([str(plain), "--ensemble", str(tmp_path / "gone.safetensors"), *base]) == 2
    assert "not found" in capsys.readouterr().err
