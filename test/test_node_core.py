"""Pieces of the node's logic that need no DDS: the rate meter, the health assessment, the
input QoS choice, the input-size rule and the cheap availability checks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from seg_ros.inference.availability import unavailable
from seg_ros.inference.config import PipelineConfig
from seg_ros.inference.errors import ConfigError
from seg_ros.inference.pipeline import follow_aspect
from seg_ros.ros.stats import RateMeter


def test_rate_meter_remembers_the_last_event_past_its_window() -> None:
    meter = RateMeter(window=1.0)
    assert meter.last() is None
    meter.tick(now=100.0)
    assert meter.snapshot(now=200.0)[1] == 0  # out of the window
    assert meter.last() == 100.0  # but "no input for 100 s", not "never"
    meter.reset()
    assert meter.last() is None


def test_one_side_of_the_input_size_follows_the_other() -> None:
    assert follow_aspect((0, 240), (360, 480)) == (180, 240)
    assert follow_aspect((180, 0), (360, 480)) == (180, 240)
    assert follow_aspect((0, 32), (360, 4800)) == (32, 32)  # never below the minimum side
    PipelineConfig(input_size=(0, 320)).validate()
    with pytest.raises(ConfigError, match="may be 0"):
        PipelineConfig(input_size=(0, 0)).validate()
    with pytest.raises(ConfigError):
        PipelineConfig(input_size=(10, 320)).validate()


def test_cheap_checks_name_what_is_missing(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a)
    )
    reason = unavailable(PipelineConfig(backend="onnxruntime"))
    assert reason and "not installed" in reason and "onnxruntime" in reason
    assert unavailable(PipelineConfig()) is None


def test_cuda_is_refused_where_there_is_none() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    reason = unavailable(PipelineConfig(device="cuda:1"))
    assert reason and "CUDA is not available" in reason


rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels (ros-rclpy) are not installed")


def _pub(reliable: bool) -> SimpleNamespace:
    from rclpy.qos import ReliabilityPolicy

    r = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    return SimpleNamespace(qos_profile=SimpleNamespace(reliability=r))


def test_auto_input_qos_follows_the_publishers() -> None:
    from rclpy.qos import ReliabilityPolicy

    from seg_ros.ros.node.camera_io import input_qos

    rel, be = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
    assert input_qos("auto", []).reliability == be  # nobody yet: match anyone
    assert input_qos("auto", [_pub(True)]).reliability == rel
    assert input_qos("auto", [_pub(True), _pub(False)]).reliability == be
    assert input_qos("sensor_data", [_pub(True)]).reliability == be
    assert input_qos("reliable", []).reliability == rel
    assert input_qos("auto", [_pub(True)]).depth == 1  # the latest-frame policy stays


def test_random_weights_are_named_whatever_else_is_said() -> None:
    from seg_ros.ros import diagnostics as d

    health = d.Health(
        lifecycle="active",
        load_error=None,
        swap_error=None,
        random_weights=True,
        seconds_since_input=0.1,
        stale_after=3.0,
        subscribers=1,
        output_rate=1.0,
        target_rate=10.0,
    )
    level, message = d.assess(health)
    assert level == d.WARN and "below target" in message and "RANDOM WEIGHTS" in message
    health.subscribers = 0
    level, message = d.assess(health)
    assert level == d.WARN and "idle" in message and "RANDOM" in message
    health.random_weights = False
    assert d.assess(health)[0] == d.OK


def test_settings_checks_refuse_what_cannot_build(tmp_path) -> None:
    from seg_ros.ros.parameters import NodeSettings, check_settings

    engine = tmp_path / "m.onnx"
    engine.write_bytes(b"x")
    reason = check_settings(NodeSettings(backend="torch", engine=str(engine)))
    assert reason and "engine is for backends" in reason
    assert "not found" in check_settings(NodeSettings(engine=str(tmp_path / "missing.onnx")))
    assert "none is shipped" in check_settings(
        NodeSettings(precision="int8", weights=str(_weights(tmp_path)))
    )
    assert check_settings(NodeSettings(input_width=320)) is None  # one side follows


def _weights(tmp_path):
    from weights_helpers import make_weights

    return make_weights(tmp_path / "w.safetensors")


# ---------------------------------------------------------------- the node's parts, no DDS


def _take(group, timeout: float | None = 0):
    """One camera's newest frame, as the worker takes it: (name, frame), or None."""
    taken = group.take_many(1, 0.0, timeout)
    return taken[0] if taken else None


def test_latest_frame_slot_keeps_the_newest_and_counts_the_rest() -> None:
    import threading

    from seg_ros.ros.latest_frame import Frame, SlotGroup

    group = SlotGroup([""])
    slot = group.slots[""]
    assert _take(group, 0.01) is None  # nothing yet: the worker waits, then gives up
    for i in range(3):
        slot.put(Frame(msg=i, received_ns=i))
    assert _take(group)[1].msg == 2 and slot.counts() == (3, 2)
    # A waiting worker wakes for the next frame, and for close().
    got = []
    worker = threading.Thread(target=lambda: got.append(_take(group, 5)))
    worker.start()
    slot.put(Frame(msg="late", received_ns=9))
    worker.join(5)
    assert got[0][1].msg == "late"
    slot.put(Frame(msg="left", received_ns=10))
    group.close()
    assert _take(group, 5) is None and slot.counts() == (5, 3) and slot.closed
    group.reopen()
    slot.put(Frame(msg="again", received_ns=11))
    assert _take(group)[1].msg == "again"


def test_latency_window_percentiles() -> None:
    from seg_ros.ros.stats import LatencyWindow

    window = LatencyWindow(size=4)
    assert window.percentiles("inference") is None
    for ms in (100.0, 1.0, 2.0, 3.0, 4.0):  # the oldest falls out of a window of 4
        window.add("inference", ms)
    p = window.percentiles("inference")
    assert p["max"] == 4.0 and p["p50"] == pytest.approx(2.5)
    window.reset()
    assert window.percentiles("inference") is None


@pytest.mark.parametrize(
    ("change", "level", "words"),
    [
        ({"load_error": "weights not found"}, "ERROR", "no model: weights not found"),
        ({"lifecycle": "inactive"}, "STALE", "inactive"),
        ({"seconds_since_input": None}, "STALE", "no image received yet"),
        ({"seconds_since_input": 9.0}, "STALE", "no input for 9.0 s"),
        ({"swap_error": "bad file"}, "WARN", "still serving the previous one: bad file"),
        ({"subscribers": 0}, "OK", "idle"),
        ({"output_rate": 5.0}, "WARN", "below target 10 Hz"),
        ({}, "OK", "running at 9.50 Hz"),
        # target_rate 0 (the default): judged against the camera. A 5 Hz camera answered in
        # full is OK (it once warned "below target 10 Hz"); dropped frames are not.
        ({"target_rate": 0.0, "input_rate": 5.0, "output_rate": 5.0}, "OK", "running at 5.00"),
        ({"target_rate": 0.0, "input_rate": 5.0, "output_rate": 4.6}, "OK", "running at 4.60"),
        ({"target_rate": 0.0, "input_rate": 30.0, "output_rate": 9.0}, "WARN", "input's 30.00"),
    ],
)
def test_health_is_assessed_worst_first(change, level, words) -> None:
    from seg_ros.ros import diagnostics

    base = dict(
        lifecycle="active", load_error=None, swap_error=None, random_weights=False,
        seconds_since_input=0.1, stale_after=2.0, subscribers=1, output_rate=9.5,
        target_rate=10.0,
    )  # fmt: skip
    got_level, message = diagnostics.assess(diagnostics.Health(**{**base, **change}))
    assert got_level == getattr(diagnostics, level) and words in message


def _builder_with_gate():
    """A PipelineBuilder whose builds each wait for one release of a gate; "pipelines" are the
    settings' names."""
    import threading

    from seg_ros.ros.node.serving import PipelineBuilder

    gate, done, started = threading.Semaphore(0), threading.Event(), []

    def build(settings):
        started.append(settings)
        assert gate.acquire(timeout=5)
        return (None, f"{settings} failed") if settings.startswith("bad") else (settings, None)

    return PipelineBuilder(on_done=done.set, build=build), gate, done, started


def _wait(event, what: str) -> None:
    assert event.wait(5), what
    event.clear()


def _started(started: list, n: int) -> None:
    import time

    deadline = time.monotonic() + 5
    while len(started) < n:
        assert time.monotonic() < deadline, f"build {n} never began"
        time.sleep(0.01)


def test_builder_hands_out_each_build_once_newest_wins() -> None:
    builder, gate, done, started = _builder_with_gate()
    try:
        builder.request("a")
        _started(started, 1)
        assert builder.building == "a"
        builder.request("bad-b")  # while a builds: b waits, c replaces it
        builder.request("c")
        gate.release()
        _wait(done, "a built")
        first = builder.take()
        assert (first.pipeline, first.newest) == ("a", False)  # c was asked after a
        assert builder.take() is None  # once
        gate.release()
        _wait(done, "c built")
        last = builder.take()
        assert (last.pipeline, last.seq, last.newest) == ("c", 3, True)
        assert started == ["a", "c"]  # b was replaced before it began
    finally:
        builder.close()


def test_builder_failure_says_whether_it_may_revert_and_cleanup_drops_builds() -> None:
    builder, gate, done, started = _builder_with_gate()
    try:
        builder.request("bad-x")
        gate.release()
        _wait(done, "x failed")
        failed = builder.take()
        assert failed.pipeline is None and failed.error == "bad-x failed" and failed.newest
        builder.request("y")
        _started(started, 2)
        builder.invalidate()  # the node cleaned up while y was being built
        gate.release()
        _wait(done, "y built")
        assert builder.take() is None
    finally:
        gate.release()
        builder.close()


def test_frame_loop_steps_count_skips_bad_inputs_and_publish_what_is_wanted() -> None:
    import time

    import numpy as np

    from seg_ros.image_codec import ImageCodecError
    from seg_ros.inference.pipeline import FrameOptions
    from seg_ros.ros.latest_frame import Frame
    from seg_ros.ros.node.frame_loop import CameraFrames, finish, prepare, run_network
    from seg_ros.ros.node.serving import Served

    class StandInPipeline:
        def prepare(self, array, color_order, options):
            return (array, color_order)

        def infer_many(self, prepared, want_confidence):
            return [(*p, want) for p, want in zip(prepared, want_confidence)]

        def finish(self, staged, want_color, want_overlay):
            array, _, want_confidence = staged
            labels = np.zeros(array.shape[:2], np.uint8)
            return SimpleNamespace(
                labels=labels,
                color=array if want_color else None,
                overlay=array if want_overlay else None,
                confidence=labels + 200 if want_confidence else None,
                timings={"inference": 4.0},
            )

    def decode(msg):
        if msg.data == "garbage":
            raise ImageCodecError("truncated image")
        return SimpleNamespace(array=np.full((4, 6, 3), 7, np.uint8), color_order="bgr")

    published = {}
    camera = SimpleNamespace(
        name="",
        frames=CameraFrames(),
        wanted=lambda: [],
        publish=lambda name, array, header: published.__setitem__(name, array),
        publish_info=lambda header, size: None,
    )
    told = []
    served = Served(StandInPipeline(), FrameOptions(), {})

    def step(frame, served):
        return prepare(frame, camera, served, decode, lambda n, why: told.append((n, why)))

    msg = SimpleNamespace(data="ok", header=None)
    frame = Frame(msg=msg, received_ns=time.monotonic_ns())
    assert step(frame, served) is None  # nobody listens
    camera.wanted = lambda: ["labels"]
    assert step(frame, None) is None  # no model yet
    assert step(Frame(SimpleNamespace(data="garbage"), 0), served) is None
    assert told == [(1, "truncated image")]
    camera.wanted = lambda: ["labels", "overlay"]
    [job] = run_network([step(frame, served)])
    assert job.staged[1] == "bgr"  # the decoded colour order reaches the pipeline
    finish(job, time.monotonic_ns, stamp_ns=0)
    assert set(published) == {"labels", "overlay"} and published["labels"].shape == (4, 6)
    assert job.staged[2] is False  # no confidence computed while nobody subscribes to it
    camera.wanted = lambda: ["labels", "confidence"]
    [job] = run_network([step(frame, served)])
    published.clear()
    finish(job, time.monotonic_ns, stamp_ns=0)
    assert set(published) == {"labels", "confidence"} and published["confidence"].max() == 200
    frames = camera.frames
    counts = frames.counts()
    assert (counts.processed, counts.idle, counts.bad_inputs) == (2, 2, 1)
    assert counts.last_bad_input == "truncated image"
    assert frames.latency.percentiles("inference")["p50"] == 4.0
    assert frames.latency.percentiles("stamp_to_publish") is None  # unset stamp: no figure
    frames.failed()
    assert frames.counts().inference_errors == 1


def test_slot_group_serves_the_cameras_in_turn() -> None:
    from seg_ros.ros.latest_frame import Frame, SlotGroup

    group = SlotGroup(["front", "left", "right"])
    served = []
    clock = 0
    for _ in range(3):
        # every camera has a new frame each round, front's always a moment first: serving the
        # oldest frame first would serve front every time
        for name in ("front", "left", "right"):
            clock += 1
            group.slots[name].put(Frame(f"{name}{clock}", clock))
        served.append(_take(group)[0])
    assert served == ["front", "left", "right"]
    # the newest frame per camera, the others counted as dropped
    name, frame = _take(group)
    assert name == "front" and frame.msg == "front7"
    assert group.slots["front"].counts() == (3, 1)
    # a camera with nothing waiting is skipped, and a slow one is not starved by a fast one
    group = SlotGroup(["fast", "slow"])
    order = []
    for i in range(6):
        group.slots["fast"].put(Frame(f"f{i}", 2 * i))
        if i % 3 == 0:
            group.slots["slow"].put(Frame(f"s{i}", 2 * i + 1))
        order.append(_take(group)[1].msg)
    assert order == ["f0", "s0", "f2", "s3", "f4", "f5"]
    assert _take(group) is None  # nothing waiting: the timeout passes
    group.close()
    assert group.closed and _take(group) is None


def test_slot_group_batches_the_cameras_waiting_and_waits_a_bounded_time_for_the_rest() -> None:
    import threading
    import time

    from seg_ros.ros.latest_frame import Frame, SlotGroup

    group = SlotGroup(["front", "left", "right"])
    group.slots["left"].put(Frame("left0", 2))
    group.slots["front"].put(Frame("front0", 1))
    taken = group.take_many(3, 0.0, timeout=0)
    assert [(name, f.msg) for name, f in taken] == [("front", "front0"), ("left", "left0")]

    # front alone: the others do not come, so after the bounded wait front runs alone
    group.slots["front"].put(Frame("front1", 3))
    assert [f.msg for _, f in group.take_many(3, 0.05, timeout=0)] == ["front1"]

    # the others arrive during the wait: one batch of all three, without waiting out the bound
    group.slots["right"].put(Frame("right0", 4))

    def others() -> None:
        time.sleep(0.05)
        group.slots["front"].put(Frame("front2", 5))
        group.slots["left"].put(Frame("left1", 6))

    thread = threading.Thread(target=others)
    start = time.monotonic()
    thread.start()
    taken = group.take_many(3, 30.0, timeout=0)
    thread.join()
    assert time.monotonic() - start < 20, "it waited out the bound with the batch full"
    assert sorted(f.msg for _, f in taken) == ["front2", "left1", "right0"]

    # a limit below the cameras: the least recently served go first, so in three rounds of
    # two each camera is served twice (the one left out waits with its newest frame)
    group = SlotGroup(["front", "left", "right"])
    rounds = []
    for i in range(3):
        for n, name in enumerate(("front", "left", "right")):
            group.slots[name].put(Frame(f"{name}{i}", 10 * i + n))
        rounds.append(sorted(name for name, _ in group.take_many(2, 0.0, timeout=0)))
    assert rounds == [["front", "left"], ["front", "right"], ["left", "right"]]

    # closed while waiting for the rest: nothing is handed out
    group.slots["front"].put(Frame("front9", 99))
    threading.Timer(0.05, group.close).start()
    assert group.take_many(3, 30.0, timeout=0) == []


class _InFlightStandIn:
    """A pipeline that keeps up to ``in_flight`` frames in the network and lets them land in
    a shuffled order (from threads of its own, as OpenVINO's callbacks do)."""

    def __init__(self, in_flight: int = 3, seed: int = 0) -> None:
        import random
        import threading

        self.in_flight = in_flight
        self.max_batch = self.auto_batch = 1
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.started = 0

    def prepare(self, array, color_order, options):
        return {"array": array}

    def infer_async(self, staged, want_confidence, done):
        import threading
        import time

        with self._lock:
            self.running += 1
            self.started += 1
            self.most_running = max(self.most_running, self.running)
            delay = self._rng.uniform(0.0, 0.03)

        def land():
            time.sleep(delay)
            staged["labels"] = staged["array"][..., 0].copy()
            with self._lock:
                self.running -= 1
            done(staged, None)

        threading.Thread(target=land, daemon=True).start()

    def finish(self, staged, want_color, want_overlay):
        return SimpleNamespace(
            labels=staged["labels"], color=None, overlay=None, confidence=None, timings={}
        )


def test_frames_in_flight_leave_in_order_each_with_its_own_header() -> None:
    import threading
    import time

    import numpy as np

    from seg_ros.inference.pipeline import FrameOptions
    from seg_ros.ros.latest_frame import Frame, SlotGroup
    from seg_ros.ros.node.frame_loop import CameraFrames, FrameLoop, LoopHooks
    from seg_ros.ros.node.serving import Served

    pipeline = _InFlightStandIn(in_flight=3)
    served = Served(pipeline, FrameOptions(), {})
    published: list[tuple[str, str, int]] = []
    lock = threading.Lock()

    def camera(name):
        def publish(output, array, header):
            with lock:
                published.append((name, header.frame_id, int(array[0, 0])))

        return SimpleNamespace(
            name=name,
            frames=CameraFrames(),
            wanted=lambda: ["labels"],
            publish=publish,
            publish_info=lambda header, size: None,
        )

    names = ["front", "left", "right"]
    group = SlotGroup(names)
    cameras = {n: camera(n) for n in names}
    hooks = LoopHooks(
        served=lambda: served,
        batching=lambda: (0, 0.0),
        decode=lambda msg: SimpleNamespace(array=msg.array, color_order="rgb"),
        stamp_ns=lambda header: 0,
        now_ns=time.monotonic_ns,
        alive=lambda: True,
        log_error=lambda text: None,
        on_bad_input=lambda count, reason: None,
    )
    loop = FrameLoop(group, cameras, hooks)
    loop.start()
    sent = {n: [] for n in names}
    for i in range(40):
        for n in names:  # the worker takes each camera's newest frame; some are replaced
            value = (i * 3 + names.index(n)) % 250
            msg = SimpleNamespace(
                array=np.full((2, 2, 3), value, np.uint8),
                header=SimpleNamespace(frame_id=f"{n}_{i}"),
            )
            sent[n].append((f"{n}_{i}", value))
            group.slots[n].put(Frame(msg, time.monotonic_ns()))
        time.sleep(0.004)
    time.sleep(0.3)
    loop.stop()  # the frames in flight land and are published before it returns
    assert pipeline.running == 0 and loop.in_flight() == 0
    assert pipeline.most_running == 3, "three cameras' frames were in the network together"
    assert len(published) == pipeline.started > 10
    values = {frame_id: value for n in names for frame_id, value in sent[n]}
    for name, frame_id, value in published:  # each output carries its own frame's header
        assert frame_id.startswith(name) and values[frame_id] == value
    for n in names:  # and each camera's outputs leave in the order its frames came
        order = [int(f.split("_")[1]) for c, f, _ in published if c == n]
        assert order == sorted(order) and len(set(order)) == len(order)


def test_label_info_follows_vision_msgs_conventions() -> None:
    """vision_msgs is no registry package here: LabelInfo is checked against a stand-in with
    its fields (header, class_map of VisionClass(class_id, class_name), threshold)."""
    from dataclasses import dataclass, field

    from seg_ros.labels import CAMVID
    from seg_ros.ros.node.model_info import label_info, model_values

    @dataclass
    class VisionClass:
        class_id: int = 0
        class_name: str = ""

    @dataclass
    class LabelInfo:
        header: object = field(default_factory=lambda: SimpleNamespace(stamp=None))
        class_map: list = field(default_factory=list)
        threshold: float = 0.0

    meta = SimpleNamespace(
        class_names=list(CAMVID.classes), palette=[list(c) for c in CAMVID.palette]
    )
    msg = label_info(meta, LabelInfo, VisionClass)
    ids = [c.class_id for c in msg.class_map]
    assert ids == [*range(len(CAMVID.classes)), 255]  # 255: unlabeled, as vision_msgs has it
    assert [c.class_name for c in msg.class_map] == [*CAMVID.classes, "unlabeled"]
    values = model_values(meta)
    assert values["class_names"] == list(CAMVID.classes)
    assert values["class_colors"][:3] == list(CAMVID.palette[0])
    assert len(values["class_colors"]) == 3 * len(CAMVID.classes)


def test_camera_info_is_scaled_to_the_labels_and_paired_by_stamp() -> None:
    from sensor_msgs.msg import CameraInfo

    from seg_ros.ros.camera_info import KEEP, CameraInfoPairs, camera_info_topic, scaled

    assert camera_info_topic("/cam/image_raw") == "/cam/camera_info"
    assert camera_info_topic("/robot/front/image") == "/robot/front/camera_info"
    info = CameraInfo(width=640, height=480, distortion_model="plumb_bob")
    info.k = [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]
    info.p = [500.0, 0.0, 320.0, -25.0, 0.0, 510.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.roi.x_offset, info.roi.width, info.roi.y_offset, info.roi.height = 64, 320, 48, 240
    header = SimpleNamespace(frame_id="labels")
    out = scaled(info, 480, 360, header)  # 640x480 -> 480x360: 0.75 both ways
    assert (out.width, out.height) == (480, 360) and out.header is header
    assert list(out.k) == [375.0, 0.0, 240.0, 0.0, 382.5, 180.0, 0.0, 0.0, 1.0]
    assert list(out.p)[:7] == [375.0, 0.0, 240.0, -18.75, 0.0, 382.5, 180.0]
    assert (out.roi.x_offset, out.roi.width, out.roi.y_offset, out.roi.height) == (48, 240, 36, 180)
    assert info.width == 640 and info.k[0] == 500.0  # the camera's own is unchanged
    pairs = CameraInfoPairs()
    for stamp in range(KEEP + 3):
        pairs.put(stamp, stamp)
    assert pairs.take(KEEP + 2) == KEEP + 2 and pairs.take(KEEP + 2) is None
    assert pairs.take(0) is None  # fell out of the window: counted as matching no frame
    assert (pairs.received, pairs.unmatched) == (KEEP + 3, 3)
