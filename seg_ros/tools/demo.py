"""seg-demo: the segmentation node on a built-in or given input, end to end over DDS.

    seg-demo                                  # synthetic street frames, ~1 minute on a CPU
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.tools.options import add_param_arg, add_pipeline_args, node_params_from_args

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
BAG_SUFFIXES = {".mcap", ".db3"}
NODE_NAME = "seg_demo_node"
NAMESPACE = "/seg_demo"


# ---------------------------------------------------------------- synthetic street frames


class StreetScene:
    """A drive down a street, drawn in perspective: sky, facades, sidewalks, road markings,
    poles, trees and cars, the camera moving forward one step per frame. Made by the project
    (nothing downloaded), with the layout of a CamVid/Cityscapes frame so a street model has
    something meaningful to label."""

    def __init__(self, width: int = 480, height: int = 360, seed: int = 0) -> None:
        self.w, self.h = width, height
        self.rng = np.random.default_rng(seed)
        self.horizon = int(height * 0.42)
        self.vx = width / 2
        self.f = width * 0.9  # focal length in pixels
        self.cam_height = 1.4  # metres
        self.speed = 0.6  # metres per frame
        self.far = 80.0
        rng = self.rng
        self.buildings = [  # side, start z, length, height, colour
            (side, z, float(rng.uniform(6, 14)), float(rng.uniform(6, 18)), _colour(rng, 60, 200))
            for side in (-1, 1)
            for z in np.cumsum(rng.uniform(6, 14, 12))
        ]
        self.trees = [(side, float(z)) for side in (-1, 1) for z in rng.uniform(0, self.far, 5)]
        self.poles = [(side, float(z)) for side in (-1, 1) for z in np.arange(5, self.far, 16)]
        self.cars = [  # lane x, z, own speed, colour
            (float(rng.choice([-1.8, 1.8])), float(rng.uniform(8, self.far)),
             float(rng.uniform(-0.3, 0.5)), _colour(rng, 20, 230))
            for _ in range(5)
        ]  # fmt: skip
        self.sky = np.linspace([110, 150, 210], [200, 215, 235], self.horizon).astype(np.uint8)

    def _project(self, x: float, y: float, z: float) -> tuple[int, int]:
        z = max(z, 0.3)
        return int(self.vx + self.f * x / z), int(self.horizon + self.f * (self.cam_height - y) / z)

    def _quad(self, img: np.ndarray, pts: list[tuple[float, float, float]], colour: Any) -> None:
        import cv2

        poly = np.array([self._project(*p) for p in pts], np.int32)
        cv2.fillConvexPoly(img, poly, tuple(int(c) for c in colour))

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as HxWx3 uint8 RGB."""
        import cv2

        img = np.empty((self.h, self.w, 3), np.uint8)
        img[: self.horizon] = self.sky[:, None, :]
        img[self.horizon :] = (95, 95, 100)
        travelled = index * self.speed
        near, far = 0.5, self.far
        self._quad(
            img, [(-3.5, 0, near), (3.5, 0, near), (3.5, 0, far), (-3.5, 0, far)], (70, 70, 75)
        )
        for side in (-1, 1):  # sidewalks and kerbs
            a, b = sorted((side * 3.5, side * 7.0))
            self._quad(img, [(a, 0, near), (b, 0, near), (b, 0, far), (a, 0, far)], (150, 140, 130))
        period = 40.0 * 12
        for side, z0, length, height, colour in sorted(self.buildings, key=lambda b: -b[1]):
            z = (z0 - travelled) % period
            if z > far or z + length < near:
                continue
            x = side * 7.0
            z1, z2 = max(z, near), min(z + length, far)
            self._quad(img, [(x, 0, z1), (x, height, z1), (x, height, z2), (x, 0, z2)], colour)
            for wy in np.arange(2.0, height - 1, 3.0):  # windows
                for wz in np.arange(z + 1.0, z + length - 1, 2.5):
                    if near < wz < far - 1:
                        glass = (60, 80, 110)
                        self._quad(
                            img,
                            [
                                (x, wy, wz),
                                (x, wy + 1.2, wz),
                                (x, wy + 1.2, wz + 1),
                                (x, wy, wz + 1),
                            ],
                            glass,
                        )
        for dz in np.arange(-(travelled % 6.0), far, 6.0):  # centre line dashes
            if dz + 3 > near:
                z1 = max(dz, near)
                self._quad(
                    img, [(-0.08, 0, z1), (0.08, 0, z1), (0.08, 0, dz + 3), (-0.08, 0, dz + 3)],
                    (235, 235, 220),
                )  # fmt: skip
        things: list[tuple[float, str, Any]] = []
        loop = self.far
        things += [(((z - travelled) % loop), "pole", s) for s, z in self.poles]
        things += [(((z - travelled) % loop), "tree", s) for s, z in self.trees]
        for x, z0, own, colour in self.cars:
            things.append((((z0 + index * own) % loop) + near, "car", (x, colour)))
        for z, kind, data in sorted(things, key=lambda t: -t[0]):
            if z < 1.0:
                continue
            if kind == "pole":
                x = data * 3.8
                self._quad(
                    img,
                    [(x - 0.06, 0, z), (x + 0.06, 0, z), (x + 0.06, 6, z), (x - 0.06, 6, z)],
                    (120, 120, 120),
                )
            elif kind == "tree":
                x = data * 5.0
                self._quad(
                    img,
                    [(x - 0.12, 0, z), (x + 0.12, 0, z), (x + 0.12, 3, z), (x - 0.12, 3, z)],
                    (90, 60, 30),
                )
                cx, cy = self._project(x, 4.2, z)
                cv2.circle(img, (cx, cy), max(1, int(self.f * 1.6 / z)), (50, 120, 40), -1)
            else:
                x, colour = data
                self._quad(
                    img,
                    [(x - 0.9, 0.3, z), (x + 0.9, 0.3, z), (x + 0.9, 1.4, z), (x - 0.9, 1.4, z)],
                    colour,
                )
                self._quad(
                    img,
                    [(x - 0.7, 1.4, z), (x + 0.7, 1.4, z), (x + 0.6, 1.9, z), (x - 0.6, 1.9, z)],
                    (40, 50, 60),
                )
                for wx in (x - 0.6, x + 0.6):
                    cx, cy = self._project(wx, 0.3, z)
                    cv2.circle(img, (cx, cy), max(1, int(self.f * 0.3 / z)), (20, 20, 20), -1)
        noise = self.rng.integers(-6, 7, img.shape, dtype=np.int16)
        return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _colour(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


# ---------------------------------------------------------------- frame sources


def synthetic_frames(width: int, height: int, seed: int = 0) -> Iterator[np.ndarray]:
    scene = StreetScene(width, height, seed)
    index = 0
    while True:
        yield scene.frame(index)
        index += 1


def open_source(
    spec: str | None, width: int, height: int, topic: str | None = None
) -> Iterator[np.ndarray]:
    """RGB frames from: nothing or ``synthetic`` (synthetic), a video file, an image folder (or
    a labelled clip: ``images/`` + ``labels/``), a rosbag2 (folder with metadata.yaml, .mcap or
    .db3), or a camera (``camera:N``, ``/dev/videoN``)."""
    if not spec or spec == "synthetic":
        return synthetic_frames(width, height)
    if spec.startswith("camera:") or spec.startswith("/dev/video") or spec.isdigit():
        index = spec.split(":", 1)[1] if spec.startswith("camera:") else spec
        return _capture(int(index) if index.isdigit() else index, spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise SystemExit(f"seg-demo: --input {spec}: no such file, folder or camera")
    if path.suffix.lower() in BAG_SUFFIXES or (path / "metadata.yaml").is_file():
        return _bag_frames(path, topic)
    if path.is_dir():
        return _folder_frames(path / "images" if (path / "images").is_dir() else path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _capture(str(path), spec)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _folder_frames(path)
    raise SystemExit(f"seg-demo: --input {spec}: not a video, image, image folder or rosbag2")


DEMO_CLIP = "demo/camvid_clip"


def default_input() -> str:
    """The shipped CamVid clip when installed, else synthetic street frames."""
    from seg_ros.paths import find_data

    clip = find_data(DEMO_CLIP)
    return str(clip) if clip is not None else "synthetic"


def clip_labels(spec: str | None) -> list[np.ndarray | None]:
    """Ground truth of a labelled clip (``labels/<stem>.png`` beside ``images/``), in frame
    order; [] for any other input."""
    import cv2

    if not spec or spec == "synthetic":
        return []
    root = Path(spec).expanduser()
    if not (root / "images").is_dir() or not (root / "labels").is_dir():
        return []
    images = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    out: list[np.ndarray | None] = []
    for image in images:
        label = root / "labels" / f"{image.stem}.png"
        out.append(cv2.imread(str(label), cv2.IMREAD_UNCHANGED) if label.is_file() else None)
    return out


def _capture(device: int | str, spec: str) -> Iterator[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(device)
    if not capture.isOpened():
        raise SystemExit(f"seg-demo: cannot open {spec} with OpenCV")

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return frames()


def _folder_frames(path: Path) -> Iterator[np.ndarray]:
    import cv2

    files = [path] if path.is_file() else sorted(
        p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
    )  # fmt: skip
    if not files:
        raise SystemExit(f"seg-demo: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")

    def frames() -> Iterator[np.ndarray]:
        for file in files:
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                print(f"seg-demo: skipping unreadable {file}", file=sys.stderr)
                continue
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    return frames()


def _bag_frames(path: Path, topic: str | None) -> Iterator[np.ndarray]:
    try:
        from seg_ros.bag.io import IMAGE_TYPES, BagReader, decode_frame
    except ImportError as e:
        raise SystemExit(f"seg-demo: reading a bag needs the bag extra: {e}") from None
    reader = BagReader(path)
    chosen = reader.resolve_topic(topic, IMAGE_TYPES, "image") if topic else None
    if chosen is None:
        topics = reader.image_topics()
        if not topics:
            reader.close()
            raise SystemExit(f"seg-demo: {path} has no Image or CompressedImage topic")
        chosen = topics[0]
    print(f"seg-demo: reading {chosen} from {path}")

    def frames() -> Iterator[np.ndarray]:
        with reader:
            for message in reader.messages([chosen]):
                yield decode_frame(message).rgb()

    return frames()


# ---------------------------------------------------------------- output


MANIFEST = "seg-demo-files.txt"


class OutputFolderError(Exception):
    pass


def prepare_output(folder: Path) -> None:
    """Make ``folder`` ready for a run without touching what seg-demo did not write.

    A new or empty folder is used as it is. A folder an earlier run wrote has that run's
    manifest: exactly the files it lists are removed (nothing else, even a PNG the user put
    there). Any other non-empty folder is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST
    ours = set(manifest.read_text().split("\n")) - {""} if manifest.is_file() else set()
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in ours | {MANIFEST})
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise OutputFolderError(
            f"output folder {folder} holds files seg-demo did not write ({shown}); "
            "give an empty or new folder with --output"
        )
    for name in ours:
        path = folder / name
        if path.is_file() and path.parent == folder:
            path.unlink()
    manifest.unlink(missing_ok=True)


class PngWriter:
    """Writes results on a thread of its own, so a slow disk never delays receiving; every
    file it writes is listed in the folder's manifest, so a later run removes only those."""

    def __init__(self, folder: Path, save_input: bool = False) -> None:
        self.folder = folder
        self._manifest = (folder / MANIFEST).open("a")
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
        self.record(name)
        cv2.imwrite(str(self.folder / name), image)

    def record(self, name: str) -> None:
        self._manifest.write(name + "\n")
        self._manifest.flush()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)
        self._manifest.close()


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
        prog="seg-demo",
        description="Run the segmentation node on synthetic street frames (default) or on "
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
    p.add_argument(
        "--width", type=int, default=480, help="synthetic frame width (default: %(default)s)"
    )
    p.add_argument(
        "--height", type=int, default=360, help="synthetic frame height (default: %(default)s)"
    )
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
    return args


def node_params(args: argparse.Namespace) -> dict[str, Any]:
    try:
        params = node_params_from_args(args)
    except ValueError as e:
        raise SystemExit(f"seg-demo: {e}") from None
    if args.transport == "compressed":
        params["input_transport"] = "compressed"
    params.setdefault("target_rate", 0.0)  # the demo's frames arrive as fast as it says
    return params


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    notes = _dds_defaults()
    from seg_ros.paths import find_data
    from seg_ros.ros.client import SegmentationClient
    from seg_ros.ros.contract import FRAMES_PROCESSED, NodeStatus, node_fqn, status_name
    from seg_ros.ros.node_process import NodeProcess, node_command

    out = Path(args.output)
    try:
        prepare_output(out)
    except OutputFolderError as e:
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
    writer = PngWriter(out, args.save_input)
    writer.record("node.log")
    node = NodeProcess(command, out / "node.log", echo=sys.stderr)
    latencies: list[float] = []
    lock = threading.Lock()
    last_id = {"value": None}
    score = ClipScore(truth)

    def on_result(result: Any) -> None:
        with lock:
            latencies.append(result.latency_ms)
            last_id["value"] = result.frame_id
        score.add(result)
        writer.put(result)

    client = SegmentationClient(
        NAMESPACE,
        "seg_demo_camera",
        transport=args.transport,
        on_result=on_result,
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
        period = 1.0 / args.rate
        t0 = time.monotonic()
        last_frame = ""
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
        sent_for = time.monotonic() - t0
        # The newest frame is never dropped: wait for it, so the counts below are complete.
        deadline = time.monotonic() + 30.0
        while last_id["value"] != last_frame and time.monotonic() < deadline and node.alive():
            time.sleep(0.05)
        # The node's next diagnostics count every frame segmented above.
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and node.alive():
            processed = NodeStatus(client.diagnostics).number(FRAMES_PROCESSED)
            if processed is not None and processed >= len(latencies):
                break
            time.sleep(0.1)
        diag = dict(client.diagnostics)
    finally:
        client.close()
        returned = node.stop()
        writer.close()
    if returned not in (0, None) and code == 0:
        print(f"seg-demo: the node exited with {returned}", file=sys.stderr)
    _summary(args, published, sent_for, latencies, diag, writer, out)
    if score.frames:
        print(f"  accuracy   {score.describe()}")
    return code


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
