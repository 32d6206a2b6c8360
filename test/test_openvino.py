"""The backend seam and the OpenVINO backend: fp32 against torch, every network, int8 models
made by NNCF with their recorded accuracy, and the errors for bad int8 files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from weights_helpers import PIPELINE_SIZE, pipeline_weights

from seg_ros.inference import ConfigError, Pipeline, PipelineConfig, PipelineError
from seg_ros.inference.backends import BACKEND_NAMES, Backend, backend_class
from seg_ros.inference.parity import synthetic_scene
from seg_ros.inference.pipeline import resolve_backend
from seg_ros.labels import CAMVID
from seg_ros.training.synthetic import scene


def test_every_backend_is_found_by_name_and_builds_itself() -> None:
    for name in BACKEND_NAMES:
        try:
            cls = backend_class(name)
        except ImportError as e:  # a runtime module that imports its library at the top
            pytest.fail(f"backend {name} module must import without its runtime: {e}")
        assert issubclass(cls, Backend) and cls.name == name
        assert "build" in cls.__dict__, f"{name} does not build itself"
    assert {"torch", "onnxruntime", "openvino", "tensorrt"} <= set(BACKEND_NAMES)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return str(pipeline_weights(tmp_path_factory.mktemp("w") / "fplnet.safetensors"))


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [scene(rng, PIPELINE_SIZE, CAMVID.num_classes, CAMVID.palette)[0] for _ in range(n)]


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino"])
def test_pipeline_runs_every_cpu_backend_through_the_seam(weights, backend) -> None:
    pytest.importorskip({"torch": "torch", "onnxruntime": "onnxruntime"}.get(backend, backend))
    pipeline = Pipeline(weights=weights, backend=backend)
    assert pipeline.describe()["backend"] == backend
    out = pipeline(_images(1)[0])
    assert out.labels.shape == PIPELINE_SIZE and out.labels.max() < CAMVID.num_classes


def test_openvino_fp32_agrees_with_torch_fp32(weights) -> None:
    pytest.importorskip("openvino")
    torch_p = Pipeline(weights=weights, backend="torch")
    ov_p = Pipeline(weights=weights, backend="openvino")
    same = total = 0
    for image in _images(4, seed=3):
        a, b = torch_p(image).labels, ov_p(image).labels
        same += int((a == b).sum())
        total += a.size
    assert same / total >= 0.999, same / total
    assert ov_p.parity is not None and ov_p.parity.agreement >= 0.999


@pytest.mark.parametrize(("model", "variant"), [("rgpnet", "resnet18"), ("desanet", "resnet18")])
def test_openvino_runs_every_network(model, variant, monkeypatch) -> None:
    """DESANet's deformable convolution included (converted from the PyTorch module)."""
    pytest.importorskip("openvino")
    monkeypatch.setattr("seg_ros.inference.loading.shipped_weights", lambda m: None)
    pipeline = Pipeline(model=model, variant=variant, backend="openvino", input_size=(64, 96))
    assert pipeline.random_init and pipeline.parity.agreement >= 0.99
    assert pipeline(np.zeros((64, 96, 3), np.uint8)).labels.shape == (64, 96)


def test_openvino_conversion_does_not_print_torchs_tracer_deprecations() -> None:
    """The node converts at start-up; its console showed two torch.jit FutureWarnings each time."""
    pytest.importorskip("openvino")
    import warnings

    from seg_ros.inference.backends.openvino_backend import convert_from_torch
    from seg_ros.models.registry import build_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        convert_from_torch(build_model("fplnet", num_classes=11), (64, 96))
    tracer = [str(w.message) for w in caught if "torch.jit" in str(w.message)]
    assert not tracer, tracer


def test_backend_auto_picks_the_runtime_and_never_overrides_a_choice() -> None:
    import importlib.util

    has_ov = importlib.util.find_spec("openvino") is not None
    assert resolve_backend(PipelineConfig()) == ("openvino" if has_ov else "torch")
    assert resolve_backend(PipelineConfig(backend="torch")) == "torch"
    assert resolve_backend(PipelineConfig(device="cuda")) == "torch"
    assert resolve_backend(PipelineConfig(engine="m.onnx")) == "onnxruntime"
    assert resolve_backend(PipelineConfig(engine="m.xml")) == "openvino"
    with pytest.raises(ConfigError, match="suffix"):
        resolve_backend(PipelineConfig(engine="m.bin"))
    with pytest.raises(ConfigError, match="int8"):
        PipelineConfig(backend="torch", precision="int8").validate()


@pytest.fixture(scope="module")
def int8(weights, tmp_path_factory) -> tuple[str, object]:
    pytest.importorskip("nncf")
    from seg_ros.inference.quantize import quantize

    rng = np.random.default_rng(1)
    pairs = [scene(rng, PIPELINE_SIZE, CAMVID.num_classes, CAMVID.palette) for _ in range(6)]
    out = tmp_path_factory.mktemp("int8") / "fplnet_int8.xml"
    # A random network's mIoU is near 0 either way: force, so the file is written (flagged if
    # it lost more than the tolerance) and its recorded figures can be checked.
    report = quantize(
        weights,
        "fplnet",
        [p[0] for p in pairs[:4]],
        pairs[4:],
        out,
        "synthetic calibration",
        "synthetic validation",
        force=True,
        progress=lambda m: None,
    )
    return str(out), report


def test_int8_model_records_the_accuracy_it_kept(weights, int8) -> None:
    from seg_ros.inference.backends.openvino_backend import OpenVINOBackend

    path, report = int8
    assert report.written
    info = OpenVINOBackend.read_engine(Path(path))
    assert info.metadata["precision"] == "int8"
    assert info.metadata["int8_val_miou"] == f"{report.int8_miou:.2f}"
    assert info.metadata["fp32_val_miou"] == f"{report.fp32_miou:.2f}"
    assert info.metadata["int8_validation"].startswith("synthetic validation (2 frames)")
    assert info.metadata["int8_within_tolerance"] == str(report.within).lower()
    assert info.input_size is None  # sizes kept symbolic: it runs at the size asked
    pipeline = Pipeline(weights=weights, backend="openvino", precision="int8", engine=path)
    assert pipeline.input_size == PIPELINE_SIZE  # the weights' own size, as for fp32
    assert "val mIoU" in pipeline.describe()["int8_accuracy"]
    assert pipeline(_images(1)[0]).labels.shape == PIPELINE_SIZE


def test_an_int8_model_past_its_tolerance_is_not_written(weights, tmp_path) -> None:
    pytest.importorskip("nncf")
    from seg_ros.inference.quantize import quantize

    rng = np.random.default_rng(2)
    pairs = [scene(rng, PIPELINE_SIZE, CAMVID.num_classes, CAMVID.palette) for _ in range(3)]
    out = tmp_path / "q.xml"
    report = quantize(
        weights, "fplnet", [pairs[0][0]], pairs[1:], out, "c", "v", max_drop=-1.0,
        progress=lambda m: None,
    )  # fmt: skip
    assert not report.written and report.flags and not out.exists()


def test_bad_int8_models_are_clear_errors(weights, int8, tmp_path) -> None:
    path, _ = int8
    with pytest.raises(ConfigError, match="is an int8 model"):
        Pipeline(weights=weights, backend="openvino", precision="fp32", engine=path)
    broken = tmp_path / "broken.xml"
    broken.write_text("<net name='x'><layers>")
    (tmp_path / "broken.bin").write_bytes(b"")
    with pytest.raises(PipelineError, match="cannot read"):
        Pipeline(weights=weights, backend="openvino", precision="int8", engine=str(broken))
    lonely = tmp_path / "lonely.xml"
    lonely.write_text(Path(path).read_text())
    with pytest.raises(PipelineError, match="no weights file"):
        Pipeline(weights=weights, backend="openvino", precision="int8", engine=str(lonely))
    with pytest.raises(ConfigError, match="seg-quantize"):
        Pipeline(weights=weights, backend="openvino", precision="int8")


def test_mismatched_int8_models_are_refused(weights, int8, tmp_path) -> None:
    import openvino as ov
    import torch

    from seg_ros.inference.backends.openvino_backend import convert_from_torch
    from seg_ros.models import build_model

    path, _ = int8
    with pytest.raises(PipelineError, match="holds a 'fplnet' network"):
        Pipeline(model="rgpnet", backend="openvino", precision="int8", engine=path)
    torch.manual_seed(0)
    fp32_ir = tmp_path / "fp32.xml"
    ov.save_model(convert_from_torch(build_model("fplnet", "full", 11), PIPELINE_SIZE), fp32_ir)
    with pytest.raises(ConfigError, match="not quantized"):
        Pipeline(weights=weights, backend="openvino", precision="int8", engine=str(fp32_ir))


def test_an_int8_model_runs_at_any_input_size(weights, int8) -> None:
    """seg-quantize keeps the sizes symbolic: the model it made at one size is reshaped to
    another and, like any fast path, must agree with fp32 PyTorch there (the parity guard)."""
    import openvino as ov

    path, _ = int8
    assert ov.Core().read_model(path).input(0).get_partial_shape().is_dynamic
    for size in ((96, 128), (40, 72)):
        pipeline = Pipeline(
            weights=weights, backend="openvino", precision="int8", engine=path, input_size=size
        )
        assert pipeline.input_size == size
        assert pipeline.parity is not None and pipeline.parity.passed, pipeline.parity.summary()
        out = pipeline(_images(1)[0])
        assert out.labels.shape == PIPELINE_SIZE


def test_an_ir_that_cannot_take_another_size_is_refused_naming_seg_quantize(
    weights, tmp_path
) -> None:
    """An IR traced at a fixed size keeps that size's padding and crop: OpenVINO reshapes its
    input, but its output stays at the old size. Refused, and found without building."""
    import openvino as ov

    from seg_ros.inference.availability import unavailable
    from seg_ros.inference.backends.openvino_backend import convert_from_torch
    from seg_ros.weights import load_model

    network, _ = load_model(weights)
    static = tmp_path / "static.xml"
    ov.save_model(convert_from_torch(network, PIPELINE_SIZE), static)
    asked = {"weights": weights, "backend": "openvino", "engine": str(static)}
    Pipeline(**asked)  # at its own size it runs
    with pytest.raises(ConfigError, match=r"cannot run at 96x128: make one .*--input-size 96x128"):
        Pipeline(**asked, input_size=(96, 128))
    problem = unavailable(PipelineConfig(**asked, input_size=(96, 128)))
    assert problem is not None and "seg-quantize --input-size 96x128" in problem
    assert unavailable(PipelineConfig(**asked, input_size=PIPELINE_SIZE)) is None


def test_shipped_int8_fplnet_runs_at_512x1024_and_agrees_with_fp32() -> None:
    """The shipped int8 model was quantized at 360x480; a user's 512x1024 must run too."""
    from seg_ros.paths import find_data

    if find_data("models/fplnet_camvid_int8.xml") is None:
        pytest.skip("no shipped int8 model in this install")
    size = (512, 1024)
    int8 = Pipeline(model="fplnet", backend="openvino", precision="int8", input_size=size)
    fp32 = Pipeline(model="fplnet", backend="openvino", input_size=size, parity_check=False)
    rng = np.random.default_rng(5)
    image = scene(rng, (600, 800), CAMVID.num_classes, CAMVID.palette)[0]
    a, b = int8(image).labels, fp32(image).labels
    assert a.shape == b.shape == (600, 800)
    assert (a == b).mean() >= 0.95, (a == b).mean()


def test_shipped_int8_fplnet_is_found_and_records_its_accuracy() -> None:
    """precision int8 with the shipped weights runs models/fplnet_camvid_int8.xml, which
    seg-quantize made from exactly those weights (its digest) and checked on CamVid val."""
    from seg_ros.paths import find_data

    if find_data("models/fplnet_camvid_int8.xml") is None:
        pytest.skip("no shipped int8 model in this install")
    pipeline = Pipeline(model="fplnet", backend="openvino", precision="int8")
    notes = pipeline.describe()
    assert notes["openvino_model"].endswith("fplnet_camvid_int8.xml")
    assert "camvid/val (101 frames)" in notes["int8_accuracy"]
    fp32 = float(notes["int8_accuracy"].split("fp32 ")[1].split(")")[0])
    int8 = float(notes["int8_accuracy"].split("val mIoU ")[1].split(" ")[0])
    assert fp32 - int8 <= 0.5


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_frames_in_flight_give_the_one_at_a_time_labels(weights: Path, backend: str) -> None:
    import threading

    latency = Pipeline(weights=str(weights), backend=backend, threads=2)
    throughput = Pipeline(
        weights=str(weights), backend=backend, threads=2, inference_mode="throughput"
    )
    assert throughput.in_flight >= 2, throughput.describe()["inference_mode"]
    assert throughput.describe()["inference_mode"].startswith("throughput: up to")
    assert latency.in_flight == 1
    assert latency.describe()["inference_mode"] == "latency: one frame at a time"
    images = [synthetic_scene(*latency.input_size, seed=i) for i in range(8)]
    landed: list = []
    lock = threading.Lock()

    def done(frame, error) -> None:
        with lock:
            landed.append((frame, error))

    staged = [throughput.prepare(image) for image in images]
    for frame in staged:
        throughput.infer_async(frame, None, done)
    throughput.wait_idle()
    assert len(landed) == len(images) and not [e for _, e in landed if e is not None]
    for frame, image in zip(staged, images):
        np.testing.assert_array_equal(throughput.finish(frame).labels, latency(image).labels)


def test_a_frame_that_fails_in_flight_is_handed_back_with_its_error(weights: Path) -> None:
    """A run that fails on onnxruntime's worker thread comes back to its frame as the error
    (the node counts and logs it, and fills the frame's place in the output order); the slot
    it held is free again."""
    pipeline = Pipeline(
        weights=str(weights), backend="onnxruntime", threads=2, inference_mode="throughput"
    )
    assert pipeline.in_flight == 2
    landed: list = []
    bad = pipeline.prepare(synthetic_scene(*pipeline.input_size, seed=1))
    bad.batch = bad.batch[:, :, :-8]  # not the shape the ONNX was exported for
    pipeline.infer_async(bad, None, lambda f, e: landed.append((f, e)))
    pipeline.wait_idle()
    assert len(landed) == 1 and landed[0][0] is bad
    assert type(landed[0][1]).__name__ == "InvalidArgument", landed[0][1]
    good = [pipeline.prepare(synthetic_scene(*pipeline.input_size, seed=i)) for i in range(3)]
    for frame in good:  # both slots are free: three frames run and land
        pipeline.infer_async(frame, None, lambda f, e: landed.append((f, e)))
    pipeline.wait_idle()
    assert [e for _, e in landed[1:]] == [None, None, None]

    # A pipeline swapped out (a model switch) takes its runs' threads with it.
    import gc
    import threading
    import time

    def pool_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("seg_ros-onnxrun")]

    assert len(pool_threads()) == 2
    landed.clear()  # the error's traceback holds the run's frame, and the backend with it
    del pipeline
    gc.collect()
    deadline = time.monotonic() + 5.0
    while pool_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool_threads() == []


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"backend": "torch"}, "torch runs one frame at a time"),
        ({"backend": "onnxruntime", "threads": 1}, "onnxruntime was given 1 thread"),
        ({"backend": "openvino", "threads": 1}, "OpenVINO chose 1 request"),
    ],
)
def test_throughput_falls_back_to_one_frame_with_the_reason(
    weights: Path, overrides: dict, reason: str
) -> None:
    pipeline = Pipeline(weights=str(weights), inference_mode="throughput", **overrides)
    assert pipeline.in_flight == 1
    described = pipeline.describe()["inference_mode"]
    assert described.startswith("throughput: one frame at a time") and reason in described
    # infer_async still works: here and now, on the caller's thread
    got = []
    frame = pipeline.prepare(synthetic_scene(*pipeline.input_size, seed=3))
    pipeline.infer_async(frame, None, lambda f, e: got.append(e))
    assert got == [None] and pipeline.finish(frame).labels.shape == pipeline.input_size
