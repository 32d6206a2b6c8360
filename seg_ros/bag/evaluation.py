"""Scoring a bag's frames: predictions paired with ground truth by stamp, per-frame latencies,
and a few sample frames for the report. Offline and live evaluation share it, so both score
exactly alike; live mode calls it from two threads (frames read, outputs received).

mIoU comes from ``seg_ros.metrics.ConfusionMatrix``, as seg-eval's does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seg_ros.bag.io import BagError, BagMessage, BagReader, decode_label, format_stamp
from seg_ros.bag.matching import DuplicateStampError, StampJoin
from seg_ros.labels import IGNORE_INDEX
from seg_ros.metrics import CalibrationMeter, ConfusionMatrix


@dataclass
class FrameRecord:
    index: int  # position of the frame on the image topic
    stamp_ns: int  # the frame's header stamp in the bag
    time_s: float  # log time since the first frame
    latency_ms: dict[str, float]
    labelled: bool = False


@dataclass
class Sample:
    index: int
    stamp_ns: int
    image: np.ndarray  # HxWx3 RGB
    prediction: np.ndarray  # HxW class ids
    truth: np.ndarray | None = None


@dataclass
class ClassInfo:
    """What the model's outputs mean (from its weights metadata)."""

    names: list[str]
    palette: list[list[int]]
    dataset: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.names)


@dataclass
class _Pending:
    prediction: np.ndarray
    record: FrameRecord
    confidence: np.ndarray | None = None


class BagEvaluation:
    def __init__(
        self,
        classes: ClassInfo,
        label_topic: str | None,
        frame_count: int,
        samples: int = 6,
    ) -> None:
        self.classes = classes
        self.label_topic = label_topic
        self.cm = ConfusionMatrix(classes.num_classes)
        # Fed where the predictions come with a per-pixel confidence (mono8).
        self.calibration = CalibrationMeter(classes.num_classes)
        self.records: list[FrameRecord] = []
        self.samples: dict[int, Sample] = {}
        count = max(1, frame_count)
        targets = np.linspace(0, count - 1, min(samples, count)).round() if samples > 0 else []
        self._targets = sorted({int(t) for t in targets})
        self._join: StampJoin[_Pending, np.ndarray] = StampJoin("image", "label")
        self._lock = threading.Lock()

    # -- input

    def add_label(self, stamp: int, label: np.ndarray) -> None:
        with self._lock:
            pending = self._pair(lambda: self._join.add_b(stamp, label))
            if pending is not None:
                self._score(stamp, pending, label)

    def wants_sample(self, index: int) -> bool:
        """Whether the frame at ``index`` becomes a sample (the first frame at or after each of
        a few evenly spaced positions: in live mode the one at the position may be dropped)."""
        with self._lock:
            return bool(self._targets) and index >= self._targets[0]

    def add_prediction(
        self,
        index: int,
        stamp: int,
        prediction: np.ndarray,
        latency_ms: dict[str, float],
        time_s: float,
        image: np.ndarray | None = None,
        confidence: np.ndarray | None = None,
    ) -> None:
        """One frame's predicted class ids (at the frame's size) and its stage latencies; the
        frame's RGB ``image`` when ``wants_sample(index)`` said so; its mono8 ``confidence``
        (the winning class's probability x 255) when the model gave one."""
        record = FrameRecord(index, stamp, time_s, dict(latency_ms))
        with self._lock:
            self.records.append(record)
            if image is not None and self._targets and index >= self._targets[0]:
                while self._targets and self._targets[0] <= index:
                    self._targets.pop(0)
                self.samples[index] = Sample(index, stamp, image, prediction)
            if self.label_topic is None:
                return
            pending = _Pending(prediction, record, confidence)
            label = self._pair(lambda: self._join.add_a(stamp, pending))
            if label is not None:
                self._score(stamp, pending, label)

    def _pair(self, add: Any) -> Any:
        try:
            return add()
        except DuplicateStampError as e:
            raise BagError(f"{self.label_topic}: {e}") from None

    def _score(self, stamp: int, pending: _Pending, label: np.ndarray) -> None:
        prediction = pending.prediction
        if label.shape != prediction.shape:
            raise BagError(
                f"label topic {self.label_topic}: the label stamped {format_stamp(stamp)} is "
                f"{label.shape[1]}x{label.shape[0]}, but its image is "
                f"{prediction.shape[1]}x{prediction.shape[0]}; labels must have the image's size"
            )
        n = self.classes.num_classes
        invalid = (label >= n) & (label != IGNORE_INDEX)
        if invalid.any():
            bad = int(label[invalid].max())
            raise BagError(
                f"label topic {self.label_topic} holds class id {bad} (frame stamped "
                f"{format_stamp(stamp)}), but the model predicts {n} classes "
                f"({self.classes.dataset or 'its dataset'}: ids 0-{n - 1}, 255 = ignore); the "
                "labels are for another label set"
            )
        self.cm.update(prediction, label)
        if pending.confidence is not None:
            if pending.confidence.shape != prediction.shape:
                raise BagError(
                    f"the confidence of the frame stamped {format_stamp(stamp)} is "
                    f"{pending.confidence.shape[1]}x{pending.confidence.shape[0]}, its labels "
                    f"{prediction.shape[1]}x{prediction.shape[0]}"
                )
            self.calibration.update(prediction, pending.confidence, label)
        pending.record.labelled = True
        for sample in self.samples.values():
            if sample.stamp_ns == stamp:
                sample.truth = label

    # -- results

    @property
    def labelled_frames(self) -> int:
        return sum(r.labelled for r in self.records)

    def label_stamps_unpaired(self) -> list[int]:
        with self._lock:
            return sorted(self._join.waiting_b())

    def labels_read(self) -> int:
        return self._join.count_b

    def accuracy(self) -> dict[str, Any] | None:
        """seg-eval's figures (mIoU, pixel accuracy, per-class IoU, pixels), or None without
        labelled frames."""
        from seg_ros.metrics import report

        if self.label_topic is None or self.labelled_frames == 0:
            return None
        figures = report(self.cm, self.classes.names)
        if self.calibration.pixels:
            figures["calibration"] = self.calibration.summary()
        return figures

    def sample_list(self) -> list[Sample]:
        return sorted(self.samples.values(), key=lambda s: s.index)


@dataclass
class FrameSource:
    """The image topic's frames in log-time order, as (index, message); the label topic's
    messages on the way go to ``evaluation``. ``limit``: only the first N frames (labels are
    read on until those frames' labels have all been seen, or the bag ends)."""

    reader: BagReader
    image_topic: str
    label_topic: str | None
    evaluation: BagEvaluation
    limit: int | None = None
    frames: int = 0
    first_log_ns: int | None = None
    image_stamps: set[int] = field(default_factory=set)
    times_s: list[float] = field(default_factory=list)  # each frame's log time since the first
    _label_stamps: set[int] = field(default_factory=set)

    def __iter__(self) -> Iterator[tuple[int, BagMessage]]:
        topics: Sequence[str] = [self.image_topic]
        if self.label_topic:
            topics = [self.image_topic, self.label_topic]
        for message in self.reader.messages(topics):
            if message.topic == self.label_topic:
                stamp = message.stamp_ns
                self._label_stamps.add(stamp)
                if self.done and stamp not in self.image_stamps:
                    continue
                self.evaluation.add_label(stamp, decode_label(message))
                if self.done and self.image_stamps <= self._label_stamps:
                    return
                continue
            if self.done:
                if not self.label_topic or self.image_stamps <= self._label_stamps:
                    return
                continue
            stamp = message.stamp_ns
            if self.label_topic and stamp in self.image_stamps:
                raise BagError(
                    f"{self.image_topic}: two frames are stamped {format_stamp(stamp)}; frames "
                    "and labels are paired by header stamp, so stamps must be unique"
                )
            self.image_stamps.add(stamp)
            if self.first_log_ns is None:
                self.first_log_ns = message.log_time_ns
            index = self.frames
            self.frames += 1
            self.times_s.append(self.time_s(message))
            yield index, message

    @property
    def done(self) -> bool:
        return self.limit is not None and self.frames >= self.limit

    def time_s(self, message: BagMessage) -> float:
        return (message.log_time_ns - (self.first_log_ns or message.log_time_ns)) / 1e9

    def labels_without_frame(self) -> int | None:
        """Labels whose stamp no frame has; None with ``limit`` (the rest are unread)."""
        if self.limit is not None:
            return None
        return len(self._label_stamps - self.image_stamps)
