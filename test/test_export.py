"""ONNX export (library and seg-export), ONNX Runtime through the pipeline, provider choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from weights_helpers import PIPELINE_SIZE, pipeline_weights

from seg_ros.inference import (
    BackendUnavailableError,
    ConfigError,
    Pipeline,
    PipelineError,
)
from seg_ros.inference.backends.onnxruntime_backend import argmax_nchw, providers_for
from seg_ros.inference.export import export_onnx, onnx_opset, read_onnx_metadata
from seg_ros.inference.parity import agreement, synthetic_scene
from seg_ros.tools import export as seg_export
from seg_ros.weights import load_model, read_metadata

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return pipeline_weights(tmp_path_factory.mktemp("w") / "fplnet.safetensors")


def test_onnxruntime_pipeline_matches_torch(weights: Path, tmp_path: Path) -> None:
    ort = Pipeline(model="fplnet", weights=str(weights), backend="onnxruntime", threads=1)
    torch_pipeline = Pipeline(model="fplnet", weights=str(weights))
    assert ort.parity.passed and ort.parity.max_abs_error < 1e-4
    assert "CPUExecutionProvider" in ort.describe()["providers"]
    # Exported on the fly into the cache, and reused from there.
    onnx_file = Path(ort.describe()["onnx"])
    assert onnx_file.is_file() and onnx_file.parent == tmp_path / "cache"
    for seed in range(2):
        image = synthetic_scene(80, 120, seed)
        a, b = ort(image), torch_pipeline(image)
        assert agreement(a.labels, b.labels) >= 0.999
        assert a.overlay.shape == (80, 120, 3)


def test_exported_file_carries_metadata_and_drives_a_pipeline(weights, tmp_path) -> None:

    net, meta = load_model(weights)
    path = export_onnx(net, tmp_path / "f.onnx", PIPELINE_SIZE, metadata=meta)
    assert onnx_opset(path) == 17
    raw = read_onnx_metadata(path)
    assert raw["model"] == "fplnet" and raw["onnx_input_size"] == "64x96"
    assert raw["onnx_dynamic"] == "false"
    # No weights: the ONNX file is the model and names its classes.
    p = Pipeline(model="fplnet", backend="onnxruntime", engine=str(path))
    assert p.metadata.class_names == meta.class_names and p.input_size == PIPELINE_SIZE
    assert "not checked" in p.describe()["parity"]
    assert p(synthetic_scene(50, 70)).labels.shape == (50, 70)
    # With weights: checked against them.
    q = Pipeline(model="fplnet", backend="onnxruntime", engine=str(path), weights=str(weights))
    assert q.parity.passed
    with pytest.raises(ConfigError, match="built for 64x96"):
        Pipeline(model="fplnet", backend="onnxruntime", engine=str(path), input_size=(96, 128))
    with pytest.raises(PipelineError, match=r"'fplnet' network.*'rgpnet'"):
        Pipeline(model="rgpnet", backend="onnxruntime", engine=str(path))
    with pytest.raises(ConfigError, match="engine is for"):
        Pipeline(model="fplnet", backend="torch", engine=str(path))
    # backend auto runs an engine on its own runtime
    assert Pipeline(model="fplnet", engine=str(path)).describe()["backend"] == "onnxruntime (auto)"


def test_onnx_without_metadata_needs_weights(weights, tmp_path) -> None:

    net, _ = load_model(weights)
    path = export_onnx(net, tmp_path / "bare.onnx", PIPELINE_SIZE)
    with pytest.raises(PipelineError, match="no seg_ros metadata"):
        Pipeline(model="fplnet", backend="onnxruntime", engine=str(path))
    p = Pipeline(model="fplnet", backend="onnxruntime", engine=str(path), weights=str(weights))
    assert p.parity.passed


def test_broken_onnx_file(tmp_path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(PipelineError, match=r"broken\.onnx"):
        Pipeline(model="fplnet", backend="onnxruntime", engine=str(path))
    with pytest.raises(PipelineError, match="not found"):
        Pipeline(model="fplnet", backend="onnxruntime", engine=str(tmp_path / "none.onnx"))


def test_seg_export_cli(weights: Path, tmp_path: Path, capsys) -> None:
    import onnxruntime

    out = tmp_path / "dyn.onnx"
    argv = ["--model", "fplnet", "--weights", str(weights), "--onnx", str(out), "--dynamic"]
    assert seg_export.main([*argv, "--check"]) == 0
    printed = capsys.readouterr().out
    assert "opset 17" in printed and "dynamic size" in printed and "labels agree" in printed
    assert read_onnx_metadata(out)["dataset"] == read_metadata(weights).dataset
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"image": np.zeros((1, 3, 40, 72), np.float32)})
    assert logits.shape == (1, 11, 40, 72)  # any size works with --dynamic


def test_seg_export_errors(tmp_path: Path, capsys) -> None:
    assert seg_export.main(["--model", "fplnet"]) == 2
    assert "nothing to do" in capsys.readouterr().err
    missing = ["--model", "fplnet", "--weights", str(tmp_path / "x.safetensors")]
    assert seg_export.main([*missing, "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        seg_export.main(["--model", "fplnet", "--size", "big"])


def test_tensorrt_export_without_tensorrt(weights, tmp_path, capsys) -> None:
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed; test_inference_engine builds real engines")
    except ImportError:
        pass
    argv = ["--model", "fplnet", "--weights", str(weights), "--tensorrt", str(tmp_path / "e")]
    assert seg_export.main(argv) == 2
    assert "TensorRT" in capsys.readouterr().err


def test_tensorrt_export_never_replaces_a_file_it_was_not_asked_to_write(
    weights, tmp_path, monkeypatch, capsys
) -> None:
    """seg-export --tensorrt DIR/model.engine once replaced the user's DIR/model.onnx with its
    intermediate export, then failed for want of TensorRT."""
    from seg_ros.inference import tensorrt_engine as engine_module

    theirs = tmp_path / "model.onnx"
    theirs.write_bytes(b"the user's own ONNX, not seg_ros'")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["--model", "fplnet", "--weights", str(weights), "--size", "64x96"]
    argv += ["--tensorrt", str(tmp_path / "model.engine")]
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        # Here (no TensorRT): refused before any work, nothing written.
        assert seg_export.main(argv) == 2
        assert "TensorRT" in capsys.readouterr().err
        assert theirs.read_bytes() == b"the user's own ONNX, not seg_ros'"
        assert sorted(p.name for p in tmp_path.iterdir()) == before

    # Where TensorRT and a GPU exist: the ONNX it builds from lives in a scratch folder.
    built = {}

    def build_engine(onnx, engine, size, precision, workspace, device_index, metadata):
        built["onnx"] = Path(onnx)
        assert read_onnx_metadata(onnx)["model"] == "fplnet"  # a real export, complete
        Path(engine).write_bytes(b"engine")
        Path(f"{engine}.json").write_text("{}")

    monkeypatch.setattr(seg_export, "require_tensorrt", lambda device: None)
    monkeypatch.setattr(engine_module, "build_engine", build_engine)
    assert seg_export.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"weights {weights}" in printed  # says which weights it exported
    assert built["onnx"].parent != tmp_path and not built["onnx"].exists()  # scratch, removed
    assert theirs.read_bytes() == b"the user's own ONNX, not seg_ros'"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*before, "model.engine", "model.engine.json"]
    )


def test_provider_choice() -> None:
    assert providers_for("cpu", "fp32", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="bf16"):
        providers_for("cpu", "bf16", ["CPUExecutionProvider"])
    with pytest.raises(BackendUnavailableError, match="no CUDA or TensorRT execution provider"):
        providers_for("cuda", "fp32", ["CPUExecutionProvider"])
    with pytest.raises(BackendUnavailableError, match="TensorrtExecutionProvider"):
        providers_for("cuda:1", "fp16", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    gpu = providers_for(
        "cuda:1", "fp16", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPU"]
    )
    assert gpu[0][0] == "TensorrtExecutionProvider" and gpu[0][1]["trt_fp16_enable"]
    assert gpu[1] == ("CUDAExecutionProvider", {"device_id": 1})
    assert gpu[-1] == "CPUExecutionProvider"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_onnxruntime_cuda_is_never_silently_cpu(weights) -> None:
    with pytest.raises(BackendUnavailableError):
        Pipeline(model="fplnet", weights=str(weights), backend="onnxruntime", device="cuda")


def test_plane_argmax_matches_numpy() -> None:
    logits = np.random.default_rng(0).normal(size=(1, 7, 9, 11)).astype(np.float32)
    np.testing.assert_array_equal(argmax_nchw(logits), logits[0].argmax(0))


def test_fp16_weights_copy(weights: Path, tmp_path: Path, capsys) -> None:
    from safetensors import safe_open

    out = tmp_path / "half.safetensors"
    argv = ["--model", "fplnet", "--weights", str(weights), "--fp16-weights", str(out)]
    assert seg_export.main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    assert out.stat().st_size < 0.6 * weights.stat().st_size
    assert read_metadata(out) == read_metadata(weights)
    with safe_open(str(out), "pt") as f:
        dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118
    assert {d for k, d in dtypes.items() if k.endswith("running_var")} == {"F32"}
    assert "F16" in dtypes.values()
    full, _ = load_model(weights)
    half, _ = load_model(out)
    assert next(half.parameters()).dtype == torch.float32  # loads into an fp32 network
    x = torch.from_numpy(synthetic_scene(*PIPELINE_SIZE)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        a, b = full.eval()(x), half.eval()(x)
    assert agreement(a.argmax(1).numpy(), b.argmax(1).numpy()) >= 0.999
    # A file for another model is refused before anything is written.
    bad = ["--model", "rgpnet", "--weights", str(weights), "--fp16-weights", str(tmp_path / "r")]
    assert seg_export.main(bad) == 2
    assert "'fplnet' weights" in capsys.readouterr().err and not (tmp_path / "r").exists()
