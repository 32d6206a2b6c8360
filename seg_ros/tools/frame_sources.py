"""Where seg-demo's frames come from: the shipped CamVid clip (the default), an image folder, a
video file, a V4L2 camera, a rosbag2, or the synthetic street; and the clip's labels."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seg_ros.tools.street_scene import synthetic_frames

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
BAG_SUFFIXES = {".mcap", ".db3"}


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
