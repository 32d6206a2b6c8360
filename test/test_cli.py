"""What a new user meets at the command line: --help answers and exits, unknown names are
errors with the choices, a run that measured nothing fails, no tool creates or deletes what
it was not asked to."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ros_fixtures import SOURCE_ROOT

from seg_ros.tools import bench, demo, export, models
from seg_ros.tools.output_paths import OutputPathError, OwnedFolder


def _console_scripts() -> dict[str, str]:
    """name -> module, read from setup.py (the one list of executables)."""
    tree = ast.parse((SOURCE_ROOT / "setup.py").read_text())
    scripts = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and " = seg_ros." in node.value
        ):
            name, target = (s.strip() for s in node.value.split("="))
            scripts[name] = target.split(":")[0]
    return scripts


SCRIPTS = _console_scripts()


def test_every_console_script_is_found() -> None:
    assert {"segmentation_node", "seg-demo", "seg-bench", "seg-export"} <= set(SCRIPTS)


@pytest.mark.integration  # runs each console script
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_answers_and_exits(name: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-m", SCRIPTS[name], "--help"],
        capture_output=True,
        text=True,
        timeout=120,  # a node that starts instead of answering would run until killed
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


def test_node_help_lists_parameters_with_defaults() -> None:
    pytest.importorskip("rclpy", reason="the ROS 2 wheels (ros-rclpy) are not installed")
    from seg_ros.ros.node.cli import usage

    text = usage()
    assert "--ros-args" in text and "model ('fplnet')" in text and "input_qos ('auto')" in text


@pytest.mark.parametrize("name", ["foonet", "FPLNet"])
def test_unknown_models_are_errors(name: str, capsys) -> None:
    assert models.main(["--models", name, "--no-time"]) == 2
    assert "choose from" in capsys.readouterr().err
    assert bench.main(["--models", name, "--sizes", "64x96"]) == 2
    assert "choose from" in capsys.readouterr().err


@pytest.mark.integration  # seg-bench names the machine with lscpu
def test_bench_refuses_unknown_backends_and_fails_when_nothing_ran(tmp_path, capsys) -> None:
    assert bench.main(["--models", "fplnet", "--backends", "tensorflow"]) == 2
    assert "choose from" in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    argv = [
        "--models",
        "fplnet",
        "--sizes",
        "64x96",
        "--weights",
        f"fplnet={bad}",
        "--modes",
        "latency",
    ]
    assert bench.main([*argv, "--iterations", "1", "--warmup", "0"]) == 1
    captured = capsys.readouterr()
    assert "nothing was measured" in captured.err
    out = captured.out  # the one table: its header before the rows
    assert out.index("model") < out.index("skipped") and out.count("skipped") == 1


def test_export_never_creates_folders(tmp_path, capsys) -> None:
    target = tmp_path / "nope" / "dir" / "x.onnx"
    assert export.main(["--model", "fplnet", "--onnx", str(target)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_demo_output_folder_keeps_what_it_did_not_write(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "holiday.png").write_bytes(b"a user's picture")
    with pytest.raises(OutputPathError, match="did not write"):
        OwnedFolder(folder, demo.TOOL, "--output").claim()
    assert (folder / "holiday.png").read_bytes() == b"a user's picture"

    # A folder of an earlier run: exactly its own files go, a file added since is refused.
    run = OwnedFolder(tmp_path / "run", demo.TOOL, "--output")
    run.claim()
    writer = demo.PngWriter(run)
    run.reserve("node.log")
    (run.folder / "node.log").write_text("log")
    writer.close()
    run.claim()  # ours only: cleaned
    assert not (run.folder / "node.log").exists()
    (run.folder / "frame_00001_labels.png").write_bytes(b"the user's, same name pattern")
    with pytest.raises(OutputPathError):
        run.claim()
    assert (run.folder / "frame_00001_labels.png").exists()


def test_benchmark_node_logs_stay_out_of_the_working_folder(tmp_path: Path, monkeypatch) -> None:
    """seg-cameras-bench once wrote one-node.log into the folder it was run from, over any file
    of that name; its and seg-node-bench's logs now go to a new folder unless one is given."""
    from seg_ros.tools.output_paths import LogFolder

    monkeypatch.chdir(tmp_path)
    (tmp_path / "one-node.log").write_text("a user's log")
    default = LogFolder(None, "seg-cameras-bench", "--log-dir")
    default.check()
    path = default.path("one-node.log")
    path.write_text("node")
    assert path.parent != tmp_path and path.parent.name.startswith("seg-cameras-bench_")
    assert (tmp_path / "one-node.log").read_text() == "a user's log"

    given = LogFolder(tmp_path / "logs", "seg-cameras-bench", "--log-dir")
    given.path("one-node.log").write_text("first run")
    given.seal()
    again = LogFolder(tmp_path / "logs", "seg-cameras-bench", "--log-dir")
    again.check()  # its own, unchanged: a later run may replace it
    assert not again.path("one-node.log").exists()  # the earlier run's log was cleared


def test_an_owned_file_the_user_edited_is_theirs(tmp_path: Path) -> None:
    owned = OwnedFolder(tmp_path / "report", "seg-bag-eval", "--out")
    owned.claim()
    owned.reserve("report.md", "iou.png")
    (owned.folder / "report.md").write_text("# report\n")
    owned.seal()  # iou.png was never written: not listed
    assert [line.split("  ")[1] for line in owned.manifest.read_text().splitlines()] == [
        "report.md"
    ]
    owned.check()  # unchanged: a later run may replace it
    (owned.folder / "report.md").write_text("# report\nmy notes on frame 12\n")
    with pytest.raises(OutputPathError, match=r"changed since \(report\.md\)"):
        owned.claim()
    assert "my notes" in (owned.folder / "report.md").read_text()


def test_demo_refuses_a_folder_of_user_images(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "myimgs"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(b"x")
    assert demo.main(["--input", str(folder), "--output", str(folder)]) == 2
    assert "did not write" in capsys.readouterr().err
    assert len(list(folder.glob("*.png"))) == 3


def _bad_outputs(tmp: Path) -> list[tuple[str, list[str], str]]:
    """(tool module, argv, the flag its one-line refusal names) for each output option."""
    (tmp / "a_file").write_text("not a folder")
    (tmp / "a_bag").mkdir()
    (tmp / "mine").mkdir()
    (tmp / "mine" / "one-node.log").write_text("a user's log")  # a node log's very name
    missing = str(tmp / "no_such_folder" / "x.json")
    data = ["--data-root", str(tmp)]
    quantize = ["--model", "fplnet", *data, "--output"]
    return [
        ("evaluate", ["fplnet", *data, "--json", missing], "--json"),
        ("bag_eval", [str(tmp / "b.mcap"), "--out", str(tmp / "a_file")], "--out"),
        ("bag_eval", [str(tmp / "b.mcap"), "--output-bag", str(tmp / "a_bag")], "--output-bag"),
        ("demo", ["--output", str(tmp / "a_file")], "--output"),
        ("bench", ["--models", "fplnet", "--json", missing], "--json"),
        ("models", ["--no-time", "--json", str(tmp)], "--json"),
        ("node_bench", ["--json", missing], "--json"),
        ("cameras_bench", ["--json", missing], "--json"),
        ("node_bench", ["--log-dir", str(tmp / "mine")], "--log-dir"),
        ("cameras_bench", ["--log-dir", str(tmp / "mine")], "--log-dir"),
        ("dds_bench", ["--json", missing], "--json"),
        ("quantize", [*quantize, str(tmp / "no" / "q.xml")], "--output"),
        ("quantize", [*quantize, str(tmp / "q.xml"), "--json", missing], "--json"),
        ("make_bag", [str(tmp / "a_bag"), "--dataset", "camvid", *data], "output"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(14))
def test_every_output_path_is_refused_before_any_work(case, tmp_path, monkeypatch, capsys) -> None:
    """seg-bag-eval once evaluated a whole bag, then died on its --out; seg-eval likewise on a
    --json in a missing folder. Now each tool refuses a bad output path first: one line, exit 2,
    and none of the work (weights, datasets, bags, the node) is touched."""
    import importlib

    import seg_ros.bag.io
    import seg_ros.inference.loading
    import seg_ros.ros.node_process
    import seg_ros.training.datasets

    def work_started(*args, **kwargs):
        raise AssertionError("work started before the output path was checked")

    for module, name in (
        (seg_ros.inference.loading, "load_network"),
        (seg_ros.training.datasets, "build_dataset"),
        (seg_ros.bag.io, "BagReader"),
        (seg_ros.ros.node_process, "NodeProcess"),
    ):
        monkeypatch.setattr(module, name, work_started)
    tool, argv, flag = _bad_outputs(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert importlib.import_module(f"seg_ros.tools.{tool}").main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f" {flag} " in err[0], err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.integration  # runs make
def test_make_install_is_redone_only_when_a_packaged_file_changed() -> None:
    """make demo once reinstalled the package on every run (~10 s)."""
    import shutil
    import subprocess

    from seg_ros.paths import SOURCE_ROOT

    marker = SOURCE_ROOT / ".venv" / ".installed"
    if shutil.which("make") is None or not marker.is_file():
        pytest.skip("needs make and a .venv that make install made")
    packaged = [
        p for d in ("seg_ros", "launch", "config", "models") for p in (SOURCE_ROOT / d).rglob("*")
    ]
    if any(p.is_file() and p.stat().st_mtime > marker.stat().st_mtime for p in packaged):
        pytest.skip("a packaged file changed since the last make install")

    def up_to_date(*what_if: str) -> bool:
        run = subprocess.run(["make", "-q", *what_if, "install"], cwd=SOURCE_ROOT, check=False)
        return run.returncode == 0

    assert up_to_date()  # nothing changed: nothing to redo
    assert not up_to_date("-W", "seg_ros/weights.py")  # a source changed: reinstall
    assert not up_to_date("-W", "config/segmentation.yaml")  # data files count too


TOOLS = ["bag_eval", "bench", "cameras_bench", "dds_bench", "demo", "evaluate", "export",
         "gpu_check", "make_bag", "models", "node_bench", "quantize", "train"]  # fmt: skip


def _parsers(monkeypatch) -> dict:
    """Each tool's ArgumentParser, taken at its parse_args without running anything."""
    import argparse
    import importlib

    parsers = {}

    def grab(self, args=None, namespace=None):
        parsers[tool] = self
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", grab)
    for tool in TOOLS:
        module = importlib.import_module(f"seg_ros.tools.{tool}")
        with pytest.raises(SystemExit):
            (getattr(module, "parse_args", None) or module.main)([])
    return parsers


def test_every_tool_shows_defaults_one_way_and_names_sizes_one_way(monkeypatch) -> None:
    import argparse

    parsers = _parsers(monkeypatch)
    assert {p.prog for p in parsers.values()} == {f"seg-{t}" for t in (
        "bag-eval", "bench", "cameras-bench", "dds-bench", "demo", "eval", "export",
        "gpu-check", "make-bag", "models", "node-bench", "quantize", "train")}  # fmt: skip
    for tool, parser in parsers.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or not action.option_strings:
                continue
            text = formatter._get_help_string(action) % {"default": action.default}
            meaningful = action.default not in (None, False, True, "", [], argparse.SUPPRESS)
            if meaningful and action.dest != "help":
                assert "(default: " in text, (tool, action.option_strings, text)
            assert "(default " not in text, (tool, text)  # one spelling
            # The network size is --input-size(s); camera frames are --frame-size.
            names = set(action.option_strings)
            assert not names & {"--size", "--sizes", "--width", "--height"}, (tool, names)


Q = ["--model", "fplnet", "--data-root", ".", "--output", "q.xml"]


@pytest.mark.parametrize(
    ("tool", "old", "new", "dest", "value"),
    [
        ("export", ["--size", "64x96"], ["--input-size", "64x96"], "input_size", (64, 96)),
        ("quantize", [*Q, "--size", "9x9"], [*Q, "--input-size", "9x9"], "input_size", (9, 9)),
        ("bench", ["--sizes", "64x96"], ["--input-sizes", "64x96"], "input_sizes", [(64, 96)]),
        ("dds_bench", ["--size", "48x64"], ["--frame-size", "48x64"], "frame_size", (48, 64)),
        ("demo", ["--width", "320", "--height", "240"], ["--frame-size", "240x320"], "width", 320),
        ("node_bench", ["--height", "240"], ["--frame-size", "240x640"], "height", 240),
    ],
)  # fmt: skip
def test_old_option_names_still_work_for_a_release(tool, old, new, dest, value) -> None:
    import importlib

    parse = importlib.import_module(f"seg_ros.tools.{tool}").parse_args
    assert getattr(parse(old), dest) == getattr(parse(new), dest) == value


def test_the_launch_wrapper_runs_a_module_that_exists() -> None:
    """launch_ros runs lib/seg_ros/segmentation_node, a shell wrapper around python -m
    MODULE; it once named the module the node had moved out of (caught only where launch
    runs)."""
    import importlib.util
    import re

    wrapper = (Path(__file__).resolve().parents[1] / "scripts" / "segmentation_node").read_text()
    modules = set(re.findall(r"-m (\S+)", wrapper))
    assert modules, wrapper
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module
        assert importlib.util.find_spec(f"{module}.__main__") is not None, module
