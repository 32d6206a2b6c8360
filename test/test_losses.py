"""Each loss against values worked out by hand (or by an independent numpy transcription)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seg_ros.training.losses import (
    LOSS_NAMES,
    CrossEntropy,
    LabelRelaxation,
    OhemCrossEntropy,
    RegionMutualInformation,
    border_mask,
    build_loss,
    enet_class_weights,
    present_labels,
)


def logits_for(p_true: list[float], target: list[int]) -> torch.Tensor:
    """[1, 2, 1, n] logits whose softmax gives each pixel's true class probability p."""
    x = torch.zeros(1, 2, 1, len(p_true), dtype=torch.float64)
    for i, (p, t) in enumerate(zip(p_true, target, strict=True)):
        x[0, t, 0, i] = math.log(p)
        x[0, 1 - t, 0, i] = math.log(1 - p)
    return x


def test_enet_class_weights_by_hand() -> None:
    w = enet_class_weights([60, 30, 10, 0])
    expected = [1 / math.log(1.02 + p) for p in (0.6, 0.3, 0.1, 0.0)]
    assert w.tolist() == pytest.approx(expected, rel=1e-6)
    assert w[3] == pytest.approx(50.4983, rel=1e-4)  # an absent class gets the cap 1/ln 1.02


def test_weighted_cross_entropy_by_hand() -> None:
    # pixel 0: logits (0, 0), target 0 -> ln 2, weight 1; pixel 1: p(class 1) = 1/4 -> ln 4,
    # weight 2; pixel 2 ignored. Weighted mean = (ln 2 + 2 ln 4) / 3 = 5/3 ln 2.
    x = torch.tensor([[[[0.0, math.log(3), 5.0]], [[0.0, 0.0, 0.0]]]])
    target = torch.tensor([[[0, 1, 255]]])
    loss = CrossEntropy(torch.tensor([1.0, 2.0]))(x, target)
    assert loss.item() == pytest.approx(5 / 3 * math.log(2), rel=1e-6)


def test_ohem_keeps_the_hardest_pixels() -> None:
    p = [0.9, 0.8, 0.6, 0.5, 0.3, 0.1]
    target = [0, 1, 0, 1, 0, 1]
    x = logits_for(p, target).requires_grad_()
    y = torch.tensor([[target]])
    # threshold 0.7: the four pixels with p_true <= 0.7 are averaged
    loss = OhemCrossEntropy(thresh=0.7, min_kept=2)(x, y)
    assert loss.item() == pytest.approx(np.mean([-math.log(v) for v in p[2:]]), rel=1e-6)
    loss.backward()
    kept = x.grad.abs().sum(1)[0, 0] > 0
    assert kept.tolist() == [False, False, True, True, True, True]
    # min_kept above the hard count: the 5 hardest, whatever the threshold says
    loss = OhemCrossEntropy(thresh=0.7, min_kept=5)(logits_for(p, target), y)
    assert loss.item() == pytest.approx(np.mean([-math.log(v) for v in p[1:]]), rel=1e-6)
    # ignored pixels are never kept, even as "hard" ones
    y_ignored = torch.tensor([[[0, 1, 0, 1, 0, 255]]])
    loss = OhemCrossEntropy(thresh=0.7, min_kept=1)(logits_for(p, target), y_ignored)
    assert loss.item() == pytest.approx(np.mean([-math.log(v) for v in p[2:5]]), rel=1e-6)


def test_label_relaxation_finds_borders() -> None:
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[:, :, 4:] = 1
    # a 5x5 window reaches 2 pixels: columns 2..5 see both labels
    assert border_mask(target, 3, kernel=5)[0, 0].tolist() == [0, 0, 1, 1, 1, 1, 0, 0]
    assert border_mask(target, 3, kernel=3)[0, 0].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    # ignored pixels are no label: a void band makes no border
    void = torch.zeros(1, 8, 8, dtype=torch.long)
    void[:, :, 4:] = 255
    assert not border_mask(void, 3, kernel=5).any()


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 2, 3), (1, 9, 7), (2, 24, 31)])
def test_label_windows_are_a_max_pool_of_the_one_hot_map(shape: tuple, kernel: int) -> None:
    # The definition, written the slow way: one-hot (ignored pixels all zero), then a stride-1
    # max-pool whose padding never wins. Sparse labels make most windows depend on the edge.
    torch.manual_seed(kernel)
    target = torch.full(shape, 255)
    some = torch.rand(shape) < 0.15
    target[some] = torch.randint(0, 4, shape)[some]
    target[0, 0, 0] = 3  # a label in the corner, and one past num_classes=3 (not a class)
    target[-1, -1, -1] = 2
    valid = target < 3
    onehot = torch.nn.functional.one_hot(torch.where(valid, target, 0), 3).float()
    onehot = (onehot * valid.unsqueeze(-1)).permute(0, 3, 1, 2)
    expected = torch.nn.functional.max_pool2d(onehot, kernel, 1, kernel // 2) > 0
    assert torch.equal(present_labels(target, 3, kernel), expected)


def test_label_relaxation_by_hand() -> None:
    # constant probabilities (1, 2, 3) / 6 everywhere; columns 0-3 label 0, 4-7 label 1
    x = torch.log(torch.tensor([1.0, 2.0, 3.0]) / 6).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[:, :, 4:] = 1
    # interior 0: -ln(1/6); border (0 and 1 present): -ln(3/6); interior 1: -ln(2/6)
    per_row = 2 * math.log(6) + 4 * math.log(2) + 2 * math.log(3)
    loss = LabelRelaxation(kernel=5)(x.clone().requires_grad_(), target)
    assert loss.item() == pytest.approx(per_row / 8, rel=1e-6)


def test_label_relaxation_is_cross_entropy_away_from_borders() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 10, 12)
    # One class per image (no borders inside an image), two classes in the batch: so the
    # class weights change the mean, and a loss that ignored them would fail here.
    x[1] *= 4  # confident, mostly wrong logits on image 1: the two classes' losses differ
    target = torch.full((2, 10, 12), 2)
    target[1] = 0
    target[:, :2] = 255
    w = torch.tensor([1.0, 2.0, 0.25, 3.0])
    ce = CrossEntropy(w)(x, target)
    assert ce.item() != pytest.approx(CrossEntropy()(x, target).item(), rel=1e-3)
    relaxed = LabelRelaxation(weight=w)(x, target)
    assert relaxed.item() == pytest.approx(ce.item(), rel=1e-6)
    # and with OHEM it reduces to OHEM-CE
    ohem = OhemCrossEntropy(0.7, 30)(x, target)
    assert LabelRelaxation(ohem_thresh=0.7, ohem_min_kept=30)(x, target).item() == pytest.approx(
        ohem.item(), rel=1e-6
    )


def test_label_relaxation_gradients_stay_finite_with_ignored_regions() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 12, 12, requires_grad=True)
    target = torch.randint(0, 3, (1, 12, 12))
    target[:, :6] = 255
    LabelRelaxation()(x, target).backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad[:, :, :6].abs().max() == 0  # ignored pixels get no gradient


def test_rmi_by_hand() -> None:
    # radius 1, no pooling: each class is a 1-d variable over 4 pixels; labels 0 1 0 1.
    l_hi, l_lo = 2.0, -1.0
    x = torch.tensor([[[[l_hi, l_lo, l_hi, l_lo]], [[l_lo, l_hi, l_lo, l_hi]]]])
    target = torch.tensor([[[0, 1, 0, 1]]])
    a = 1 / (1 + math.exp(-l_hi)) + 1e-6
    b = 1 / (1 + math.exp(-l_lo)) + 1e-6
    alpha = 5e-4
    # centred y = +-1/2 -> cov_y = 1; p = +-(a-b)/2 -> cov_p = (a-b)^2, cov_yp = a-b
    posterior = 1 - (a - b) ** 2 / ((a - b) ** 2 + alpha)
    per_class = math.log(math.sqrt(posterior + alpha) + 1e-8)  # 1/2 log det, d = 1
    rmi = RegionMutualInformation(radius=1, pool=1, bce_weight=0.0)(x, target)
    assert rmi.item() == pytest.approx(2 * per_class, rel=1e-5)
    # the BCE half: per pixel -log sig(2) - log sig(1) over both classes, sum / (4 + 1)
    bce = RegionMutualInformation(radius=1, pool=1, bce_weight=1.0)(x, target)
    per_pixel = -math.log(1 / (1 + math.exp(-2))) - math.log(1 / (1 + math.exp(-1)))
    assert bce.item() == pytest.approx(4 * per_pixel / 5, rel=1e-5)
    mixed = RegionMutualInformation(radius=1, pool=1, bce_weight=0.5)(x, target)
    assert mixed.item() == pytest.approx(0.5 * bce.item() + 0.5 * rmi.item(), rel=1e-5)


def rmi_reference(logits: np.ndarray, target: np.ndarray, radius: int, pool: int) -> float:
    """The ZJULearning/RMI lower bound transcribed to numpy: slicing, explicit inverse."""
    n, c = logits.shape[:2]
    valid = (target < c).astype(np.float64)
    onehot = np.stack([(target == k) * valid for k in range(c)], 1)
    probs = 1 / (1 + np.exp(-logits)) * valid[:, None] + 1e-6

    def avg_pool(a: np.ndarray) -> np.ndarray:  # kernel = stride = pool, zero pad pool // 2
        pad = pool // 2
        a = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        oh, ow = (a.shape[2] - pool) // pool + 1, (a.shape[3] - pool) // pool + 1
        out = np.zeros((n, c, oh, ow))
        for i in range(oh):
            for j in range(ow):
                out[:, :, i, j] = a[
                    :, :, i * pool : i * pool + pool, j * pool : j * pool + pool
                ].mean((2, 3))
        return out

    la, pr = avg_pool(onehot), avg_pool(probs)
    nh, nw = la.shape[2] - radius + 1, la.shape[3] - radius + 1
    la_v = np.stack(
        [la[:, :, y : y + nh, x : x + nw] for y in range(radius) for x in range(radius)], 2
    )
    pr_v = np.stack(
        [pr[:, :, y : y + nh, x : x + nw] for y in range(radius) for x in range(radius)], 2
    )
    d = radius * radius
    la_v = la_v.reshape(n, c, d, -1)
    pr_v = pr_v.reshape(n, c, d, -1)
    la_v = la_v - la_v.mean(-1, keepdims=True)
    pr_v = pr_v - pr_v.mean(-1, keepdims=True)
    eye = np.eye(d) * 5e-4
    total = 0.0
    for k in range(c):
        per_sample = []
        for i in range(n):
            y, p = la_v[i, k], pr_v[i, k]
            appro = y @ y.T - (y @ p.T) @ np.linalg.inv(p @ p.T + eye) @ (y @ p.T).T
            chol = np.linalg.cholesky(appro + eye)
            per_sample.append(0.5 * 2 * np.log(np.diag(chol) + 1e-8).sum())
        total += np.mean(per_sample) / d
    return total


def test_rmi_matches_the_reference_transcription() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (2, 3, 26, 30))
    target = rng.integers(0, 3, (2, 26, 30))
    target[:, :5, :7] = 255
    ours = RegionMutualInformation(radius=3, pool=4, bce_weight=0.0)(
        torch.from_numpy(logits).float(), torch.from_numpy(target)
    )
    assert ours.item() == pytest.approx(rmi_reference(logits, target, 3, 4), rel=1e-4, abs=1e-4)


def test_rmi_prefers_the_right_answer_and_has_gradients() -> None:
    torch.manual_seed(0)
    target = torch.zeros(1, 32, 32, dtype=torch.long)
    target[:, 8:24, 8:24] = 1
    good = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float() * 8 - 4
    noise = torch.randn(1, 2, 32, 32, requires_grad=True)
    rmi = RegionMutualInformation()
    assert rmi(good, target) < rmi(noise, target)
    rmi(noise, target).backward()
    assert torch.isfinite(noise.grad).all() and noise.grad.abs().sum() > 0


def test_build_loss_names_and_desanet_composite() -> None:
    torch.manual_seed(0)
    main, aux = torch.randn(2, 4, 24, 24), torch.randn(2, 4, 24, 24)
    target = torch.randint(0, 4, (2, 24, 24))
    for name in LOSS_NAMES:
        assert torch.isfinite(build_loss([name])(main, target))
    desanet = build_loss(["ohem_ce", "rmi"], ["ohem_ce"], ohem_thresh=0.7, ohem_min_kept=100)
    expected = (
        OhemCrossEntropy(0.7, 100)(main, target)
        + RegionMutualInformation(3, 4, 0.5)(main, target)
        + OhemCrossEntropy(0.7, 100)(aux, target)
    )
    assert desanet((main, aux), target).item() == pytest.approx(expected.item(), rel=1e-6)
    # a lone tensor (eval-mode model) is scored by the main losses only
    assert desanet(main, target).item() == pytest.approx(
        (expected - OhemCrossEntropy(0.7, 100)(aux, target)).item(), rel=1e-6
    )
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss(["dice"])
