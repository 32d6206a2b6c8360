"""Contract tests of the TensorRT adapter against stand-ins of the ``tensorrt`` module: they
check which calls seg_ros makes for each TensorRT version's behaviour (plugins registered
first, no fp16 flag on 11, ops a version cannot import refused by name). They are not proof
that TensorRT runs: that needs a GPU (test_inference_engine.py skips without one)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from seg_ros.inference.engine import (
    check_onnx_for_tensorrt,
    fp16_flag,
    shared_logger,
)
from seg_ros.inference.errors import BackendUnavailableError
from seg_ros.inference.export import export_onnx
from seg_ros.models import build_model


class RecordingTensorRT:
    """The few names of ``tensorrt`` the logger/plugin code uses; records every call."""

    def __init__(self, version: str) -> None:
        self.__version__ = version
        self.calls: list[tuple[str, object]] = []
        outer = self

        class Logger:
            WARNING = "warning"

            def __init__(self, level: str) -> None:
                outer.calls.append(("Logger", level))

        self.Logger = Logger

    def init_libnvinfer_plugins(self, logger: object, namespace: str) -> bool:
        self.calls.append(("init_libnvinfer_plugins", logger))
        return True

    def __hash__(self) -> int:
        return id(self)


def test_one_logger_with_plugins_registered_on_it() -> None:
    trt = RecordingTensorRT("10.3.0")
    first, second = shared_logger(trt), shared_logger(trt)
    assert first is second  # TensorRT warns about a second logger
    assert [c[0] for c in trt.calls] == ["Logger", "init_libnvinfer_plugins"]
    assert trt.calls[1][1] is first


@pytest.mark.parametrize(
    ("version", "has_fp16"), [("8.5.2", True), ("10.7.0", True), ("11.0.0", False)]
)
def test_fp16_flag_exists_before_11_and_is_refused_clearly_on_11(version, has_fp16) -> None:
    flags = SimpleNamespace(FP16="fp16") if has_fp16 else SimpleNamespace()
    trt = SimpleNamespace(__version__=version, BuilderFlag=flags)
    if has_fp16:
        assert fp16_flag(trt) == "fp16"
    else:
        with pytest.raises(BackendUnavailableError, match=r"TensorRT 11\.0\.0 has no fp16"):
            fp16_flag(trt)


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory) -> dict[str, str]:
    pytest.importorskip("onnx")
    d = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    out = {}
    for model, variant in (("fplnet", "full"), ("desanet", "resnet18")):
        net = build_model(model, variant, num_classes=11).eval()
        out[model] = str(export_onnx(net, d / f"{model}.onnx", (64, 96)))
    return out


@pytest.mark.parametrize(
    ("version", "desanet_ok"), [((8, 5), False), ((8, 6), False), ((10, 0), False), ((10, 1), True)]
)
def test_onnx_ops_are_checked_against_the_tensorrt_version(onnx_files, version, desanet_ok) -> None:
    check_onnx_for_tensorrt(onnx_files["fplnet"], version)  # plain convs: every version
    if desanet_ok:
        check_onnx_for_tensorrt(onnx_files["desanet"], version)
    else:
        with pytest.raises(BackendUnavailableError, match=r"DeformConv.*10\.1.*plugin"):
            check_onnx_for_tensorrt(onnx_files["desanet"], version)


def test_engine_from_an_existing_onnx_needs_no_pytorch_export(onnx_files, tmp_path, capsys) -> None:
    """The Jetson flow: seg-export --from-onnx reads the model and size from the ONNX's own
    metadata (test_export covers writing it); here only what happens before TensorRT."""
    from seg_ros.inference.export import read_onnx_metadata
    from seg_ros.tools import export

    raw = read_onnx_metadata(onnx_files["fplnet"])
    assert "format" not in raw  # exported without weights metadata: refused, named
    assert export.main(["--from-onnx", onnx_files["fplnet"]]) == 2
    assert "give --tensorrt" in capsys.readouterr().err
    argv = ["--from-onnx", onnx_files["fplnet"], "--tensorrt", str(tmp_path / "f.engine")]
    assert export.main(argv) == 2
    assert "no seg_ros metadata" in capsys.readouterr().err
