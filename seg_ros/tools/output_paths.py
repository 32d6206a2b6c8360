"""Where the console scripts write: every output path is checked before any work starts, and a
tool writes only into a folder that is new, empty, or one it wrote itself.

A tool's folder carries a manifest (``<tool>-files.txt``) with the sha256 of each file the
tool wrote (a name alone while the file is being written). A later run removes exactly those
files, and only while they are unchanged: a file the user added, or one of ours the user
edited (a hand-corrected ``report.md``), makes the folder theirs, and the run is refused
before any work.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from seg_ros.inference.artifacts import file_digest


class OutputPathError(ValueError):
    """An output path that cannot be written as asked; the message names the path and flag."""


def check_output_file(path: Path | str | None, flag: str) -> None:
    """Refuse, before any work, an output file whose folder is missing or that is a folder.

    A missing folder is not created: a typo in a folder name must not become a new tree."""
    if path is None:
        return
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputPathError(f"{flag} {path} is a folder; give a file path")
    if not path.parent.is_dir():
        raise OutputPathError(f"{flag} {path}: folder {path.parent} does not exist")


class OwnedFolder:
    """An output folder that a tool (``tool``, e.g. "seg-bag-eval") owns while it writes."""

    def __init__(self, folder: Path | str, tool: str, flag: str) -> None:
        self.folder = Path(folder).expanduser()
        self.tool = tool
        self.flag = flag
        self.manifest = self.folder / f"{tool}-files.txt"

    def check(self) -> None:
        """Raise OutputPathError unless the folder is new, empty or holds only unchanged files
        this tool wrote. Touches nothing."""
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputPathError(f"{self.flag} {self.folder} is a file; give a folder")
        for parent in self.folder.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputPathError(f"{self.flag} {self.folder}: {parent} is a file")
                break
        if not self.folder.is_dir():
            return
        ours = self._ours()
        foreign = sorted(
            p.name
            for p in self.folder.iterdir()
            if p != self.manifest and (p.name not in ours or not _unchanged(p, ours[p.name]))
        )
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise OutputPathError(
                f"{self.flag} {self.folder} holds files {self.tool} did not write or that were "
                f"changed since ({shown}); give an empty or new folder"
            )

    def claim(self) -> None:
        """Check, then remove this tool's earlier files and start a new manifest."""
        self.check()
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in self._ours():
            path = self.folder / name
            if path.is_file() and path.parent == self.folder:
                path.unlink()
        self.manifest.write_text("")

    def reserve(self, *names: str) -> None:
        """List files (by name, in the folder) before they are written, so a run killed
        mid-write still owns them; seal() adds their digests once they are complete."""
        with self.manifest.open("a") as f:
            f.writelines(f"{name}\n" for name in names)

    def seal(self) -> None:
        """Rewrite the manifest with the sha256 of each listed file that exists now."""
        lines = [
            f"{_sha256(self.folder / name)}  {name}"
            for name in self._ours()
            if (self.folder / name).is_file()
        ]
        self.manifest.write_text("".join(f"{line}\n" for line in lines))

    def _ours(self) -> dict[str, str | None]:
        """name -> sha256 (None in a manifest from before digests were kept) of our files."""
        if not self.manifest.is_file():
            return {}
        ours: dict[str, str | None] = {}
        for line in self.manifest.read_text().splitlines():
            digest, sep, name = line.partition("  ")
            if sep:
                ours[name] = digest
            elif line:
                ours[line] = None
        return ours


def _sha256(path: Path) -> str:
    return file_digest(path, 64)


def _unchanged(path: Path, digest: str | None) -> bool:
    if not path.is_file():
        return False  # a folder inside ours is nobody's output of ours
    return digest is None or _sha256(path) == digest


def check_new_path(path: Path | str | None, flag: str) -> None:
    """Refuse an output that must be new (a rosbag2 folder) if it exists or has no folder."""
    if path is None:
        return
    path = Path(path).expanduser()
    if path.exists():
        raise OutputPathError(f"{flag} {path} exists already; remove it or give a new path")
    if not path.parent.is_dir():
        raise OutputPathError(f"{flag} {path}: folder {path.parent} does not exist")


def outputs_refused(
    prog: str,
    files: dict[str, Path | str | None],
    new: dict[str, Path | str | None] | None = None,
    logs: LogFolder | None = None,
) -> bool:
    """For a tool's main(): check its output files (flag -> path), its outputs that must not
    exist yet (``new``) and its log folder; on the first bad one print one line naming it and
    return True (the tool then exits 2, before any work)."""
    try:
        for flag, path in files.items():
            check_output_file(path, flag)
        for flag, path in (new or {}).items():
            check_new_path(path, flag)
        if logs is not None:
            logs.check()
    except OutputPathError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return True
    return False


class LogFolder:
    """Where a benchmark's child nodes write their logs: a new temporary folder by default (a
    benchmark run from a user's working folder must not leave, or overwrite, files there), or
    the folder given with ``flag``, owned as ``OwnedFolder`` owns one."""

    def __init__(self, folder: Path | str | None, tool: str, flag: str) -> None:
        self.tool = tool
        self._owned = OwnedFolder(folder, tool, flag) if folder is not None else None
        self.folder: Path | None = self._owned.folder if self._owned else None
        self._claimed = False

    def check(self) -> None:
        """OutputPathError for a given folder this tool may not write into; touches nothing."""
        if self._owned is not None:
            self._owned.check()

    def path(self, name: str) -> Path:
        """The path for log ``name``, listed as this tool's before the node writes it."""
        if self._owned is None:
            if self.folder is None:
                self.folder = Path(tempfile.mkdtemp(prefix=f"{self.tool}_"))
            return self.folder / name
        if not self._claimed:
            self._owned.claim()  # this run's logs replace this tool's earlier ones, only those
            self._claimed = True
        self._owned.reserve(name)
        return self._owned.folder / name

    def seal(self) -> None:
        """Record the logs' digests (a given folder), once the nodes have stopped."""
        if self._claimed and self._owned is not None:
            self._owned.seal()
