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
    "models": 1,
    "weights": 2,
    "inference": 3,
    "training": 4,
    "ros": 4,
    "bag": 5,
    "tools": 6,
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
