"""seg-demo: the segmentation node on a built-in or given input, end to end over DDS.

    seg-demo                                  # the shipped CamVid clip, ~1 minute on a CPU
    seg-demo --input video.mp4                # a video file (or an image folder, a rosbag2,
    seg-demo --input camera:0                 #  or a V4L2 camera)
    seg-demo --model rgpnet --device cuda --rate 30

It starts the node in its own process (as a launch file would), acts as the camera by
publishing frames to it over DDS, writes what comes back as PNGs and ends with a latency
summary: the node's own stage timings from /diagnostics and the whole trip as a subscriber
sees it. Frames the node had no time for are dropped by its latest-frame policy, so a camera
faster than the model shows up as drops, not as growing latency.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.tools.frame_sources import clip_labels, default_input, open_source
from seg_ros.tools.options import (
    HelpFormatter,
    add_frame_size,
    add_param_arg,
    add_pipeline_args,
    frame_size,
    node_params_from_args,
)
from seg_ros.tools.output_paths import OutputPathError, OwnedFolder

NODE_NAME = "seg_demo_node"
NAMESPACE = "/seg_demo"


# ---------------------------------------------------------------- output


TOOL = "seg-demo"


class PngWriter:
    """Writes results on a thread of its own, so a slow disk never delays receiving; every
    file it writes is listed in the folder's manifest, so a later run removes only those."""

    def __init__(self, folder: OwnedFolder, save_input: bool = False) -> None:
        self.owned = folder
        self.folder = folder.folder
        self.inputs: dict[str, np.ndarray] = {}
        self.save_input = save_input
        self.written = 0
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def put(self, result: Any) -> None:
        self._queue.put(result)

    def _run(self) -> None:
        import cv2

        while True:
            result = self._queue.get()
            if result is None:
                return
            for name, array in result.outputs.items():
                image = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
                self._write(f"{result.frame_id}_{name}.png", image)
            frame = self.inputs.pop(result.frame_id, None)
            if self.save_input and frame is not None:
                self._write(f"{result.frame_id}_input.png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            self.written += 1

    def _write(self, name: str, image: np.ndarray) -> None:
        import cv2

        # Listed before it exists: a run killed mid-write still owns the file.
        self.owned.reserve(name)
        cv2.imwrite(str(self.folder / name), image)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)
        self.owned.seal()


# ---------------------------------------------------------------- the run


def _dds_defaults() -> list[str]:
    """A demo should neither disturb nor be disturbed by other ROS 2 programs: localhost only
    and a domain of its own unless the user chose them; seg_ros' Fast DDS profile so
    full-size frames cross between processes (see seg_ros.ros.dds_tuning)."""
    notes = []
    if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in os.environ:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if "ROS_DOMAIN_ID" not in os.environ:
        os.environ["ROS_DOMAIN_ID"] = str(random.randint(100, 200))
        notes.append("set ROS_DOMAIN_ID to watch from other tools")
    from seg_ros.ros.dds_tuning import apply_fastdds_profile

    apply_fastdds_profile()
    return notes


def wait_for_node(client: Any, node: Any, timeout: float) -> str | None:
    """None once the node is ready; else why not, as soon as that is known: the node exited,
    it could not build its pipeline (its log or an ERROR diagnostics status), or time ran
    out. A node that cannot build waits for new parameters, which a demo never sends."""
    from seg_ros.ros.contract import START_FAILURE

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.ready():
            return None
        if not node.alive():
            return "the node exited"
        if START_FAILURE in node.tail(200):
            return "the node could not start its pipeline"
        if client.diagnostics_message.startswith("no model"):
            return f"the node reports: {client.diagnostics_message}"
        time.sleep(0.05)
    return f"the node did not come up within {timeout:g} s"


def _percentiles(samples: list[float]) -> str:
    if not samples:
        return "     n/a"
    p = np.percentile(np.asarray(samples), [50, 90, 99])
    return f"{p[0]:8.1f} {p[1]:8.1f} {p[2]:8.1f} {max(samples):8.1f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        prog="seg-demo",
        description="Run the segmentation node on the shipped CamVid clip (default) or on "
        "--input, write its outputs as PNGs and print a latency summary.",
    )
    p.add_argument(
        "--input",
        help="video file, image folder, labelled clip, rosbag2, camera:N, or synthetic "
        "(default: the shipped CamVid clip, scored against its labels)",
    )
    p.add_argument("--topic", help="image topic to read from a bag (default: the first one)")
    p.add_argument(
        "--output", default="out/demo", help="folder for the PNGs (default: %(default)s)"
    )
    p.add_argument(
        "--duration",
        type=float,
        default=30.0,
        help="seconds of frames to publish (default: %(default)s)",
    )
    p.add_argument(
        "--frames", type=int, default=0, help="stop after this many frames (0: --duration decides)"
    )
    p.add_argument(
        "--rate",
        type=float,
        default=10.0,
        help="frames per second published (default: %(default)s)",
    )
    add_frame_size(p, (360, 480), "synthetic frames")
    p.add_argument("--transport", choices=("raw", "compressed"), default="raw")
    p.add_argument(
        "--save-input", action="store_true", help="also write each segmented input frame"
    )
    p.add_argument("--startup-timeout", type=float, default=120.0)
    node = p.add_argument_group("node parameters (default: config/segmentation.yaml)")
    add_pipeline_args(node, threads=False)
    add_param_arg(node)
    args = p.parse_args(argv)
    if args.rate <= 0:
        p.error("--rate must be positive")
    args.height, args.width = frame_size(args)
    return args


def node_params(args: argparse.Namespace) -> dict[str, Any]:
    try:
        params = node_params_from_args(args)
    except ValueError as e:
        raise SystemExit(f"seg-demo: {e}") from None
    if args.transport == "compressed":
        params["input_transport"] = "compressed"
    params.setdefault("target_rate", 0.0)  # judged against the rate the demo publishes at
    return params


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    notes = _dds_defaults()
    from seg_ros.paths import find_data
    from seg_ros.ros.client import SegmentationClient
    from seg_ros.ros.contract import node_fqn, status_name
    from seg_ros.ros.node_process import NodeProcess, node_command

    owned = OwnedFolder(args.output, TOOL, "--output")
    out = owned.folder
    try:
        owned.claim()
    except OutputPathError as e:
        print(f"seg-demo: {e}", file=sys.stderr)
        return 2
    if args.input is None:
        args.input = default_input()
    frames = open_source(args.input, args.width, args.height, args.topic)
    truth = clip_labels(args.input)
    params_file = find_data("config/segmentation.yaml")
    command = node_command(NODE_NAME, NAMESPACE, node_params(args), params_file)
    print(
        f"seg-demo: DDS domain {os.environ['ROS_DOMAIN_ID']}, "
        f"{os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'].lower()} discovery"
        + (f" ({'; '.join(notes)})" if notes else "")
    )
    print(f"seg-demo: starting {NAMESPACE}/{NODE_NAME} (log: {out / 'node.log'})")
    writer = PngWriter(owned, args.save_input)
    owned.reserve("node.log")
    node = NodeProcess(command, out / "node.log", echo=sys.stderr)
    results = _Results(ClipScore(truth), writer)
    client = SegmentationClient(
        NAMESPACE,
        "seg_demo_camera",
        transport=args.transport,
        on_result=results,
        diagnostics_name=status_name(node_fqn(NAMESPACE, NODE_NAME)),
    )
    published = 0
    code = 0
    try:
        start = time.monotonic()
        failure = wait_for_node(client, node, args.startup_timeout)
        if failure:
            print(f"seg-demo: {failure}; its log ends:\n{node.tail()}", file=sys.stderr)
            return 1
        amount = f"{args.frames} frames" if args.frames else f"{args.duration:g} s"
        if not args.input.startswith(("synthetic", "camera:", "/dev/video")):
            amount += " or until the input ends"
        print(
            f"seg-demo: node ready after {time.monotonic() - start:.1f} s; publishing at "
            f"{args.rate:g} Hz for {amount}"
        )
        published, sent_for, last_frame, code = _publish(args, frames, client, node, writer)
        _wait_for_results(client, node, results, last_frame)
        diag = dict(client.diagnostics)
    finally:
        client.close()
        returned = node.stop()
        writer.close()
    latencies = results.latencies
    score = results.score
    if returned not in (0, None) and code == 0:
        print(f"seg-demo: the node exited with {returned}", file=sys.stderr)
    _summary(args, published, sent_for, latencies, diag, writer, out)
    _print_accuracy(args, score, diag)
    return code


def _print_accuracy(args: argparse.Namespace, score: ClipScore, diag: dict[str, str]) -> None:
    """The clip's mIoU, where the model predicts the clip's (CamVid) classes."""
    from seg_ros.ros.contract import NodeStatus

    served = NodeStatus(diag).model
    dataset = served.get("dataset", "camvid")
    if score.frames and dataset != "camvid":
        # the clip's labels are CamVid ids: another label set's ids would score as noise
        classes = f"{served.get('model')}'s own" if dataset == "own" else repr(dataset)
        print(
            f"  accuracy   not scored: the model predicts {classes} classes, the clip is "
            "labelled with CamVid's (judge it with seg-eval or seg-bag-eval on data of its classes)"
        )
    elif score.frames:
        print(f"  accuracy   {score.describe()}")
        if _is_shipped_clip(args.input):
            print(
                "             (the shipped clip is from CamVid val, which files trained on"
                " train + val, as the shipped FPLNet is, have seen: a sanity check, not accuracy"
                " on new footage; judge that with seg-bag-eval)"
            )


class _Results:
    """What came back: each result's latency, the newest frame's id, the clip's score."""

    def __init__(self, score: ClipScore, writer: PngWriter) -> None:
        self.score, self._writer = score, writer
        self._lock = threading.Lock()
        self.latencies: list[float] = []
        self.last_id: str | None = None

    def __call__(self, result: Any) -> None:
        with self._lock:
            self.latencies.append(result.latency_ms)
            self.last_id = result.frame_id
        self.score.add(result)
        self._writer.put(result)


def _publish(
    args: argparse.Namespace, frames: Any, client: Any, node: Any, writer: PngWriter
) -> tuple[int, float, str, int]:
    """Publish at the rate asked until the frames, the duration or the input end: (frames
    published, seconds it took, the last frame's id, exit code)."""
    period = 1.0 / args.rate
    published, code, last_frame = 0, 0, ""
    t0 = time.monotonic()
    for frame in frames:
        if args.frames and published >= args.frames:
            break
        if not args.frames and time.monotonic() - t0 >= args.duration:
            break
        if not node.alive():
            print(f"seg-demo: the node exited; its log ends:\n{node.tail()}", file=sys.stderr)
            code = 1
            break
        last_frame = f"frame_{published:05d}"
        if args.save_input:
            writer.inputs[last_frame] = frame
        client.publish(frame, last_frame)
        published += 1
        time.sleep(max(0.0, t0 + published * period - time.monotonic()))
    return published, time.monotonic() - t0, last_frame, code


def _wait_for_results(client: Any, node: Any, results: _Results, last_frame: str) -> None:
    """The newest frame is never dropped: wait for it, then for the node's diagnostics to
    count every frame segmented, so the summary's counts are complete."""
    from seg_ros.ros.contract import FRAMES_PROCESSED, NodeStatus

    deadline = time.monotonic() + 30.0
    while results.last_id != last_frame and time.monotonic() < deadline and node.alive():
        time.sleep(0.05)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and node.alive():
        processed = NodeStatus(client.diagnostics).number(FRAMES_PROCESSED)
        if processed is not None and processed >= len(results.latencies):
            break
        time.sleep(0.1)


def _is_shipped_clip(spec: str) -> bool:
    clip = default_input()
    return clip != "synthetic" and Path(spec).resolve() == Path(clip).resolve()


class ClipScore:
    """mIoU of the node's labels against a clip's ground truth, over the frames answered."""

    def __init__(self, truth: list[np.ndarray | None]) -> None:
        self.truth = truth
        self.frames = 0
        self._cm: Any = None
        self._lock = threading.Lock()

    def add(self, result: Any) -> None:
        index = int(result.frame_id.rsplit("_", 1)[-1]) if result.frame_id else -1
        if not 0 <= index < len(self.truth) or self.truth[index] is None:
            return
        labels = result.outputs.get("labels")
        if labels is None or labels.shape != self.truth[index].shape:
            return
        from seg_ros.labels import CAMVID
        from seg_ros.metrics import ConfusionMatrix

        with self._lock:
            if self._cm is None:
                self._cm = ConfusionMatrix(CAMVID.num_classes)
            self._cm.update(labels, self.truth[index])
            self.frames += 1

    def describe(self) -> str:
        return (
            f"mIoU {100 * self._cm.miou():.2f}% against the clip's labels over the "
            f"{self.frames} frames answered (pixel accuracy {100 * self._cm.pixel_accuracy():.1f}%)"
        )


def _summary(
    args: argparse.Namespace,
    published: int,
    seconds: float,
    latencies: list[float],
    diag: dict[str, str],
    writer: PngWriter,
    out: Path,
) -> None:
    from seg_ros.ros.contract import (
        BAD_INPUTS,
        FRAMES_DROPPED,
        LATENCY_LABELS,
        LATENCY_STATISTICS,
        NodeStatus,
    )

    status = NodeStatus(diag)
    model = status.model
    source = args.input or f"synthetic street {args.width}x{args.height}"
    segmented = len(latencies)
    print()
    print("seg-demo summary")
    print(f"  input      {source}, {published} frames at {published / max(seconds, 1e-9):.1f} Hz")
    if model:
        weights = "RANDOM (labels meaningless)" if status.random_weights else model.get("weights")
        print(
            f"  model      {model.get('model')}/{model.get('variant')} on "
            f"{model.get('backend')} {model.get('device')} {model.get('precision')}, "
            f"network input {model.get('input_size')} (h x w), weights {weights}"
        )
    rate = segmented / max(seconds, 1e-9)
    print(
        f"  frames     {segmented} segmented ({rate:.1f} Hz), "
        f"{status.text(FRAMES_DROPPED)} dropped by the latest-frame policy, "
        f"{status.text(BAD_INPUTS)} bad"
    )
    print("  latency ms " + " ".join(f"{s:>8}" for s in LATENCY_STATISTICS))
    for stage in LATENCY_LABELS:
        figures = status.latency(stage)
        if figures is not None:
            print(f"  {stage:<22}" + " ".join(f"{figures[s]:8.1f}" for s in LATENCY_STATISTICS))
    print(f"  {'stamp to result (demo)':<22}{_percentiles(latencies)}")
    print(f"  outputs    {writer.written} frames x {{labels,color,overlay}} PNGs in {out}/")
    if segmented == 0:
        print("  no frame came back: see node.log in the output folder")


if __name__ == "__main__":
    sys.exit(main())
