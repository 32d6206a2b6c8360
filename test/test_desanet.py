"""DESANet: parameter counts, shapes at any input size, training outputs, ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seg_ros.models import build_model
from seg_ros.models.deform import onnx_custom_translations, register_onnx_symbolic
from seg_ros.models.desanet import DESANet, desanet_hardnet68ds, desanet_resnet18

CONSTRUCTORS = {"resnet18": desanet_resnet18, "hardnet68ds": desanet_hardnet68ds}
# (paper, the reconstruction in docs/MODELS.md), 19 classes, aux head excluded.
TARGETS = {"resnet18": (15.3e6, 15.20e6), "hardnet68ds": (6.2e6, 6.13e6)}


@pytest.fixture(scope="module", params=list(CONSTRUCTORS))
def model(request: pytest.FixtureRequest) -> DESANet:
    torch.manual_seed(0)
    return CONSTRUCTORS[request.param]()


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("variant", list(CONSTRUCTORS))
def test_parameter_count(variant: str) -> None:
    model = CONSTRUCTORS[variant](num_classes=19)
    n = count(model) - count(model.aux_head)
    for target in TARGETS[variant]:
        assert abs(n / target - 1) <= 0.015, (variant, n, target)


def test_registry_builds_both_variants() -> None:
    for variant in CONSTRUCTORS:
        model = build_model("desanet", variant, num_classes=11)
        assert isinstance(model, DESANet)
        assert model.classifier.out_channels == 11


@pytest.mark.parametrize("size", [(64, 96), (65, 97), (33, 70)])
def test_eval_output_matches_input_size(model: DESANet, size: tuple[int, int]) -> None:
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (1, 19, *size)


def test_train_returns_main_and_aux_and_gradients_reach_first_layers(model: DESANet) -> None:
    model.train()
    model.zero_grad()
    out = model(torch.randn(2, 3, 65, 97))
    main, aux = out.logits, out.aux
    assert main.shape == aux.shape == (2, 19, 65, 97)
    (main.square().mean() + aux.square().mean()).backward()
    first_backbone_conv = next(
        m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d)
    )
    for name, param in [
        ("spatial stem", model.spatial.stem[0][0].weight),
        ("offset conv", model.spatial.offset.weight),
        ("deformable conv", model.spatial.deform.weight),
        ("backbone stem", first_backbone_conv.weight),
    ]:
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_eval_is_deterministic(model: DESANet) -> None:
    model.eval()
    x = torch.randn(1, 3, 65, 97)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_backbone_weights_are_loaded(tmp_path) -> None:
    from safetensors.torch import save_file
    from torchvision.models import resnet18

    torch.manual_seed(1)
    imagenet = resnet18(weights=None).state_dict()
    save_file(imagenet, str(tmp_path / "resnet18.safetensors"))
    model = desanet_resnet18(backbone_weights=tmp_path / "resnet18.safetensors")
    assert torch.equal(model.backbone.conv1.weight, imagenet["conv1.weight"])
    assert torch.equal(
        model.backbone.layer4[1].bn2.running_var, imagenet["layer4.1.bn2.running_var"]
    )


def _exportable_resnet_model() -> DESANet:
    """DESANet-RN in eval mode with non-trivial BN statistics, offsets and logits.

    Fresh BNs are identities and the zero-initialised offsets make the deformable conv a plain
    conv; both would hide export errors.
    """
    torch.manual_seed(0)
    model = desanet_resnet18().eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    torch.nn.init.normal_(model.spatial.offset.weight, std=0.1)
    torch.nn.init.normal_(model.spatial.offset.bias, std=1.0)
    # Logits of a trained network's size (~10, not ~0.2), so 1e-4 is a real bound.
    model.classifier.weight.data.mul_(50.0)
    return model


def _check_parity(onnx_bytes: bytes, model: DESANet, sizes: list[tuple[int, int]]) -> None:
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for size in sizes:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {name: x.numpy()})
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-4, size
        assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.999, size


def test_onnx_export_matches_pytorch() -> None:
    pytest.importorskip("onnxscript")
    model = _exportable_resnet_model()
    # The deformable conv must not be a plain conv here, or the test proves little.
    assert model.spatial.offset(torch.randn(1, 64, 4, 4)).abs().mean() > 0.5
    # A fixed size: dynamic height and width triple the export time (they work; the legacy
    # test below covers an odd size through a dynamic-size graph).
    program = torch.onnx.export(
        model,
        (torch.randn(1, 3, 64, 96),),
        dynamo=True,
        opset_version=model.onnx_min_opset,
        custom_translation_table=onnx_custom_translations(),
        verbose=False,
    )
    proto = program.model_proto
    assert "DeformConv" in {node.op_type for node in proto.graph.node}
    _check_parity(proto.SerializeToString(), model, [(64, 96)])


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_legacy_onnx_export_matches_pytorch(tmp_path) -> None:
    model = _exportable_resnet_model()
    register_onnx_symbolic()
    path = tmp_path / "desanet.onnx"
    with pytest.warns(DeprecationWarning):
        torch.onnx.export(
            model,
            (torch.randn(1, 3, 64, 96),),
            str(path),
            dynamo=False,
            opset_version=model.onnx_min_opset,
            input_names=["image"],
            dynamic_axes={"image": {2: "height", 3: "width"}},
        )
    _check_parity(path.read_bytes(), model, [(65, 97)])


def test_trains_under_cpu_bf16_autocast() -> None:
    # torchvision's deform_conv2d has no CPU bf16 kernel; the model must still train with the
    # trainer's default (bf16 autocast on AMX CPUs).
    model = desanet_resnet18(num_classes=3).train()
    x = torch.randn(2, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        main, aux = model(x)
    (main.float().mean() + aux.float().mean()).backward()
    assert model.spatial.offset.weight.grad is not None


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "bias"), [(1, 1, 1, False), (2, 2, 2, True)]
)
def test_training_deform_conv_has_torchvision_values_and_gradients(
    stride: int, padding: int, dilation: int, bias: bool
) -> None:
    """Training runs the sampled form (vectorised backward); its output and the gradients to
    the input, the offsets and the DeformConv2d's own parameters must be torchvision's."""
    from torchvision.ops import DeformConv2d

    from seg_ros.models.deform import deform_conv_for_training

    torch.manual_seed(0)
    dcn = DeformConv2d(5, 7, 3, stride=stride, padding=padding, dilation=dilation, bias=bias)
    x = torch.randn(2, 5, 11, 13)
    ho = (11 + 2 * padding - dilation * 2 - 1) // stride + 1
    wo = (13 + 2 * padding - dilation * 2 - 1) // stride + 1
    # offsets that reach outside the image, never exactly on a pixel (kinks of bilinear)
    offset = torch.randn(2, 18, ho, wo) * 3 + 0.25
    results = []
    for run in (dcn, lambda a, b: deform_conv_for_training(dcn, a, b)):
        dcn.zero_grad()
        xi, oi = x.clone().requires_grad_(), offset.clone().requires_grad_()
        y = run(xi, oi)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        grads = [xi.grad, oi.grad, dcn.weight.grad] + ([dcn.bias.grad] if bias else [])
        results.append([y.detach(), *(g.clone() for g in grads)])
    for ours, theirs in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_training_mode_runs_the_sampled_form_and_eval_torchvision(monkeypatch) -> None:
    from seg_ros.models import desanet as module

    called: list[str] = []
    for name in ("deform_conv_for_training", "deform_conv_fp32"):
        real = getattr(module, name)

        def spy(*args, _real=real, _name=name):
            called.append(_name)
            return _real(*args)

        monkeypatch.setattr(module, name, spy)
    model = desanet_resnet18(num_classes=3)
    x = torch.randn(2, 3, 64, 64)
    model.train()(x)
    model.eval()(x)
    with torch.no_grad():
        model.train()(x)  # no gradients wanted: the op the exporters see
    assert called == ["deform_conv_for_training", "deform_conv_fp32", "deform_conv_fp32"]
