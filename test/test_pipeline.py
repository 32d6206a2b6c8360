"""Pipeline: outputs, colour orders, config validation, weights checks, random init."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from weights_helpers import PIPELINE_SIZE, pipeline_weights

from seg_ros.inference import (
    BackendUnavailableError,
    ConfigError,
    Pipeline,
    PipelineConfig,
    PipelineError,
)
from seg_ros.labels import CAMVID
from seg_ros.weights import WeightsError


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return pipeline_weights(tmp_path_factory.mktemp("w") / "fplnet.safetensors")


@pytest.fixture(scope="module")
def pipeline(weights) -> Pipeline:
    return Pipeline(model="fplnet", weights=str(weights))


def scene(h: int = 50, w: int = 70, seed: int = 0) -> np.ndarray:
    from seg_ros.inference.parity import synthetic_scene

    return synthetic_scene(h, w, seed)


def test_outputs_at_input_resolution(pipeline: Pipeline) -> None:
    image = scene(50, 70)
    result = pipeline(image)
    assert result.labels.shape == (50, 70) and result.labels.dtype == np.uint8
    assert result.labels.max() < CAMVID.num_classes
    assert result.color.shape == result.overlay.shape == (50, 70, 3)
    assert result.color.dtype == result.overlay.dtype == np.uint8
    palette = np.asarray(CAMVID.palette, np.uint8)
    np.testing.assert_array_equal(result.color, palette[result.labels])
    expected = cv2.addWeighted(image, 0.5, result.color, 0.5, 0)
    np.testing.assert_array_equal(result.overlay, expected)
    assert set(result.timings) == {"preprocess", "inference", "postprocess", "total"}
    assert all(v >= 0 for v in result.timings.values())
    assert result.timings["total"] >= result.timings["inference"]


def test_uses_the_weights_size_and_metadata(pipeline: Pipeline, weights: Path) -> None:
    assert pipeline.input_size == PIPELINE_SIZE
    assert pipeline.metadata.dataset == "camvid"
    assert pipeline.metadata.class_names == list(CAMVID.classes)
    info = pipeline.describe()
    assert info["weights"] == str(weights)
    assert info["random_init"] == "false"
    assert info["input_size"] == "64x96"
    for key in ("model", "variant", "backend", "device", "precision", "parity"):
        assert info[key], key


def test_network_resolution_output(weights: Path) -> None:
    p = Pipeline(model="fplnet", weights=str(weights), output_resolution="network")
    result = p(scene(50, 70))
    assert result.labels.shape == PIPELINE_SIZE
    assert result.overlay.shape == (*PIPELINE_SIZE, 3)


def test_network_resolution_labels_resize_to_input_labels(pipeline: Pipeline, weights) -> None:
    image = scene(128, 192)  # exactly 2x the network size
    small = Pipeline(model="fplnet", weights=str(weights), output_resolution="network")(image)
    big = pipeline(image)
    upscaled = cv2.resize(small.labels, (192, 128), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(big.labels, upscaled)


def test_optional_outputs(pipeline: Pipeline) -> None:
    image = scene()
    assert pipeline(image, want_color=False).color is None
    assert pipeline(image, want_color=False).overlay is not None
    result = pipeline(image, want_color=False, want_overlay=False)
    assert result.color is None and result.overlay is None
    assert result.labels.shape == image.shape[:2]


def test_rgb_and_bgr_give_the_same_result(pipeline: Pipeline) -> None:
    rgb = scene()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    a, b = pipeline(rgb, "rgb"), pipeline(bgr, color_order="bgr")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.overlay, b.overlay)  # outputs are RGB either way
    # And the order matters: the same bytes read the other way are another picture.
    assert not np.array_equal(pipeline(rgb, "bgr").overlay, a.overlay)


def test_mono_images_are_replicated(pipeline: Pipeline) -> None:
    gray = cv2.cvtColor(scene(), cv2.COLOR_RGB2GRAY)
    a = pipeline(gray)
    b = pipeline(np.dstack([gray] * 3))
    np.testing.assert_array_equal(a.labels, b.labels)
    assert pipeline(gray[:, :, None]).labels.shape == gray.shape


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((10, 10, 4), np.uint8), "shape"),
        (np.zeros((2, 10, 10, 3), np.uint8), "shape"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        ([[1, 2], [3, 4]], "numpy"),
    ],
)
def test_bad_images_are_refused(pipeline: Pipeline, image, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        pipeline(image)


def test_bad_color_order(pipeline: Pipeline) -> None:
    with pytest.raises(ValueError, match="color_order"):
        pipeline(scene(), color_order="rgba")


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"backend": "tflite"}, "backend 'tflite'.*torch.*onnxruntime.*tensorrt"),
        ({"model": "unet"}, "model 'unet'.*fplnet"),
        ({"model": "rgpnet", "variant": "resnet34"}, "variant 'resnet34'.*resnet18"),
        ({"device": "tpu"}, "device 'tpu'.*cpu.*cuda"),
        ({"device": "gpu", "backend": "torch"}, "device 'gpu' is an OpenVINO device"),
        ({"precision": "int4"}, "precision 'int4'.*fp32.*bf16.*fp16.*int8"),
        ({"precision": "int8", "backend": "torch"}, "precision 'int8'.*for backend 'torch'"),
        ({"precision": "fp16"}, "fp16.*cuda"),
        ({"output_resolution": "half"}, "output_resolution"),
        ({"input_size": (10, 20)}, "input_size"),
        ({"input_size": "512x1024"}, "input_size"),
        ({"overlay_alpha": 1.5}, "overlay_alpha"),
        ({"num_classes": 300}, "num_classes"),
        ({"backend": "tensorrt"}, "tensorrt.*cuda"),
        ({"compile": "yes"}, "compile"),
        ({"batch": 4}, "unknown pipeline option 'batch'"),
    ],
)
def test_config_errors_name_the_field(overrides: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        Pipeline(**overrides)
    assert isinstance(info.value, PipelineError)


def test_config_object_and_overrides(weights: Path) -> None:
    config = PipelineConfig(model="fplnet", weights=str(weights), overlay_alpha=1.0)
    p = Pipeline(config, output_resolution="network")
    assert p.config.output_resolution == "network"
    assert config.output_resolution == "input"  # the caller's config is not modified
    result = p(scene())
    np.testing.assert_array_equal(result.overlay, result.color)  # alpha 1: colour only


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="not found"):
        Pipeline(model="fplnet", weights=str(tmp_path / "nope.safetensors"))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_weights_file(tmp_path: Path, weights: Path, damage: str) -> None:
    path = tmp_path / "bad.safetensors"
    data = weights.read_bytes()
    path.write_bytes(b"\x00not safetensors" * 8 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(PipelineError) as info:
        Pipeline(model="fplnet", weights=str(path))
    assert isinstance(info.value, WeightsError)  # both hierarchies catch it
    assert str(path) in str(info.value)


def test_weights_for_another_model(weights: Path) -> None:
    with pytest.raises(PipelineError, match=r"'fplnet'.*'rgpnet'"):
        Pipeline(model="rgpnet", weights=str(weights))


def test_weights_for_another_variant(weights: Path) -> None:
    with pytest.raises(PipelineError, match=r"'full'.*'encoder'"):
        Pipeline(model="fplnet", variant="encoder", weights=str(weights))


def test_weights_with_another_class_count(weights: Path) -> None:
    with pytest.raises(PipelineError, match=r"num_classes 19.*11-class"):
        Pipeline(model="fplnet", weights=str(weights), num_classes=19)


def test_pickle_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    path.write_bytes(b"not even read")
    with pytest.raises(PipelineError, match="safetensors"):
        Pipeline(model="fplnet", weights=str(path))


def test_random_init_runs_and_says_so(caplog, monkeypatch) -> None:
    monkeypatch.setattr("seg_ros.inference.loading.shipped_weights", lambda model: None)
    with caplog.at_level(logging.WARNING, logger="seg_ros.inference"):
        p = Pipeline(model="fplnet", input_size=PIPELINE_SIZE)
    assert any("RANDOMLY INITIALISED" in r.getMessage() for r in caplog.records)
    assert p.random_init and p.describe()["random_init"] == "true"
    assert p.metadata.num_classes == 19 and p.metadata.dataset == "cityscapes"
    assert p(scene()).labels.max() < 19
    # Deterministic: the same random network in every process.
    q = Pipeline(model="fplnet", input_size=PIPELINE_SIZE)
    np.testing.assert_array_equal(p(scene()).labels, q(scene()).labels)


def test_random_init_size_and_class_count(monkeypatch) -> None:
    monkeypatch.setattr("seg_ros.inference.loading.shipped_weights", lambda model: None)
    p = Pipeline(model="fplnet", num_classes=11, input_size=PIPELINE_SIZE, parity_check=False)
    assert p.metadata.dataset == "camvid" and p.metadata.num_classes == 11
    q = Pipeline(model="fplnet", num_classes=7, input_size=PIPELINE_SIZE, parity_check=False)
    assert q.metadata.num_classes == 7 and len(q.metadata.palette) == 7
    from seg_ros.inference.loading import DEFAULT_INPUT_SIZE

    assert tuple(q.metadata.input_size) == DEFAULT_INPUT_SIZE


def test_shipped_weights_are_the_default(monkeypatch, weights: Path) -> None:
    monkeypatch.setattr("seg_ros.inference.loading.shipped_weights", lambda model: weights)
    p = Pipeline(model="fplnet")
    assert p.weights_path == weights and not p.random_init
    # A variant the shipped file is not for: random init, loudly, not the wrong file.
    q = Pipeline(model="fplnet", variant="encoder", input_size=PIPELINE_SIZE, parity_check=False)
    assert q.random_init and q.metadata.variant == "encoder"


def test_warmup_and_models(weights: Path) -> None:
    p = Pipeline(model="fplnet", weights=str(weights))
    p.warmup(1)
    logits = p.logits(scene())
    assert logits.shape == (1, CAMVID.num_classes, *PIPELINE_SIZE) and logits.dtype == np.float32


@pytest.mark.parametrize(("model", "variant"), [("rgpnet", "resnet18"), ("desanet", "resnet18")])
def test_other_models_bf16(model: str, variant: str, tmp_path: Path) -> None:
    w = pipeline_weights(tmp_path / "w.safetensors", model, variant)
    p = Pipeline(model=model, weights=str(w), precision="bf16")
    result = p(scene(50, 70))
    assert result.labels.shape == (50, 70) and result.labels.max() < CAMVID.num_classes
    assert p.parity is not None and p.parity.passed
    if model == "desanet":  # torchvision's CPU deform_conv2d is replaced (deform.py)
        assert "spatial.deform" in p.describe()["deform_conv"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_is_an_error(weights: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="CUDA is not available"):
        Pipeline(model="fplnet", weights=str(weights), device="cuda")


def test_tensorrt_without_tensorrt_or_gpu_is_an_error(weights: Path) -> None:
    try:
        import tensorrt  # noqa: F401

        if torch.cuda.is_available():
            pytest.skip("TensorRT and a GPU are present; test_inference_engine covers the backend")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailableError, match=r"TensorRT|CUDA"):
        Pipeline(model="fplnet", weights=str(weights), backend="tensorrt", device="cuda")


def test_read_only_images(pipeline: Pipeline) -> None:
    """Frames wrapped around message buffers are read-only; that must not warn or fail."""
    import warnings

    image = scene(*PIPELINE_SIZE)  # the network size: no resize copy in between
    frozen = image.copy()
    frozen.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(pipeline(frozen).labels, pipeline(image).labels)


def test_onnx_cache_is_bounded_and_keeps_other_files(tmp_path, monkeypatch) -> None:
    from seg_ros.inference.artifacts import artifact_path, prune

    monkeypatch.setenv("SEG_ROS_CACHE", str(tmp_path))
    paths = []
    for i in range(4):
        path = artifact_path("fplnet", "full", f"{i:012x}", (64, 96), ".onnx")
        path.write_bytes(b"x" * 2**20)
        os.utime(path, (1000 + i, 1000 + i))  # oldest first
        paths.append(path)
    users = tmp_path / "notes.onnx"  # not a name the cache gives: never removed
    users.write_bytes(b"x" * 2**20)
    removed = prune(keep=paths[0], limit_mb=2)
    assert removed == [paths[1], paths[2]]
    assert paths[0].exists() and paths[3].exists() and users.exists()


def test_random_weights_exports_are_not_cached(tmp_path, monkeypatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("SEG_ROS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("seg_ros.inference.loading.shipped_weights", lambda model: None)
    pipeline = Pipeline(model="fplnet", backend="onnxruntime", input_size=(64, 96))
    assert pipeline.random_init
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
    assert pipeline(np.zeros((64, 96, 3), np.uint8)).labels.shape == (64, 96)


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_several_frames_run_as_one_batch_give_each_frame_its_own_result(
    weights: Path, backend: str
) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino", reason="openvino is not installed")
    p = Pipeline(model="fplnet", weights=str(weights), backend=backend, confidence=True)
    images = [scene(50, 70, seed) for seed in (0, 1, 2)]
    alone = [p(image) for image in images]
    if backend == "torch":
        assert p.max_batch >= 3 and p.auto_batch == 1  # on a CPU it batches when asked to
        logits = p.backend.infer_many([p.prepare(image).batch for image in images[:2]])
        single = [p.backend.infer(p.prepare(image).batch) for image in images[:2]]
        for i in range(2):
            assert torch.allclose(logits[i], single[i], atol=1e-4)
            assert not torch.allclose(logits[i], single[1 - i], atol=1e-4)  # they differ
        wants = [True, False, None]  # None: the config's choice (confidence=True)
    else:
        # one at a time: batching does not pay on OpenVINO, and its buffers are reused
        assert p.max_batch == 1
        with pytest.raises(ValueError, match="1 to 1 frames on openvino"):
            p.infer_many([p.prepare(image) for image in images[:2]])
        images, alone, wants = images[:1], alone[:1], [None]
    done = p.infer_many([p.prepare(image) for image in images], wants)
    for frame, single, want in zip(done, alone, wants):
        result = p.finish(frame)
        np.testing.assert_array_equal(result.labels, single.labels)
        if want is False:
            assert result.confidence is None
        else:
            assert np.abs(result.confidence.astype(int) - single.confidence).max() <= 1
        assert result.timings["inference"] > 0 and result.timings["postprocess"] > 0
