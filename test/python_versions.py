"""The Python releases seg_ros supports, found on this machine, each with a small venv of the
package's torch-free runtime dependencies (numpy, opencv, pyyaml, safetensors, pillow).

Run by ``make test`` before pytest (``python test/python_versions.py build``): building needs the
package index, which the test itself must not use. test_python_versions.py reads the result.
JetPack 5 (Jetson Xavier) is Python 3.8; Humble 3.10; Kilted 3.11 (the main venv); Jazzy 3.12.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

VERSIONS = ("3.8", "3.10", "3.12")
ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".venv-compat"
# The torch-free part of setup.py's install_requires; torch is never installed here.
DEPENDENCIES = [
    "numpy>=1.24",
    "opencv-python-headless>=4.8",
    "pyyaml>=6",
    "safetensors>=0.4",
    "pillow>=9",
]


def _reports(python: str, version: str) -> bool:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip() == version


def find_interpreter(version: str) -> str | None:
    """An interpreter of ``version``: pyenv's install first (its shims may point nowhere), then
    ``python<version>`` on PATH."""
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"), reverse=True)
    on_path = shutil.which(f"python{version}")
    candidates += [on_path] if on_path else []
    return next((c for c in candidates if _reports(c, version)), None)


def venv_python(version: str) -> Path:
    return VENVS / f"py{version}" / "bin" / "python"


def build(version: str) -> str:
    """Make (or keep) the venv for ``version``; returns a line saying what happened."""
    base = find_interpreter(version)
    if base is None:
        return f"python {version}: not found (pyenv or PATH)"
    python = venv_python(version)
    marker = python.parent.parent / ".deps"
    if marker.is_file():
        return f"python {version}: {python} (kept)"
    env = dict(os.environ)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)  # the ROS wheels' .pth is not ours to run
    steps = [
        [base, "-m", "venv", "--clear", str(python.parent.parent)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"],
    ]
    steps[1] += DEPENDENCIES
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            return f"python {version}: venv not built ({done.stderr.strip()[-300:]})"
    marker.write_text(" ".join(DEPENDENCIES) + "\n")
    return f"python {version}: {python} (built)"


if __name__ == "__main__":
    if sys.argv[1:] != ["build"]:
        sys.exit("usage: python test/python_versions.py build")
    for v in VERSIONS:
        print(build(v), flush=True)
