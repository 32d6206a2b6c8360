"""Fast DDS settings for seg_ros' own processes, so large images flow to and from peers that
run with Fast DDS' defaults (camera drivers, RViz, rosbag2, the ros2 CLI).

What limits large images (figures: docs/BENCHMARKS.md, repeated by ``seg-dds-bench``):

- On one host Fast DDS sends user data through shared memory, and a *writer* can only send a
  sample that fits its own segment (512 KB by default): a default writer's 640x480 RGB frame
  is lost almost every time to a best-effort reader; a reliable reader repairs it.
- A writer with a larger segment delivers large frames to a *default* best-effort reader. So
  the segment is set here, on seg_ros' side, for the node's outputs and for seg-demo's
  frames; the peers need no setting.
- ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` is not used: its participants exchange nothing
  with default ones, so setting it in one process cuts that process off from the graph.

The profile keeps the transports a default participant has (UDPv4 for discovery and for
other hosts, shared memory on this host), only with a larger shared-memory segment, and
shortens the reliable writers' heartbeat: a reliable writer repairs a lost fragment only when
the reader answers its next heartbeat, 3 s by default, which stalled large frames on a loaded
machine.

It is applied only when the user has no Fast DDS profile file of their own, has not chosen
builtin transports, has not set SEG_ROS_FASTDDS_PROFILE=off, and only under rmw_fastrtps.
"""

from __future__ import annotations

import os
from pathlib import Path

# The profile itself lives in config/ so camera drivers can be given the same file.
PROFILE_FILE = "config/fastdds_large_images.xml"
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
OPT_OUT = "SEG_ROS_FASTDDS_PROFILE"  # "off": leave Fast DDS at its defaults


def profile_file() -> Path | None:
    """seg_ros' profile (installed share/seg_ros/config or the source checkout's)."""
    from seg_ros.paths import find_data

    return find_data(PROFILE_FILE)


def apply_fastdds_profile(env: dict[str, str] | None = None) -> str | None:
    """Point ``env`` (default: this process's environment) at seg_ros' Fast DDS profile unless
    a profile file is already set or another RMW is chosen; returns the path it set.

    Call it before rclpy.init() creates the participant. It never touches the transport
    variables, so the process stays compatible with every default peer."""
    env = os.environ if env is None else env
    if env.get(OPT_OUT, "").lower() in ("0", "off", "false", "no"):
        return None
    rmw = env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if not rmw.startswith("rmw_fastrtps") or any(env.get(v) for v in PROFILE_VARIABLES):
        return None
    if env.get("FASTDDS_BUILTIN_TRANSPORTS"):
        # The user chose builtin transports; our userTransports would silently override them.
        return None
    path = profile_file()
    if path is None:
        return None
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path)
    return str(path)
