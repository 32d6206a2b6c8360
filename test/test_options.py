"""The one schema of settings: the tools' model options, PipelineConfig and the node's
parameters agree on names, defaults and checks, in both directions (no node process here)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import fields

import pytest

from seg_ros.inference.config import PipelineConfig, field_problem
from seg_ros.ros.parameters import (
    PIPELINE_PARAMS,
    SPEC_BY_NAME,
    NodeSettings,
    check_value,
    node_parameters,
)
from seg_ros.tools.options import (
    add_param_arg,
    add_pipeline_args,
    config_from_args,
    node_params_from_args,
    parse_input_size,
    parse_size,
)


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_pipeline_args(p)
    add_param_arg(p, "--node-param")
    return p.parse_args(list(argv))


def test_the_parameter_table_and_node_settings_name_the_same_parameters() -> None:
    from seg_ros.ros.parameters import SPECS

    settings = fields(NodeSettings)
    assert [s.name for s in SPECS] == [f.name for f in settings]
    for f in settings:  # each default once: the table reads it from NodeSettings
        assert SPEC_BY_NAME[f.name].default == f.default, f.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        NodeSettings().model = "rgpnet"  # a change makes a new one; readers never see half


def test_defaults_are_pipeline_configs_everywhere() -> None:
    assert NodeSettings().pipeline_config() == PipelineConfig()
    assert config_from_args(parse()) == PipelineConfig()
    assert node_params_from_args(parse()) == {}  # nothing given: the node's own defaults
    config_fields = {f.name: f.default for f in fields(PipelineConfig)}
    for name in PIPELINE_PARAMS:
        expected = "" if config_fields[name] is None else config_fields[name]
        assert SPEC_BY_NAME[name].default == expected, name


@pytest.mark.parametrize(
    "argv",
    [
        ["--model", "rgpnet", "--variant", "resnet18", "--input-size", "180x240"],
        ["--backend", "openvino", "--precision", "int8", "--overlay-alpha", "0.25"],
        ["--device", "cuda:1", "--backend", "tensorrt", "--input-size", "0x640"],
    ],
)
def test_tool_options_reach_the_node_as_the_same_config(argv: list[str]) -> None:
    """What a tool runs in-process and what the node it starts builds are one config."""
    args = parse(*argv)
    via_node = NodeSettings.from_values(node_params_from_args(args)).pipeline_config()
    assert via_node == config_from_args(args)


def test_node_params_make_files_absolute_and_add_param_pairs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = parse("--engine", "m.xml", "--param", "target_rate:=5", "--node-param", "x:=true")
    params = node_params_from_args(args)
    assert params == {"engine": str(tmp_path / "m.xml"), "target_rate": 5, "x": True}
    with pytest.raises(ValueError, match="NAME:=VALUE"):
        node_params_from_args(parse("--param", "oops"))
    with pytest.raises(ValueError, match="not a pipeline setting"):
        node_parameters({"threads": 2})


def test_one_spelling_of_a_size() -> None:
    assert parse_size("360x480") == (360, 480)
    assert parse_input_size("0x480") == (0, 480)
    for bad in ("360,480", "360x", "0x480", "-1x5"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_input_size("0x0")


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("device", "cuda:x", "device 'cuda:x' is not allowed"),
        ("backend", "tf", "backend 'tf' is not allowed"),
        ("model", "unet", "model 'unet' is not allowed"),
        ("overlay_alpha", 1.5, "overlay_alpha must be in [0, 1]"),
        ("trt_workspace_mb", 8, "trt_workspace_mb must be an integer"),
    ],
)
def test_a_rule_is_stated_once_for_config_and_parameter(name, value, reason) -> None:
    assert reason in field_problem(name, value)
    assert check_value(name, value) == field_problem(name, value)
    with pytest.raises(ValueError, match=reason.split(" ")[0]):
        PipelineConfig(**{name: value}).validate()
