"""Start seg_ros' segmentation node (and RViz when asked).

    ros2 launch seg_ros segmentation.launch.py model:=fplnet
    ros2 launch seg_ros segmentation.launch.py image_topic:=/camera/image_raw use_rviz:=true
    ros2 launch seg_ros segmentation.launch.py params_file:=my.yaml namespace:=front
    ros2 launch seg_ros segmentation.launch.py backend:=openvino precision:=int8   # CPU robot
    ros2 launch seg_ros segmentation.launch.py cameras:=front,left,right   # one node, 3 cameras

Parameters come from ``params_file`` (config/segmentation.yaml by default); the model
arguments override it only when given, so a params file that picks rgpnet is not silently
overridden by an argument's default.

Large images: the node gives its own DDS participant a larger shared-memory segment (and a
shorter heartbeat) when you have no Fast DDS profile of your own, so full-size outputs reach
default-configured peers (RViz, rosbag2, the ros2 CLI); this launch sets no DDS variable for
anyone. See seg_ros/ros/dds_tuning.py and the README for what a camera needs at large sizes.
"""

from __future__ import annotations

import tempfile

import yaml
from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "seg_ros"
# Launch arguments that override the params file when not empty. Each must be declared:
# launch accepts an undeclared `name:=value` without a word, and the node would run without it
# (`precision:=int8` silently in fp32).
NODE_OVERRIDES = ("model", "variant", "backend", "device", "precision", "engine", "weights")


def _arguments() -> list[DeclareLaunchArgument]:
    share = FindPackageShare(PACKAGE)
    return [
        DeclareLaunchArgument("model", default_value="", description="fplnet | rgpnet | desanet (empty: params file)"),  # noqa: E501
        DeclareLaunchArgument("variant", default_value="", description="model variant (empty: params file / weights)"),  # noqa: E501
        DeclareLaunchArgument("backend", default_value="", description="auto | torch | onnxruntime | openvino | tensorrt (empty: params file)"),  # noqa: E501
        DeclareLaunchArgument("device", default_value="", description="cpu | cuda | cuda:N; OpenVINO also gpu, gpu.N, npu (empty: params file)"),  # noqa: E501
        DeclareLaunchArgument("precision", default_value="", description="fp32 | bf16 | fp16 | int8 (empty: params file)"),  # noqa: E501
        DeclareLaunchArgument("engine", default_value="", description="ONNX file / OpenVINO IR / TensorRT engine (empty: params file / built on the fly)"),  # noqa: E501
        DeclareLaunchArgument("weights", default_value="", description="seg_ros .safetensors weights, or your own model.onnx with model.onnx.yaml beside it (empty: params file / shipped)"),  # noqa: E501
        DeclareLaunchArgument("image_topic", default_value="image", description="camera topic (sensor_msgs/Image); <image_topic>/compressed for compressed input"),  # noqa: E501
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node (and of relative topics)"),  # noqa: E501
        DeclareLaunchArgument("cameras", default_value="", description="several cameras into one node: front,left,right -> <camera>/image in, <camera>/segmentation/* out (empty: params file / one camera on image_topic)"),  # noqa: E501
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "segmentation.yaml"]), description="parameter YAML"),  # noqa: E501
        DeclareLaunchArgument("use_rviz", default_value="false", description="also start RViz with config/segmentation.rviz"),  # noqa: E501
        DeclareLaunchArgument("rviz_config", default_value=PathJoinSubstitution([share, "config", "segmentation.rviz"]), description="RViz layout to adapt to the topics"),  # noqa: E501
        DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error"),  # noqa: E501
    ]  # fmt: skip


def _resolve(topic: str, namespace: str) -> str:
    if topic.startswith("/"):
        return topic
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{ns}/{topic}"


def _nodes(context: LaunchContext) -> list[Node]:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    parameters: list = [arg("params_file")]
    # Typed as strings: YAML would read e.g. a variant "18" as an int and the node would
    # refuse the type.
    overrides = {n: ParameterValue(arg(n), value_type=str) for n in NODE_OVERRIDES if arg(n)}
    if overrides:
        parameters.append(overrides)
    cameras = [c.strip() for c in arg("cameras").split(",") if c.strip()]
    if cameras:
        parameters.append({"cameras": cameras})
    image_topic, namespace = arg("image_topic"), arg("namespace")
    use_rviz = IfCondition(LaunchConfiguration("use_rviz")).evaluate(context)
    if use_rviz:
        # Before any process starts: launch_ros resolves rviz2 only when it runs it, after the
        # node is up, and the node was then left running without its launch.
        _require_package("rviz2", "use_rviz:=true")
    segmentation = Node(
        package=PACKAGE,
        executable="segmentation_node",
        name="segmentation_node",
        namespace=namespace,
        parameters=parameters,
        remappings=[("image", image_topic), ("image/compressed", f"{image_topic}/compressed")],
        ros_arguments=["--log-level", arg("log_level")],
        output="screen",
    )
    if not use_rviz:
        return [segmentation]
    config = _rviz_config(arg("rviz_config"), _resolve(image_topic, namespace), namespace)
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="segmentation_rviz",
        namespace=namespace,
        arguments=["-d", config],
        output="screen",
    )
    return [segmentation, rviz]


def _require_package(package: str, why: str) -> None:
    try:
        get_package_prefix(package)
    except PackageNotFoundError:
        raise RuntimeError(
            f"{why} needs the ROS 2 package '{package}', which is not installed here (e.g. "
            f"apt install ros-$ROS_DISTRO-{package}); nothing was started"
        ) from None


def _rviz_config(template: str, image_topic: str, namespace: str) -> str:
    """The RViz layout with its topics pointed at this launch's namespace and camera."""
    with open(template) as f:
        config = yaml.safe_load(f)
    topics = {
        "/image": image_topic,
        "/segmentation/overlay": _resolve("segmentation/overlay", namespace),
        "/segmentation/color": _resolve("segmentation/color", namespace),
    }
    for display in config["Visualization Manager"]["Displays"]:
        topic = display.get("Topic", {})
        topic["Value"] = topics.get(topic.get("Value"), topic.get("Value"))
    with tempfile.NamedTemporaryFile("w", prefix="seg_ros_", suffix=".rviz", delete=False) as out:
        yaml.safe_dump(config, out, sort_keys=False)
    return out.name


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            *_arguments(),
            OpaqueFunction(function=_nodes),
        ]
    )
