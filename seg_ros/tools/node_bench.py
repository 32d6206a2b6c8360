"""What the ROS node costs on top of the bare pipeline, on the same frames.

    python -m seg_ros.tools.node_bench --frames 40 --input-size 360x480

1. the bare ``Pipeline`` in this process, frame after frame (labels + colour + overlay);
2. the same pipeline settings in the segmentation node, in its own process, fed by this
   process over DDS one frame at a time (the next frame goes out when the previous frame's
   three outputs are back, so the node never drops one and every frame is timed whole).

The two run in alternating blocks of frames on the same machine, so load that comes and goes
(other processes) hits both alike. Both report frames per second and per-frame latency; the
node's latency is the full round trip (publish, DDS, decode, pipeline, encode, publish, DDS
back). A benchmark, not a test: it prints figures and never fails on them. Run it with the
machine otherwise idle; the node and this process each want a core.
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

from seg_ros.inference.config import INFERENCE_MODES
from seg_ros.tools.options import (
    HelpFormatter,
    add_frame_size,
    add_pipeline_args,
    frame_size,
    node_params_from_args,
)
from seg_ros.tools.output_paths import LogFolder, outputs_refused


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="seg-node-bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--frames", type=int, default=40, help="timed frames (default: %(default)s)")
    p.add_argument(
        "--warmup", type=int, default=5, help="untimed frames first (default: %(default)s)"
    )
    add_frame_size(p, (480, 640), "camera frames")
    p.add_argument("--transport", choices=("raw", "compressed"), default="raw")
    add_pipeline_args(p, engine=False, threads=False)
    p.add_argument("--threads", type=int, default=1, help="torch threads, both (default: 1)")
    p.add_argument("--block", type=int, default=5, help="frames per alternating block")
    p.add_argument(
        "--cpu", type=int, help="run both pipelines (node and bare) on this core (taskset)"
    )
    p.add_argument(
        "--stream",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also measure throughput, per --modes: the bare runtime and pipeline back to "
        "back, then a node in that mode fed at --stream-rate for this long (its answered "
        "frames per second and stamp-to-publish latency)",
    )
    p.add_argument("--stream-rate", type=float, default=30.0, help="camera rate, Hz (30)")
    p.add_argument(
        "--modes",
        nargs="+",
        choices=INFERENCE_MODES,
        default=list(INFERENCE_MODES),
        help="inference modes streamed, each in a node of its own, in this run",
    )
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--timeout", type=float, default=180.0, help="node start-up limit (s)")
    p.add_argument(
        "--log-dir",
        type=Path,
        help="node logs: a new or empty folder, or one this tool wrote (default: a new "
        "temporary folder, printed at the end)",
    )
    args = p.parse_args(argv)
    args.height, args.width = frame_size(args)
    return args


def _stats(latencies_ms: list[float]) -> dict[str, float]:
    # One frame at a time, back to back: throughput is the inverse of the mean latency.
    a = np.asarray(latencies_ms)
    return {
        "frames": len(a),
        "fps": 1000.0 / float(a.mean()),
        "mean_ms": float(a.mean()),
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "max_ms": float(a.max()),
    }


def _node_params(args: argparse.Namespace, mode: str = "latency") -> dict[str, Any]:
    params: dict[str, Any] = {"target_rate": 0.0, "input_qos": "reliable"}
    params.update(node_params_from_args(args))
    params["inference_mode"] = mode
    if args.transport == "compressed":
        params["input_transport"] = "compressed"
    return params


class NodeRunner:
    """The node in its own process and a client feeding it one frame at a time."""

    def __init__(self, args: argparse.Namespace, log: Path, mode: str = "latency") -> None:
        from seg_ros.ros.client import SegmentationClient
        from seg_ros.ros.contract import node_fqn, status_name
        from seg_ros.ros.node_process import NodeProcess, node_command

        namespace = f"/node_bench_{os.getpid()}"
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        command = node_command("bench_node", namespace, _node_params(args, mode))
        if args.cpu is not None:
            command = ["taskset", "-c", str(args.cpu), *command]
        self.node = NodeProcess(command, log, env=env)
        self._done = threading.Event()
        self._received: dict[str, int] = {}
        self.latencies: list[float] = []  # stamp to result in hand, every result (ms)
        self.client = SegmentationClient(
            namespace,
            "bench_camera",
            transport=args.transport,
            on_result=self._on_result,
            diagnostics_name=status_name(node_fqn(namespace, "bench_node")),
        )
        if not self.client.wait_ready(args.timeout, self.node.alive):
            self.close()
            raise SystemExit(f"node_bench: the node did not come up:\n{self.node.tail()}")
        self._count = 0

    def _on_result(self, result: Any) -> None:
        self._received[result.frame_id] = time.perf_counter_ns()
        self.latencies.append(result.latency_ms)
        self._done.set()

    def __call__(self, frame: np.ndarray) -> float:
        """Round trip of one frame (ms): publish, node, all three outputs back."""
        frame_id = f"f{self._count}"
        self._count += 1
        self._done.clear()
        sent = time.perf_counter_ns()
        self.client.publish(frame, frame_id)
        # A frame lost on the way (DDS under load) is sent again rather than stalling the run.
        while not self._done.wait(30.0) or frame_id not in self._received:
            if not self.node.alive():
                raise SystemExit(f"node_bench: the node died:\n{self.node.tail()}")
            if frame_id not in self._received:
                sent = time.perf_counter_ns()
                self.client.publish(frame, frame_id)
        return (self._received[frame_id] - sent) / 1e6

    def close(self) -> None:
        self.client.close()
        self.node.stop()


def run(args: argparse.Namespace, frames: list[np.ndarray]) -> dict[str, Any]:
    """Node and bare pipeline on the same frames, in alternating blocks (node first, then
    bare first, ...), so load that comes and goes on the machine hits both alike."""
    import torch

    from seg_ros.inference.pipeline import Pipeline
    from seg_ros.ros.contract import FRAMES_DROPPED, LATENCY_LABELS, NodeStatus
    from seg_ros.ros.parameters import NodeSettings

    torch.set_num_threads(args.threads)
    node = NodeRunner(args, args.logs.path("node_bench_node.log"))
    try:
        if args.cpu is not None:
            # This thread only (the client's threads started above stay free): the bare
            # pipeline then runs on the very core the node's pipeline runs on.
            os.sched_setaffinity(0, {args.cpu})
        # The node's own parameter -> config mapping, so both run exactly the same pipeline.
        pipeline = Pipeline(NodeSettings.from_values(_node_params(args)).pipeline_config())

        def bare(frame: np.ndarray) -> float:
            t0 = time.perf_counter()
            pipeline(frame, want_color=True, want_overlay=True)
            return (time.perf_counter() - t0) * 1e3

        for frame in frames[: args.warmup]:
            bare(frame)
            node(frame)
        timed = frames[args.warmup :]
        blocks = [timed[i : i + args.block] for i in range(0, len(timed), args.block)]
        results: dict[str, list[float]] = {"bare": [], "node": []}
        for b, block in enumerate(blocks):
            order = (
                [("node", node), ("bare", bare)] if b % 2 == 0 else [("bare", bare), ("node", node)]
            )
            for name, method in order:
                results[name] += [method(frame) for frame in block]
        time.sleep(1.5)  # one more diagnostics message, with every frame in its percentiles
        diag = dict(node.client.diagnostics)
    finally:
        node.close()
    stream = [stream_mode(args, mode, timed) for mode in args.modes] if args.stream > 0 else None
    out: dict[str, Any] = {name: _stats(v) for name, v in results.items()}
    paired = np.asarray(results["node"]) - np.asarray(results["bare"])
    out["paired_median_extra_ms"] = float(np.median(paired))
    status = NodeStatus(diag)
    figures = {stage: status.latency(stage) for stage in LATENCY_LABELS}
    out["node_stages_p50_ms"] = {s: f["p50"] for s, f in figures.items() if f is not None}
    out["dropped"] = status.text(FRAMES_DROPPED)
    if stream is not None:
        out["stream"] = stream
    return out


def calls_per_second(call: Any, seconds: float) -> float:
    """``call(n)`` for n = 0, 1, ... back to back for ``seconds``: how many a second."""
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        call(n)
        n += 1
    return n / (time.perf_counter() - start)


def stream_mode(args: argparse.Namespace, mode: str, frames: list[np.ndarray]) -> dict[str, Any]:
    """One inference mode: the bare runtime and the bare pipeline back to back (in this
    process), then a node in that mode fed by a camera at --stream-rate (it drops what it
    cannot take; what it answers is its throughput)."""
    from seg_ros.inference.pipeline import Pipeline
    from seg_ros.ros.contract import NodeStatus
    from seg_ros.ros.parameters import NodeSettings
    from seg_ros.tools.bench import bare_call, bare_throughput, timed_in_flight

    pipeline = Pipeline(NodeSettings.from_values(_node_params(args, mode)).pipeline_config())
    seconds = min(args.stream, 5.0)
    if pipeline.in_flight > 1:
        runtime_fps = bare_throughput(pipeline, frames[0], max(20, int(args.stream * 10)))
        # frames in flight, finished in order, as the node runs them
        timing = argparse.Namespace(iterations=max(20, int(args.stream * 10)), warmup=0)
        pipeline_fps = timed_in_flight(pipeline, frames, timing, None)["fps"]
    else:
        batch, infer = bare_call(pipeline, frames[0])
        runtime_fps = calls_per_second(lambda n: infer(batch), seconds)
        pipeline_fps = calls_per_second(
            lambda n, run=pipeline: run(
                frames[n % len(frames)], want_color=True, want_overlay=True
            ),
            seconds,
        )
    in_flight = pipeline.describe_in_flight()
    del pipeline  # the node gets the cores
    node = NodeRunner(args, args.logs.path(f"node_bench_{mode}.log"), mode)
    try:
        for frame in frames[: args.warmup]:
            node(frame)
        node.latencies.clear()
        before, sent = node.client.results, 0
        start = time.perf_counter()
        while time.perf_counter() - start < args.stream:
            node.client.publish(frames[sent % len(frames)], f"stream_{sent}")
            sent += 1
            time.sleep(max(0.0, start + sent / args.stream_rate - time.perf_counter()))
        elapsed = time.perf_counter() - start
        time.sleep(2.0)  # the frames in flight, and one more diagnostics message
        answered = node.client.results - before
        stamp_to_publish = NodeStatus(dict(node.client.diagnostics)).latency("stamp to publish")
        latencies = list(node.latencies)
    finally:
        node.close()
    node_fps = answered / elapsed
    return {
        "mode": mode,
        "in_flight": in_flight,
        "seconds": round(elapsed, 2),
        "camera_fps": round(sent / elapsed, 2),
        "answered": answered,
        "sent": sent,
        "node_fps": round(node_fps, 2),
        "runtime_fps": round(runtime_fps, 2),
        "pipeline_fps": round(pipeline_fps, 2),
        "node_stamp_to_publish_ms": stamp_to_publish,
        "client_latency_ms": _stats(latencies) if latencies else None,
    }


def print_stream(rows: list[dict[str, Any]]) -> None:
    """The streamed modes side by side; ratios against the bare runtime in latency mode."""
    base = next((r["runtime_fps"] for r in rows if r["mode"] == "latency"), None)
    print(
        f"\n{'mode':<11}{'camera Hz':>10}{'answered':>10}{'node FPS':>9}{'x runtime lat':>14}"
        f"{'stamp->publish p50/p99 ms':>27}{'runtime FPS':>12}{'pipeline FPS':>13}  in flight"
    )
    for r in rows:
        lat = r["node_stamp_to_publish_ms"] or {}
        latency = f"{lat.get('p50', float('nan')):.1f}/{lat.get('p99', float('nan')):.1f}"
        ratio = f"{r['node_fps'] / base:.2f}x" if base else "n/a"
        print(
            f"{r['mode']:<11}{r['camera_fps']:10.1f}{r['answered']:>5}/{r['sent']:<4}"
            f"{r['node_fps']:9.2f}{ratio:>14}{latency:>27}{r['runtime_fps']:12.2f}"
            f"{r['pipeline_fps']:13.2f}  {r['in_flight']}"
        )
    print(
        "runtime FPS: the bare network call in that mode (throughput: OpenVINO's async queue, "
        "or onnxruntime's session from that many threads); x runtime lat: node FPS over the "
        "bare runtime in latency mode; stamp->publish: the node's own window"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.logs = LogFolder(args.log_dir, "seg-node-bench", "--log-dir")
    if outputs_refused("seg-node-bench", {"--json": args.json}, logs=args.logs):
        return 2
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    from seg_ros.ros.dds_tuning import apply_fastdds_profile

    apply_fastdds_profile()
    from seg_ros.tools.street_scene import StreetScene

    scene = StreetScene(args.width, args.height)
    frames = [scene.frame(i) for i in range(args.warmup + args.frames)]
    print(
        f"node_bench: {args.frames} frames {args.width}x{args.height} (+{args.warmup} warm-up), "
        f"{args.threads} torch thread(s), blocks of {args.block} alternating node / bare"
    )
    try:
        out = run(args, frames)
    finally:
        args.logs.seal()
    bare, node = out["bare"], out["node"]
    overhead = (node["mean_ms"] - bare["mean_ms"]) / bare["mean_ms"] * 100
    fps_loss = (bare["fps"] - node["fps"]) / bare["fps"] * 100
    out["overhead_pct"] = overhead
    print(f"\n{'':24}{'fps':>8}{'mean ms':>10}{'p50 ms':>10}{'p90 ms':>10}{'max ms':>10}")
    for name, s in (("bare pipeline", bare), ("node (round trip)", node)):
        print(
            f"{name:24}{s['fps']:8.2f}{s['mean_ms']:10.1f}{s['p50_ms']:10.1f}"
            f"{s['p90_ms']:10.1f}{s['max_ms']:10.1f}"
        )
    print(
        f"\nnode overhead: {overhead:+.1f}% mean latency, {-fps_loss:+.1f}% fps, "
        f"median extra per frame {out['paired_median_extra_ms']:+.1f} ms (target: <= 5%)"
    )
    stages = out["node_stages_p50_ms"]
    if stages:
        print("node stages p50 (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    if "stream" in out:
        print_stream(out["stream"])
    print(f"node logs: {args.logs.folder}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
