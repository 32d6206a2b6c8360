"""RGPNet: sizes against the paper, shapes at any input size, the shared-weight decoder."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from seg_ros.models import build_model
from seg_ros.models.backbones import resnet_features
from seg_ros.models.rgpnet import (
    RGPNet,
    SharedResidualBlock,
    rgpnet_hardnet39ds,
    rgpnet_resnet18,
    rgpnet_resnet50,
    rgpnet_resnet101,
)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("build", "num_classes", "target"),
    [
        (rgpnet_resnet18, 11, 17_766_859),  # CamVid; paper 17.7M, spec 17.76M
        (rgpnet_resnet18, 65, 17.8e6),  # Mapillary
        (rgpnet_resnet101, 19, 50.13e6),  # paper 50.1M
        (rgpnet_hardnet39ds, 65, 9.44e6),  # paper 9.4M
    ],
)
def test_parameter_count_matches_paper(build, num_classes: int, target: float) -> None:
    assert abs(count(build(num_classes)) - target) / target < 0.01


def test_registry_builds_every_variant_name() -> None:
    model = build_model("rgpnet", "resnet18", num_classes=11)
    assert isinstance(model, RGPNet)
    assert model.classifier.out_channels == 11


def first_conv(model: RGPNet) -> nn.Conv2d:
    backbone = model.backbone
    return backbone.conv1 if hasattr(backbone, "conv1") else backbone.base[0].conv


@pytest.mark.parametrize("build", [rgpnet_resnet18, rgpnet_hardnet39ds])
def test_any_input_size_train_and_eval(build) -> None:
    torch.manual_seed(0)
    model = build(5)
    for h, w in [(64, 96), (65, 97), (33, 31)]:
        x = torch.randn(2, 3, h, w)
        model.train()
        model.zero_grad()
        out = model(x).logits
        assert out.shape == (2, 5, h, w)
        out.square().mean().backward()
        grad = first_conv(model).weight.grad
        assert grad is not None
        assert grad.abs().sum() > 0
        model.eval()
        with torch.no_grad():
            first, second = model(x), model(x)
        assert first.shape == (2, 5, h, w)
        assert torch.equal(first, second)


@pytest.mark.parametrize("build", [rgpnet_resnet50, rgpnet_resnet101])
def test_bottleneck_resnets_run(build) -> None:
    model = build(3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 65, 97)).shape == (1, 3, 65, 97)


def test_shared_block_has_one_weight_used_twice() -> None:
    torch.manual_seed(0)
    block = SharedResidualBlock(8)
    assert count(block) == 8 * 8 * 9 + 2 * 2 * 8  # one 3x3 conv, two BNs
    assert [k for k in block.state_dict() if k.startswith("conv")] == ["conv.weight"]

    seen = []
    block.conv.register_forward_hook(lambda m, i, o: seen.append(m.weight))
    x = torch.randn(2, 8, 6, 6)
    block(x).sum().backward()
    assert len(seen) == 2
    assert seen[0] is seen[1] is block.conv.weight

    # The shared weight's gradient is the sum of what two separate copies would get.
    conv1, conv2 = copy.deepcopy(block.conv), copy.deepcopy(block.conv)
    conv1.weight.grad = conv2.weight.grad = None
    y = block.relu(block.bn1(conv1(x)))
    block.relu(x + block.bn2(conv2(y))).sum().backward()
    torch.testing.assert_close(block.conv.weight.grad, conv1.weight.grad + conv2.weight.grad)


def test_decoder_blocks_are_shared_in_the_network() -> None:
    model = rgpnet_resnet18(11)
    assert [count(block) for block in model.decoder] == [
        9 * w * w + 4 * w for w in (64, 128, 256, 512)
    ]
    assert (
        sum(k.endswith("conv.weight") for k in model.state_dict() if k.startswith("decoder")) == 4
    )


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_loads_torchvision_imagenet_weights(tmp_path, suffix: str) -> None:
    from torchvision.models import resnet18

    state = resnet18(weights=None).state_dict()
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    model = rgpnet_resnet18(11, backbone_weights=path)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_rejects_unknown_backbone() -> None:
    with pytest.raises(ValueError, match="no ResNet-34"):
        resnet_features(34)
    with pytest.raises(ValueError, match="no variant 'vgg16'"):
        build_model("rgpnet", "vgg16")


def test_takes_any_backbone_that_names_its_widths() -> None:
    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.channels = [8, 8, 8, 8]
            self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else 8, 8, 3, 2, 1) for i in range(5))

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            out = []
            for i, conv in enumerate(self.convs):
                x = conv(x)
                if i >= 1:
                    out.append(x)
            return out

    model = RGPNet(Tiny(), num_classes=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 70)).shape == (1, 4, 40, 70)
