"""seg-cameras-bench: several cameras into one node (its ``cameras`` parameter) against one
node per camera, in the same run.

    seg-cameras-bench --cameras 3 --rate 10 --seconds 30 --frame-size 480x640
    seg-cameras-bench --backend torch --layouts one-node one-node-unbatched   # batching

Each camera is a client of its own (the package's ``ros/client.py``) publishing
``--size`` frames at ``--rate`` Hz into ``<camera>/image`` and collecting the labels that
come back. Printed per layout: the nodes' resident memory (summed over their processes, at
the end of the run), frames answered per camera, and latency from the camera's stamp to the
labels in hand (p50, p99). ``one-node`` batches the cameras' frames as the node does by
default (``--max-batch``, ``--batch-wait-ms``: its parameters), ``one-node-throughput``
keeps the cameras' frames in flight instead (``inference_mode: throughput``),
``one-node-unbatched`` runs them one at a time (``max_batch: 1``). A benchmark, not a test:
it prints figures (and JSON) and never fails on them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.tools.options import (
    HelpFormatter,
    add_old_name,
    add_pipeline_args,
    node_params_from_args,
    parse_size,
)
from seg_ros.tools.output_paths import LogFolder, outputs_refused


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        prog="seg-cameras-bench",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--cameras", type=int, default=3, help="cameras (3)")
    p.add_argument("--rate", type=float, default=10.0, help="each camera's rate, Hz (10)")
    p.add_argument("--seconds", type=float, default=30.0, help="timed seconds per layout (30)")
    p.add_argument("--warmup", type=float, default=5.0, help="untimed seconds first (5)")
    p.add_argument("--frame-size", type=parse_size, default=(480, 640), help="camera frames, HxW")
    add_old_name(p, "--size", "frame_size", type=parse_size)
    p.add_argument(
        "--layouts",
        nargs="+",
        choices=("one-node", "one-node-throughput", "one-node-unbatched", "node-per-camera"),
        default=["one-node", "one-node-throughput", "node-per-camera"],
    )
    add_pipeline_args(p, engine=False, threads=False)
    p.add_argument("--threads", type=int, default=1, help="inference threads per node (1)")
    p.add_argument(
        "--max-batch", type=int, default=0, help="one-node's max_batch (0: the backend's)"
    )
    p.add_argument("--batch-wait-ms", type=float, default=5.0, help="one-node's batch_wait_ms (5)")
    p.add_argument("--timeout", type=float, default=180.0, help="node start-up timeout (s)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument(
        "--log-dir",
        type=Path,
        help="node logs: a new or empty folder, or one this tool wrote (default: a new "
        "temporary folder, printed at the end)",
    )
    return p.parse_args(argv)


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Camera:
    def __init__(self, namespace: str, name: str) -> None:
        from seg_ros.ros.client import SegmentationClient

        self.name = name
        self.latencies: list[float] = []
        self.sent = 0
        self.timing = False
        self.client = SegmentationClient(
            f"{namespace}/{name}",
            f"bench_{name}",
            outputs=("labels",),
            decode=False,
            on_result=self._on_result,
        )

    def _on_result(self, result: Any) -> None:
        if self.timing and result.frame_id.startswith("t"):
            self.latencies.append(result.latency_ms)


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def run_layout(layout: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start the layout's node(s), stream every camera, time the answers, stop them."""
    names = [f"cam{i}" for i in range(args.cameras)]
    namespace = f"/cams_bench_{os.getpid()}_{layout.replace('-', '_')}"
    nodes = _start_nodes(layout, args, namespace, names)
    cameras = [Camera(namespace, n) for n in names]
    try:
        for cam in cameras:
            alive = lambda: all(n.alive() for n in nodes)  # noqa: E731
            if not cam.client.wait_ready(args.timeout, alive):
                tails = "\n".join(n.tail() for n in nodes)
                raise SystemExit(f"seg-cameras-bench: {layout} did not come up:\n{tails}")
        memory = _stream_and_time(cameras, nodes, args)
    finally:
        for cam in cameras:
            cam.client.close()
        for node in nodes:
            node.stop()
    per_camera = {
        cam.name: {
            "sent": cam.sent,
            "answered": len(cam.latencies),
            "p50_ms": _percentile(cam.latencies, 50),
            "p99_ms": _percentile(cam.latencies, 99),
        }
        for cam in cameras
    }
    everything = [x for cam in cameras for x in cam.latencies]
    return {
        "layout": layout,
        "processes": len(nodes),
        "rss_mb": round(memory, 1),
        "cameras": per_camera,
        "answered_fps": round(len(everything) / args.seconds, 2),
        "p50_ms": _percentile(everything, 50),
        "p99_ms": _percentile(everything, 99),
    }


def _start_nodes(
    layout: str, args: argparse.Namespace, namespace: str, names: list[str]
) -> list[Any]:
    """One node serving every camera (batched or not), or one node per camera."""
    from seg_ros.ros.node_process import NodeProcess, node_command

    params: dict[str, Any] = {"target_rate": 0.0, "input_qos": "reliable"}
    params.update(node_params_from_args(args))
    params.update(publish_color=False, publish_overlay=False)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if layout.startswith("one-node"):
        batching = {"max_batch": args.max_batch, "batch_wait_ms": args.batch_wait_ms}
        if layout == "one-node-unbatched":
            batching["max_batch"] = 1
        if layout == "one-node-throughput":  # frames in flight instead of batches
            batching["inference_mode"] = "throughput"
        command = node_command("seg", namespace, {**params, **batching, "cameras": names})
        return [NodeProcess(command, args.logs.path(f"{layout}.log"), env=env)]
    return [
        NodeProcess(
            node_command("seg", f"{namespace}/{name}", params),
            args.logs.path(f"{layout}_{name}.log"),
            env=env,
        )
        for name in names
    ]


def _stream_and_time(cameras: list[Camera], nodes: list[Any], args: argparse.Namespace) -> float:
    """Every camera at the rate asked: warm-up, then the timed seconds; the nodes' memory
    (MiB) at the end of the timed part."""
    from seg_ros.tools.street_scene import synthetic_frames

    h, w = args.frame_size
    source = synthetic_frames(w, h, seed=1)
    frames = [next(source) for _ in range(4)]
    stop = threading.Event()

    def stream() -> None:
        n, next_t = 0, time.monotonic()
        while not stop.is_set():
            for cam in cameras:
                prefix = "t" if cam.timing else "w"
                cam.client.publish(frames[n % len(frames)], f"{prefix}{n}")
                if cam.timing:
                    cam.sent += 1
            n += 1
            next_t += 1.0 / args.rate
            stop.wait(max(0.0, next_t - time.monotonic()))

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    try:
        time.sleep(args.warmup)
        for cam in cameras:
            cam.timing = True
        time.sleep(args.seconds)
        for cam in cameras:
            cam.timing = False
        return sum(rss_mb(n.process.pid) for n in nodes)
    finally:
        stop.set()
        thread.join(10)
        time.sleep(1.0)  # outputs in flight


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.logs = LogFolder(args.log_dir, "seg-cameras-bench", "--log-dir")
    if outputs_refused("seg-cameras-bench", {"--json": args.json}, logs=args.logs):
        return 2
    if args.cameras < 1 or args.rate <= 0 or args.seconds <= 0:
        print("seg-cameras-bench: --cameras, --rate, --seconds must be positive", file=sys.stderr)
        return 2
    try:
        results = [run_layout(layout, args) for layout in args.layouts]
    finally:
        args.logs.seal()
    h, w = args.frame_size
    print(
        f"{args.cameras} cameras, {w}x{h} at {args.rate:g} Hz each, {args.seconds:g} s timed, "
        f"{args.threads} inference thread(s) per node"
    )
    header = ("layout", "procs", "RSS MiB", "answered/sent per camera", "FPS", "p50 ms", "p99 ms")
    print("{:<18} {:>5} {:>8} {:<32} {:>6} {:>7} {:>7}".format(*header))
    for r in results:
        answered = ", ".join(f"{c['answered']}/{c['sent']}" for c in r["cameras"].values())
        row = (
            r["layout"],
            r["processes"],
            f"{r['rss_mb']:.0f}",
            answered,
            f"{r['answered_fps']:.2f}",
            f"{r['p50_ms'] or 0:.1f}",
            f"{r['p99_ms'] or 0:.1f}",
        )
        print("{:<18} {:>5} {:>8} {:<32} {:>6} {:>7} {:>7}".format(*row))
    print(f"node logs: {args.logs.folder}")
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "logs"}
        figures = {"args": {**settings, "size": [h, w]}, "results": results}
        args.json.write_text(json.dumps(figures, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
