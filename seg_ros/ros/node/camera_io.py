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
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from seg_ros.ros.camera_info import CameraInfoPairs, camera_info_topic, scaled, stamp_ns
from seg_ros.ros.contract import (
    CAMERA_INFO_TOPIC,
    COMPRESSED_FORMATS,
    COMPRESSED_INPUT_TOPIC,
    INPUT_TOPIC,
    OUTPUTS,
    camera_topic,
)
from seg_ros.ros.image_msgs import ReusedImageBuffer, to_compressed_msg
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
# camera_info: best effort, a few deep (matches reliable and best-effort camera drivers alike).
INFO_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)


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
    compressed: dict[str, Any] = field(default_factory=dict)  # name -> its /compressed publisher
    jpeg_quality: int = 90
    infos: CameraInfoPairs = field(default_factory=CameraInfoPairs)
    info_subscription: Any = None
    info_topic: str = ""
    info_publisher: Any = None  # segmentation/camera_info, scaled to the labels' size
    logger: Any = None
    _told_no_info: bool = False
    buffers: dict[str, ReusedImageBuffer] = field(
        default_factory=lambda: {name: ReusedImageBuffer() for name in OUTPUTS}
    )

    def topic(self, relative: str) -> str:
        return camera_topic(self.name, relative)

    def wanted(self) -> list[str]:
        """Enabled outputs someone subscribes to, raw or compressed: the only ones computed."""
        with self.io_lock:
            return [n for n in self.publishers if self._subscribers(n)]

    def _subscribers(self, name: str) -> int:
        pubs = (self.publishers.get(name), self.compressed.get(name))
        return sum(p.get_subscription_count() for p in pubs if p is not None)

    def subscribers(self) -> int:
        with self.io_lock:
            return sum(self._subscribers(n) for n in self.publishers)

    def publish_info(self, header: Any, size: tuple[int, int]) -> None:
        """segmentation/camera_info for a published frame: its camera's camera_info of the
        same stamp, scaled to ``size`` (h, w) of the labels; none without a camera_info."""
        info = self.infos.take(stamp_ns(header))
        if info is None:
            if self.infos.received == 0 and not self._told_no_info and self.logger is not None:
                self._told_no_info = True
                self.logger.info(
                    f"no camera_info on {self.info_topic} (yet): segmentation/camera_info is "
                    "published once it comes"
                )
            return
        with self.io_lock:
            if self.info_publisher is not None:
                self.info_publisher.publish(scaled(info, size[1], size[0], header))

    def publish(self, name: str, array: Any, header: Any) -> None:
        """The raw output and its compressed variant, each only while subscribed."""
        with self.io_lock:
            pub = self.publishers.get(name)
            if pub is not None and pub.get_subscription_count():
                # publish() serialises before it returns, so the buffer is free again.
                pub.publish(self.buffers[name](array, OUTPUTS[name].encoding, header))
            pub = self.compressed.get(name)
            if pub is not None and pub.get_subscription_count():
                start = time.perf_counter()
                fmt = COMPRESSED_FORMATS[name]
                pub.publish(to_compressed_msg(array, header, fmt, quality=self.jpeg_quality))
                self.frames.compressed((time.perf_counter() - start) * 1e3)


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
            self._subscribe_info(cam)
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
            if cam.info_subscription is not None:
                self._node.destroy_subscription(cam.info_subscription)
                cam.info_subscription = None

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

    def _subscribe_info(self, cam: CameraIO) -> None:
        """The camera_info beside the image topic (image_transport's camera subscriber)."""
        cam.info_topic = camera_info_topic(self._node.resolve_topic_name(cam.topic(INPUT_TOPIC)))
        cam.logger = self._node.get_logger()

        def on_info(msg: Any) -> None:
            cam.infos.put(stamp_ns(msg.header), msg)

        cam.info_subscription = self._node.create_subscription(
            CameraInfo, cam.info_topic, on_info, INFO_QOS
        )

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
                cam.jpeg_quality = int(settings.jpeg_quality)
                if cam.info_publisher is None:
                    topic = cam.topic(CAMERA_INFO_TOPIC)
                    cam.info_publisher = self._lifecycle_publisher(CameraInfo, topic, active)
                for name, output in OUTPUTS.items():
                    enabled = bool(getattr(settings, output.flag))
                    topics = [(cam.publishers, Image, output.topic)]
                    if name in COMPRESSED_FORMATS:
                        topics.append(
                            (cam.compressed, CompressedImage, f"{output.topic}/compressed")
                        )
                    for pubs, msg_type, topic in topics:
                        if enabled and name not in pubs:
                            pubs[name] = self._lifecycle_publisher(
                                msg_type, cam.topic(topic), active
                            )
                        elif not enabled and name in pubs:
                            self._node.destroy_lifecycle_publisher(pubs.pop(name))

    def _lifecycle_publisher(self, msg_type: Any, topic: str, active: bool) -> Any:
        pub = self._node.create_lifecycle_publisher(msg_type, topic, OUTPUT_QOS)
        if active:
            pub.on_activate(None)
        return pub

    def destroy_publishers(self) -> None:
        for cam in self.cameras.values():
            with cam.io_lock:
                for pubs in (cam.publishers, cam.compressed):
                    for pub in pubs.values():
                        self._node.destroy_lifecycle_publisher(pub)
                    pubs.clear()
                if cam.info_publisher is not None:
                    self._node.destroy_lifecycle_publisher(cam.info_publisher)
                    cam.info_publisher = None

    def output_topics(self, cam: CameraIO) -> list[str]:
        with cam.io_lock:
            names = list(cam.publishers)
        return [self._node.resolve_topic_name(cam.topic(OUTPUTS[n].topic)) for n in names]
