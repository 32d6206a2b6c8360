"""The options every tool that runs a model shares, in one place: their names, the one spelling
of a size (HEIGHTxWIDTH), the ``NAME:=VALUE`` node parameters, and how they become a
``PipelineConfig`` (in-process tools) or the node's parameters (tools that start a node).

An option left out means "the default": PipelineConfig's for a pipeline, and for a node the
parameter is not passed (its default is the same value: ros/parameters.py derives it)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from seg_ros.inference.config import BACKENDS, PRECISIONS, PipelineConfig

PIPELINE_OPTIONS = ("model", "variant", "weights", "backend", "device", "precision", "engine")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every tool's --help: its description as written, and each option's default shown one
    way, "(default: X)", sizes as HxW (an older "(X)" suffix is read as the default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            text == argparse.SUPPRESS
            or "(default" in text
            or not action.option_strings
            or isinstance(default, bool)
            or default in (None, "", [], argparse.SUPPRESS)
        ):
            return text
        shown = show_default(default).replace("%", "%%")
        for old in {f"({shown})", f"({default})"}:
            if text.endswith(old):
                text = text[: -len(old)].rstrip()
        return f"{text} (default: {shown})".strip()


def show_default(value: Any) -> str:
    """A default as the user types it: sizes as HxW, lists space-separated, 10.0 as 10."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, (list, tuple)):
        return " ".join(show_default(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def add_old_name(p: Any, old: str, dest: str, **kwargs: Any) -> None:
    """An option's previous name, still accepted for a release but not shown in --help."""
    p.add_argument(old, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def add_frame_size(p: Any, default: tuple[int, int], what: str) -> None:
    """--frame-size HxW of the camera frames a tool makes; --width/--height were its names in
    seg-demo and seg-node-bench (still accepted, hidden)."""
    p.add_argument("--frame-size", type=parse_size, default=default, help=f"{what}, HxW")
    add_old_name(p, "--width", "frame_width", type=int)
    add_old_name(p, "--height", "frame_height", type=int)


def frame_size(args: argparse.Namespace) -> tuple[int, int]:
    """The frame size asked, the old --width/--height overriding their side of --frame-size."""
    h, w = args.frame_size
    return getattr(args, "frame_height", h), getattr(args, "frame_width", w)


def parse_size(text: str) -> tuple[int, int]:
    """``HEIGHTxWIDTH`` (``360x480``), both positive: every size option of the tools."""
    h, w = _height_width(text)
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return h, w


def parse_input_size(text: str) -> tuple[int, int]:
    """A network input size: ``HEIGHTxWIDTH``, one side may be 0 (it then follows the other
    with the weights' aspect ratio, as the node's input_width/input_height do)."""
    h, w = _height_width(text)
    if h < 0 or w < 0 or max(h, w) == 0:
        raise argparse.ArgumentTypeError(f"size must be positive (one side may be 0): {text!r}")
    return h, w


def _height_width(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be HEIGHTxWIDTH, e.g. 512x1024: {text!r}"
        ) from None
    return h, w


def add_pipeline_args(p: Any, *, engine: bool = True, threads: bool = True) -> None:
    """--model --variant --weights --backend --device --precision [--engine] --input-size
    --overlay-alpha [--threads] on a parser or argument group."""
    p.add_argument("--model", help="network: fplnet, rgpnet, desanet (default: the weights')")
    p.add_argument("--variant", help="variant of the model (default: the weights')")
    p.add_argument(
        "--weights",
        help="seg_ros weights (.safetensors), or your own model.onnx with its model.onnx.yaml "
        "(README: Your own model); default: the shipped ones",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="runtime (default: auto = OpenVINO on a CPU where installed, else torch)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:N; OpenVINO also gpu, npu (default: cpu)")
    p.add_argument("--precision", choices=PRECISIONS, help="(default: fp32)")
    if engine:
        p.add_argument("--engine", help="ONNX file, OpenVINO IR (.xml) or TensorRT engine")
    p.add_argument(
        "--input-size",
        type=parse_input_size,
        metavar="HxW",
        help="network input size, e.g. 360x480 (default: the weights' training size)",
    )
    p.add_argument("--overlay-alpha", type=float, help="overlay opacity 0-1 (default: 0.5)")
    if threads:
        p.add_argument("--threads", type=int, help="CPU threads for inference")


def model_from_args(args: argparse.Namespace) -> str:
    """--model, else the weights' model (so --weights alone is enough), else the default."""
    if args.model:
        return args.model
    if args.weights:
        from seg_ros.own_model import is_onnx_model
        from seg_ros.weights import read_metadata

        if is_onnx_model(args.weights):  # an own model: its description names it, not --model
            return PipelineConfig.model
        return read_metadata(args.weights).model
    return PipelineConfig.model


def config_from_args(args: argparse.Namespace, **overrides: Any) -> PipelineConfig:
    """The PipelineConfig the options ask for (unset ones: its defaults)."""
    given = {
        name: getattr(args, name, None)
        for name in (*PIPELINE_OPTIONS, "input_size", "overlay_alpha", "threads")
    }
    values = {k: v for k, v in given.items() if v is not None}
    values["model"] = model_from_args(args)
    values.update(overrides)
    return PipelineConfig(**values)


def node_params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The node parameters the options ask for: only those given (files made absolute, as the
    node runs in another process and folder), plus --param NAME:=VALUE."""
    from seg_ros.ros.parameters import node_parameters

    values = {name: getattr(args, name, None) for name in PIPELINE_OPTIONS}
    for name in ("weights", "engine"):
        if values.get(name):
            values[name] = str(Path(values[name]).resolve())
    values["input_size"] = getattr(args, "input_size", None)
    values["overlay_alpha"] = getattr(args, "overlay_alpha", None)
    params = node_parameters({k: v for k, v in values.items() if v is not None})
    params.update(param_pairs(getattr(args, "param", None) or []))
    return params


def add_param_arg(p: Any, *aliases: str, text: str = "any other node parameter") -> None:
    p.add_argument(
        "--param",
        *aliases,
        dest="param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help=f"{text} (repeatable)",
    )


def param_pairs(items: list[str]) -> dict[str, Any]:
    """``NAME:=VALUE`` items as ``ros2 run ... -p`` reads them (YAML values: 0.5, true, text)."""
    import yaml

    out = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ValueError(f"--param {item!r} must be NAME:=VALUE")
        out[name] = yaml.safe_load(value) if value else ""
    return out
