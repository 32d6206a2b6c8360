"""Fast DDS settings that large images need, applied before rclpy starts DDS.

Transport: with Fast DDS' default transports (UDP + a 512 KB shared-memory segment), a
best-effort image of a few megabytes crosses processes as dozens of UDP fragments, and losing
any one loses the frame: at 1024x2048 almost every frame is lost. ``LARGE_DATA`` carries user
data over shared memory (same host) and TCP (other hosts); a larger segment keeps images up to
8 MB in shared memory (measured here: a 640x480 round trip through the node ~30 ms faster
than over TCP). Only processes that start DDS with it use it; across hosts both ends need
LARGE_DATA.

Reliability: a reliable writer repairs a lost fragment only when the reader answers its next
heartbeat, and Fast DDS' default heartbeat period is 3 s. A multi-megabyte image travels in
many fragments; on a busy machine a reader that is not scheduled in time loses some, so an
output image arrives 3 s late. Measured here (640x480 to 1280x960 RGB, two processes on one loaded
core): one frame in three stalled ~3 s with the defaults, none with a 50 ms heartbeat.

The profile is only applied when the user has no Fast DDS profile file of their own, and only
under rmw_fastrtps; other RMWs ignore it anyway.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

HEARTBEAT_NS = 50_000_000
PROFILE = f"""<?xml version="1.0" encoding="UTF-8" ?>
<!-- seg_ros: faster repair of lost fragments of large images (see seg_ros/ros/dds_tuning.py) -->
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <data_writer profile_name="seg_ros_large_data_writer" is_default_profile="true">
      <times>
        <heartbeat_period><sec>0</sec><nanosec>{HEARTBEAT_NS}</nanosec></heartbeat_period>
      </times>
    </data_writer>
  </profiles>
</dds>
"""
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
LARGE_DATA_TRANSPORTS = "LARGE_DATA?max_msg_size=8MB&sockets_size=32MB"


def default_large_data_transport(env: dict[str, str] | None = None) -> str:
    """Set FASTDDS_BUILTIN_TRANSPORTS to LARGE_DATA_TRANSPORTS unless the user set it."""
    env = os.environ if env is None else env
    return env.setdefault("FASTDDS_BUILTIN_TRANSPORTS", LARGE_DATA_TRANSPORTS)


def apply_fastdds_profile(env: dict[str, str] | None = None) -> str | None:
    """Point ``env`` (default: this process's environment) at seg_ros' Fast DDS profile unless
    a profile file is already set or another RMW is chosen; returns the path it set."""
    env = os.environ if env is None else env
    rmw = env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if not rmw.startswith("rmw_fastrtps") or any(env.get(v) for v in PROFILE_VARIABLES):
        return None
    path = Path(tempfile.gettempdir()) / f"seg_ros_fastdds_profile_{os.getuid()}.xml"
    if not path.is_file() or path.read_text() != PROFILE:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(PROFILE)
        tmp.replace(path)  # atomic: concurrent nodes never read half a file
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path)
    return str(path)
