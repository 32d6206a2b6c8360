"""HarDNet-DS backbones: published sizes, harmonic links, taps, checkpoint loading."""

from __future__ import annotations

import pytest
import torch

from seg_ros.models.backbones import (
    hardnet39ds_features,
    hardnet68ds_features,
    load_backbone_weights,
)
from seg_ros.models.hardnet import HarDBlock, HarDNet, hardnet39ds, hardnet68ds, harmonic_links


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("build", "published", "exact"),
    [(hardnet39ds, 3.5e6, 3_488_228), (hardnet68ds, 4.2e6, 4_180_602)],
)
def test_classifier_matches_published_size(build, published: float, exact: int) -> None:
    n = count(build(num_classes=1000))
    assert abs(n - published) / published < 0.01
    assert n == exact


def test_harmonic_links_follow_the_power_of_two_rule() -> None:
    # HarDNet-39DS block 1: 48 input channels, growth 16, multiplier 1.6, worked by hand.
    assert harmonic_links(1, 48, 16, 1.6) == (16, 48, [0])
    assert harmonic_links(2, 48, 16, 1.6) == (26, 16 + 48, [1, 0])  # 25.6 -> 26
    assert harmonic_links(3, 48, 16, 1.6) == (16, 26, [2])
    assert harmonic_links(4, 48, 16, 1.6) == (40, 16 + 26 + 48, [3, 2, 0])  # 40.96 -> 40
    assert harmonic_links(8, 48, 16, 1.6)[2] == [7, 6, 4, 0]
    # Output: odd layers and the last one, never the block input.
    assert HarDBlock(48, 16, 1.6, 4).out_channels == 16 + 16 + 40


@pytest.mark.parametrize(
    ("build", "kwargs", "channels", "taps"),
    [
        (hardnet39ds_features, {}, [96, 320, 640, 1024], [4, 7, 10, 13]),
        (hardnet68ds_features, {}, [128, 320, 640, 1024], [4, 9, 12, 15]),
        (hardnet68ds_features, {"drop_last_block": True}, [128, 320, 640, 640], [4, 9, 12, 13]),
    ],
)
def test_feature_taps(build, kwargs: dict, channels: list[int], taps: list[int]) -> None:
    model = build(**kwargs).eval()
    assert model.channels == channels
    assert model.tap_indices == taps
    with torch.no_grad():
        features = model(torch.randn(1, 3, 64, 96))
    assert [f.shape for f in features] == [
        (1, c, 64 // s, 96 // s) for c, s in zip(channels, (4, 8, 16, 32), strict=True)
    ]


def test_drop_last_block_leaves_out_last_hdb_and_its_transition() -> None:
    full, short = hardnet68ds_features(), hardnet68ds_features(drop_last_block=True)
    assert len(short.base) == len(full.base) - 2
    assert sum(isinstance(m, HarDBlock) for m in short.base) == 4
    assert short.base[-1].dwconv.stride == (2, 2)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_loads_reference_classifier_checkpoint(tmp_path, suffix: str) -> None:
    classifier = HarDNet("hardnet68ds")
    state = classifier.state_dict()
    path = tmp_path / f"hardnet68ds{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        # A training checkpoint from DataParallel: wrapped and prefixed.
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)

    backbone = hardnet68ds_features(drop_last_block=True)
    unused = load_backbone_weights(backbone, path)
    assert all(k.startswith(("base.14.", "base.15.", "base.16.")) for k in unused)
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, state[key]), key

    classifier.eval()
    backbone.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = x
        for layer in classifier.base[:14]:
            expected = layer(expected)
        assert torch.equal(backbone(x)[-1], expected)


def test_rejects_checkpoint_of_another_network(tmp_path) -> None:
    path = tmp_path / "other.pth"
    torch.save(hardnet39ds().state_dict(), path)
    with pytest.raises((ValueError, RuntimeError)):
        hardnet68ds_features(weights=path)


def test_gradients_reach_the_stem() -> None:
    model = hardnet39ds_features().train()
    sum(f.mean() for f in model(torch.randn(2, 3, 64, 64))).backward()
    grad = model.base[0].conv.weight.grad
    assert grad is not None
    assert grad.abs().sum() > 0
