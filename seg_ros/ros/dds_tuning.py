"""Fast DDS settings for seg_ros' own processes, so large images flow to and from peers that
run with Fast DDS' defaults (camera drivers, RViz, rosbag2, the ros2 CLI).

What limits large images (measured here, Fast DDS 3.2 from the Kilted wheels, two processes
on one host; ``seg-dds-bench`` repeats it):

- On one host Fast DDS sends user data through shared memory, and a *writer* can only send a
  sample that fits its own segment (512 KB by default). A default writer's 640x480 RGB frame
  (921 KB) is lost almost every time to a best-effort reader (3 of 150 received at 30 Hz),
  2048x1024 always; to a reliable reader it arrives (150 of 150 at 640x480, 124 of 150 at
  2048x1024 at 30 Hz) because lost pieces are repaired.
- A writer with a larger segment delivers 2048x1024 at 30 Hz to a *default* best-effort
  reader: 150 of 150. So the segment is set here, on seg_ros' side, for the node's outputs
  and for seg-demo's frames; the peers need no setting.
- ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` is not used: its participants do not exchange data
  with default ones (0 messages either way), so setting it in one process cuts that process
  off from the rest of the graph.

The profile keeps the transports a default participant has (UDPv4 for discovery and for
other hosts, shared memory on this host), only with a larger shared-memory segment, and
shortens the reliable writers' heartbeat: a reliable writer repairs a lost fragment only when
the reader answers its next heartbeat, 3 s by default, which stalled one large frame in three
on a loaded machine; none with 50 ms.

It is applied only when the user has no Fast DDS profile file of their own, has not chosen
builtin transports, has not set SEG_ROS_FASTDDS_PROFILE=off, and only under rmw_fastrtps.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

HEARTBEAT_NS = 50_000_000
# Room for a few 2048x1024 RGB outputs in flight (6 MB each); tmpfs pages are only used as
# samples are written.
SHM_SEGMENT_BYTES = 64 * 1024 * 1024
PROFILE = f"""<?xml version="1.0" encoding="UTF-8" ?>
<!-- seg_ros: large images to and from default Fast DDS peers (see seg_ros/ros/dds_tuning.py) -->
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>seg_ros_shm</transport_id>
        <type>SHM</type>
        <segment_size>{SHM_SEGMENT_BYTES}</segment_size>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>seg_ros_udp</transport_id>
        <type>UDPv4</type>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="seg_ros_participant" is_default_profile="true">
      <rtps>
        <userTransports>
          <transport_id>seg_ros_shm</transport_id>
          <transport_id>seg_ros_udp</transport_id>
        </userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
    <data_writer profile_name="seg_ros_data_writer" is_default_profile="true">
      <times>
        <heartbeat_period><sec>0</sec><nanosec>{HEARTBEAT_NS}</nanosec></heartbeat_period>
      </times>
    </data_writer>
  </profiles>
</dds>
"""
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
OPT_OUT = "SEG_ROS_FASTDDS_PROFILE"  # "off": leave Fast DDS at its defaults


def profile_path() -> Path:
    return Path(tempfile.gettempdir()) / f"seg_ros_fastdds_profile_{os.getuid()}.xml"


def write_profile() -> Path:
    """The profile file (written when missing or outdated), for this process or a peer's."""
    path = profile_path()
    if not path.is_file() or path.read_text() != PROFILE:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(PROFILE)
        tmp.replace(path)  # atomic: concurrent nodes never read half a file
    return path


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
    path = write_profile()
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path)
    return str(path)
