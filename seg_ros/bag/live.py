"""Live bag evaluation: the bag replayed over DDS into a segmentation node (started here or
already running) at the recorded rate times a factor, scored on what comes back.

It drives the node through ``ros/bag_replay.py`` (which uses the node's one client), so this
module sits above ``ros``; nothing in ``ros`` imports ``bag``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seg_ros.bag.io import COMPRESSED, BagError, BagMessage, decode_frame
from seg_ros.bag.selection import recorded_fps
from seg_ros.image_codec import decode_image_msg


@dataclass
class LiveRun:
    """How the live run meets its node. ``node_params`` configure a node started here."""

    node_running: bool = False
    confidence: bool = False  # also ask the node for segmentation/confidence (calibration)
    namespace: str = ""
    node_name: str = "segmentation_node"
    node_params: dict[str, Any] = field(default_factory=dict)
    rate_factor: float = 1.0
    startup_timeout: float = 120.0
    drain_timeout: float = 10.0


def run_live(
    live: LiveRun,
    source: Any,
    evaluation: Any,
    writer: Any,
    outputs: dict[str, str] | None,
    classes: Any,
    out_dir: Path,
) -> dict[str, Any]:
    """Replay ``source`` into the node, score its labels into ``evaluation``; returns figures."""
    from seg_ros.ros.bag_replay import replay
    from seg_ros.ros.contract import NodeStatus

    options = _replay_options(live, source, writer is not None, out_dir)
    first_log: list[int] = []
    on_output = _scorer(source, evaluation, writer, outputs, first_log)
    stats = replay(_frames(source, first_log), options, on_output)
    diagnostics = stats.diagnostics or {}
    status = NodeStatus(diagnostics)
    node_classes = status.model.get("num_classes")
    if node_classes and node_classes.isdigit() and int(node_classes) != classes.num_classes:
        raise BagError(
            f"the node predicts {node_classes} classes ({status.model.get('dataset', '?')}), but "
            f"the evaluation assumed {classes.num_classes}; pass the node's --weights"
        )
    return _figures(live, options, stats, status, diagnostics)


def _replay_options(live: LiveRun, source: Any, write: bool, out_dir: Path) -> Any:
    """The replay's settings: the node's parameters (scored at the frames' size, its target
    rate the replay's, so its diagnostics warn when it cannot keep up) and outputs."""
    from seg_ros.ros.bag_replay import ReplayOptions

    node_params = dict(live.node_params)
    if not live.node_running:
        node_params.setdefault("output_resolution", "input")  # scored at the frames' size
        node_params.setdefault("diagnostics_period", 0.5)
    wanted = ("labels", "color", "overlay") if write else ("labels",)
    if live.confidence:
        wanted = (*wanted, "confidence")
    recorded = recorded_fps(source.reader.counts[source.image_topic], source.reader.duration_s)
    node_params.setdefault("target_rate", round((recorded or 0.0) * live.rate_factor, 3))
    return ReplayOptions(
        start_node=not live.node_running,
        namespace=live.namespace,
        node_name=live.node_name if live.node_running else "seg_bag_eval_node",
        node_params=node_params,
        outputs=wanted,
        rate_factor=live.rate_factor,
        startup_timeout=live.startup_timeout,
        drain_timeout=live.drain_timeout,
        log_dir=out_dir,
    )


def _frames(source: Any, first_log: list[int]) -> Any:
    """The bag's frames as the replay sends them; ``first_log`` gets the first log time."""
    from seg_ros.ros.bag_replay import ReplayFrame

    for index, message in source:
        if not first_log:
            first_log.append(message.log_time_ns)
        yield ReplayFrame(
            index,
            message.log_time_ns,
            message.stamp_ns,
            message.frame_id,
            message.msg,
            message.msgtype == COMPRESSED,
        )


def _scorer(
    source: Any,
    evaluation: Any,
    writer: Any,
    outputs: dict[str, str] | None,
    first_log: list[int],
) -> Any:
    """The replay's callback for each output: score the labels, write the output bag."""

    def on_output(out: Any) -> None:
        frame = out.frame
        labels = decode_image_msg(out.messages["labels"]).array
        if not frame.compressed and labels.shape != (int(frame.msg.height), int(frame.msg.width)):
            raise BagError(
                f"the node's labels are {labels.shape[1]}x{labels.shape[0]}, not the frame's "
                f"{frame.msg.width}x{frame.msg.height}; set its output_resolution to input"
            )
        latency = {"end_to_end": (out.received_ns - out.sent_ns) / 1e6}
        image = None
        if evaluation.wants_sample(frame.index):
            msgtype = COMPRESSED if frame.compressed else "sensor_msgs/msg/Image"
            image = decode_frame(BagMessage(source.image_topic, msgtype, 0, frame.msg)).rgb()
        time_s = (frame.log_time_ns - first_log[0]) / 1e9
        confidence = None
        if "confidence" in out.messages:
            confidence = decode_image_msg(out.messages["confidence"]).array
        evaluation.add_prediction(
            frame.index, frame.stamp_ns, labels, latency, time_s, image, confidence
        )
        if writer is not None:
            # Logged when the robot would have had it: the frame's time plus the latency seen.
            log = frame.log_time_ns + (out.received_ns - out.sent_ns)
            writer.write_image(
                outputs["labels"], log, labels, "mono8", frame.stamp_ns, frame.frame_id
            )
            for name in ("color", "overlay"):
                array = decode_image_msg(out.messages[name]).array
                writer.write_image(
                    outputs[name], log, array, "rgb8", frame.stamp_ns, frame.frame_id
                )

    return on_output


def _figures(
    live: LiveRun, options: Any, stats: Any, status: Any, diagnostics: dict[str, Any]
) -> dict[str, Any]:
    """The run's figures for the report: frames, rates, notes, the node's own view."""
    received = stats.received
    span = (
        (stats.last_received_ns - stats.first_received_ns) / 1e9
        if received > 1 and stats.last_received_ns and stats.first_received_ns
        else 0.0
    )
    notes = []
    if stats.sent > received:
        notes.append(
            f"{stats.sent - received} of {stats.sent} frames got no output (the node drops stale "
            "frames when it is slower than the replay); accuracy is over the frames answered"
        )
    if diagnostics:
        notes.append(
            f"the node's own counters and latencies include the {stats.warmup_frames} warm-up "
            "frame(s) sent before the replay, and cover its last latency window only"
        )
    if stats.late:
        notes.append(f"{stats.late} output(s) came after --drain-timeout and count as dropped")
    return {
        "frames": {"in": stats.sent, "out": received, "dropped": stats.sent - received},
        "latency_definition": "frame stamp (set by the replayer at publish) to the labels' "
        "arrival, one clock",
        "fps": {
            "input": round((stats.sent - 1) / stats.send_span_s, 3) if stats.send_span_s else None,
            "output": round((received - 1) / span, 3) if span > 0 else None,
        },
        "notes": notes,
        "live": {
            "rate_factor": live.rate_factor,
            "node": "running" if live.node_running else "started",
            "namespace": stats.namespace,
            "node_name": stats.node_name,
            "node_params": options.node_params,
            "outputs": list(options.outputs),
            "warmup_frames": stats.warmup_frames,
            "late_outputs": stats.late,
            "node_log": stats.node_log,
            "node_exit_code": stats.node_exit_code,
            "node_latency_ms": status.latencies(),
            "node_counters": status.counters,
            "node_diagnostics": diagnostics,
        },
        "model_from_node": status.model,
    }
