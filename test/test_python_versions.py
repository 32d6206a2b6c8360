"""seg_ros' own code on every Python it supports: 3.8 (JetPack 5, Jetson Xavier), 3.10 (Humble),
3.12 (Jazzy); 3.11 (Kilted) is the interpreter the rest of the suite runs on.

Each interpreter byte-compiles the package, the launch file and setup.py, and imports every
module whose dependencies it has: a venv with the torch-free runtime dependencies that `make
test` builds (test/python_versions.py), else the bare interpreter. A module may only be
skipped for lacking torch, ROS or another optional extra, never for a SyntaxError or a
3.9+ API at import time. Interpreters that are not installed skip with the reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from python_versions import ROOT, VERSIONS, find_interpreter, venv_python

SOURCES = [
    *sorted((ROOT / "seg_ros").rglob("*.py")),
    *sorted((ROOT / "launch").rglob("*.py")),
    ROOT / "setup.py",
]
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).replace(".__init__", "")
    for p in (ROOT / "seg_ros").rglob("*.py")
)
# What a torch-free interpreter may lack: the heavy, GPU or ROS dependencies and the extras.
OPTIONAL = {
    "torch", "torchvision", "rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs",
    "rcl_interfaces", "lifecycle_msgs", "ament_index_python", "rosbags", "onnx", "onnxruntime",
    "onnxscript", "openvino", "nncf", "tensorrt", "launch", "launch_ros", "matplotlib",
    "tensorboard", "tqdm",
}  # fmt: skip
RUNTIME = {"numpy", "cv2", "yaml", "safetensors", "PIL"}
# Must import wherever the runtime dependencies are: the pipeline's torch-free core.
CORE = [
    "seg_ros.compat",
    "seg_ros.weights",
    "seg_ros.inference.pipeline",
    "seg_ros.inference.backends",
    "seg_ros.ros.contract",
    "seg_ros.ros.stats",
    "seg_ros.training.config",
]

PROBE = r"""
import importlib, json, sys, traceback
sys.path.insert(0, sys.argv[1])
out = {"ok": [], "needs": {}, "errors": {}}
for mod in sys.argv[2:]:
    try:
        importlib.import_module(mod)
        out["ok"].append(mod)
    except ImportError as e:
        missing = e if isinstance(e, ModuleNotFoundError) else e.__cause__
        name = getattr(missing, "name", None) or ""
        if isinstance(missing, ModuleNotFoundError) and not name.startswith("seg_ros"):
            out["needs"][mod] = name.split(".")[0]
        else:
            out["errors"][mod] = traceback.format_exc()
    except Exception:
        out["errors"][mod] = traceback.format_exc()
print(json.dumps(out))
"""

# Behaviour, not only imports: what differs between releases (zip's strict, dataclasses with
# postponed annotations, the recipes' YAML) exercised on the old interpreter.
SMOKE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from seg_ros.compat import zip_strict
assert list(zip_strict([1, 2], "ab")) == [(1, "a"), (2, "b")]
try:
    list(zip_strict([1, 2], "a"))
except ValueError:
    pass
else:
    raise AssertionError("zip_strict accepted different lengths")
from seg_ros.training.config import TrainConfig
recipes = sorted(Path(sys.argv[1], "config", "train").glob("*.yaml"))
for r in recipes:
    TrainConfig.from_yaml(r)
print("recipes", len(recipes))
"""


def _interpreter(version: str) -> tuple[str, bool]:
    venv = venv_python(version)
    if venv.is_file():
        return str(venv), True
    base = find_interpreter(version)
    if base is None:
        pytest.skip(f"python {version} is not installed here (pyenv versions / PATH)")
    return base, False


def _run(python: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "_ROS_WHEELS"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no 3.8 caches in the checkout
    return subprocess.run(
        [python, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_byte_compiles(version: str) -> None:
    python, _ = _interpreter(version)
    code = "import sys\nfor f in sys.argv[1:]:\n    compile(open(f).read(), f, 'exec')"
    done = _run(python, "-c", code, *map(str, SOURCES))
    assert done.returncode == 0, f"python {version} cannot compile seg_ros:\n{done.stderr}"


@pytest.mark.parametrize("version", VERSIONS)
def test_imports_what_it_has(version: str) -> None:
    python, with_deps = _interpreter(version)
    done = _run(python, "-c", PROBE, str(ROOT), *MODULES)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert not result["errors"], f"python {version}:\n" + "\n".join(result["errors"].values())
    allowed = OPTIONAL if with_deps else OPTIONAL | RUNTIME
    missing = set(result["needs"].values())
    assert missing <= allowed, f"python {version} lacks {missing - allowed}: {result['needs']}"
    if with_deps:
        assert set(CORE) <= set(result["ok"]), set(CORE) - set(result["ok"])
        # the torch-free modules are most of the package; a new top-level torch import shows
        assert len(result["ok"]) >= len(MODULES) // 2, result["needs"]


@pytest.mark.parametrize("version", VERSIONS)
def test_runs_on(version: str) -> None:
    python, with_deps = _interpreter(version)
    if not with_deps:
        pytest.skip(f"no venv with numpy/pyyaml for python {version} (make test builds it)")
    done = _run(python, "-c", SMOKE, str(ROOT))
    assert done.returncode == 0, done.stderr
    assert re.search(r"recipes [1-9]", done.stdout), done.stdout


def test_python_requires_is_what_is_tested() -> None:
    setup = (ROOT / "setup.py").read_text()
    assert f'python_requires=">={VERSIONS[0]}"' in setup


CHECKED = ["seg_ros", "launch", "setup.py"]


def test_vermin_finds_nothing_newer_than_the_oldest() -> None:
    """vermin reads the code (function bodies too, which imports do not run) for APIs newer
    than the oldest supported release."""
    vermin = Path(sys.executable).with_name("vermin")
    if not vermin.is_file():
        pytest.skip("vermin is not installed (pip install 'seg_ros[test]')")
    done = subprocess.run(
        [str(vermin), f"-t={VERSIONS[0]}-", "--no-tips", "--violations", *CHECKED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# What vermin cannot see, because it does not know the receiver's type: str methods of 3.9
# and X | Y unions evaluated at run time (isinstance) of 3.10. Code here runs on 3.8.
NEWER_IDIOMS = re.compile(r"\.remove(prefix|suffix)\(|\b(isinstance|issubclass)\([^()]*\|")


def test_no_idioms_newer_than_38_that_vermin_misses() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in SOURCES
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if NEWER_IDIOMS.search(line) and not line.lstrip().startswith("#")
    ]
    assert not found, "\n".join(found)
