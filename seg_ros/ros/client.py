"""The other side of the segmentation node: publish frames to it, collect its results and
its status. The one client of the node: seg-demo, seg-bag-eval's live replay, the node
benchmarks and the tests act as camera and consumer through it.

Results are grouped by the frame's header (frame_id and stamp, which the node copies to every
output), so a frame's labels, colour mask and overlay arrive together in one ``Result``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seg_ros.ros.contract import (
    COMPRESSED_INPUT_TOPIC,
    DIAGNOSTICS_TOPIC,
    INPUT_TOPIC,
    OUTPUTS_ON_BY_DEFAULT,
    output_topic,
)


@dataclass
class Result:
    frame_id: str
    stamp_ns: int  # the input frame's header stamp
    received_ns: int  # this node's clock when the last output of the frame arrived
    # name -> HxW(x3) uint8 array (decode=True) or the sensor_msgs/Image itself
    outputs: dict[str, Any] = field(default_factory=dict)
    # name -> wall clock (time.time_ns()) when that output arrived, read first thing
    arrival_ns: dict[str, int] = field(default_factory=dict)

    @property
    def latency_ms(self) -> float:
        """Camera stamp to result in hand: the whole trip through DDS and the node."""
        return (self.received_ns - self.stamp_ns) / 1e6


class SegmentationClient:
    """A node in its own rclpy context, spun on a background thread."""

    def __init__(
        self,
        namespace: str = "/",
        node_name: str = "seg_client",
        outputs: tuple[str, ...] = OUTPUTS_ON_BY_DEFAULT,
        transport: str = "raw",
        compressed_format: str = "jpeg",
        on_result: Callable[[Result], None] | None = None,
        diagnostics_name: str | None = None,
        input_qos: str = "reliable",
        output_depth: int = 10,
        decode: bool = True,
        publish_frames: bool = True,
        tune_dds: bool = True,
        on_output_msg: Callable[[str, Any], None] | None = None,
        on_diagnostics_msg: Callable[[Any], None] | None = None,
    ) -> None:
        """``input_qos``: ``reliable`` (nothing lost on the way; a best-effort node input still
        matches) or ``sensor_data`` (what a camera driver offers: the replay of a recording).
        ``output_depth``: outputs kept per topic while a callback runs. ``decode``: results
        hold arrays (True) or the output messages themselves. ``publish_frames=False``: only
        a consumer (the camera is another process). ``tune_dds=False``: this process keeps
        Fast DDS' defaults, as a user's camera or viewer has them. ``on_output_msg(name, msg)``
        and ``on_diagnostics_msg(array)`` see every message as it arrives, before grouping."""
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image

        from seg_ros.ros.background_node import BackgroundNode
        from seg_ros.ros.dds_tuning import apply_fastdds_profile

        if input_qos not in ("reliable", "sensor_data"):
            raise ValueError(f"input_qos must be 'reliable' or 'sensor_data', not {input_qos!r}")
        self.outputs = outputs
        self.transport, self.compressed_format = transport, compressed_format
        self.on_result = on_result
        self.diagnostics_name = diagnostics_name
        self.decode = decode
        self.on_output_msg, self.on_diagnostics_msg = on_output_msg, on_diagnostics_msg
        self._pending: dict[tuple[str, int], Result] = {}
        self._lock = threading.Lock()
        self.results = 0
        self.diagnostics: dict[str, str] = {}
        self.diagnostics_level: bytes | None = None
        self.diagnostics_message = ""
        self.diagnostics_received_ns: int | None = None  # monotonic clock of the last status
        if tune_dds:
            apply_fastdds_profile()  # our input frames are large reliable samples too
        self._ros = BackgroundNode(node_name, namespace)
        self.node = self._ros.node
        qos = qos_profile_sensor_data
        if input_qos == "reliable":
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE
            )
        # Both input transports: publish_msg sends an Image or a CompressedImage as it comes.
        self.publishers: dict[type, Any] = {}
        if publish_frames:
            self.publishers = {
                Image: self.node.create_publisher(Image, INPUT_TOPIC, qos),
                CompressedImage: self.node.create_publisher(
                    CompressedImage, COMPRESSED_INPUT_TOPIC, qos
                ),
            }
        self.publisher = self.publishers.get(
            CompressedImage if transport == "compressed" else Image
        )
        out_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=output_depth,
            reliability=ReliabilityPolicy.RELIABLE,
        )
        self.subscriptions = {
            name: self.node.create_subscription(
                Image, output_topic(name), lambda m, n=name: self._on_output(n, m), out_qos
            )
            for name in outputs
        }
        self.node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, 10)
        self._ros.start(node_name)

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def publish(self, image: np.ndarray, frame_id: str, color_order: str = "rgb") -> int:
        """Publish an HxWx3 (``color_order``) or HxW uint8 frame stamped now; returns the stamp."""
        from std_msgs.msg import Header

        from seg_ros.ros.image_msgs import to_compressed_msg, to_image_msg

        stamp = self.node.get_clock().now()
        header = Header(frame_id=frame_id, stamp=stamp.to_msg())
        if self.transport == "compressed":
            msg = to_compressed_msg(image, header, self.compressed_format, color_order)
        else:
            encoding = "mono8" if image.ndim == 2 else f"{color_order}8"
            msg = to_image_msg(image, encoding, header)
        self.publisher.publish(msg)
        return stamp.nanoseconds

    def publish_msg(self, msg: Any) -> None:
        """Publish a ready Image or CompressedImage (its header set by the caller) on the input
        topic of its type, whatever ``transport`` says."""
        self.publishers[type(msg)].publish(msg)

    def ready(self) -> bool:
        """The node subscribes to our frames and publishes every output we listen to."""
        if self.publisher is not None and self.publisher.get_subscription_count() == 0:
            return False
        return all(s.get_publisher_count() > 0 for s in self.subscriptions.values())

    def describe_matching(self) -> str:
        """Who is matched, for an error message: subscribers of our input, output publishers."""
        outputs = ", ".join(f"{n} {s.get_publisher_count()}" for n, s in self.subscriptions.items())
        subscribers = self.publisher.get_subscription_count() if self.publisher else "-"
        return f"subscribers: {subscribers}; output publishers: {outputs}"

    def wait_ready(self, timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            if self.ready():
                return True
            time.sleep(0.05)
        return False

    def _on_output(self, name: str, msg: Any) -> None:
        arrived = time.time_ns()  # first thing: the arrival time is the measurement
        if self.on_output_msg is not None:
            self.on_output_msg(name, msg)
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        key = (msg.header.frame_id, stamp)
        value = msg
        if self.decode:
            from seg_ros.image_codec import decode_image_msg

            value = decode_image_msg(msg).array
            if value.ndim == 3 and not value.flags.c_contiguous:
                value = np.ascontiguousarray(value)
        with self._lock:
            result = self._pending.setdefault(key, Result(key[0], stamp, 0))
            result.outputs[name] = value
            result.arrival_ns[name] = arrived
            if len(result.outputs) < len(self.outputs):
                if len(self._pending) > 64:  # outputs of frames whose siblings never came
                    self._pending.pop(next(iter(self._pending)))
                return
            del self._pending[key]
            self.results += 1
        result.received_ns = self.now_ns()
        if self.on_result is not None:
            self.on_result(result)

    def _on_diagnostics(self, msg: Any) -> None:
        if self.on_diagnostics_msg is not None:
            self.on_diagnostics_msg(msg)
        for status in msg.status:
            if self.diagnostics_name is None or status.name == self.diagnostics_name:
                self.diagnostics = {kv.key: kv.value for kv in status.values}
                self.diagnostics_level = status.level
                self.diagnostics_message = status.message
                self.diagnostics_received_ns = time.monotonic_ns()

    def close(self) -> None:
        self._ros.close(join_timeout=5)
