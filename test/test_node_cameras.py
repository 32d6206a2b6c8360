"""Several cameras in one node over real DDS: each camera's outputs carry its own headers and
never another camera's; a camera that stops goes stale in its own diagnostics status while the
others keep being served; a cameras list the node cannot serve stops it with the reason."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time

import pytest
from ros_fixtures import RESEND_AFTER, NodeProcess, scene, wait_for
from weights_helpers import make_weights

pytest.importorskip("rclpy", reason="the ROS 2 wheels (ros-rclpy) are not installed")

from seg_ros.ros.contract import status_name
from seg_ros.ros.node_process import node_command, node_environment

CAMERAS = ("front", "left", "right")
STALE = b"\x03"


@pytest.fixture(scope="module")
def node(ros_probe, tmp_path_factory):
    d = tmp_path_factory.mktemp("cameras")
    weights = make_weights(d / "w.safetensors", "fplnet", "full")
    namespace = f"/seg_cams_{os.getpid()}"
    params = {
        "weights": str(weights),
        "cameras": list(CAMERAS),
        "target_rate": 0.0,
        "diagnostics_period": 0.5,
        "publish_color": False,
        "publish_overlay": False,
    }
    process = NodeProcess("seg_cams", params, d, namespace=namespace)
    yield process
    assert process.stop() == 0, process.log()[-3000:]


class Camera:
    """One camera's peer: publishes frames with its own frame_id prefix, collects the labels
    that come back on its own namespace (the package's client)."""

    def __init__(self, namespace: str, camera: str, node_fqn: str, decode: bool = False) -> None:
        from seg_ros.ros.client import SegmentationClient

        self.name = camera
        self.results: list = []
        self.sent: dict[str, int] = {}
        self.client = SegmentationClient(
            namespace=f"{namespace}/{camera}",
            node_name=f"peer_{camera}",
            outputs=("labels",),
            decode=decode,
            tune_dds=False,
            on_result=self.results.append,
            diagnostics_name=status_name(node_fqn, camera),
        )

    def publish(self, frame_id: str) -> None:
        self.sent[frame_id] = self.client.publish(scene(60, 80, seed=len(self.sent)), frame_id)


def stream(cameras: list[Camera], stop: threading.Event, rate: float = 5.0) -> None:
    n = 0
    while not stop.is_set():
        for cam in cameras:
            cam.publish(f"{cam.name}_{n}")
        n += 1
        stop.wait(1.0 / rate)


def test_each_camera_gets_its_own_outputs_and_a_stopped_one_goes_stale(node) -> None:
    cams = [Camera(node.namespace, c, node.fqn) for c in CAMERAS]
    try:
        for cam in cams:
            assert cam.client.wait_ready(90, node.alive), cam.client.describe_matching()
        stop = threading.Event()
        thread = threading.Thread(target=stream, args=(cams, stop), daemon=True)
        thread.start()
        try:
            wait_for(lambda: all(len(c.results) >= 3 for c in cams), 90, "3 results per camera")
        finally:
            stop.set()
            thread.join(10)
        for cam in cams:
            for result in cam.results:
                assert result.frame_id.startswith(f"{cam.name}_"), (cam.name, result.frame_id)
                assert result.stamp_ns == cam.sent[result.frame_id], "the camera's own stamp"
            wait_for(lambda c=cam: c.client.diagnostics, 30, f"{cam.name}'s status")
            assert cam.client.diagnostics["Input topic"].endswith(f"/{cam.name}/image")
            if cam.client.diagnostics["Backend"] == "openvino (auto)":
                batching = cam.client.diagnostics["Batching"]
                assert batching == "off: openvino runs one frame at a time", batching

        # right stops, front and left go on: right's status goes stale, theirs does not
        right = cams[2]
        counted = {c.name: len(c.results) for c in cams}
        stop = threading.Event()
        thread = threading.Thread(target=stream, args=(cams[:2], stop), daemon=True)
        thread.start()
        try:
            wait_for(lambda: right.client.diagnostics_level == STALE, 30, "right to go stale")
            wait_for(
                lambda: all(len(c.results) >= counted[c.name] + 3 for c in cams[:2]),
                60,
                "front and left served on",
            )
            time.sleep(1.5)  # a few more status periods
            for cam in cams[:2]:
                assert cam.client.diagnostics_level != STALE, cam.client.diagnostics_message
        finally:
            stop.set()
            thread.join(10)
        assert len(right.results) == counted["right"]
    finally:
        for cam in cams:
            cam.client.close()
    assert node.alive(), node.log()[-3000:]


@contextlib.contextmanager
def streaming_cameras(node):
    """The three cameras streaming into ``node``, each answered twice already; closed after."""
    cams = [Camera(node.namespace, c, node.fqn) for c in CAMERAS]
    stop = threading.Event()
    thread = threading.Thread(target=stream, args=(cams, stop), daemon=True)
    try:
        for cam in cams:
            assert cam.client.wait_ready(90, node.alive), cam.client.describe_matching()
        thread.start()
        wait_for(lambda: all(len(c.results) >= 2 for c in cams), 90, "results from every camera")
        yield cams
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(10)
        for cam in cams:
            cam.client.close()
    assert node.alive(), node.log()[-3000:]


def served_again(cams: list[Camera], what: str) -> None:
    counted = {c.name: len(c.results) for c in cams}
    wait_for(lambda: all(len(c.results) >= counted[c.name] + 2 for c in cams), 90, what)


def test_a_model_switch_serves_every_camera_with_the_new_model(node, ros_probe, tmp_path) -> None:
    encoder = make_weights(tmp_path / "encoder.safetensors", "fplnet", "encoder")
    with streaming_cameras(node) as cams:
        result = ros_probe.set_parameters(
            node.fqn, {"variant": "encoder", "weights": str(encoder)}, atomically=True
        )
        assert result.successful, result.reason
        wait_for(
            lambda: all(c.client.diagnostics.get("Variant") == "encoder" for c in cams),
            180,
            "every camera's status to name the new variant",
        )
        served_again(cams, "every camera answered by the new model")


def test_deactivate_and_activate_serve_every_camera_again(node, ros_probe) -> None:
    with streaming_cameras(node) as cams:
        assert ros_probe.lifecycle_transition(node.fqn, "deactivate")
        wait_for(
            lambda: all(c.client.publisher.get_subscription_count() == 0 for c in cams),
            30,
            "every camera's input unsubscribed",
        )
        assert ros_probe.lifecycle_transition(node.fqn, "activate")
        served_again(cams, "every camera served again after activate")


@pytest.mark.parametrize(
    ("cameras", "words"),
    [
        ("['front', 'front']", "listed twice"),
        ("['front', 'le ft']", "not namespaces"),
        ("[]", "an empty list"),
    ],
)
def test_cameras_it_cannot_serve_stop_it_with_the_reason(tmp_path, cameras, words) -> None:
    cmd = node_command("seg_bad_cams", f"/seg_bad_cams_{os.getpid()}")
    cmd += ["-p", f"cameras:={cameras}", "-p", "model:=fplnet"]
    done = subprocess.run(
        cmd,
        check=False,
        env=node_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert words in done.stderr


def send_round(
    cams: list[Camera], images: dict, n: int, node: NodeProcess, timeout: float = 60.0
) -> None:
    """Every camera sends frame ``n`` at once; a camera whose labels have not come back is sent
    it again every RESEND_AFTER s: a frame written in the instant after the first match (just
    after wait_ready) can be lost between reliable peers, and one lost frame must not fail a
    test of batching. A node that never answers still fails it."""

    def answered(cam: Camera) -> bool:
        return any(r.frame_id == f"{cam.name}_{n}" for r in cam.results)

    deadline = time.monotonic() + timeout
    waiting = list(cams)
    while waiting:
        if time.monotonic() > deadline:
            names = [c.name for c in waiting]
            log = node.log()[-3000:]
            raise AssertionError(f"round {n}: no labels for {names} in {timeout:.0f} s:\n{log}")
        for cam in waiting:
            cam.client.publish(images[cam.name], f"{cam.name}_{n}")
        resend = min(time.monotonic() + RESEND_AFTER, deadline)
        while time.monotonic() < resend and not all(answered(c) for c in waiting):
            time.sleep(0.02)
        waiting = [c for c in waiting if not answered(c)]


def test_frames_that_arrive_together_run_as_one_batch_each_with_its_own_labels(
    ros_probe, tmp_path
) -> None:
    """torch batches when asked (max_batch 8 on a CPU): three cameras' frames sent together
    run as one batch, and each camera's labels are the ones its own image gives alone. The
    shipped weights, because random ones label every scene alike and a mix-up would pass."""
    from seg_ros.inference.loading import shipped_weights
    from seg_ros.inference.pipeline import Pipeline

    weights = shipped_weights("fplnet")
    size = (96, 128)
    params = {
        "weights": str(weights),
        "backend": "torch",
        "cameras": list(CAMERAS),
        "max_batch": 8,  # on a CPU torch batches only when asked (on CUDA: max_batch 0)
        "batch_wait_ms": 100.0,
        "input_height": size[0],
        "input_width": size[1],
        "target_rate": 0.0,
        "diagnostics_period": 0.5,
        "publish_color": False,
        "publish_overlay": False,
    }
    namespace = f"/seg_batch_{os.getpid()}"
    node = NodeProcess("seg_batch", params, tmp_path, namespace=namespace)
    images = {c: scene(96, 128, seed=10 + i) for i, c in enumerate(CAMERAS)}
    reference = Pipeline(model="fplnet", weights=str(weights), backend="torch", input_size=size)
    expected = {c: reference(image).labels for c, image in images.items()}
    cams = [Camera(namespace, c, node.fqn, decode=True) for c in CAMERAS]
    try:
        for cam in cams:
            assert cam.client.wait_ready(90, node.alive), cam.client.describe_matching()
        for n in range(4):
            send_round(cams, images, n, node)
        for cam in cams:
            for result in cam.results:
                assert result.frame_id.startswith(f"{cam.name}_")
                labels = result.outputs["labels"]
                own = (labels == expected[cam.name]).mean()
                others = max((labels == expected[o]).mean() for o in CAMERAS if o != cam.name)
                assert own >= 0.99 > others, (cam.name, own, others)
        wait_for(
            lambda: all(
                int(c.client.diagnostics.get("Frames run in batches", 0)) >= 3 for c in cams
            ),
            30,
            "every camera's status to count its frames run in batches",
        )
        for cam in cams:
            status = cam.client.diagnostics
            assert status["Batching"] == "up to 3 frames, waiting at most 100 ms", status
        # set at run time, like every parameter; an out-of-range value is refused
        assert not ros_probe.set_parameters(node.fqn, {"max_batch": 99})[0].successful
        for value, batching in [
            (1, "off: max_batch 1"),
            (0, "off: torch on cpu batches only when max_batch is set"),
        ]:
            assert ros_probe.set_parameters(node.fqn, {"max_batch": value})[0].successful
            wait_for(
                lambda b=batching: all(c.client.diagnostics["Batching"] == b for c in cams),
                30,
                f"{batching!r} in every camera's status",
            )
    finally:
        for cam in cams:
            cam.client.close()
        assert node.stop() == 0, node.log()[-3000:]


def run_cameras_bench(args: str, tmp_path) -> list[dict]:
    """seg-cameras-bench with ``args`` on an encoder network; its JSON results."""
    import json

    from seg_ros.tools import cameras_bench

    weights = make_weights(tmp_path / "w.safetensors", "fplnet", "encoder")
    out = tmp_path / "cameras.json"
    logs = tmp_path / "logs"  # a new folder: the tool writes only into one it may own
    code = cameras_bench.main(
        [*args.split(), "--weights", str(weights), "--json", str(out), "--log-dir", str(logs)]
    )
    assert code == 0
    return json.loads(out.read_text())["results"]


def test_cameras_bench_compares_batched_and_unbatched_in_one_run(tmp_path, capsys) -> None:

    args = "--cameras 2 --rate 5 --seconds 3 --warmup 2 --size 48x64 --backend torch"
    args += " --layouts one-node one-node-unbatched --max-batch 2 --batch-wait-ms 50"
    results = run_cameras_bench(args, tmp_path)
    assert [r["layout"] for r in results] == ["one-node", "one-node-unbatched"]
    for r in results:
        assert all(c["answered"] > 0 for c in r["cameras"].values()), r
    assert "one-node-unbatched" in capsys.readouterr().out
    batched = (tmp_path / "logs" / "one-node.log").read_text()
    assert "batching: up to 2 frames, waiting at most 50 ms" in batched, batched[-2000:]
    unbatched = (tmp_path / "logs" / "one-node-unbatched.log").read_text()
    assert "batching: off: max_batch 1" in unbatched, unbatched[-2000:]


def test_cameras_bench_runs_the_cameras_frames_in_flight(tmp_path) -> None:
    """one-node-throughput: the three cameras' frames share OpenVINO's requests."""

    pytest.importorskip("openvino")

    args = "--cameras 3 --rate 5 --seconds 3 --warmup 2 --size 48x64 --backend openvino"
    args += " --threads 2 --layouts one-node-throughput"
    (result,) = run_cameras_bench(args, tmp_path)
    assert all(c["answered"] > 0 for c in result["cameras"].values()), result
    log = (tmp_path / "logs" / "one-node-throughput.log").read_text()
    assert "throughput: up to" in log and "frames in flight" in log, log[-2000:]
