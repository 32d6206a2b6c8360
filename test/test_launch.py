"""launch/segmentation.launch.py under the real launch_ros.

launch and launch_ros are not on PyPI (its ``launch`` is another project), so these tests run
where a ROS 2 install (or a workspace) provides them and skip elsewhere. The node is found
through the ament index, so seg_ros must be installed (``make install``; colcon in a
workspace) with AMENT_PREFIX_PATH covering the prefix.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ros_fixtures import SOURCE_ROOT, image_msg, scene, wait_for

LAUNCH_FILE = SOURCE_ROOT / "launch" / "segmentation.launch.py"
needs_launch_ros = pytest.mark.skipif(
    importlib.util.find_spec("launch_ros") is None,
    reason="launch_ros is not importable: it comes with a ROS 2 install, not from PyPI",
)


def _documented_arguments() -> set[str]:
    """The README's "Launch arguments:" paragraph: what users are told they can pass."""
    text = (SOURCE_ROOT / "README.md").read_text()
    paragraph = text[text.index("Launch arguments:") :].split("\n\n", 1)[0]
    return set(re.findall(r"`([a-z_]+)`", paragraph.split(". Every other", 1)[0]))


def _launch_file_constants() -> tuple[set[str], tuple[str, ...]]:
    """Declared argument names and NODE_OVERRIDES, read from the file's source: no launch."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    declared = {
        call.args[0].value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "DeclareLaunchArgument"
    }
    (overrides,) = (
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NODE_OVERRIDES"
    )
    return declared, overrides


def test_launch_file_declares_what_the_readme_documents() -> None:
    # Runs without launch_ros (CI): launch accepts an undeclared `name:=value` and drops it
    # without a word, so a documented argument the file does not declare reaches nothing.
    from seg_ros.ros.parameters import SPEC_BY_NAME

    declared, overrides = _launch_file_constants()
    assert declared == _documented_arguments()
    assert {"model", "backend", "precision", "engine", "cameras"} <= declared
    # Each override is a declared argument naming a string parameter of the node (the launch
    # file passes them typed as strings).
    assert set(overrides) <= declared
    for name in overrides:
        assert isinstance(SPEC_BY_NAME[name].default, str), name


# What `ros2 launch` does with a launch file and its arguments.
DRIVER = """
import sys
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
args = dict(a.split(":=", 1) for a in sys.argv[2:])
service = LaunchService()
source = PythonLaunchDescriptionSource(sys.argv[1])
service.include_launch_description(
    LaunchDescription([IncludeLaunchDescription(source, launch_arguments=args.items())])
)
sys.exit(service.run())
"""


def _load_module():
    spec = importlib.util.spec_from_file_location("segmentation_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_launch_ros
def test_declares_the_documented_arguments() -> None:
    from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable

    description = _load_module().generate_launch_description()
    declared = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    # What the static test above reads from the source is what launch sees.
    assert declared == _launch_file_constants()[0] == _documented_arguments()
    # No DDS variable for the processes it starts: LARGE_DATA cut the node off from every
    # default-configured peer (camera, RViz, the ros2 CLI).
    assert not [e for e in description.entities if isinstance(e, SetEnvironmentVariable)]


@needs_launch_ros
def test_rviz_layout_follows_namespace_and_camera(tmp_path: Path) -> None:
    module = _load_module()
    path = module._rviz_config(
        str(SOURCE_ROOT / "config" / "segmentation.rviz"), "/camera/image_raw", "front"
    )
    try:
        displays = yaml.safe_load(Path(path).read_text())["Visualization Manager"]["Displays"]
    finally:
        os.unlink(path)
    topics = {d["Name"]: d["Topic"]["Value"] for d in displays}
    assert topics == {
        "Camera": "/camera/image_raw",
        "Overlay": "/front/segmentation/overlay",
        "Colour mask": "/front/segmentation/color",
    }


def _installed() -> bool:
    try:
        from ament_index_python.packages import get_package_prefix

        prefix = Path(get_package_prefix("seg_ros"))
    except Exception:
        return False
    return (prefix / "lib" / "seg_ros" / "segmentation_node").is_file()


@contextlib.contextmanager
def _launched(args: list[str], tmp_path: Path) -> Iterator[None]:
    """ros2 launch's own machinery on the launch file with ``args``; stopped with SIGINT as
    a user's Ctrl-C, and required to finish cleanly."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # The node runs the checkout's seg_ros; the launch machinery finds it via the ament index.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH")) if p)
    log = (tmp_path / "launch.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(LAUNCH_FILE), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
    text = (tmp_path / "launch.log").read_text()
    assert "process has finished cleanly" in text, text[-3000:]


def _frame_back(ros_probe, namespace: str, camera: str, frame_id: str) -> Any:
    """Publish a frame to the launched node's camera until its labels come back; them."""
    from sensor_msgs.msg import Image

    labels = ros_probe.collect(Image, f"/{namespace}/segmentation/labels")
    pub = ros_probe.publisher(Image, camera)
    wait_for(lambda: pub.get_subscription_count() > 0, 120, "the launched node's subscription")

    def back() -> Any:
        pub.publish(image_msg(scene(), "rgb8", frame_id))
        return next((m for m in labels.snapshot() if m.header.frame_id == frame_id), None)

    return wait_for(back, 120, "labels for a frame sent to the remapped camera topic")


@needs_launch_ros
@pytest.mark.skipif(
    not _installed(), reason="seg_ros is not installed in an ament prefix (make install)"
)
def test_launch_starts_a_working_node(ros_probe, tmp_path: Path) -> None:
    namespace = f"launch_{os.getpid()}"
    camera = f"/launch_cam_{os.getpid()}/image_raw"
    args = [
        f"namespace:={namespace}",
        f"image_topic:={camera}",
        "model:=fplnet",
        "device:=cpu",
        "backend:=torch",  # the params file says auto and fp32: these must win
        "precision:=bf16",
        f"params_file:={SOURCE_ROOT / 'config' / 'segmentation.yaml'}",
        "log_level:=info",
    ]
    fqn = f"/{namespace}/segmentation_node"
    with _launched(args, tmp_path):
        _frame_back(ros_probe, namespace, camera, "via_launch")
        names = ["model", "device", "backend", "precision", "target_rate", "input_qos"]
        params = ros_probe.get_parameters(fqn, names)
        # Arguments override; everything else is the params file's.
        assert params == {
            "model": "fplnet",
            "device": "cpu",
            "backend": "torch",
            "precision": "bf16",
            "target_rate": 0.0,
            "input_qos": "auto",
        }


@needs_launch_ros
@pytest.mark.skipif(
    not _installed(), reason="seg_ros is not installed in an ament prefix (make install)"
)
def test_launch_serves_your_own_onnx_model(ros_probe, tmp_path: Path) -> None:
    """`ros2 launch seg_ros segmentation.launch.py weights:=model.onnx`: the README's own-model
    line, with a torchvision network exported here."""
    import numpy as np

    pytest.importorskip("onnx", reason="own models are ONNX files")
    from own_models import OWN_SIZE, describe, export, network

    from seg_ros.image_codec import decode_image_msg

    onnx = export(network("lraspp_mobilenet_v3_large", 5), tmp_path / "mine.onnx", dynamic=True)
    names = ["background", "road", "car", "person", "sky"]
    describe(onnx, names, input_size=list(OWN_SIZE))
    namespace = f"launch_own_{os.getpid()}"
    camera = f"/launch_own_cam_{os.getpid()}/image_raw"
    args = [f"namespace:={namespace}", f"image_topic:={camera}", f"weights:={onnx}"]
    with _launched(args, tmp_path):
        msg = _frame_back(ros_probe, namespace, camera, "own_via_launch")
        assert set(np.unique(decode_image_msg(msg).array)) <= set(range(5))
        fqn = f"/{namespace}/segmentation_node"
        assert list(ros_probe.get_parameters(fqn, ["class_names"])["class_names"]) == names


def _processes_with(text: str) -> list[int]:
    """Pids whose command line holds ``text`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and text in cmdline:
            pids.append(int(entry.name))
    return pids


@needs_launch_ros
@pytest.mark.skipif(
    not _installed(), reason="seg_ros is not installed in an ament prefix (make install)"
)
def test_launch_without_rviz2_starts_nothing(tmp_path: Path) -> None:
    """use_rviz:=true where rviz2 is missing once failed after the node had started, and left
    it running with no launch to stop it."""
    from ament_index_python.packages import get_package_prefix

    prefix = get_package_prefix("seg_ros")
    env = dict(os.environ, AMENT_PREFIX_PATH=prefix, PYTHONUNBUFFERED="1")
    if (Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / "rviz2").exists():
        pytest.skip(f"rviz2 is installed in seg_ros' own prefix {prefix}")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH")) if p)
    namespace = f"norviz_{os.getpid()}"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            DRIVER,
            str(LAUNCH_FILE),
            f"namespace:={namespace}",
            "use_rviz:=true",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        start_new_session=True,
    )
    printed = result.stdout + result.stderr
    assert result.returncode != 0, printed
    assert "'rviz2', which is not installed" in printed and "nothing was started" in printed
    assert "process started" not in printed, printed
    leftovers = _processes_with(f"__ns:=/{namespace}")
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    assert not leftovers, "the launch left a segmentation node behind"
