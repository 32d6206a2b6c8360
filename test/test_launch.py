"""launch/segmentation.launch.py under the real launch_ros.

launch and launch_ros are not on PyPI (its ``launch`` is another project), so these tests run
where a ROS 2 install (or a workspace) provides them and skip elsewhere. The node is found
through the ament index, so seg_ros must be installed (``make install``; colcon in a
workspace) with AMENT_PREFIX_PATH covering the prefix.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

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


@needs_launch_ros
@pytest.mark.skipif(
    not _installed(), reason="seg_ros is not installed in an ament prefix (make install)"
)
def test_launch_starts_a_working_node(ros_probe, tmp_path: Path) -> None:
    from sensor_msgs.msg import Image

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
    fqn = f"/{namespace}/segmentation_node"
    try:
        labels = ros_probe.collect(Image, f"/{namespace}/segmentation/labels")
        pub = ros_probe.publisher(Image, camera)
        wait_for(lambda: pub.get_subscription_count() > 0, 120, "the launched node's subscription")
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

        def frame_back() -> bool:
            pub.publish(image_msg(scene(), "rgb8", "via_launch"))
            return any(m.header.frame_id == "via_launch" for m in labels.snapshot())

        wait_for(frame_back, 120, "labels for a frame sent to the remapped camera topic")
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
