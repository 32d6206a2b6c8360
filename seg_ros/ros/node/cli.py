"""``segmentation_node``: usage, --help and main (the executor, the node, a clean exit)."""

from __future__ import annotations

import sys

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor

from seg_ros.ros.dds_tuning import apply_fastdds_profile
from seg_ros.ros.parameters import SPECS, ros_value


def usage() -> str:
    """What ``segmentation_node --help`` prints: the ROS arguments and every parameter."""
    lines = [
        "usage: segmentation_node [--help] [--ros-args [-r FROM:=TO] [-p NAME:=VALUE] "
        "[--params-file FILE] [--log-level LEVEL]]",
        "",
        "seg_ros' segmentation node: subscribes to `image` (or `image/compressed`), publishes",
        "segmentation/labels, segmentation/color, segmentation/overlay and /diagnostics.",
        "",
        "ROS arguments (after --ros-args):",
        "  -r image:=/camera/image_raw   remap the input (or any topic)",
        "  -r __ns:=/front               namespace; -r __node:=NAME renames the node",
        "  -p NAME:=VALUE                set a parameter",
        "  -p cameras:=[front,left]      several cameras into one node (read-only; `cameras`",
        "                                under parameters below)",
        "  --params-file FILE            parameters from YAML (config/segmentation.yaml)",
        "  --log-level debug|info|warn|error",
        "",
        "parameters (default):",
    ]
    for spec in SPECS:
        default = ros_value(spec.default)
        shown = str(default).lower() if isinstance(default, bool) else repr(default)
        lines.append(f"  {spec.name} ({shown})")
        lines.append(f"      {spec.description}")
        if spec.choices:
            lines.append(f"      one of: {', '.join(spec.choices)}")
        elif spec.constraints:
            lines.append(f"      {spec.constraints}")
    return "\n".join(lines)


def _wants_help(argv: list[str]) -> bool:
    """--help / -h before any --ros-args (after it they belong to ROS)."""
    for arg in argv:
        if arg == "--ros-args":
            return False
        if arg in ("-h", "--help"):
            return True
    return False


def spin(executor: Executor) -> None:
    """``executor.spin()`` until the context shuts down.

    Ctrl-C shuts the context down from a signal handler, under whatever callback is running
    (the input-QoS re-check's graph query, a parameter service's reply): what that callback
    raises then is the node stopping, not failing, and must not end it with a traceback and
    exit code 1. While the context is up, an exception is a real failure and propagates.
    (KeyboardInterrupt is not an Exception: it reaches ``main``, as during start-up.)"""
    try:
        executor.spin()
    except Exception:  # ExternalShutdownException included: the context is down then too
        if executor.context.ok():
            raise


def main(args: list[str] | None = None) -> int:
    if _wants_help(sys.argv[1:] if args is None else args):
        print(usage())
        return 0
    from seg_ros.ros.node.segmentation_node import SegmentationNode

    profile = apply_fastdds_profile()  # before rclpy.init() creates the DDS participant
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = SegmentationNode()
        if profile:
            node.get_logger().debug(f"Fast DDS profile for large images: {profile}")
        if node.autostart and not node.start():
            node.get_logger().error(
                "not started; fix the parameters (the node retries when they change) or use "
                "the lifecycle services"
            )
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spin(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except rclpy.exceptions.InvalidParameterValueException as e:
        print(f"segmentation_node: {e}", file=sys.stderr)
        code = 2
    except rclpy.exceptions.InvalidParameterTypeException as e:
        # A params file's `overlay_alpha: 1` or `-p input_width:=640.0`: parameters are
        # statically typed, so say which and how, not with a traceback.
        print(
            f"segmentation_node: {e} (write 1.0 for a double, 640 for an integer)", file=sys.stderr
        )
        code = 2
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
