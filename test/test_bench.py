"""seg-bench: the table and JSON it prints (figures only; no timing is asserted)."""

from __future__ import annotations

import json

import pytest
import torch

from seg_ros.tools import bench


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setattr("seg_ros.inference.loading.shipped_weights", lambda model: None)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_bench_json_and_table(tmp_path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "bench.json"
    argv = [
        "--models", "fplnet", "--backends", "torch", "onnxruntime", "--precisions", "fp32",
        "bf16", "--sizes", "64x96", "--iterations", "2", "--warmup", "1", "--threads", "1",
        "--json", str(out),
    ]  # fmt: skip
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "FPS" in printed and "RANDOM INIT" in printed and "skipped" in printed
    report = json.loads(out.read_text())
    assert report["command"].startswith("seg-bench")
    assert {"torch", "processor", "python"} <= set(report["machine"])
    rows = {(r["backend"], r["precision"]): r for r in report["results"]}
    assert set(rows) == {("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"),
                         ("onnxruntime", "bf16")}  # fmt: skip
    skipped = rows[("onnxruntime", "bf16")]
    assert skipped["status"] == "skipped" and "bf16" in skipped["reason"]
    for key in [("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32")]:
        row = rows[key]
        assert row["status"] == "ok" and row["random_init"] is True
        assert row["model"] == "fplnet" and row["variant"] == "full"
        assert row["input_size"] == [64, 96] and row["iterations"] == 2
        assert set(row["timings_ms"]) == {"preprocess", "inference", "postprocess", "total"}
        for stage in row["timings_ms"].values():
            assert 0 <= stage["median"] <= stage["p95"]
        assert row["fps"] > 0 and row["gflop"] > 0 and row["gflops_per_s"] > 0
        assert row["cpu_ms"] >= 0 and row["threads"] == 1
        assert row["compile"] == "off"
        assert 0 <= row["pre_post_share"] <= 1
        assert 0 <= row["agreement"] <= 1 and row["agreement_images"] == 2
        assert row["parity"]["passed"]
    assert rows[("torch", "fp32")]["agreement"] == 1.0


def test_bench_with_images_and_weights(tmp_path, capsys) -> None:
    import cv2
    from weights_helpers import pipeline_weights

    from seg_ros.inference.parity import synthetic_scene

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), synthetic_scene(40, 60, seed=i))
    weights = pipeline_weights(tmp_path / "w.safetensors")
    argv = ["--models", "fplnet:full", "--sizes", "64x96", "--iterations", "1", "--warmup", "0",
            "--images", str(folder), "--weights", f"fplnet={weights}",
            "--threads", "1"]  # fmt: skip
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    report = json.loads(printed[printed.index("{") :])  # no --json: printed after the table
    (row,) = report["results"]
    assert row["weights"] == str(weights) and row["random_init"] is False
    assert row["agreement_images"] == 3


def test_bench_argument_errors(capsys) -> None:
    assert bench.main(["--weights", "no-equals-sign"]) == 2
    assert "MODEL=PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--sizes", "huge"])
