"""A camera's diagnostics status from a snapshot of the node: the node gathers
``StatusInputs`` on its executor thread; building the status reads nothing else."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from seg_ros.ros import contract, diagnostics
from seg_ros.ros.node.frame_loop import CameraFrames
from seg_ros.ros.node.serving import Served
from seg_ros.ros.parameters import NodeSettings

STALE_AFTER_MIN_S = 3.0
SWAP_ERROR_WARN_MIN_S = 10.0


@dataclass(frozen=True)
class StatusInputs:
    name: str  # the status name (contract.status_name)
    lifecycle: str
    settings: NodeSettings
    served: Served | None
    load_error: str | None
    swap_error: tuple[str, float] | None  # (reason, monotonic time)
    building: NodeSettings | None
    frames: CameraFrames
    slot_counts: tuple[int, int]  # received, dropped
    subscribers: int
    input_topic: str
    input_qos: str
    batching: str
    camera_info: str  # its topic, how many came, how many matched no frame
    in_flight: int  # the node's frames in the network or waiting to be published (all cameras)


def gather(name: str, node: tuple, camera: tuple, batching: str) -> StatusInputs:
    """The snapshot of one camera's status: ``node`` = (lifecycle, settings, serving,
    served), ``camera`` = (its CameraIO, the CameraPorts, the frames in flight)."""
    lifecycle, settings, serving, served = node
    cam, ports, in_flight = camera
    load_error, swap_error = serving.errors()
    return StatusInputs(
        name=name,
        lifecycle=lifecycle,
        settings=settings,
        served=served,
        load_error=load_error,
        swap_error=swap_error,
        building=serving.builder.building,
        frames=cam.frames,
        slot_counts=cam.slot.counts(),
        subscribers=cam.subscribers(),
        input_topic=ports.resolved_input(cam),
        input_qos=ports.describe_input_qos(cam),
        batching=batching,
        camera_info=(
            f"{cam.info_topic or 'not subscribed'}: {cam.infos.received} received, "
            f"{cam.infos.unmatched} matched no frame"
        ),
        in_flight=in_flight,
    )


def describe_settings(s: NodeSettings) -> str:
    """One log line's worth of what a pipeline is built from."""
    size = (
        f"{s.input_height}x{s.input_width} (h x w; 0 follows the weights' aspect)"
        if s.input_width or s.input_height
        else "weights' size"
    )
    from seg_ros.own_model import is_onnx_model

    model = (
        "your own ONNX (model and variant from its description)"
        if is_onnx_model(s.weights)
        else f"model={s.model} variant={s.variant or 'default'}"
    )
    return (
        f"{model} weights={s.weights or 'default'} "
        f"backend={s.backend} device={s.device} precision={s.precision} input={size}"
    )


def announcement(served: Served, cameras: list[str], batching: str) -> tuple[list[str], str]:
    """What the node logs when it starts serving a pipeline: info lines, and a warning (or
    "") for random weights."""
    pipeline = served.pipeline
    meta = pipeline.metadata
    h, w = pipeline.input_size
    info = [
        f"serving {meta.model}/{meta.variant} ({meta.num_classes} {meta.dataset} classes) "
        f"on {pipeline.describe()['backend']} {pipeline.backend.device} "
        f"{pipeline.config.precision}, network input {h}x{w} (h x w); "
        f"{pipeline.describe_in_flight()}"
    ]
    if len(cameras) > 1:
        info.append(f"cameras {', '.join(cameras)}; batching: {batching}")
    warning = ""
    if pipeline.random_init:
        warning = (
            f"{meta.model} has RANDOM WEIGHTS: its labels are meaningless. Set the 'weights' "
            "parameter or install the shipped weights."
        )
    return info, warning


def camera_status(inputs: StatusInputs) -> Any:
    """The camera's DiagnosticStatus: level and message (diagnostics.assess), then the keys."""
    now = time.monotonic()
    s, frames = inputs.settings, inputs.frames
    out_rate, in_window, window = frames.out_rate.snapshot(now)
    in_rate, _, _ = frames.in_rate.snapshot(now)
    level, message = diagnostics.assess(_health(inputs, now, out_rate, in_rate))
    values = diagnostics.frequency_values(
        out_rate, in_window, window, frames.out_rate.total, s.target_rate, in_rate
    )
    values += _counter_values(inputs, in_rate)
    values += diagnostics.latency_values(frames.latency)
    values += _pipeline_values(inputs)
    return diagnostics.make_status(inputs.name, s.device, level, message, values)


def _recent_swap_error(inputs: StatusInputs, now: float) -> str | None:
    swap = inputs.swap_error
    shown_for = max(SWAP_ERROR_WARN_MIN_S, 2 * inputs.settings.diagnostics_period)
    return swap[0] if swap is not None and now - swap[1] < shown_for else None


def _health(inputs: StatusInputs, now: float, out_rate: float, in_rate: float) -> Any:
    last_input = inputs.frames.in_rate.last()
    served = inputs.served
    return diagnostics.Health(
        lifecycle=inputs.lifecycle,
        load_error=inputs.load_error,
        random_weights=served is not None and served.pipeline.random_init,
        swap_error=_recent_swap_error(inputs, now),
        seconds_since_input=None if last_input is None else now - last_input,
        stale_after=max(STALE_AFTER_MIN_S, 2 * inputs.settings.diagnostics_period),
        subscribers=inputs.subscribers,
        output_rate=out_rate,
        target_rate=inputs.settings.target_rate,
        input_rate=in_rate,
    )


def _counter_values(inputs: StatusInputs, in_rate: float) -> list[tuple[str, str]]:
    counts = inputs.frames.counts()
    received, dropped = inputs.slot_counts
    return [
        (contract.INPUT_FREQUENCY, f"{in_rate:.3f}"),
        (contract.LIFECYCLE_STATE, inputs.lifecycle),
        (contract.INPUT_TOPIC_KEY, inputs.input_topic),
        (contract.INPUT_QOS_KEY, inputs.input_qos),
        (contract.FRAMES_RECEIVED, str(received)),
        (contract.FRAMES_PROCESSED, str(counts.processed)),
        (contract.FRAMES_DROPPED, str(dropped)),
        (contract.FRAMES_IDLE, str(counts.idle)),
        (contract.BAD_INPUTS, str(counts.bad_inputs)),
        (contract.LAST_BAD_INPUT, counts.last_bad_input or "none"),
        (contract.INFERENCE_ERRORS, str(counts.inference_errors)),
        (contract.FRAMES_BATCHED, str(counts.batched)),
        (contract.FRAMES_COMPRESSED, str(counts.compressed)),
        (contract.CAMERA_INFO_KEY, inputs.camera_info),
        (contract.BATCHING, inputs.batching),
        (contract.FRAMES_IN_FLIGHT, str(inputs.in_flight)),
        (contract.SUBSCRIBERS, str(inputs.subscribers)),
    ]


def _pipeline_values(inputs: StatusInputs) -> list[tuple[str, str]]:
    values = []
    served = inputs.served
    if served is not None:
        # Model, Variant, Backend, Device, Precision, Input size (h x w), Weights, ...; the
        # output resolution is the live option, not the one the pipeline was built with
        described = served.pipeline.describe()
        described["output_resolution"] = served.options.output_resolution
        for key, value in described.items():
            values.append((contract.describe_key(key), str(value)))
    else:
        values.append((contract.describe_key("model"), contract.NO_MODEL))
    building = inputs.building
    swap = inputs.swap_error
    values += [
        (contract.BUILDING, describe_settings(building) if building else "no"),
        (contract.LAST_ERROR, inputs.load_error or (swap[0] if swap else "none")),
    ]
    return values
