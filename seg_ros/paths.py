"""Where the package's installed data (config/, launch/, models/) lives.

The same code runs from a colcon install (ament index), a pip install into a virtual
environment (``<prefix>/share/seg_ros``) and a source checkout (the repository itself).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGE = "seg_ros"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dirs() -> list[Path]:
    """Candidate share directories, most specific first; only existing ones are returned.

    When seg_ros is imported from a source checkout, the checkout comes first: code and its
    data then come from the same tree, and an older installed copy cannot shadow an edit.
    """
    candidates: list[Path] = []
    if (SOURCE_ROOT / "package.xml").is_file():
        candidates.append(SOURCE_ROOT)
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / PACKAGE)
    candidates.append(Path(sys.prefix) / "share" / PACKAGE)
    return [c for c in dict.fromkeys(candidates) if c.is_dir()]


def find_data(relative: str | Path) -> Path | None:
    """First existing ``<share>/relative``, e.g. ``models/fplnet_camvid.safetensors``."""
    for share in share_dirs():
        path = share / relative
        if path.exists():
            return path
    return None


def resolve_recipe(name_or_path: str) -> Path:
    """A recipe path as given, or a name from config/train/ (``fplnet_camvid``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    found = find_data(Path("config") / "train" / f"{path.stem}.yaml")
    if found is None:
        known = sorted({p.stem for s in share_dirs() for p in (s / "config/train").glob("*.yaml")})
        raise FileNotFoundError(f"no recipe {name_or_path!r}; known recipes: {known}")
    return found


@contextmanager
def atomic_write(path: Path, companions: tuple[Callable[[Path], Path], ...] = ()) -> Iterator[Path]:
    """A temporary name beside ``path`` (same suffix: writers that add or check one still
    work) to write to; once the block ends it replaces ``path``, each companion first (a file
    named after it: OpenVINO's .bin, an engine's sidecar), so a crash mid-write never leaves a
    truncated file under the real name. On an exception the temporary files are removed."""
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        for companion in companions:
            companion(tmp).replace(companion(path))
        tmp.replace(path)
    except BaseException:
        for leftover in (tmp, *(companion(tmp) for companion in companions)):
            leftover.unlink(missing_ok=True)
        raise
