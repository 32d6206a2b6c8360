"""The version switches in seg_ros.compat, driven by the version torch reports (JetPack 5's
NVIDIA wheels report e.g. 2.1.0a0+41361538.nv23.06): each switch changes what seg_ros calls."""

from __future__ import annotations

import pytest
import torch
import torch.onnx

from seg_ros.compat import (
    grad_scaler,
    release,
    torchscript_export_kwargs,
    torchscript_max_opset,
    zip_strict,
)
from seg_ros.inference import PipelineError
from seg_ros.inference.export import export_onnx
from seg_ros.models import build_model


def test_release_reads_nvidia_and_pypi_versions() -> None:
    assert release("2.1.0a0+41361538.nv23.06") == (2, 1)
    assert release("2.14.1+cu130") == (2, 14)
    with pytest.raises(ValueError, match="not a version"):
        release("nightly")


def test_zip_strict_refuses_different_lengths() -> None:
    assert list(zip_strict("ab", [1, 2])) == [("a", 1), ("b", 2)]
    with pytest.raises(ValueError):
        list(zip_strict("ab", [1]))


@pytest.mark.parametrize(
    ("version", "kwargs"), [("2.0.1", {}), ("2.4.0", {}), ("2.5.0", {"dynamo": False})]
)
def test_torchscript_exporter_flag_by_release(monkeypatch, version: str, kwargs: dict) -> None:
    monkeypatch.setattr(torch, "__version__", version)
    assert torchscript_export_kwargs() == kwargs


def test_grad_scaler_on_old_torch_is_the_cuda_one(monkeypatch) -> None:
    made = []
    monkeypatch.setattr(torch, "__version__", "2.1.0a0+41361538.nv23.06")
    monkeypatch.setattr(torch.cuda.amp, "GradScaler", lambda enabled: made.append(enabled))  # noqa: PLW0108
    grad_scaler(enabled=False)
    assert made == [False]


def test_desanet_export_refused_where_torchscript_cannot_write_opset_19(
    monkeypatch, tmp_path
) -> None:
    """torch 2.0's TorchScript exporter stops at opset 18; DESANet's DeformConv needs 19."""
    monkeypatch.setattr(torch.onnx._constants, "ONNX_MAX_OPSET", 18)
    assert torchscript_max_opset() == 18
    net = build_model("desanet", "hardnet68ds", num_classes=3)
    with pytest.raises(PipelineError, match=r"opset 19.*at most 18.*--from-onnx"):
        export_onnx(net, tmp_path / "d.onnx", input_size=(64, 64))
    assert not (tmp_path / "d.onnx").exists()


def test_dynamo_exporter_refused_on_old_torch(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(torch, "__version__", "2.1.0")
    net = build_model("fplnet", "encoder", num_classes=3)
    with pytest.raises(PipelineError, match=r"dynamo exporter needs torch >= 2.6"):
        export_onnx(net, tmp_path / "f.onnx", input_size=(64, 64), opset=18, exporter="dynamo")
