"""ROS 2 test plumbing: a private DDS domain per pytest session, an rclpy probe node that talks
to the nodes under test over real DDS, segmentation nodes run as separate processes, and the
images they are fed (weights: weights_helpers.py).

conftest.py imports the fixtures, so every test module can use them; the helpers are imported
by name (``from ros_fixtures import ...``).
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seg_ros.ros.dds_tuning import PROFILE_VARIABLES
from seg_ros.ros.node_process import node_command, node_environment, stop_process

SOURCE_ROOT = Path(__file__).resolve().parent.parent
# Generous: a loaded two-core CI machine starts torch, DDS and a model in a node process.
STARTUP_TIMEOUT = 90.0
WAIT_TIMEOUT = 45.0
RESEND_AFTER = 10.0
# Lifecycle transition -> (lifecycle_msgs Transition constant, the state it leads to).
TRANSITIONS = {
    "configure": ("TRANSITION_CONFIGURE", "inactive"),
    "activate": ("TRANSITION_ACTIVATE", "active"),
    "deactivate": ("TRANSITION_DEACTIVATE", "inactive"),
    "cleanup": ("TRANSITION_CLEANUP", "unconfigured"),
    "shutdown": ("TRANSITION_INACTIVE_SHUTDOWN", "finalized"),
}


@pytest.fixture(scope="session", autouse=True)
def ros_domain() -> int:
    """A ROS_DOMAIN_ID of this session's own and localhost-only discovery, for this process
    and every node it starts, so concurrent test runs on one machine never see each other's
    topics. No Fast DDS variables: the node must work with default-configured peers."""
    domain = random.Random().randint(100, 200)
    saved = {k: os.environ.get(k) for k in _ENV}
    os.environ.update(
        ROS_DOMAIN_ID=str(domain),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
    )
    for key in ("ROS_STATIC_PEERS", "FASTDDS_BUILTIN_TRANSPORTS", *PROFILE_VARIABLES):
        os.environ.pop(key, None)
    yield domain
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_ENV = (
    "ROS_DOMAIN_ID",
    "ROS_AUTOMATIC_DISCOVERY_RANGE",
    "FASTDDS_BUILTIN_TRANSPORTS",
    "ROS_STATIC_PEERS",
    *PROFILE_VARIABLES,
)


def wait_for(
    condition: Callable[[], Any], timeout: float = WAIT_TIMEOUT, what: str = "condition"
) -> Any:
    """Poll until ``condition()`` is truthy; return its value or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class Collector:
    """Messages of one subscription, in arrival order (with monotonic arrival times)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self.messages.append(msg)
            self.times.append(time.monotonic())

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.messages)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.times.clear()

    def wait(self, count: int = 1, timeout: float = WAIT_TIMEOUT, what: str = "") -> list[Any]:
        wait_for(lambda: len(self.messages) >= count, timeout, what or f"{count} message(s)")
        return self.snapshot()


class Probe:
    """An rclpy node in the test process, spun by a background executor."""

    def __init__(self, name: str) -> None:
        from seg_ros.ros.background_node import BackgroundNode

        self._ros = BackgroundNode(name, threads=2)
        self.node = self._ros.node
        self._ros.start()
        self._clients: dict[tuple[str, str], Any] = {}

    def close(self) -> None:
        self._ros.close()

    # -- topics

    def collect(self, msg_type: Any, topic: str, qos: Any = 10) -> Collector:
        collector = Collector()
        collector.subscription = self.node.create_subscription(msg_type, topic, collector, qos)
        return collector

    def uncollect(self, collector: Collector) -> None:
        self.node.destroy_subscription(collector.subscription)

    def publisher(self, msg_type: Any, topic: str, qos: Any = 10) -> Any:
        return self.node.create_publisher(msg_type, topic, qos)

    def now(self) -> Any:
        return self.node.get_clock().now()

    # -- services

    def call(
        self,
        srv_type: Any,
        name: str,
        request: Any,
        timeout: float = WAIT_TIMEOUT,
        resend: Callable[[], bool] | None = lambda: True,
    ) -> Any:
        """Call ``name`` and return its reply. ``wait_for_service`` only says the server's
        request reader is matched: a server that answers before it has matched this client's
        reply reader drops the reply (Fast DDS waits ~100 ms for that match; a loaded CI
        machine can take longer: measured, one lost get_state in a clean-clone run). So an
        unanswered request is sent again every RESEND_AFTER seconds while ``resend()`` says
        that is safe (the default: queries), and the first reply wins."""
        key = (srv_type.__name__, name)
        if key not in self._clients:
            self._clients[key] = self.node.create_client(srv_type, name)
        client = self._clients[key]
        if not client.wait_for_service(timeout_sec=timeout):
            raise AssertionError(f"service {name} not available after {timeout:.0f} s")
        deadline = time.monotonic() + timeout
        futures = [client.call_async(request)]
        while True:
            try:
                wait_for(
                    lambda: any(f.done() for f in futures),
                    min(RESEND_AFTER, max(0.0, deadline - time.monotonic())),
                    f"a reply from {name}",
                )
                return next(f for f in futures if f.done()).result()
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise AssertionError(
                        f"timed out after {timeout:.0f} s waiting for a reply from {name}"
                        f" ({len(futures)} request(s) sent)"
                    ) from None
                if resend is not None and resend():
                    futures.append(client.call_async(request))

    def set_parameters(self, node: str, values: dict[str, Any], atomically: bool = False) -> Any:
        """SetParameters(Atomically) on ``node``; the list of results (or the one result)."""
        from rcl_interfaces.srv import SetParameters, SetParametersAtomically
        from rclpy.parameter import Parameter

        params = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        if atomically:
            request = SetParametersAtomically.Request(parameters=params)
            return self.call(
                SetParametersAtomically, f"{node}/set_parameters_atomically", request
            ).result
        reply = self.call(
            SetParameters, f"{node}/set_parameters", SetParameters.Request(parameters=params)
        )
        return reply.results

    def get_parameters(self, node: str, names: list[str]) -> dict[str, Any]:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        reply = self.call(
            GetParameters, f"{node}/get_parameters", GetParameters.Request(names=names)
        )
        return {n: parameter_value_to_python(v) for n, v in zip(names, reply.values, strict=True)}

    def describe_parameters(self, node: str, names: list[str]) -> dict[str, Any]:
        from rcl_interfaces.srv import DescribeParameters

        request = DescribeParameters.Request(names=names)
        reply = self.call(DescribeParameters, f"{node}/describe_parameters", request)
        return {d.name: d for d in reply.descriptors}

    def lifecycle_state(self, node: str) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, f"{node}/get_state", GetState.Request()).current_state.label

    def lifecycle_transition(self, node: str, transition: str) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        constant, target = TRANSITIONS[transition]
        request = ChangeState.Request(transition=Transition(id=getattr(Transition, constant)))
        before = self.lifecycle_state(node)

        # A transition is not a query: send it again only while the state is still the one it
        # started from (the first request never ran, or failed and will fail again alike).
        def unchanged() -> bool:
            return self.lifecycle_state(node) == before

        # It ran if the node is now where it leads; its reply was lost, or a resent copy's
        # refusal came first.
        def ran() -> bool:
            return before != target and self.lifecycle_state(node) == target

        name = f"{node}/change_state"
        try:
            reply = self.call(ChangeState, name, request, STARTUP_TIMEOUT, resend=unchanged)
        except AssertionError:
            if ran():
                return True
            raise
        return reply.success or ran()


@pytest.fixture(scope="session")
def ros_probe(ros_domain: int) -> Probe:
    probe = Probe(f"seg_test_probe_{os.getpid()}")
    yield probe
    probe.close()


class NodeProcess:
    """The segmentation node in its own process, with seg_ros.ros.node_process's command line,
    environment and stop, logging to log_dir/<name>.log.

    The node writes that file itself, not through node_process.NodeProcess's pipe and reader
    thread: a test that reads the log finds every line the node has written by then.
    """

    def __init__(
        self, name: str, params: dict[str, Any], log_dir: Path, namespace: str = "/"
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.fqn = f"{namespace.rstrip('/')}/{name}"
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("w")
        # The node runs the seg_ros this test imports (the checkout), not an installed copy.
        self.process = subprocess.Popen(
            node_command(name, namespace, params),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=node_environment(),
            cwd=str(log_dir),
        )

    def topic(self, relative: str) -> str:
        return f"{self.namespace.rstrip('/')}/{relative}"

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        code = stop_process(self.process, timeout)
        self._log.close()
        return code


# ---------------------------------------------------------------- segmentation node helpers

OUTPUTS = ("labels", "color", "overlay")  # on by default: what roundtrip waits for
COLLECTED = (*OUTPUTS, "confidence")


def scene(height: int = 90, width: int = 120, seed: int = 0) -> np.ndarray:
    """A blocky RGB test image: distinct colours, so the network's labels vary across it."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = np.repeat(np.repeat(blocks, -(-height // 6), axis=0), -(-width // 8), axis=1)
    return np.ascontiguousarray(image[:height, :width])


def image_msg(
    array: np.ndarray, encoding: str, frame_id: str, stamp: tuple[int, int] = (1, 0)
) -> Any:
    from sensor_msgs.msg import Image

    from seg_ros.ros.image_msgs import to_image_msg

    msg = to_image_msg(array, encoding, _header(frame_id, stamp))
    assert isinstance(msg, Image)
    return msg


def _header(frame_id: str, stamp: tuple[int, int]) -> Any:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    return Header(frame_id=frame_id, stamp=Time(sec=stamp[0], nanosec=stamp[1]))


def raw_image(height: int, width: int, encoding: str, step: int, data: bytes, frame_id: str) -> Any:
    """An Image with exactly these fields, however wrong they are."""
    import array

    from sensor_msgs.msg import Image

    msg = Image(height=height, width=width, encoding=encoding, step=step)
    msg.header = _header(frame_id, (1, 0))
    msg.data = array.array("B", data)
    return msg


class NodeUnderTest:
    """A segmentation node process, and its other side: the package's own client
    (``ros/client.py``) in this process, kept at Fast DDS' defaults as a user's camera and
    viewer are. Every output and diagnostics message is collected as it arrives."""

    def __init__(
        self,
        probe: Probe,
        name: str,
        params: dict[str, Any],
        log_dir: Path,
        namespace: str,
        camera: bool = True,
    ) -> None:
        """``camera``: the client also publishes images (best effort) to the node's input;
        False leaves the input to other processes."""
        from seg_ros.ros.client import SegmentationClient
        from seg_ros.ros.contract import status_name

        self.probe = probe
        self.process = NodeProcess(name, params, log_dir, namespace=namespace)
        self.fqn = self.process.fqn
        self.status_name = status_name(self.fqn)
        self.outputs = {o: Collector() for o in COLLECTED}
        self.diagnostics = Collector()
        self.client = SegmentationClient(
            namespace=namespace,
            node_name=f"{name}_peer",
            outputs=COLLECTED,
            input_qos="sensor_data",
            decode=False,
            publish_frames=camera,
            tune_dds=False,
            on_output_msg=lambda output, msg: self.outputs[output](msg),
            on_diagnostics_msg=self.diagnostics,
        )
        self.image_pub = self.compressed_pub = None
        if camera:
            from sensor_msgs.msg import CompressedImage, Image

            self.image_pub = self.client.publishers[Image]
            self.compressed_pub = self.client.publishers[CompressedImage]

    def close(self) -> int:
        self.client.close()
        return self.process.stop()

    # -- diagnostics

    def statuses(self) -> list[Any]:
        return [
            s
            for array in self.diagnostics.snapshot()
            for s in array.status
            if s.name == self.status_name
        ]

    def status(self) -> Any | None:
        statuses = self.statuses()
        return statuses[-1] if statuses else None

    def wait_status(self, predicate: Any, timeout: float = WAIT_TIMEOUT, what: str = "") -> Any:
        """The first diagnostics status from now on that satisfies ``predicate``."""
        seen = len(self.statuses())

        def check() -> Any:
            for status in self.statuses()[seen:]:
                if predicate(status, values(status)):
                    return status
            self.assert_alive()
            return None

        return wait_for(check, timeout, what or "a matching diagnostics status")

    def wait_active(self, timeout: float = 90.0) -> None:
        self.wait_status(
            lambda s, v: v.get("Lifecycle state") == "active", timeout, "the node to be active"
        )
        topic = self.process.topic("image")
        wait_for(
            lambda: self.probe.node.count_subscribers(topic) > 0, timeout, "the node's subscription"
        )

    def assert_alive(self) -> None:
        assert self.process.alive(), f"node died:\n{self.process.log()[-4000:]}"

    # -- frames

    def roundtrip(
        self,
        msg: Any,
        outputs: tuple[str, ...] = OUTPUTS,
        timeout: float = WAIT_TIMEOUT,
        compressed: bool = False,
    ) -> dict[str, Any]:
        """Publish ``msg`` (re-sending now and then: input is best effort) until every output
        in ``outputs`` came back with its frame_id."""
        frame_id = msg.header.frame_id
        pub = self.compressed_pub if compressed else self.image_pub
        found: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pub.publish(msg)
            resend = time.monotonic() + 3.0
            while time.monotonic() < min(resend, deadline):
                for name in outputs:
                    for out in self.outputs[name].snapshot():
                        if out.header.frame_id == frame_id:
                            found[name] = out
                if len(found) == len(outputs):
                    return found
                self.assert_alive()
                time.sleep(0.02)
        raise AssertionError(
            f"no {sorted(set(outputs) - set(found))} output for frame {frame_id!r} in "
            f"{timeout:.0f} s; node log:\n{self.process.log()[-3000:]}"
        )


def values(status: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


class Streamer:
    """Publishes frames at ``rate`` Hz from a thread; frame_id = '<prefix><n>'."""

    def __init__(self, pub: Any, frame: np.ndarray, rate: float, prefix: str = "s") -> None:
        self.pub, self.frame, self.period, self.prefix = pub, frame, 1.0 / rate, prefix
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Streamer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        next_time = time.monotonic()
        while not self._stop.is_set():
            ns = time.time_ns()
            msg = image_msg(
                self.frame, "rgb8", f"{self.prefix}{self.sent}", (ns // 10**9, ns % 10**9)
            )
            self.pub.publish(msg)
            self.sent += 1
            next_time += self.period
            self._stop.wait(max(0.0, next_time - time.monotonic()))


def collected(collector: Collector, prefix: str) -> list[Any]:
    return [m for m in collector.snapshot() if m.header.frame_id.startswith(prefix)]
