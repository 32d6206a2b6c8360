"""Every shipped model file, on real frames, against the figure its model card states: CamVid
val written as a rosbag2 by seg-make-bag and scored by seg-bag-eval (the tools a user judges a
model with). A change that breaks a shipped model's accuracy fails here. Needs the CamVid copy
beside the repository (../shared/data/camvid, as on CI) or SEG_ROS_CAMVID; skips without it.

Also: every model name the node accepts has a shipped file whose metadata is right."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from seg_ros.labels import CAMVID
from seg_ros.models import list_models
from seg_ros.tools import bag_eval, make_bag
from seg_ros.weights import load_model, read_metadata

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
CARD = MODELS / "README.md"
CAMVID_ROOT = Path(os.environ.get("SEG_ROS_CAMVID", ROOT.parent / "shared" / "data" / "camvid"))
TOLERANCE = 0.1  # mIoU points
MAX_INT8_DROP = 0.5  # seg-quantize --max-drop's default: what an int8 file was written under
KERNELS = ("AMX", "AVX-512 VNNI", "AVX2")  # OpenVINO's int8 kernels differ between them
# Shipped file name per model; the input size each was trained and is served at.
SHIPPED = {"fplnet": (360, 480), "rgpnet": (180, 240), "desanet": (180, 240)}
IN_TRAINING: set[str] = set()  # runs/LOG.md: models trained in the background, not shipped yet


def card_rows() -> list[tuple[str, str, str, str, float]]:
    """(file, weights, seg-bag-eval options, CPU, mIoU %) from the model card's accuracy
    table. CPU is "any", or the int8 kernels a figure holds for (int8 arithmetic differs
    between them)."""
    text = CARD.read_text()
    table = text.split("<!-- accuracy-table:", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"\d+\.\d+", cells[4]):
            rows.append((*cells[:4], float(cells[4])))
    return rows


def cpu_kernels() -> str:
    """The int8 kernels OpenVINO picks on this CPU, in the card's spelling."""
    flags = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if "amx_int8" in flags:
        return "AMX"
    if "avx512_vnni" in flags:
        return "AVX-512 VNNI"
    return "AVX2"


ROWS = card_rows()


def test_the_card_lists_every_shipped_file() -> None:
    shipped = {p.name for p in MODELS.glob("*.safetensors")} | {
        p.name for p in MODELS.glob("*.xml")
    }
    assert shipped, "no shipped models"
    assert shipped == {row[0] for row in ROWS}, "models/README.md's accuracy table is out of date"
    for file in {row[0] for row in ROWS}:
        kernels = [k for row in ROWS if row[0] == file for k in row[3].split(", ")]
        assert kernels == ["any"] or set(kernels) <= set(KERNELS), file
        assert len(kernels) == len(set(kernels)), f"{file}: two figures for one kind of CPU"


def unmeasured_int8_rows() -> list[tuple[str, str, str, str, float]]:
    """For an int8 file, a row per kind of CPU it has no figure for: there it is held to what
    seg-quantize checked before writing it, at most MAX_INT8_DROP below its fp32 figure."""
    fp32 = {r[0]: r[4] for r in ROWS if r[3] == "any"}
    int8 = {r[0]: (r[1], r[2]) for r in ROWS if r[3] != "any"}
    rows = []
    for file, (weights, options) in int8.items():
        measured = {k for r in ROWS if r[0] == file for k in r[3].split(", ")}
        for kernels in sorted(set(KERNELS) - measured):
            rows.append((file, weights, options, kernels, fp32[weights] - MAX_INT8_DROP))
    return rows


@pytest.fixture(scope="module")
def val_bag(tmp_path_factory) -> Path:
    if not (CAMVID_ROOT / "val").is_dir():
        pytest.skip(f"CamVid is not at {CAMVID_ROOT} (set SEG_ROS_CAMVID)")
    pytest.importorskip("rosbags")
    bag = tmp_path_factory.mktemp("bags") / "camvid_val"
    argv = ["--dataset", "camvid", "--data-root", str(CAMVID_ROOT), "--split", "val", str(bag)]
    assert make_bag.main(argv) == 0
    return bag


def bag_miou(val_bag: Path, out: Path, weights: str, options: str) -> float:
    argv = [str(val_bag), "--weights", str(MODELS / weights), *shlex.split(options)]
    assert bag_eval.main([*argv, "--threads", "2", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["frames"]["labelled"] == report["frames"]["in"] == 101  # every val frame scored
    return 100 * report["accuracy"]["miou"]


def on_this_cpu(file: str, options: str, cpu: str) -> None:
    if cpu != "any" and cpu_kernels() not in cpu.split(", "):
        pytest.skip(f"{file} on {cpu}: this CPU has {cpu_kernels()} (its row is another)")
    if "openvino" in options:
        pytest.importorskip("openvino")


@pytest.mark.parametrize(
    ("file", "weights", "options", "cpu", "figure"),
    ROWS,
    ids=[r[0] if r[3] == "any" else f"{r[0]}-{r[3]}" for r in ROWS],
)
def test_shipped_file_scores_what_its_card_says(
    val_bag, tmp_path, file, weights, options, cpu, figure
):
    on_this_cpu(file, options, cpu)
    miou = bag_miou(val_bag, tmp_path / "report", weights, options)
    assert abs(miou - figure) <= TOLERANCE, f"{file}: {miou:.2f}% mIoU, its card says {figure}"


UNMEASURED = unmeasured_int8_rows()


@pytest.mark.parametrize(
    ("file", "weights", "options", "cpu", "floor"),
    UNMEASURED or [pytest.param(*[""] * 4, 0.0, marks=pytest.mark.skip("every CPU measured"))],
    ids=[f"{r[0]}-{r[3]}" for r in UNMEASURED] or ["none"],
)
def test_int8_file_keeps_its_quantization_bound_where_the_card_has_no_figure(
    val_bag, tmp_path, file, weights, options, cpu, floor
):
    on_this_cpu(file, options, cpu)
    miou = bag_miou(val_bag, tmp_path / "report", weights, options)
    assert miou >= floor, (
        f"{file} on {cpu}: {miou:.2f}% mIoU, more than {MAX_INT8_DROP} below its fp32 figure"
    )


@pytest.mark.parametrize("model", sorted(list_models()))
def test_every_model_name_has_a_shipped_file(model: str) -> None:
    path = MODELS / f"{model}_camvid.safetensors"
    if not path.is_file() and model in IN_TRAINING:
        pytest.xfail(f"{model}: training in the background (runs/LOG.md), not shipped yet")
    meta = read_metadata(path)
    assert meta.model == model and meta.dataset == "camvid"
    assert meta.class_names == list(CAMVID.classes)
    assert meta.palette == [list(c) for c in CAMVID.palette]
    assert tuple(meta.input_size) == SHIPPED[model]
    net, loaded = load_model(path)  # the tensors load into the network they describe
    assert loaded.num_classes == CAMVID.num_classes and sum(p.numel() for p in net.parameters())
