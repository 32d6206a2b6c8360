"""rosbag2 files in and out through ``rosbags``: sqlite3 and mcap, no ROS install needed.

Reading takes the message definitions a bag carries (Iron and later write them); a bag without
them (Humble's sqlite3) is read with the typestore of the distro the user names, Kilted by
default. sensor_msgs/Image and CompressedImage are the same in Humble, Jazzy and Kilted, so the
choice only matters for other types. Images are decoded by ``seg_ros.image_codec``, the same
code the node runs on its rclpy messages.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.image_codec import (
    DecodedImage,
    ImageCodecError,
    decode_compressed_msg,
    decode_image_msg,
    encode_compressed,
    encode_image,
)

try:
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import Reader as Reader2
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
except ImportError as e:  # an optional extra: say how to get it
    raise ImportError(f"seg_ros.bag needs rosbags ({e}); pip install 'seg_ros[bag]'") from e

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED)
LABEL_ENCODINGS = ("mono8", "8UC1")
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
DISTROS = {
    "humble": Stores.ROS2_HUMBLE,
    "jazzy": Stores.ROS2_JAZZY,
    "kilted": Stores.ROS2_KILTED,
}
DEFAULT_DISTRO = "kilted"
# custom_data keys of the bags seg-make-bag writes (topics, classes), so seg-bag-eval needs no
# flags for them and can refuse a model with another class count.
META = "seg_ros."
NS = 1_000_000_000


class BagError(RuntimeError):
    """A bag is missing, unreadable, or lacks what was asked of it; the message says which."""


def typestore(distro: str = DEFAULT_DISTRO) -> Any:
    try:
        return get_typestore(DISTROS[distro])
    except KeyError:
        raise BagError(f"unknown ROS distro {distro!r}; choose from {sorted(DISTROS)}") from None


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * NS + int(header.stamp.nanosec)


def format_stamp(ns: int) -> str:
    return f"{ns // NS}.{ns % NS:09d}"


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    log_time_ns: int  # when the recorder wrote it; replay is paced by these
    msg: Any  # a rosbags message object: the field names of the ROS message

    @property
    def stamp_ns(self) -> int:
        return stamp_ns(self.msg.header)

    @property
    def frame_id(self) -> str:
        return str(self.msg.header.frame_id)


def decode_frame(message: BagMessage) -> DecodedImage:
    """An Image or CompressedImage message -> image for the pipeline; BagError naming the frame."""
    try:
        if message.msgtype == COMPRESSED:
            return decode_compressed_msg(message.msg)
        return decode_image_msg(message.msg)
    except ImageCodecError as e:
        raise BagError(
            f"{message.topic}: cannot decode the frame stamped {format_stamp(message.stamp_ns)}: "
            f"{e}"
        ) from None


def decode_label(message: BagMessage) -> np.ndarray:
    """A ground-truth Image of class ids (mono8, 255 = ignore) as an HxW uint8 array."""
    if message.msgtype != IMAGE:
        raise BagError(
            f"label topic {message.topic} is {message.msgtype}; ground truth must be "
            f"{IMAGE} with mono8 class ids (lossless)"
        )
    encoding = str(message.msg.encoding)
    if encoding not in LABEL_ENCODINGS:
        raise BagError(
            f"label topic {message.topic} holds {encoding!r} images; ground truth must be "
            "mono8 class ids (255 = ignore)"
        )
    # A copy: the label outlives the message while it waits for its frame, and a read-only
    # view of the bag's buffer would make torch warn when it is scored.
    return np.array(decode_frame(message).array)


def ros2_type_name(name: str) -> str:
    """``pkg/Name`` -> ``pkg/msg/Name``; ROS 2 names (``pkg/msg/Name``) stay as they are."""
    parts = name.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else name


class BagReader:
    """A rosbag2 (directory, or a single .db3/.mcap file) opened for reading."""

    def __init__(self, path: str | Path, distro: str = DEFAULT_DISTRO) -> None:
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise BagError(f"bag not found: {self.path}")
        self.distro = distro
        try:
            self._reader = AnyReader([self.path], default_typestore=typestore(distro))
            if self.path.is_dir() and not self._reader.is2:
                # rosbags takes any path ending in ".bag" for a ROS 1 bag; a rosbag2 folder may
                # be named so (seg-make-bag val.bag), and it is a folder, never a ROS 1 file.
                self._reader.is2 = True
                self._reader.readers = [Reader2(self.path)]
            self._reader.open()
        except BagError:
            raise
        except Exception as e:  # rosbags, apsw and yaml each raise their own types
            raise BagError(
                f"cannot read bag {self.path}: {type(e).__name__}: {e}; a rosbag2 is a folder "
                "with metadata.yaml and .db3 or .mcap files (or one such file)"
            ) from None
        self._store = typestore(distro)
        # Type names as ROS 2 spells them: mcap files written outside ROS (mcap's own examples)
        # name schemas "sensor_msgs/Image".
        self.topics: dict[str, str] = {
            topic: ros2_type_name(info.msgtype) if info.msgtype else "(several types)"
            for topic, info in sorted(self._reader.topics.items())
        }
        self.counts = {t: info.msgcount for t, info in self._reader.topics.items()}

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._reader.stack is not None:
            self._reader.close()

    @property
    def connections(self) -> list[Any]:
        return list(self._reader.connections)

    @property
    def storage(self) -> str:
        meta = self._metadata()
        if "storage_identifier" in meta:
            return str(meta["storage_identifier"])
        return {".db3": "sqlite3", ".mcap": "mcap"}.get(self.path.suffix, "unknown")

    @property
    def custom_data(self) -> dict[str, str]:
        """The bag's metadata custom_data (rosbag2 format 6 and later), {} when absent."""
        return dict(self._metadata().get("custom_data") or {})

    def seg_ros_info(self) -> dict[str, str]:
        """What seg-make-bag wrote about the bag (topics, dataset, classes); {} for others."""
        return {k[len(META) :]: v for k, v in self.custom_data.items() if k.startswith(META)}

    def _metadata(self) -> dict[str, Any]:
        import yaml

        path = self.path / "metadata.yaml"
        if not path.is_file():
            return {}
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            return {}  # rosbags has read it already; only our optional extras live here
        return data.get("rosbag2_bagfile_information") or {}

    @property
    def start_time_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def duration_s(self) -> float:
        return self._reader.duration / NS

    def describe_topics(self) -> str:
        if not self.topics:
            return "  (no topics)"
        return "\n".join(
            f"  {t}  [{kind}, {self.counts[t]} messages]" for t, kind in self.topics.items()
        )

    def resolve_topic(self, topic: str, types: Iterable[str], role: str) -> str:
        """``topic`` as the bag names it (a missing leading '/' is added), checked to exist and
        to have one of ``types``; BagError listing the bag's topics otherwise."""
        types = tuple(types)
        name = topic if topic.startswith("/") else "/" + topic
        if name not in self.topics:
            raise BagError(
                f"{self.path} has no {role} topic {topic!r}. Its topics:\n{self.describe_topics()}"
            )
        if self.topics[name] not in types:
            raise BagError(
                f"{role} topic {name} is {self.topics[name]}, but must be "
                f"{' or '.join(types)}. The bag's topics:\n{self.describe_topics()}"
            )
        return name

    def image_topics(self) -> list[str]:
        return [t for t, kind in self.topics.items() if kind in IMAGE_TYPES]

    def messages(self, topics: Iterable[str]) -> Iterator[BagMessage]:
        """Messages of ``topics`` in log-time order, deserialized."""
        wanted = set(topics)
        connections = [c for c in self._reader.connections if c.topic in wanted]
        try:
            for connection, log_time, raw in self._reader.messages(connections=connections):
                msgtype = ros2_type_name(connection.msgtype)
                if msgtype == connection.msgtype:
                    msg = self._reader.deserialize(raw, msgtype)
                else:  # the bag's own name is unknown to the type store; ours is not
                    msg = self._store.deserialize_cdr(raw, msgtype)
                yield BagMessage(connection.topic, msgtype, log_time, msg)
        except BagError:
            raise
        except Exception as e:  # a truncated file is only found while reading it
            raise BagError(f"cannot read bag {self.path}: {type(e).__name__}: {e}") from None

    def raw_messages(self) -> Iterator[tuple[Any, int, bytes]]:
        """Every message undeserialized, for copying the bag: (connection, log time, bytes)."""
        try:
            yield from self._reader.messages()
        except Exception as e:
            raise BagError(f"cannot read bag {self.path}: {type(e).__name__}: {e}") from None


class BagWriter:
    """A new rosbag2 (format 9) with sensor_msgs/Image and CompressedImage helpers.

    Never overwrites: an existing path is an error, so an evaluation bag is never lost to a
    typo. ``distro`` picks the message definitions stored with new topics.
    """

    def __init__(
        self, path: str | Path, storage: str = "mcap", distro: str = DEFAULT_DISTRO
    ) -> None:
        self.path = Path(path).expanduser()
        if storage not in STORAGES:
            raise BagError(f"unknown storage {storage!r}; choose from {sorted(STORAGES)}")
        if self.path.exists():
            raise BagError(f"{self.path} exists already; remove it or choose another name")
        self.storage = storage
        self.store = typestore(distro)
        self._writer = Writer(
            self.path, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage]
        )
        self._connections: dict[str, Any] = {}
        self._writer.open()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close()
        if exc_type is not None:
            self.discard()

    def close(self) -> None:
        if self._writer.storage is not None:
            self._writer.close()

    def discard(self) -> None:
        """Remove the bag: a half-written one would pass for a whole one. The folder is ours
        (the constructor refuses existing paths)."""
        import shutil

        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def set_info(self, key: str, value: str) -> None:
        """A seg_ros entry in the bag's custom_data (read back by ``BagReader.seg_ros_info``)."""
        self._writer.set_custom_data(META + key, str(value))

    def add_topic(self, topic: str, msgtype: str) -> None:
        if topic in self._connections:
            raise BagError(f"topic {topic} is written twice to {self.path}")
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.store)

    def copy_topic(self, connection: Any) -> bool:
        """A topic of another bag, with its definition and QoS. False when neither that bag nor
        this writer's typestore describes the type (a definition-less bag's custom message)."""
        if connection.topic in self._connections:
            return True
        qos = list(getattr(connection.ext, "offered_qos_profiles", []) or [])
        if connection.msgdef.data and connection.digest:
            conn = self._writer.add_connection(
                connection.topic,
                connection.msgtype,
                msgdef=connection.msgdef.data,
                rihs01=connection.digest,
                offered_qos_profiles=qos,
            )
        elif connection.msgtype in self.store.types:
            conn = self._writer.add_connection(
                connection.topic, connection.msgtype, typestore=self.store, offered_qos_profiles=qos
            )
        else:
            return False
        self._connections[connection.topic] = conn
        return True

    def write_raw(self, topic: str, log_time_ns: int, data: bytes | memoryview) -> None:
        self._writer.write(self._connections[topic], int(log_time_ns), data)

    def write(self, topic: str, log_time_ns: int, msg: Any) -> None:
        raw = self.store.serialize_cdr(msg, msg.__msgtype__)
        self.write_raw(topic, log_time_ns, raw)

    def header(self, stamp: int, frame_id: str) -> Any:
        if stamp < 0:
            raise BagError(f"stamps must not be negative, got {stamp} ns")
        types = self.store.types
        time_msg = types["builtin_interfaces/msg/Time"](sec=stamp // NS, nanosec=stamp % NS)
        return types["std_msgs/msg/Header"](stamp=time_msg, frame_id=frame_id)

    def image_msg(self, array: np.ndarray, encoding: str, stamp: int, frame_id: str) -> Any:
        try:
            fields = encode_image(array, encoding)
        except ImageCodecError as e:
            raise BagError(str(e)) from None
        return self.store.types[IMAGE](
            header=self.header(stamp, frame_id),
            height=fields.height,
            width=fields.width,
            encoding=fields.encoding,
            is_bigendian=fields.is_bigendian,
            step=fields.step,
            data=np.ascontiguousarray(fields.data),
        )

    def compressed_msg(
        self, array: np.ndarray, fmt: str, stamp: int, frame_id: str, color_order: str = "rgb"
    ) -> Any:
        try:
            format_string, data = encode_compressed(array, fmt, color_order)
        except ImageCodecError as e:
            raise BagError(str(e)) from None
        return self.store.types[COMPRESSED](
            header=self.header(stamp, frame_id), format=format_string, data=data
        )

    def write_image(
        self,
        topic: str,
        log_time_ns: int,
        array: np.ndarray,
        encoding: str,
        stamp: int,
        frame_id: str,
    ) -> None:
        if topic not in self._connections:
            self.add_topic(topic, IMAGE)
        self.write(topic, log_time_ns, self.image_msg(array, encoding, stamp, frame_id))

    def write_compressed(
        self,
        topic: str,
        log_time_ns: int,
        array: np.ndarray,
        fmt: str,
        stamp: int,
        frame_id: str,
    ) -> None:
        if topic not in self._connections:
            self.add_topic(topic, COMPRESSED)
        self.write(topic, log_time_ns, self.compressed_msg(array, fmt, stamp, frame_id))


def copy_bag(
    reader: BagReader,
    writer: BagWriter,
    image_topic: str | None = None,
    limit: int | None = None,
) -> list[str]:
    """Every message of ``reader`` into ``writer`` unchanged, or with ``limit``, those logged
    up to the ``limit``-th frame on ``image_topic`` (what an evaluation of the first frames
    covers); the topics that could not be copied (types neither bag describes) are returned,
    for the caller to report."""
    skipped = sorted({c.topic for c in reader.connections if not writer.copy_topic(c)})
    frames, last_ns = 0, None
    for connection, log_time, raw in reader.raw_messages():
        if last_ns is not None and log_time > last_ns:
            break  # log-time order: nothing later belongs to the evaluated span
        if connection.topic not in skipped:
            writer.write_raw(connection.topic, log_time, raw)
        if limit and connection.topic == image_topic:
            frames += 1
            if frames >= limit:
                last_ns = log_time
    return skipped


class BagWriterThread:
    """A ``BagWriter`` that any thread may write to: every call runs on a thread of its own.

    rosbags' sqlite3 storage holds a Python sqlite3 connection, which only the thread that
    opened it may use; live evaluation receives outputs on a worker thread, so its writes are
    queued here. ``call`` waits for the result, ``write_image`` does not (errors surface on the
    next call and at ``close``).
    """

    def __init__(
        self, path: str | Path, storage: str = "mcap", distro: str = DEFAULT_DISTRO
    ) -> None:
        self.path = Path(path).expanduser()
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=32)  # bounds images held in flight
        self._error: BaseException | None = None
        self._opened = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(path, storage, distro), name="seg_bag_writer", daemon=True
        )
        self._thread.start()
        self._opened.wait()
        self._raise()

    def _serve(self, path: str | Path, storage: str, distro: str) -> None:
        try:
            writer = BagWriter(path, storage, distro)
        except BaseException as e:
            self._error = e
            self._opened.set()
            return
        self._opened.set()
        keep = True
        while True:
            job = self._jobs.get()
            if job is None or job == "discard":
                keep = job is None and self._error is None
                break
            fn, reply = job
            if self._error is not None:
                if reply is not None:
                    reply.put(None)
                continue  # after a failure, drain without writing
            try:
                result = fn(writer)
            except BaseException as e:
                self._error = e
                result = None
            if reply is not None:
                reply.put(result)
        writer.close()
        if not keep:
            writer.discard()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._jobs.put("discard")
            raise error

    def call(self, fn: Callable[[BagWriter], Any]) -> Any:
        self._raise()
        reply: queue.Queue[Any] = queue.Queue()
        self._jobs.put((fn, reply))
        result = reply.get()
        self._raise()
        return result

    def write_image(self, *args: Any) -> None:
        self._raise()
        self._jobs.put((lambda w: w.write_image(*args), None))

    def close(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self._raise()

    def discard(self) -> None:
        if self._thread.is_alive():
            self._jobs.put("discard")
            self._thread.join()
