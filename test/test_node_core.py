"""Pieces of the node's logic that need no DDS: the rate meter, the health assessment, the
input QoS choice, the input-size rule and the cheap availability checks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from seg_ros.inference.availability import unavailable
from seg_ros.inference.config import PipelineConfig
from seg_ros.inference.errors import ConfigError
from seg_ros.inference.pipeline import follow_aspect
from seg_ros.ros.stats import RateMeter


def test_rate_meter_remembers_the_last_event_past_its_window() -> None:
    meter = RateMeter(window=1.0)
    assert meter.last() is None
    meter.tick(now=100.0)
    assert meter.snapshot(now=200.0)[1] == 0  # out of the window
    assert meter.last() == 100.0  # but "no input for 100 s", not "never"
    meter.reset()
    assert meter.last() is None


def test_one_side_of_the_input_size_follows_the_other() -> None:
    assert follow_aspect((0, 240), (360, 480)) == (180, 240)
    assert follow_aspect((180, 0), (360, 480)) == (180, 240)
    assert follow_aspect((0, 32), (360, 4800)) == (32, 32)  # never below the minimum side
    PipelineConfig(input_size=(0, 320)).validate()
    with pytest.raises(ConfigError, match="may be 0"):
        PipelineConfig(input_size=(0, 0)).validate()
    with pytest.raises(ConfigError):
        PipelineConfig(input_size=(10, 320)).validate()


def test_cheap_checks_name_what_is_missing(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a)
    )
    reason = unavailable(PipelineConfig(backend="onnxruntime"))
    assert reason and "not installed" in reason and "onnxruntime" in reason
    assert unavailable(PipelineConfig()) is None


def test_cuda_is_refused_where_there_is_none() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    reason = unavailable(PipelineConfig(device="cuda:1"))
    assert reason and "CUDA is not available" in reason


rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels (ros-rclpy) are not installed")


def _pub(reliable: bool) -> SimpleNamespace:
    from rclpy.qos import ReliabilityPolicy

    r = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    return SimpleNamespace(qos_profile=SimpleNamespace(reliability=r))


def test_auto_input_qos_follows_the_publishers() -> None:
    from rclpy.qos import ReliabilityPolicy

    from seg_ros.ros.segmentation_node import input_qos

    rel, be = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
    assert input_qos("auto", []).reliability == be  # nobody yet: match anyone
    assert input_qos("auto", [_pub(True)]).reliability == rel
    assert input_qos("auto", [_pub(True), _pub(False)]).reliability == be
    assert input_qos("sensor_data", [_pub(True)]).reliability == be
    assert input_qos("reliable", []).reliability == rel
    assert input_qos("auto", [_pub(True)]).depth == 1  # the latest-frame policy stays


def test_random_weights_are_named_whatever_else_is_said() -> None:
    from seg_ros.ros import diagnostics as d

    health = d.Health(
        lifecycle="active",
        load_error=None,
        swap_error=None,
        random_weights=True,
        seconds_since_input=0.1,
        stale_after=3.0,
        subscribers=1,
        output_rate=1.0,
        target_rate=10.0,
    )
    level, message = d.assess(health)
    assert level == d.WARN and "below target" in message and "RANDOM WEIGHTS" in message
    health.subscribers = 0
    level, message = d.assess(health)
    assert level == d.WARN and "idle" in message and "RANDOM" in message
    health.random_weights = False
    assert d.assess(health)[0] == d.OK


def test_settings_checks_refuse_what_cannot_build(tmp_path) -> None:
    from seg_ros.ros.parameters import NodeSettings, check_settings

    engine = tmp_path / "m.onnx"
    engine.write_bytes(b"x")
    reason = check_settings(NodeSettings(backend="torch", engine=str(engine)))
    assert reason and "engine is for backends" in reason
    assert "not found" in check_settings(NodeSettings(engine=str(tmp_path / "missing.onnx")))
    assert "none is shipped" in check_settings(
        NodeSettings(precision="int8", weights=str(_weights(tmp_path)))
    )
    assert check_settings(NodeSettings(input_width=320)) is None  # one side follows


def _weights(tmp_path):
    from weights_helpers import make_weights

    return make_weights(tmp_path / "w.safetensors")
