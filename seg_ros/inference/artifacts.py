"""Where on-the-fly ONNX files and TensorRT engines are kept, so the next start reuses them.

``$SEG_ROS_CACHE``, else ``$XDG_CACHE_HOME/seg_ros``, else ``~/.cache/seg_ros``. Names carry a
digest of the weights file, so new weights never reuse an old export. Random-init networks
are never cached (their exports are worth nothing after the run). The cache is bounded:
after each new file the least recently used of its own files go until it holds at most
``$SEG_ROS_CACHE_MAX_MB`` (default 1024) MB; nothing else in the folder is touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from pathlib import Path

log = logging.getLogger("seg_ros.inference")
DEFAULT_LIMIT_MB = 1024
# What artifact_path names (and an engine's JSON sidecar): the only files prune() removes.
_OURS = re.compile(r"^[a-z0-9]+_[a-z0-9]+_[0-9a-f]+_\d+x\d+.*\.(onnx|engine|engine\.json)$")


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


def touch(path: Path) -> None:
    """Mark a reused artifact as recently used (prune() goes by modification time)."""
    with contextlib.suppress(OSError):  # a read-only cache still serves
        os.utime(path)


def prune(keep: Path, limit_mb: float | None = None) -> list[Path]:
    """Remove the least recently used artifacts (never ``keep``) until the cache's own files
    take at most ``limit_mb``; returns what was removed."""
    if limit_mb is None:
        limit_mb = float(os.environ.get("SEG_ROS_CACHE_MAX_MB", DEFAULT_LIMIT_MB))
    folder = keep.parent
    files = [p for p in folder.iterdir() if p.is_file() and _OURS.match(p.name)]
    total = sum(p.stat().st_size for p in files)
    removed = []
    for path in sorted(files, key=lambda p: p.stat().st_mtime):
        if total <= limit_mb * 2**20:
            break
        if path == keep or path.name == keep.name + ".json":
            continue
        total -= path.stat().st_size
        path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.info("cache %s: removed %d old file(s) to stay under %g MB", folder, len(removed),
                 limit_mb)  # fmt: skip
    return removed
