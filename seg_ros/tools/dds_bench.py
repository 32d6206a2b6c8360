"""seg-dds-bench: do a default-configured camera's frames reach the node, and its outputs a
default-configured viewer? Frames received, per transport setting, at a size and rate.

    seg-dds-bench --frame-size 1024x2048 --rate 30 --seconds 10
    seg-dds-bench --frame-size 480x640 --camera-qos reliable best_effort --node-profile on off

For each combination the node runs in its own process (with seg_ros' Fast DDS profile, or
without it: ``--node-profile off``), and a peer process with Fast DDS' defaults (no Fast DDS
variables, no profile: what a camera driver, RViz or the ros2 CLI runs with) publishes
``--size`` RGB frames at ``--rate`` Hz and subscribes to the node's outputs. It prints, per
row, the frames the peer sent, the frames the node received (its own diagnostics: ``Frames
received``) and the frames of each output the peer got back; ``--json`` writes them too. A
benchmark: it reports figures and never fails on them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from seg_ros.ros.dds_tuning import PROFILE_VARIABLES
from seg_ros.tools.options import HelpFormatter, add_old_name, parse_size
from seg_ros.tools.output_paths import outputs_refused

NODE_NAME = "seg_dds_bench_node"
NAMESPACE = "/dds_bench"
QOS_CHOICES = ("reliable", "best_effort")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="seg-dds-bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--frame-size", type=parse_size, default=(1024, 2048), help="camera frames, HxW")
    add_old_name(p, "--size", "frame_size", type=parse_size)
    p.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz (default: 30)")
    p.add_argument("--seconds", type=float, default=10.0, help="publishing time per row")
    p.add_argument("--camera-qos", nargs="+", choices=QOS_CHOICES, default=list(QOS_CHOICES))
    p.add_argument("--node-profile", nargs="+", choices=("on", "off"), default=["on", "off"])
    p.add_argument(
        "--camera-profile",
        nargs="+",
        choices=("off", "on"),
        default=["off"],
        help="on: the camera process gets config/fastdds_large_images.xml (default: off)",
    )
    p.add_argument("--outputs", nargs="+", default=["labels", "overlay"])
    p.add_argument("--weights", help="node weights (default: the shipped FPLNet)")
    p.add_argument("--input-qos", default="auto", help="the node's input_qos (default: auto)")
    p.add_argument("--timeout", type=float, default=120.0, help="node start-up limit (s)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    return p.parse_args(argv)


def default_environment() -> dict[str, str]:
    """This environment without any Fast DDS setting: a default-configured peer."""
    env = dict(os.environ)
    for key in (*PROFILE_VARIABLES, "FASTDDS_BUILTIN_TRANSPORTS", "RMW_FASTRTPS_USE_QOS_FROM_XML"):
        env.pop(key, None)
    return env


def run_peer(args: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``peer_main`` in a default-configured process (or, with ``camera_profile``, one
    given seg_ros' profile file as a user would give their camera driver); its result."""
    from seg_ros.ros.dds_tuning import profile_file

    env = default_environment()
    if args.get("camera_profile"):
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile_file())
    cmd = [sys.executable, "-m", "seg_ros.tools.dds_bench", "--peer", json.dumps(args)]
    out = subprocess.run(
        cmd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"peer failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")


def peer_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Camera + viewer with Fast DDS' defaults: wait for the node, publish, count outputs."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from seg_ros.ros.background_node import BackgroundNode
    from seg_ros.ros.contract import (
        FRAMES_PROCESSED,
        FRAMES_RECEIVED,
        INPUT_QOS_KEY,
        node_fqn,
        output_topic,
        status_name,
    )

    tuned = [v for v in (*PROFILE_VARIABLES, "FASTDDS_BUILTIN_TRANSPORTS") if os.environ.get(v)]
    if tuned and not spec.get("camera_profile"):
        raise RuntimeError(f"the peer must run with Fast DDS' defaults, but {tuned} are set")
    ns = spec["namespace"].rstrip("/")
    ros = BackgroundNode("seg_dds_peer")
    node = ros.node
    # A camera's two usual choices: rclcpp/rclpy's default (reliable, depth 10) or sensor data.
    if spec["camera_qos"] == "reliable":
        qos: Any = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    else:
        qos = qos_profile_sensor_data
    pub = node.create_publisher(Image, f"{ns}/image", qos)
    got: dict[str, set[str]] = {name: set() for name in spec["outputs"]}
    diagnostics: dict[str, str] = {}
    wanted = status_name(node_fqn(ns, spec["node_name"]))

    def on_output(name: str, msg: Any) -> None:
        got[name].add(msg.header.frame_id)

    def on_diagnostics(msg: Any) -> None:
        for status in msg.status:
            if status.name == wanted:
                diagnostics.clear()
                diagnostics.update({kv.key: kv.value for kv in status.values})

    for name in spec["outputs"]:
        node.create_subscription(
            Image, f"{ns}/{output_topic(name)}", lambda m, n=name: on_output(n, m), 10
        )
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    ros.start()
    try:
        if not _node_up(spec, node, pub, diagnostics):
            return {"error": "the node did not come up (no match or no active diagnostics)"}
        time.sleep(2.0)  # auto input QoS re-checks publishers once a second
        before = int(diagnostics.get(FRAMES_RECEIVED, "0"))
        sent = _stream(spec, pub)
        time.sleep(3.0)  # the last frames' outputs and one more diagnostics message
        received = int(diagnostics.get(FRAMES_RECEIVED, "0")) - before
        return {
            "sent": sent,
            "node_received": received,
            "processed": diagnostics.get(FRAMES_PROCESSED),
            "input_qos": diagnostics.get(INPUT_QOS_KEY),
            "outputs": {name: len(ids) for name, ids in got.items()},
        }
    finally:
        ros.close()
        rclpy.try_shutdown()


def _node_up(spec: dict[str, Any], node: Any, pub: Any, diagnostics: dict[str, str]) -> bool:
    """Wait until the node matches the camera, has its outputs up and says it is active."""
    from seg_ros.ros.contract import LIFECYCLE_STATE, output_topic

    ns = spec["namespace"].rstrip("/")
    deadline = time.monotonic() + spec["timeout"]
    while time.monotonic() < deadline:
        matched = pub.get_subscription_count() > 0
        outputs_up = all(node.count_publishers(f"{ns}/{output_topic(n)}") for n in spec["outputs"])
        if matched and outputs_up and diagnostics.get(LIFECYCLE_STATE) == "active":
            return True
        time.sleep(0.1)
    return False


def _stream(spec: dict[str, Any], pub: Any) -> int:
    """Random frames at the spec's size and rate for its seconds; how many were sent."""
    import numpy as np
    from sensor_msgs.msg import Image

    h, w = spec["size"]
    msg = Image(height=h, width=w, encoding="rgb8", step=3 * w)
    msg.data = np.random.default_rng(0).integers(0, 256, h * w * 3, np.uint8).tobytes()
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < spec["seconds"]:
        ns_now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns_now, 10**9)
        msg.header.frame_id = f"f{sent}"
        pub.publish(msg)
        sent += 1
        time.sleep(max(0.0, start + sent / spec["rate"] - time.monotonic()))
    return sent


def run_row(
    args: argparse.Namespace, node_profile: str, camera_qos: str, camera_profile: str
) -> dict[str, Any]:
    from seg_ros.ros.node_process import NodeProcess, node_command, node_environment

    env = node_environment(default_environment())
    if node_profile == "off":
        env["SEG_ROS_FASTDDS_PROFILE"] = "off"
    params: dict[str, Any] = {"input_qos": args.input_qos, "target_rate": 0.0}
    if args.weights:
        params["weights"] = args.weights
    for name in ("labels", "color", "overlay"):
        params[f"publish_{name}"] = name in args.outputs
    log = Path(tempfile.mkdtemp(prefix="seg_dds_bench_")) / "node.log"
    node = NodeProcess(node_command(NODE_NAME, NAMESPACE, params), log, env=env)
    try:
        spec = {
            "namespace": NAMESPACE,
            "node_name": NODE_NAME,
            "camera_qos": camera_qos,
            "camera_profile": camera_profile == "on",
            "size": list(args.frame_size),
            "rate": args.rate,
            "seconds": args.seconds,
            "outputs": args.outputs,
            "timeout": args.timeout,
        }
        result = run_peer(spec, args.timeout + args.seconds + 60)
    finally:
        node.stop()
    h, w = args.frame_size
    row = {"size": f"{h}x{w}", "rate": args.rate, "camera_qos": camera_qos}
    row.update(camera_profile=camera_profile, node_profile=node_profile)
    return {**row, **result}


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--peer"]:
        print(json.dumps(peer_main(json.loads(argv[1]))), flush=True)
        return 0
    args = parse_args(argv)
    if outputs_refused("seg-dds-bench", {"--json": args.json}):
        return 2
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    rows = []
    print(
        f"{'size':>10} {'Hz':>4} {'camera QoS':>11} {'camera prof.':>12} {'node prof.':>10} "
        f"{'sent':>5} {'node got':>8}  outputs back",
        flush=True,
    )
    combos = [
        (node, cam, qos)
        for node in args.node_profile
        for cam in args.camera_profile
        for qos in args.camera_qos
    ]
    for node_profile, camera_profile, qos in combos:
        row = run_row(args, node_profile, qos, camera_profile)
        rows.append(row)
        lead = (
            f"{row['size']:>10} {args.rate:>4g} {qos:>11} {camera_profile:>12} {node_profile:>10}"
        )
        if "error" in row:
            print(f"{lead}  {row['error']}", flush=True)
            continue
        outs = ", ".join(f"{k} {v}" for k, v in row["outputs"].items())
        print(
            f"{lead} {row['sent']:>5} {row['node_received']:>8}  {outs} "
            f"(input QoS {row['input_qos']})",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    measured = [r for r in rows if "error" not in r]
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())
