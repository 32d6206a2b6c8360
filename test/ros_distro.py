"""Which ROS 2 this interpreter's rclpy is, checked before a run that claims a distro (make
test's Jazzy run): the Kilted wheels in the Jazzy venv would make its results a lie. The
wheels' rclpy carries the distro's release line: Jazzy 7.x, Kilted 9.x."""

from __future__ import annotations

import sys
from importlib.metadata import version

RCLPY_MAJOR = {"humble": 3, "jazzy": 7, "kilted": 9}


def main(distro: str) -> int:
    import rclpy

    found = version("ros-rclpy")
    if int(found.split(".")[0]) != RCLPY_MAJOR[distro]:
        print(f"ros_distro: rclpy {found} is not {distro}'s", file=sys.stderr)
        return 1
    print(f"ros_distro: {distro} (rclpy {found}, {rclpy.__file__})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
