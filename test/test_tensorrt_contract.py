"""Contract tests of the TensorRT adapter against stand-ins of the ``tensorrt`` module: they
check which calls seg_ros makes for each TensorRT version's behaviour (plugins registered
first, no fp16 flag on 11, ops a version cannot import refused by name). They are not proof
that TensorRT runs: that needs a GPU (test_inference_engine.py skips without one)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from seg_ros.inference.errors import BackendUnavailableError, ConfigError
from seg_ros.inference.export import export_onnx
from seg_ros.inference.tensorrt_engine import (
    check_onnx_for_tensorrt,
    fp16_flag,
    shared_logger,
)
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


class _DType:
    def __init__(self, name: str) -> None:
        self.name = name


class EngineStandIn:
    """A deserialized engine's named-tensor API (8.5+): one input, one output."""

    def __init__(self, io: dict[str, tuple[str, tuple[int, ...]]]) -> None:
        self.io = io
        self.num_io_tensors = len(io)

    def get_tensor_name(self, i: int) -> str:
        return list(self.io)[i]

    def get_tensor_mode(self, name: str) -> str:
        return self.io[name][0]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.io[name][1]

    def get_tensor_dtype(self, name: str) -> _DType:
        return _DType("FLOAT")


def tensorrt_with_engine(engine: EngineStandIn | None, version: str = "8.5.2") -> object:
    trt = RecordingTensorRT(version)
    trt.TensorIOMode = SimpleNamespace(INPUT="input", OUTPUT="output")

    class Runtime:
        def __init__(self, logger: object) -> None:
            trt.calls.append(("Runtime", logger))

        def deserialize_cuda_engine(self, data: bytes) -> EngineStandIn | None:
            trt.calls.append(("deserialize_cuda_engine", len(data)))
            return engine

    trt.Runtime = Runtime
    return trt


@pytest.fixture
def trtexec_engine(tmp_path, monkeypatch):
    """An engine file "built by trtexec" and a seg_ros ONNX it came from (real seg-export)."""
    from weights_helpers import pipeline_weights

    from seg_ros.inference import tensorrt_engine as engine_module
    from seg_ros.tools import export

    weights = pipeline_weights(tmp_path / "w.safetensors")
    onnx_path = tmp_path / "f.onnx"
    assert (
        export.main(
            [
                "--model",
                "fplnet",
                "--weights",
                str(weights),
                "--onnx",
                str(onnx_path),
                "--size",
                "64x96",
            ]
        )
        == 0
    )
    engine_path = tmp_path / "trtexec.engine"
    engine_path.write_bytes(b"serialized engine")
    monkeypatch.setattr(engine_module, "gpu_identity", lambda index: ("Xavier", "7.2"))
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: None)

    def use(io):
        trt = tensorrt_with_engine(None if io is None else EngineStandIn(io))
        monkeypatch.setattr(engine_module, "import_tensorrt", lambda: trt)
        return trt

    return SimpleNamespace(engine=engine_path, onnx=onnx_path, weights=weights, use=use)


GOOD_IO = {"image": ("input", (1, 3, 64, 96)), "logits": ("output", (1, 11, 64, 96))}


def test_sidecar_for_a_trtexec_engine_checks_its_io(trtexec_engine, capsys) -> None:
    from seg_ros.inference.tensorrt_engine import read_sidecar
    from seg_ros.tools import export

    trt = trtexec_engine.use(GOOD_IO)
    argv = ["--sidecar-for", str(trtexec_engine.engine), "--from-onnx", str(trtexec_engine.onnx)]
    assert export.main([*argv, "--fp16"]) == 0
    names = [c[0] for c in trt.calls]
    assert names.index("init_libnvinfer_plugins") < names.index("deserialize_cuda_engine")
    info = read_sidecar(trtexec_engine.engine)
    assert (info.tensorrt, info.gpu, info.compute_capability) == ("8.5.2", "Xavier", "7.2")
    assert info.input_size == [64, 96] and info.precision == "fp16"
    assert info.metadata["model"] == "fplnet" and json.loads(info.metadata["num_classes"]) == 11
    # Never over a sidecar that is there already.
    assert export.main(argv) == 2
    assert "exists already" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("io", "reason"),
    [
        (None, "could not deserialize"),
        (
            {"image": ("input", (1, 3, -1, -1)), "logits": ("output", (1, 11, -1, -1))},
            "not a fixed 1x3xHxW",
        ),
        ({"image": ("input", (1, 3, 64, 96)), "logits": ("output", (1, 19, 64, 96))}, "11 classes"),
        ({"image": ("input", (1, 3, 64, 96))}, "one input and one output"),
    ],
)
def test_sidecar_refused_for_an_engine_that_does_not_fit(
    trtexec_engine, capsys, io, reason
) -> None:
    from seg_ros.inference.tensorrt_engine import sidecar_path
    from seg_ros.tools import export

    trtexec_engine.use(io)
    argv = ["--sidecar-for", str(trtexec_engine.engine), "--weights", str(trtexec_engine.weights)]
    assert export.main(argv) == 2
    assert reason in capsys.readouterr().err
    assert not sidecar_path(trtexec_engine.engine).exists()


def test_sidecar_refused_when_the_engine_is_not_the_onnx_size(trtexec_engine, capsys) -> None:
    from seg_ros.inference.tensorrt_engine import sidecar_path
    from seg_ros.tools import export

    trtexec_engine.use(
        {"image": ("input", (1, 3, 128, 192)), "logits": ("output", (1, 11, 128, 192))}
    )
    argv = ["--sidecar-for", str(trtexec_engine.engine), "--from-onnx", str(trtexec_engine.onnx)]
    assert export.main(argv) == 2
    assert "(128, 192)" in capsys.readouterr().err
    assert not sidecar_path(trtexec_engine.engine).exists()


def test_workspace_setting_reaches_the_on_the_fly_build(monkeypatch, tmp_path) -> None:
    """trt_workspace_mb (node parameter, PipelineConfig) is the builder's workspace limit."""
    from seg_ros.inference.backends import tensorrt_backend
    from seg_ros.inference.config import PipelineConfig

    for bad in (16, True, 1 << 20):
        with pytest.raises(ConfigError, match="trt_workspace_mb"):
            PipelineConfig(backend="tensorrt", device="cuda", trt_workspace_mb=bad).validate()
    seen = stop_at_the_builder(monkeypatch)
    config = PipelineConfig(backend="tensorrt", device="cuda", trt_workspace_mb=512).validate()
    ctx = SimpleNamespace(
        config=config,
        metadata=SimpleNamespace(mean=[0.5] * 3, std=[0.5] * 3, to_strings=dict),
        input_size=(64, 96),
        artifact=lambda suffix: tmp_path / f"f{suffix}",
        export_onnx=lambda: tmp_path / "f.onnx",
    )
    with pytest.raises(StopBuildError):
        tensorrt_backend.TensorRTBackend.build(ctx)
    assert {k: seen[k] for k in ("workspace", "size", "precision")} == {
        "workspace": 512 << 20,
        "size": (64, 96),
        "precision": "fp32",
    }


class StopBuildError(Exception):
    """Raised by the stand-in builder: what TensorRT would have been handed is recorded."""


def stop_at_the_builder(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Stand-ins for TensorRT 8.5 on a Xavier up to the engine build, which records its
    arguments into the returned dict and raises StopBuildError."""
    from seg_ros.inference import tensorrt_engine as engine_module
    from seg_ros.inference.backends import tensorrt_backend

    seen: dict = {}

    def build_engine(onnx, engine, size, precision, workspace, device_index, metadata):
        seen.update(onnx=onnx, size=size, precision=precision, workspace=workspace)
        seen.update(metadata=metadata)
        raise StopBuildError

    monkeypatch.setattr(engine_module, "build_engine", build_engine)
    monkeypatch.setattr(tensorrt_backend, "import_tensorrt", lambda: RecordingTensorRT("8.5.2"))
    monkeypatch.setattr(tensorrt_backend, "gpu_identity", lambda index: ("Xavier", "7.2"))
    monkeypatch.setattr(tensorrt_backend, "resolve_device", lambda device: torch.device("cpu"))
    return seen
