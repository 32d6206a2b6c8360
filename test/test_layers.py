"""The layers import downward only (docs/ARCHITECTURE.md): checked on every module's imports,
the lazy ones inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seg_ros"

# A module may import its own layer and any layer of a lower rank. Root modules of rank 0 are
# the shared ground (they may import each other); weights.py builds networks, so it sits above
# models. training and ros share a rank: neither may import the other. bag's live evaluation
# drives the node through ros/bag_replay.py, so bag sits above ros.
RANKS = {
    "compat": 0,
    "paths": 0,
    "labels": 0,
    "image_codec": 0,
    "metrics": 0,
    "machine": 0,
    "models": 1,
    "weights": 2,
    "own_model": 3,  # an ONNX with its description, read into weights' metadata
    "inference": 4,
    "training": 5,
    "ros": 5,
    "bag": 6,
    "tools": 7,
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "seg_ros"


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "seg_ros":
            names = [f"seg_ros.{a.name}" for a in node.names]  # from seg_ros import weights
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names if n == "seg_ros" or n.startswith("seg_ros.")]
    return found


def module_name(path: Path, package: Path) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def upward_imports(path: Path, package: Path = PACKAGE) -> list[str]:
    own = layer_of(module_name(path, package))
    if own == "seg_ros":  # the package's __init__ imports nothing of its own
        return [f"{path.name}:{line} {name}" for line, name in imports_of(path)]
    rank = RANKS[own]
    bad = []
    for line, name in imports_of(path):
        target = layer_of(name)
        if target == own:
            continue
        if RANKS[target] > rank or (RANKS[target] == rank and rank > 0):
            bad.append(f"{path.relative_to(package.parent)}:{line} imports {name}")
    return bad


def test_every_layer_has_a_rank() -> None:
    layers = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    layers = {n for n in layers if not n.startswith("_") and n not in ("py", "README")}
    modules = {n for n in layers if (PACKAGE / n).is_dir() or (PACKAGE / f"{n}.py").exists()}
    assert modules <= set(RANKS), f"give these a rank: {sorted(modules - set(RANKS))}"


def test_imports_point_down_only() -> None:
    bad = [b for path in sorted(PACKAGE.rglob("*.py")) for b in upward_imports(path)]
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("layer", "source", "found"),
    [
        ("models", "def f():\n    from seg_ros.ros import contract\n", "seg_ros.ros"),
        ("ros", "from seg_ros import training\n", "seg_ros.training"),
        ("inference", "import seg_ros.tools.options\n", "seg_ros.tools.options"),
    ],
)
def test_the_check_sees_an_upward_or_sideways_import(
    tmp_path: Path, layer: str, source: str, found: str
) -> None:
    fake = tmp_path / "seg_ros"
    (fake / layer).mkdir(parents=True)
    module = fake / layer / "leaky.py"
    module.write_text(source)
    line = 2 if source.startswith("def") else 1
    assert upward_imports(module, fake) == [f"seg_ros/{layer}/leaky.py:{line} imports {found}"]


# Inside the node (seg_ros/ros/node/), one module per job, ranked the same way: the shell
# (segmentation_node) wires the parts below it; the parts never import the shell, and the
# frame's path (frame_loop) and the served pipeline (serving) know nothing of rclpy, so they
# run under the tests' stand-ins.
NODE = PACKAGE / "ros" / "node"
NODE_RANKS = {
    "ros_log": 0,
    "serving": 0,
    "frame_loop": 1,
    "status": 2,
    "camera_io": 2,
    "model_info": 2,
    "segmentation_node": 3,
    "cli": 4,
    "__main__": 5,
}
ROS_FREE = ("serving", "frame_loop")


def test_node_modules_have_a_rank_and_import_down_only() -> None:
    modules = {p.stem for p in NODE.glob("*.py")} - {"__init__"}
    assert modules == set(NODE_RANKS), f"rank these: {sorted(modules ^ set(NODE_RANKS))}"
    bad = []
    for name, rank in NODE_RANKS.items():
        for line, imported in imports_of(NODE / f"{name}.py"):
            parts = imported.split(".")
            if parts[:3] != ["seg_ros", "ros", "node"] or len(parts) < 4:
                continue
            if NODE_RANKS[parts[3]] >= rank and parts[3] != name:
                bad.append(f"node/{name}.py:{line} imports {imported}")
    assert not bad, "upward or sideways imports inside the node:\n" + "\n".join(bad)


@pytest.mark.parametrize("name", ROS_FREE)
def test_the_frame_path_and_serving_import_no_rclpy(name: str) -> None:
    tree = ast.parse((NODE / f"{name}.py").read_text())
    imported = [
        alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names
    ] + [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    ros = [m for m in imported if m.split(".")[0] in ("rclpy", "sensor_msgs", "diagnostic_msgs")]
    assert not ros, f"{name}.py imports {ros}"


# Long functions are cut into named steps; one that must stay long says why here.
MAX_FUNCTION_LINES = 80
LONG_ON_PURPOSE: dict[str, str] = {}


def test_no_function_is_longer_than_80_lines() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                where = f"{path.relative_to(PACKAGE.parent)}:{node.name}"
                if lines > MAX_FUNCTION_LINES and where not in LONG_ON_PURPOSE:
                    long.append(f"{where} ({lines} lines)")
    assert not long, "cut these into named steps:\n" + "\n".join(long)
