"""TensorRT engines: sidecar checks on fake sidecars (no GPU needed); real build and run when
TensorRT and a GPU are present, skipped with the reason otherwise."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from weights_helpers import PIPELINE_SIZE, pipeline_weights

from seg_ros.inference import EngineMismatchError, Pipeline
from seg_ros.inference.parity import agreement, compare_logits, synthetic_scene
from seg_ros.inference.tensorrt_engine import (
    SIDECAR_FORMAT,
    EngineSidecar,
    check_sidecar,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)

INFO = EngineSidecar(
    tensorrt="10.3.0",
    gpu="Xavier",
    compute_capability="7.2",
    input_size=[512, 1024],
    precision="fp16",
)


def test_sidecar_round_trip(tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    path = write_sidecar(engine, INFO)
    assert path == sidecar_path(engine) == tmp_path / "model.engine.json"
    assert json.loads(path.read_text())["format"] == SIDECAR_FORMAT
    assert read_sidecar(engine) == INFO


def test_matching_sidecar_passes() -> None:
    check_sidecar(INFO, "10.3.0", "Xavier", "7.2", (512, 1024), "fp16")
    check_sidecar(INFO, "10.3.0", "Xavier", "7.2")  # size and precision unchecked when unset


@pytest.mark.parametrize(
    ("here", "words"),
    [
        (
            ("10.7.0", "Xavier", "7.2", (512, 1024), "fp16"),
            "TensorRT 10.3.0, this is TensorRT 10.7.0",
        ),
        (("10.3.0", "NVIDIA RTX 4090", "8.9", (512, 1024), "fp16"), "built for Xavier"),
        (("10.3.0", "Xavier", "7.2", (360, 480), "fp16"), "input 512x1024, 360x480 was asked"),
        (("10.3.0", "Xavier", "7.2", (512, 1024), "fp32"), "built for fp16, fp32 was asked"),
    ],
)
def test_mismatching_sidecar_names_the_difference(here: tuple, words: str) -> None:
    with pytest.raises(EngineMismatchError, match=words) as info:
        check_sidecar(INFO, *here, source="model.engine")
    assert "Rebuild" in str(info.value)


def test_every_difference_is_reported_at_once() -> None:
    with pytest.raises(EngineMismatchError) as info:
        check_sidecar(INFO, "10.7.0", "Orin", "8.7", (256, 512), "fp32")
    message = str(info.value)
    for words in ("TensorRT 10.7.0", "Orin", "256x512", "fp32 was asked"):
        assert words in message


def test_missing_or_broken_sidecar(tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"engine")
    with pytest.raises(EngineMismatchError, match="no sidecar"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(EngineMismatchError, match="unreadable"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({"format": "other"}))
    with pytest.raises(EngineMismatchError, match="not a seg_ros engine sidecar"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({"format": SIDECAR_FORMAT, "gpu": "x"}))
    with pytest.raises(EngineMismatchError, match="lacks tensorrt"):
        read_sidecar(engine)


def test_unknown_sidecar_fields_are_ignored(tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    write_sidecar(engine, INFO)
    raw = json.loads(sidecar_path(engine).read_text())
    raw["added_later"] = 1
    sidecar_path(engine).write_text(json.dumps(raw))
    assert read_sidecar(engine) == INFO


def _tensorrt_reason() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    return None


@pytest.mark.skipif(_tensorrt_reason() is not None, reason=str(_tensorrt_reason()))
def test_tensorrt_frames_in_flight_give_the_one_at_a_time_labels(tmp_path) -> None:
    """Throughput mode: two execution contexts on two CUDA streams, each frame with its own
    input; the labels are those of one frame at a time."""
    weights = str(pipeline_weights(tmp_path / "fplnet.safetensors"))
    one = Pipeline(model="fplnet", weights=weights, backend="tensorrt", device="cuda")
    many = Pipeline(
        model="fplnet", weights=weights, backend="tensorrt", device="cuda",
        inference_mode="throughput",
    )  # fmt: skip
    assert many.in_flight == 2, many.describe_in_flight()
    images = [synthetic_scene(80, 120, seed=i) for i in range(6)]
    staged = [many.prepare(image) for image in images]
    errors: list = []
    for frame in staged:
        many.infer_async(frame, None, lambda f, e: errors.append(e))
    many.wait_idle()
    assert errors == [None] * len(images)
    for frame, image in zip(staged, images):
        np.testing.assert_array_equal(many.finish(frame).labels, one(image).labels)


@pytest.mark.skipif(_tensorrt_reason() is not None, reason=str(_tensorrt_reason()))
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_builds_runs_and_matches(tmp_path, precision) -> None:
    weights = pipeline_weights(tmp_path / "fplnet.safetensors")
    p = Pipeline(
        model="fplnet", weights=str(weights), backend="tensorrt", device="cuda", precision=precision
    )
    assert p.parity.passed
    engine = next((tmp_path / "cache").glob("*.engine"))
    info = read_sidecar(engine)
    assert info.input_size == list(PIPELINE_SIZE) and info.precision == precision
    image = synthetic_scene(80, 120)
    reference = Pipeline(model="fplnet", weights=str(weights), backend="torch")
    # Random weights leave near ties that fp16 may flip: judge the pixels fp32 decides clearly
    # (the parity guard's rule), not every pixel against a fixed 0.99.
    report = compare_logits(reference.logits(image), p.logits(image), precision, 0.99)
    assert report.passed, report.as_dict()
    if precision == "fp32":
        assert agreement(p(image).labels, reference(image).labels) >= 0.99
    # The saved engine loads by path; a sidecar from another TensorRT is refused.
    saved = {"backend": "tensorrt", "device": "cuda", "engine": str(engine), "precision": precision}
    q = Pipeline(model="fplnet", **saved)
    assert q(image).labels.shape == (80, 120)
    write_sidecar(engine, replace(info, tensorrt="9.0.0"))
    with pytest.raises(EngineMismatchError, match=r"TensorRT 9\.0\.0"):
        Pipeline(model="fplnet", **saved)
