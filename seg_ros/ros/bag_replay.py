"""Live replay: recorded frames go over DDS into a segmentation node at the recorded rate (or a
multiple), and the node's outputs come back, so what is measured is what a robot would see:
transport, the node's latest-frame dropping, and its latency.

Each frame is restamped with this process's clock just before it is published, and its outputs
carry that stamp back (the node copies headers), so stamp-to-output latency is one clock read
twice in one process. The bag's own stamps are kept alongside, for pairing with ground truth.

The node is started here as a subprocess (in a private namespace, so a real camera's ``image``
topic on the same domain is never mixed in) unless one is already running.
"""

from __future__ import annotations

import array
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.ros.client import Result
from seg_ros.ros.contract import OUTPUT_NAMES, node_fqn, status_name
from seg_ros.ros.node_process import NodeProcess, node_command, node_environment

WARMUP_RESEND_S = 2.0


class ReplayError(RuntimeError):
    """The replay could not run: no node, a node that died, or one that never answered."""


@dataclass
class ReplayFrame:
    index: int
    log_time_ns: int  # recorded time: paces the replay
    stamp_ns: int  # the bag's header stamp (for ground truth)
    frame_id: str
    msg: Any  # Image or CompressedImage fields (e.g. a rosbags message)
    compressed: bool


@dataclass
class ReplayOutput:
    frame: ReplayFrame
    sent_ns: int  # this process's wall clock at publish time: the stamp the node saw
    received_ns: int  # wall clock when the labels came back
    messages: dict[str, Any]  # output name -> sensor_msgs/Image (rclpy)


@dataclass
class ReplayOptions:
    start_node: bool = True
    namespace: str = ""  # "" with start_node: a private one
    node_name: str = "segmentation_node"
    node_params: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ("labels",)
    rate_factor: float = 1.0
    startup_timeout: float = 120.0
    # An output later than this after its frame counts as dropped; the replay ends this long
    # after the last frame at most.
    drain_timeout: float = 10.0
    log_dir: Path | None = None


@dataclass
class ReplayStats:
    sent: int = 0
    received: int = 0
    late: int = 0  # outputs that came after drain_timeout (counted as dropped)
    warmup_frames: int = 0
    send_span_s: float = 0.0  # first to last publish
    diagnostics: dict[str, str] | None = None  # the node's last status after the replay
    node_log: str | None = None
    node_exit_code: int | None = None
    namespace: str = ""
    node_name: str = ""
    first_received_ns: int | None = None
    last_received_ns: int | None = None


def ros_environment(start_node: bool) -> None:
    """DDS settings this process (and a node it starts) needs: seg_ros' Fast DDS profile for
    large images (seg_ros.ros.dds_tuning); a replay into a node of our own stays on this
    machine."""
    from seg_ros.ros.dds_tuning import apply_fastdds_profile

    apply_fastdds_profile()
    if start_node:
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def _start_node(name: str, namespace: str, params: dict[str, Any], log_dir: Path) -> NodeProcess:
    """The segmentation node, configured by a parameters file, logging to log_dir/node.log."""
    import yaml

    log_dir.mkdir(parents=True, exist_ok=True)
    params_path = log_dir / "node_params.yaml"
    # A params file, not -p: YAML quoting keeps paths with ':' or spaces intact.
    params_path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    command = node_command(name, namespace, params_file=params_path)
    return NodeProcess(command, log_dir / "node.log", env=node_environment())


def _byte_array(data: Any) -> array.array:
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(np.asarray(data, np.uint8))).cast("B"))
    return out


def to_ros_message(frame: ReplayFrame) -> Any:
    """The frame as an rclpy message (header stamped later, just before it is published)."""
    from sensor_msgs.msg import CompressedImage, Image

    m = frame.msg
    if frame.compressed:
        msg = CompressedImage(format=str(m.format))
    else:
        msg = Image(
            height=int(m.height),
            width=int(m.width),
            encoding=str(m.encoding),
            is_bigendian=int(m.is_bigendian),
            step=int(m.step),
        )
    msg.data = _byte_array(m.data)
    msg.header.frame_id = frame.frame_id
    return msg


class _Session:
    """The replay's side of the node: the one client (publisher with a camera driver's QoS,
    output subscriptions, status), with each complete frame's outputs queued in arrival order
    and the warm-up frames' stamps, whose outputs are not results."""

    def __init__(self, options: ReplayOptions, namespace: str, compressed: bool) -> None:
        from seg_ros.ros.client import SegmentationClient

        self.complete: queue.Queue[Result | None] = queue.Queue()
        self.warm: set[int] = set()
        self.client = SegmentationClient(
            namespace=namespace,
            node_name=f"seg_bag_replay_{os.getpid()}",
            outputs=options.outputs,
            transport="compressed" if compressed else "raw",
            on_result=self.complete.put,
            diagnostics_name=status_name(node_fqn(namespace, options.node_name)),
            input_qos="sensor_data",  # what a camera driver offers
            output_depth=100,
            decode=False,  # the caller decodes what it needs
        )

    def close(self) -> None:
        self.client.close()


def replay(
    frames: Iterable[ReplayFrame],
    options: ReplayOptions,
    on_output: Callable[[ReplayOutput], None],
) -> ReplayStats:
    """Publish ``frames`` into a segmentation node and hand each frame's outputs, once all of
    ``options.outputs`` are in, to ``on_output`` (on a worker thread, in arrival order). An
    exception from ``on_output`` stops the replay and is raised here."""
    if options.rate_factor <= 0:
        raise ReplayError(f"rate factor must be positive, got {options.rate_factor}")
    unknown = set(options.outputs) - set(OUTPUT_NAMES)
    if unknown or "labels" not in options.outputs:
        raise ReplayError(f"outputs must include 'labels' and be among {sorted(OUTPUT_NAMES)}")
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ReplayError("the bag has no frames to replay")
    ros_environment(options.start_node)
    namespace = options.namespace or (f"/seg_bag_eval_{os.getpid()}" if options.start_node else "/")
    if not namespace.startswith("/"):
        namespace = "/" + namespace
    name = options.node_name
    stats = ReplayStats(namespace=namespace, node_name=name)
    # Not the working folder: a replay must not leave, or overwrite, a user's node.log there.
    log_dir = options.log_dir or Path(tempfile.mkdtemp(prefix="seg_ros_replay_"))
    node = None
    if options.start_node:
        params = dict(options.node_params)
        params["input_transport"] = "compressed" if first.compressed else "raw"
        for output in OUTPUT_NAMES:
            params[f"publish_{output}"] = output in options.outputs
        node = _start_node(name, namespace, params, log_dir)
        stats.node_log = str(node.log_path)
    session = None
    try:
        session = _Session(options, namespace, first.compressed)
        _wait_ready(session, node, first, options, stats)
        _run(session, node, first, iterator, options, on_output, stats)
    finally:
        if session is not None:
            session.close()
        if node is not None:
            stats.node_exit_code = node.stop()
    return stats


def _check_node(node: NodeProcess | None, when: str) -> None:
    if node is not None and not node.alive():
        raise ReplayError(
            f"the segmentation node exited (code {node.process.returncode}) {when}; the end of "
            f"its log ({node.log_path}):\n{node.tail()}"
        )


def _wait_ready(
    session: _Session,
    node: NodeProcess | None,
    first: ReplayFrame,
    options: ReplayOptions,
    stats: ReplayStats,
) -> None:
    """Until the node subscribes to the input, its outputs reach us, and one frame has made
    the round trip (model loaded, transports connected): startup is not what is measured."""
    deadline = time.monotonic() + options.startup_timeout
    client = session.client
    while not client.ready():
        _check_node(node, "during startup")
        if time.monotonic() > deadline:
            raise ReplayError(
                f"no segmentation node answered on {client.publisher.topic_name} within "
                f"{options.startup_timeout:.0f} s ({client.describe_matching()})"
                + (
                    f"; the end of its log ({node.log_path}):\n{node.tail()}"
                    if node is not None
                    else f". Is a node named {stats.node_name!r} running in namespace "
                    f"{stats.namespace!r}, with an input_transport that fits the bag?"
                )
            )
        time.sleep(0.05)
    msg = to_ros_message(first)
    warm = session.warm
    next_send = 0.0
    while True:
        try:
            result = session.complete.get(timeout=0.05)
        except queue.Empty:
            result = None
        if result is not None and result.stamp_ns in warm:
            return
        _check_node(node, "during startup")
        now = time.monotonic()
        if now > deadline:
            raise ReplayError(
                f"the segmentation node on {client.publisher.topic_name} sent no outputs for "
                f"{stats.warmup_frames} warm-up frame(s) within {options.startup_timeout:.0f} s"
                + (f"; the end of its log ({node.log_path}):\n{node.tail()}" if node else "")
            )
        if now >= next_send:
            stamp_now = time.time_ns()
            _set_stamp(msg, stamp_now)
            warm.add(stamp_now)
            client.publish_msg(msg)
            stats.warmup_frames += 1
            next_send = now + WARMUP_RESEND_S


def _set_stamp(msg: Any, ns: int) -> None:
    msg.header.stamp.sec = ns // 1_000_000_000
    msg.header.stamp.nanosec = ns % 1_000_000_000


def _run(
    session: _Session,
    node: NodeProcess | None,
    first: ReplayFrame,
    rest: Iterator[ReplayFrame],
    options: ReplayOptions,
    on_output: Callable[[ReplayOutput], None],
    stats: ReplayStats,
) -> None:
    sent: dict[int, tuple[ReplayFrame, int]] = {}  # replay stamp -> frame, monotonic send
    sent_lock = threading.Lock()
    failure: list[BaseException] = []
    drain_ns = int(options.drain_timeout * 1e9)
    last_activity = [time.monotonic_ns()]

    def consume() -> None:
        while True:
            result = session.complete.get()
            if result is None:
                return
            stamp, messages = result.stamp_ns, result.outputs
            arrived = result.arrival_ns["labels"]
            with sent_lock:
                entry = sent.pop(stamp, None)
            last_activity[0] = time.monotonic_ns()
            if entry is None:
                if stamp not in session.warm:
                    stats.late += 1  # later than drain_timeout: counted as dropped
                continue
            frame, _ = entry
            stats.received += 1
            stats.first_received_ns = stats.first_received_ns or arrived
            stats.last_received_ns = arrived
            if failure:
                continue
            try:
                on_output(ReplayOutput(frame, stamp, arrived, messages))
            except BaseException as e:  # handed to the publishing thread, which stops
                failure.append(e)

    worker = threading.Thread(target=consume, name="seg_bag_outputs", daemon=True)
    worker.start()
    try:
        start = time.monotonic()
        log0 = first.log_time_ns
        last_stamp = 0
        first_send = last_send = None
        for frame in _chain(first, rest):
            msg = to_ros_message(frame)  # built before the wait: only the stamp is set on time
            due = start + (frame.log_time_ns - log0) / 1e9 / options.rate_factor
            while (wait := due - time.monotonic()) > 0:
                time.sleep(min(wait, 0.05))
                _raise_if(failure)
            _check_node(node, "during the replay")
            _raise_if(failure)
            stamp = max(time.time_ns(), last_stamp + 1)  # unique even on a coarse clock
            last_stamp = stamp
            _set_stamp(msg, stamp)
            with sent_lock:
                sent[stamp] = (frame, time.monotonic_ns())
                _expire(sent, drain_ns)
            session.client.publish_msg(msg)
            stats.sent += 1
            last_send = time.monotonic()
            first_send = first_send or last_send
            last_activity[0] = time.monotonic_ns()
        stats.send_span_s = (last_send or 0.0) - (first_send or 0.0)
        # Drain: until every frame is answered, or nothing came for drain_timeout.
        while True:
            _raise_if(failure)
            with sent_lock:
                waiting = len(sent)
            if waiting == 0 or time.monotonic_ns() - last_activity[0] > drain_ns:
                break
            time.sleep(0.05)
        _final_diagnostics(session, options, stats)
    finally:
        session.complete.put(None)
        worker.join(timeout=30)
    _raise_if(failure)


def _chain(first: ReplayFrame, rest: Iterator[ReplayFrame]) -> Iterator[ReplayFrame]:
    yield first
    yield from rest


def _expire(sent: dict[int, tuple[ReplayFrame, int]], drain_ns: int) -> None:
    """Forget frames older than the drain timeout: their outputs count as dropped, and their
    images are not held for the whole replay."""
    now = time.monotonic_ns()
    for stamp in [s for s, (_, t) in sent.items() if now - t > drain_ns]:
        del sent[stamp]


def _raise_if(failure: list[BaseException]) -> None:
    if failure:
        raise failure[0]


def _final_diagnostics(session: _Session, options: ReplayOptions, stats: ReplayStats) -> None:
    """The node's first status after the replay ended (its counters then include every frame),
    or the last one seen if none comes within a few seconds."""
    after = time.monotonic_ns()
    period = float(options.node_params.get("diagnostics_period", 1.0))
    deadline = time.monotonic() + max(3.0, 2.5 * period)
    client = session.client
    while time.monotonic() < deadline:
        if (client.diagnostics_received_ns or 0) > after:
            break
        time.sleep(0.05)
    if client.diagnostics_received_ns is not None:
        stats.diagnostics = dict(client.diagnostics)
