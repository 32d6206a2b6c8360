"""The node's ports: per camera, the input subscription (with the input-QoS policy and its
re-check), the newest-frame slot and the lifecycle publishers of its outputs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rclpy.lifecycle import LifecycleNode
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from seg_ros.ros.contract import COMPRESSED_INPUT_TOPIC, INPUT_TOPIC, OUTPUTS, camera_topic
from seg_ros.ros.image_msgs import ReusedImageBuffer
from seg_ros.ros.latest_frame import Frame, LatestFrameSlot
from seg_ros.ros.node.frame_loop import CameraFrames
from seg_ros.ros.parameters import NodeSettings

# Outputs are reliable so a subscriber that keeps up sees every result; a small depth keeps a
# slow one from holding many full-size images.
OUTPUT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
QOS_RECHECK_S = 1.0


def input_qos(name: str, publishers: list[Any] | None = None) -> QoSProfile:
    """sensor_data: best effort, depth 1 (a best-effort reader matches reliable and best-effort
    publishers alike); reliable: for publishers that must not lose frames; auto: reliable when
    there are publishers and every one offers reliable, else best effort.

    Why auto: on one host a default-configured Fast DDS writer loses nearly every frame above
    its 512 KB shared-memory segment to a best-effort reader, while a reliable reader repairs
    them (docs/BENCHMARKS.md). A reliable
    reader would not match a best-effort camera, hence the choice per publisher set."""
    if name == "auto":
        reliable = bool(publishers) and all(
            p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers
        )
        name = "reliable" if reliable else "sensor_data"
    reliability = (
        ReliabilityPolicy.BEST_EFFORT if name == "sensor_data" else ReliabilityPolicy.RELIABLE
    )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=reliability,
        durability=DurabilityPolicy.VOLATILE,
    )


def reliability_name(qos: QoSProfile) -> str:
    return "reliable" if qos.reliability == ReliabilityPolicy.RELIABLE else "best effort"


@dataclass
class CameraIO:
    """One camera's side of the node: its input, its newest frame, its outputs, its counters.
    The single-camera node has one, named ""."""

    name: str
    slot: LatestFrameSlot
    io_lock: threading.Lock  # publishers: the finisher publishes, parameters toggle them
    frames: CameraFrames = field(default_factory=CameraFrames)
    subscription: Any = None
    subscription_qos: QoSProfile | None = None
    publishers: dict[str, Any] = field(default_factory=dict)
    buffers: dict[str, ReusedImageBuffer] = field(
        default_factory=lambda: {name: ReusedImageBuffer() for name in OUTPUTS}
    )

    def topic(self, relative: str) -> str:
        return camera_topic(self.name, relative)

    def wanted(self) -> list[str]:
        """Enabled outputs someone subscribes to: the only ones computed."""
        with self.io_lock:
            return [n for n, pub in self.publishers.items() if pub.get_subscription_count()]

    def subscribers(self) -> int:
        with self.io_lock:
            return sum(p.get_subscription_count() for p in self.publishers.values())

    def publish(self, name: str, array: Any, header: Any) -> None:
        with self.io_lock:
            pub = self.publishers.get(name)
            if pub is not None:
                # publish() serialises before it returns, so the buffer is free again.
                pub.publish(self.buffers[name](array, OUTPUTS[name].encoding, header))


class CameraPorts:
    """Subscriptions and publishers of all cameras, made and unmade on the node."""

    def __init__(
        self,
        node: LifecycleNode,
        cameras: dict[str, CameraIO],
        settings: Callable[[], NodeSettings],
    ) -> None:
        self._node, self.cameras, self._settings = node, cameras, settings
        self._qos_timer: Any = None

    # ---------------------------------------------------------------- input

    def input_topic(self, cam: CameraIO) -> str:
        compressed = self._settings().input_transport == "compressed"
        return cam.topic(COMPRESSED_INPUT_TOPIC if compressed else INPUT_TOPIC)

    def resolved_input(self, cam: CameraIO) -> str:
        return self._node.resolve_topic_name(self.input_topic(cam))

    def subscribe(self) -> None:
        for cam in self.cameras.values():
            self._subscribe_camera(cam)
        if self._qos_timer is None:
            self._qos_timer = self._node.create_timer(QOS_RECHECK_S, self._recheck_input_qos)

    def unsubscribe(self) -> None:
        if self._qos_timer is not None:
            self._node.destroy_timer(self._qos_timer)
            self._qos_timer = None
        for cam in self.cameras.values():
            if cam.subscription is not None:
                self._node.destroy_subscription(cam.subscription)
                cam.subscription = None

    def describe_input_qos(self, cam: CameraIO) -> str:
        qos = cam.subscription_qos
        chosen = reliability_name(qos) if qos is not None else "not subscribed"
        return f"auto: {chosen}" if self._settings().input_qos == "auto" else chosen

    def _wanted_input_qos(self, cam: CameraIO) -> QoSProfile:
        setting = self._settings().input_qos
        publishers = None
        if setting == "auto":
            publishers = self._node.get_publishers_info_by_topic(self.resolved_input(cam))
        return input_qos(setting, publishers)

    def _subscribe_camera(self, cam: CameraIO) -> None:
        compressed = self._settings().input_transport == "compressed"
        qos = self._wanted_input_qos(cam)
        cam.subscription = self._node.create_subscription(
            CompressedImage if compressed else Image,
            self.input_topic(cam),
            lambda msg, c=cam: self._on_image(c, msg),
            qos,
        )
        cam.subscription_qos = qos

    @staticmethod
    def _on_image(cam: CameraIO, msg: Image | CompressedImage) -> None:
        # Only park it: decoding and inference happen on the worker.
        cam.frames.received()
        cam.slot.put(Frame(msg, time.monotonic_ns()))

    def _recheck_input_qos(self) -> None:
        """input_qos auto: follow the publishers as cameras come and go."""
        if self._settings().input_qos != "auto":
            return
        for cam in self.cameras.values():
            if cam.subscription is None:
                continue
            wanted = self._wanted_input_qos(cam)
            if wanted.reliability != cam.subscription_qos.reliability:
                self._node.get_logger().info(
                    f"input QoS of {self.resolved_input(cam)} follows the publishers: now "
                    f"{reliability_name(wanted)}"
                )
                self._node.destroy_subscription(cam.subscription)
                self._subscribe_camera(cam)

    # ---------------------------------------------------------------- output

    def sync_publishers(self, active: bool) -> None:
        """Lifecycle publishers exist exactly for the enabled outputs, per camera; one made
        while the node is active publishes at once (activation enabled the others)."""
        settings = self._settings()
        for cam in self.cameras.values():
            with cam.io_lock:
                for name, output in OUTPUTS.items():
                    enabled = bool(getattr(settings, output.flag))
                    if enabled and name not in cam.publishers:
                        pub = self._node.create_lifecycle_publisher(
                            Image, cam.topic(output.topic), OUTPUT_QOS
                        )
                        if active:
                            pub.on_activate(None)
                        cam.publishers[name] = pub
                    elif not enabled and name in cam.publishers:
                        self._node.destroy_lifecycle_publisher(cam.publishers.pop(name))

    def destroy_publishers(self) -> None:
        for cam in self.cameras.values():
            with cam.io_lock:
                for pub in cam.publishers.values():
                    self._node.destroy_lifecycle_publisher(pub)
                cam.publishers.clear()

    def output_topics(self, cam: CameraIO) -> list[str]:
        with cam.io_lock:
            names = list(cam.publishers)
        return [self._node.resolve_topic_name(cam.topic(OUTPUTS[n].topic)) for n in names]
