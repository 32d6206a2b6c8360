"""FPLNet: the module formula of Table I, both forms, fusion modes and stage-2 initialisation."""

from __future__ import annotations

import pytest
import torch

from seg_ros.models.fplnet import FPLModule, FPLNet, fplnet, fplnet_encoder


def conv_params(module: torch.nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Conv2d))


def test_module_matches_table_one_formula() -> None:
    # params = C_o/b^2 (b C_i + k^2 C_o + 2 k b C_o) = 8,325 for C_i = C_o = 60, b = 4, k = 3.
    module = FPLModule(60, 60)
    assert conv_params(module) == 8325


def test_exact_counts_with_20_classes() -> None:
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(fplnet_encoder(20)) == 419_931
    assert count(fplnet(20)) == 499_887


@pytest.mark.parametrize("size", [(64, 96), (61, 77), (8, 8), (360, 480)])
@pytest.mark.parametrize("encoder_only", [False, True])
def test_output_size_equals_input_size(size, encoder_only) -> None:
    model = FPLNet(11, encoder_only=encoder_only).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 11, *size)


def test_train_mode_gradients_reach_the_first_layer() -> None:
    torch.manual_seed(0)
    model = fplnet(4).train()
    out = model(torch.randn(2, 3, 32, 48)).logits
    out.mean().backward()
    first = model.encoder.stage1[0][0].weight
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_residual_only_where_shapes_match() -> None:
    assert FPLModule(64, 64).residual
    assert not FPLModule(35, 64, stride=2).residual
    assert not FPLModule(64, 128).residual


def test_fusion_modes_differ_and_are_validated() -> None:
    torch.manual_seed(0)
    pairwise = FPLModule(16, 16).eval()
    stage1 = FPLModule(16, 16, fusion="stage1").eval()
    stage1.load_state_dict(pairwise.state_dict())  # same weights, only the fusion differs
    x = torch.randn(1, 16, 12, 12)
    with torch.no_grad():
        assert not torch.allclose(pairwise(x), stage1(x))
    with pytest.raises(ValueError, match="fusion"):
        FPLModule(16, 16, fusion="sum")


def test_pairwise_fusion_is_adjacent_pairs() -> None:
    module = FPLModule(8, 8).eval()
    captured = []
    for branch in module.branches:
        branch.register_forward_hook(lambda _m, _i, out: captured.append(out))
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        bn_in = {}
        module.out.register_forward_hook(lambda _m, i, _o: bn_in.setdefault("x", i[0]))
        module(x)
    b = captured
    expected = torch.cat([b[0], b[0] + b[1], b[1] + b[2], b[2] + b[3]], 1) + x
    torch.testing.assert_close(bn_in["x"], expected)


def test_custom_dilations_change_the_receptive_field() -> None:
    module = FPLModule(16, 16, dilations=(1, 3, 5, 7))
    assert [b[0].dilation[0] for b in module.branches] == [1, 3, 5, 7]
    with pytest.raises(ValueError, match="divisible"):
        FPLModule(16, 18)


def test_encoder_weights_carry_over_to_the_full_network() -> None:
    encoder = fplnet_encoder(11)
    full = fplnet(11)
    own = full.state_dict()
    shared = {k: v for k, v in encoder.state_dict().items() if k in own}
    assert shared and all(k.startswith("encoder.") for k in shared)
    assert len(shared) == sum(k.startswith("encoder.") for k in own)
    full.load_state_dict(shared, strict=False)
    torch.testing.assert_close(
        full.encoder.stage3[0].conv.weight, encoder.encoder.stage3[0].conv.weight
    )


def test_eval_is_deterministic() -> None:
    model = fplnet(11).eval()
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
