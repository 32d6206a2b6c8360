"""The node's health as one diagnostic_msgs/DiagnosticStatus.

Keys follow diagnostic_updater's FrequencyStatus ("Actual frequency (Hz)", "Target frequency
(Hz)", ...) so dashboards and aggregators that know those read ours too.
"""

from __future__ import annotations

from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from seg_ros.ros.contract import (
    LATENCY_STAGES,
    LATENCY_STATISTICS,
    NOT_AVAILABLE,
    OUTPUT_FREQUENCY,
    latency_key,
)
from seg_ros.ros.stats import LatencyWindow

OK, WARN, ERROR, STALE = (
    DiagnosticStatus.OK,
    DiagnosticStatus.WARN,
    DiagnosticStatus.ERROR,
    DiagnosticStatus.STALE,
)
# diagnostic_updater's FrequencyStatus default: 10% below the target is still acceptable.
RATE_TOLERANCE = 0.1


@dataclass
class Health:
    lifecycle: str  # unconfigured | inactive | active | finalized
    load_error: str | None  # the last configure failed, so there is no model: why
    swap_error: str | None  # a recent run-time switch failed (the old pipeline still serves)
    random_weights: bool
    seconds_since_input: float | None  # None: no frame since activation
    stale_after: float
    subscribers: int  # on enabled outputs
    output_rate: float
    target_rate: float  # > 0: a fixed expected output rate; 0: the input rate
    input_rate: float = 0.0


def assess(h: Health) -> tuple[int, str]:
    """Level and one-line message, worst condition first; random weights are named in every
    message of a running node (and make it WARN at least), whatever else is said."""
    level, message = _assess(h)
    if h.random_weights and h.lifecycle == "active" and not h.load_error:
        level = max(level, WARN) if level != STALE else level
        if "random weights" not in message:
            message += "; RANDOM WEIGHTS: labels are meaningless"
    return level, message


def _assess(h: Health) -> tuple[int, str]:  # noqa: PLR0911 (a ladder of conditions)
    if h.load_error:
        return ERROR, f"no model: {h.load_error}"
    if h.lifecycle != "active":
        return STALE, f"{h.lifecycle}: not subscribed to images"
    if h.seconds_since_input is None:
        return STALE, "no input: no image received yet"
    if h.seconds_since_input > h.stale_after:
        return STALE, f"no input for {h.seconds_since_input:.1f} s"
    if h.swap_error:
        return WARN, f"model switch failed, still serving the previous one: {h.swap_error}"
    if h.subscribers == 0:
        return OK, "idle: nobody subscribes to an enabled output"
    if h.target_rate > 0 and h.output_rate < h.target_rate * (1 - RATE_TOLERANCE):
        return WARN, f"output {h.output_rate:.2f} Hz below target {h.target_rate:g} Hz"
    if h.target_rate <= 0 and h.output_rate < h.input_rate * (1 - RATE_TOLERANCE):
        # Judged against the camera: a camera slower than any target is fine when every frame
        # is answered; drops the latest-frame policy had to make are what is worth a warning.
        return WARN, (
            f"output {h.output_rate:.2f} Hz below the input's {h.input_rate:.2f} Hz: frames "
            "are dropped (the model is slower than the camera)"
        )
    if h.random_weights:
        return WARN, f"random weights, labels are meaningless; running at {h.output_rate:.2f} Hz"
    return OK, f"running at {h.output_rate:.2f} Hz"


def latency_values(latency: LatencyWindow) -> list[tuple[str, str]]:
    out = []
    for stage, label in LATENCY_STAGES:
        p = latency.percentiles(stage)
        for key in LATENCY_STATISTICS:
            out.append((latency_key(label, key), NOT_AVAILABLE if p is None else f"{p[key]:.2f}"))
    return out


def frequency_values(
    rate: float, in_window: int, window: float, total: int, target: float, input_rate: float = 0.0
) -> list[tuple[str, str]]:
    values = [
        ("Events in window", str(in_window)),
        ("Events since startup", str(total)),
        ("Duration of window (s)", f"{window:.2f}"),
        (OUTPUT_FREQUENCY, f"{rate:.3f}"),
    ]
    expected = target if target > 0 else input_rate
    values += [
        ("Target frequency (Hz)", f"{expected:g}"),
        ("Minimum acceptable frequency (Hz)", f"{expected * (1 - RATE_TOLERANCE):g}"),
        ("Target", "target_rate" if target > 0 else "input rate"),
    ]
    return values


def make_status(
    name: str, hardware_id: str, level: int, message: str, values: list[tuple[str, str]]
) -> DiagnosticStatus:
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in values],
    )
