"""launch/segmentation.launch.py under the real launch_ros.

launch and launch_ros are not on PyPI (its ``launch`` is another project), so these tests run
where a ROS 2 install (or a workspace) provides them and skip elsewhere. The node is found
through the ament index, so seg_ros must be installed (``make install``; colcon in a
workspace) with AMENT_PREFIX_PATH covering the prefix.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ros_fixtures import SOURCE_ROOT, image_msg, scene, wait_for

pytest.importorskip(
    "launch_ros",
    reason="launch_ros is not importable: it comes with a ROS 2 install, not from PyPI",
)
pytest.importorskip("rclpy", reason="the ROS 2 wheels (ros-rclpy) are not installed")

LAUNCH_FILE = SOURCE_ROOT / "launch" / "segmentation.launch.py"
ARGUMENTS = {
    "model",
    "variant",
    "backend",
    "device",
    "weights",
    "image_topic",
    "namespace",
    "params_file",
    "use_rviz",
    "rviz_config",
    "log_level",
}
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


def test_declares_the_documented_arguments() -> None:
    from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable

    description = _load_module().generate_launch_description()
    declared = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert declared == ARGUMENTS
    # No DDS variable for the processes it starts: LARGE_DATA cut the node off from every
    # default-configured peer (camera, RViz, the ros2 CLI).
    assert not [e for e in description.entities if isinstance(e, SetEnvironmentVariable)]


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
        params = ros_probe.get_parameters(fqn, ["model", "device", "target_rate", "input_qos"])
        # Arguments override; everything else is the params file's.
        assert params == {
            "model": "fplnet",
            "device": "cpu",
            "target_rate": 10.0,
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
