"""Per-pixel confidence (the winning class's softmax probability) and min_confidence, on each
CPU runtime, against a softmax of the same pipeline's logits."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from weights_helpers import pipeline_weights

from seg_ros.inference import ConfigError, Pipeline
from seg_ros.inference.parity import synthetic_scene
from seg_ros.inference.postprocess import max_softmax_nchw

BACKENDS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            module is not None and importlib.util.find_spec(module) is None,
            reason=f"{module} is not installed",
        ),
    )
    for name, module in (("torch", None), ("onnxruntime", "onnxruntime"), ("openvino", "openvino"))
]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return pipeline_weights(tmp_path_factory.mktemp("w") / "fplnet.safetensors")


def softmax_max(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits), 1).amax(1)[0].numpy()


@pytest.mark.parametrize("backend", BACKENDS)
def test_confidence_is_the_softmax_of_the_logits(weights: Path, backend: str) -> None:
    pipeline = Pipeline(
        weights=str(weights), backend=backend, confidence=True, output_resolution="network"
    )
    image = synthetic_scene(*pipeline.input_size, seed=3)
    result = pipeline(image)
    expected = softmax_max(pipeline.logits(image))
    assert result.confidence.shape == pipeline.input_size
    assert result.confidence.dtype == np.uint8
    # uint8 steps are 1/255; runtimes differ from each other in the last float bits only.
    diff = np.abs(result.confidence.astype(int) - np.rint(expected * 255).astype(int))
    assert diff.max() <= 1, diff.max()
    assert result.confidence.min() < 250  # a random-ish net is not sure everywhere


def test_confidence_follows_the_output_size(weights: Path) -> None:
    pipeline = Pipeline(weights=str(weights), backend="torch", confidence=True)
    result = pipeline(synthetic_scene(45, 80, seed=1))
    assert result.confidence.shape == result.labels.shape == (45, 80)


def test_no_confidence_unless_asked(weights: Path) -> None:
    pipeline = Pipeline(weights=str(weights), backend="torch")
    assert pipeline(synthetic_scene(40, 60)).confidence is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_min_confidence_marks_the_less_certain_pixels_unlabeled(
    weights: Path, backend: str
) -> None:
    pipeline = Pipeline(weights=str(weights), backend=backend, output_resolution="network")
    image = synthetic_scene(*pipeline.input_size, seed=5)
    plain = pipeline(image).labels
    probability = max_softmax_nchw(pipeline.logits(image))
    threshold = float(np.median(probability))
    pipeline.config.min_confidence = threshold  # applied from the next frame, no rebuild
    masked = pipeline(image).labels
    unsure = probability < threshold
    assert 0.3 < unsure.mean() < 0.7
    assert (masked[unsure] == 255).all()
    assert np.array_equal(masked[~unsure], plain[~unsure])
    pipeline.config.min_confidence = 0.0
    assert np.array_equal(pipeline(image).labels, plain)


def test_max_softmax_by_hand() -> None:
    # pixel 0: logits (0, 0) -> 1/2; pixel 1: (ln 3, 0) -> 3/4
    logits = np.array([[[[0.0, np.log(3.0)]], [[0.0, 0.0]]]], np.float32)
    np.testing.assert_allclose(max_softmax_nchw(logits), [[0.5, 0.75]], rtol=1e-6)


@pytest.mark.parametrize("value", [-0.1, 1.5, "high", True])
def test_min_confidence_outside_zero_one_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="min_confidence must be in"):
        Pipeline(min_confidence=value)
