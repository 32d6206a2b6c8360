"""Where on-the-fly ONNX files and TensorRT engines are kept, so the next start reuses them.

``$SEG_ROS_CACHE``, else ``$XDG_CACHE_HOME/seg_ros``, else ``~/.cache/seg_ros``. Names carry a
digest of the weights file (or "random"), so new weights never reuse an old export.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("SEG_ROS_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "seg_ros"


def file_digest(path: str | Path, length: int = 12) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def artifact_path(model: str, variant: str, tag: str, size: tuple[int, int], suffix: str) -> Path:
    """``<cache>/<model>_<variant>_<tag>_<h>x<w><suffix>``; ``tag`` names the weights (their
    digest, or e.g. ``random19`` for a random-init network)."""
    name = f"{model}_{variant}_{tag}_{size[0]}x{size[1]}{suffix}"
    return cache_dir() / name
