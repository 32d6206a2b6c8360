"""The parity guard, BatchNorm folding and the sampled deformable conv: fast paths that must
give fp32 eager's labels, and a guard that refuses one that does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from weights_helpers import pipeline_weights

from seg_ros.inference import ParityError, Pipeline, PipelineError
from seg_ros.inference.fusion import count_batchnorm, fold_batchnorm
from seg_ros.inference.parity import agreement, compare_logits, require
from seg_ros.models import build_model


def smooth_logits(classes: int = 11, h: int = 32, w: int = 48, seed: int = 0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, classes, max(2, h // 8), max(2, w // 8), generator=g) * 5
    return F.interpolate(coarse, size=(h, w), mode="bilinear").numpy()


def test_identical_logits_pass() -> None:
    ref = smooth_logits()
    report = require(compare_logits(ref, ref.copy(), "same", 0.99))
    assert report.agreement == report.decisive_agreement == 1.0
    assert report.max_abs_error == 0.0


def test_small_errors_on_ties_do_not_fail_but_wrong_decisions_do() -> None:
    ref = smooth_logits()
    noisy = ref + np.random.default_rng(0).normal(0, 1e-3, ref.shape).astype(np.float32)
    assert compare_logits(ref, noisy, "rounding", 0.999).passed
    wrong = ref.copy()
    wrong[:, [0, 1]] = wrong[:, [1, 0]]  # two classes swapped: confident and wrong
    report = compare_logits(ref, wrong, "swapped", 0.99)
    assert not report.passed
    with pytest.raises(ParityError, match="swapped"):
        require(report)


def test_non_finite_logits_fail() -> None:
    ref = smooth_logits()
    bad = ref.copy()
    bad[0, 0, 0, 0] = np.nan
    assert not compare_logits(ref, bad, "nan", 0.5).passed


def test_labels_given_separately_are_what_is_judged() -> None:
    ref = smooth_logits()
    labels = ref.argmax(1)
    assert compare_logits(ref, ref, "ok", 0.99, candidate_labels=labels).passed
    assert not compare_logits(ref, ref, "bad", 0.99, candidate_labels=(labels + 1) % 11).passed


def test_agreement() -> None:
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0, :2] = 1
    assert agreement(a, b) == pytest.approx(14 / 16)
    with pytest.raises(ValueError, match="shape"):
        agreement(a, b[:2])


@pytest.fixture
def rgpnet_weights(tmp_path) -> Path:
    return pipeline_weights(tmp_path / "rgpnet.safetensors", "rgpnet", "resnet18")


def test_parity_guard_rejects_a_wrong_fast_path(rgpnet_weights, monkeypatch) -> None:
    """torch.fx's conv-BN fusion folds a BN into RGPNet's weight-shared decoder conv, which
    corrupts the conv's other use: a plausible-looking fast path with wrong output."""
    from torch.fx.experimental.optimization import fuse

    monkeypatch.setattr(
        "seg_ros.inference.fusion.fold_batchnorm", lambda net: (fuse(net, inplace=False), -1)
    )
    with pytest.raises(ParityError, match="parity check failed"):
        Pipeline(model="rgpnet", weights=str(rgpnet_weights), backend="torch")


def test_parity_guard_passes_and_reports(rgpnet_weights) -> None:
    p = Pipeline(model="rgpnet", weights=str(rgpnet_weights))
    assert p.parity.passed and p.parity.agreement >= 0.999
    assert "labels agree" in p.describe()["parity"]


@pytest.mark.parametrize(
    ("model", "variant"),
    [
        ("fplnet", "full"),
        ("fplnet", "encoder"),
        ("rgpnet", "resnet18"),
        ("rgpnet", "hardnet39ds"),
        ("desanet", "resnet18"),
    ],
)
def test_batchnorm_folding_keeps_the_output(model: str, variant: str) -> None:
    torch.manual_seed(0)
    net = build_model(model, variant, num_classes=11).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    folded, n = fold_batchnorm(net)
    assert n > 0 and count_batchnorm(folded) == count_batchnorm(net) - n
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected, got = net(x), folded(x)
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 1e-5 * max(1.0, float(scale))
    if model == "rgpnet":  # the weight-shared decoder convs keep both of their BNs
        block = folded.decoder[0]
        assert isinstance(block.bn1, torch.nn.BatchNorm2d)
        assert isinstance(block.bn2, torch.nn.BatchNorm2d)


@pytest.mark.parametrize(("stride", "padding", "dilation"), [(1, 1, 1), (2, 2, 2), (1, 0, 1)])
def test_sampled_deform_conv_matches_torchvision(stride: int, padding: int, dilation: int) -> None:
    from torchvision.ops import DeformConv2d

    from seg_ros.models.deform import SampledDeformConv2d

    torch.manual_seed(0)
    dcn = DeformConv2d(8, 16, 3, stride=stride, padding=padding, dilation=dilation).eval()
    x = torch.randn(2, 8, 13, 17)
    ho = (13 + 2 * padding - 2 * dilation - 1) // stride + 1
    wo = (17 + 2 * padding - 2 * dilation - 1) // stride + 1
    offset = torch.randn(2, 18, ho, wo) * 3  # many samples land off the image
    offset[0, :, 0, 0] = 40.0
    with torch.no_grad():
        torch.testing.assert_close(SampledDeformConv2d(dcn)(x, offset), dcn(x, offset))


def test_a_path_that_cannot_run_is_a_pipeline_error(tmp_path, monkeypatch) -> None:
    """E.g. a kernel missing for the dtype, or the compiler failing: named, not a raw error."""
    weights = pipeline_weights(tmp_path / "fplnet.safetensors")

    def broken(self, batch):
        raise RuntimeError("no bf16 kernel for this op")

    monkeypatch.setattr("seg_ros.inference.backends.torch_backend.TorchBackend.infer", broken)
    with pytest.raises(PipelineError, match="torch/cpu/bf16 cannot run fplnet: no bf16 kernel"):
        Pipeline(model="fplnet", weights=str(weights), precision="bf16")
