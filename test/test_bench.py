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
        "--modes", "latency", "--json", str(out),
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
            "--images", str(folder), "--weights", f"fplnet={weights}", "--modes", "latency",
            "--threads", "1", "--json", str(tmp_path / "b.json")]  # fmt: skip
    assert bench.main(argv) == 0
    captured = capsys.readouterr()
    printed = captured.out + captured.err  # a terminal shows both
    assert "{" not in printed  # the JSON goes to its file, not after the table
    assert printed.count("fplnet:full") == 1  # one table, each row once
    report = json.loads((tmp_path / "b.json").read_text())
    (row,) = report["results"]
    assert row["weights"] == str(weights) and row["random_init"] is False
    assert row["agreement_images"] == 3


def test_bench_argument_errors(capsys) -> None:
    assert bench.main(["--weights", "no-equals-sign"]) == 2
    assert "MODEL=PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--sizes", "huge"])


def test_bench_int8_finds_the_shipped_model(tmp_path, capsys) -> None:
    """seg-bench once skipped int8 ("needs a quantized model") although the node finds the
    shipped one by itself; it now uses the same lookup."""
    pytest.importorskip("openvino")
    from seg_ros.paths import find_data

    if find_data("models/fplnet_camvid_int8.xml") is None:
        pytest.skip("no shipped int8 model in this install")
    out = tmp_path / "int8.json"
    shipped = find_data("models/fplnet_camvid.safetensors")  # this module hides it otherwise
    argv = ["--models", "fplnet", "--weights", f"fplnet={shipped}",
            "--backends", "openvino", "--precisions", "int8",
            "--sizes", "360x480", "--iterations", "1", "--warmup", "0", "--threads", "1",
            "--modes", "latency", "--json", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["status"] == "ok", row.get("reason")
    assert "fplnet_camvid_int8.xml" in json.dumps(row)
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("openvino  ") == 1  # the row, once


def test_bench_prints_both_inference_modes_in_one_run(tmp_path, capsys) -> None:
    """Latency and throughput rows side by side, each beside its bare runtime; a runtime that
    runs one frame at a time has its throughput row skipped with the reason."""
    pytest.importorskip("openvino")
    out = tmp_path / "modes.json"
    backends = ("openvino", "onnxruntime", "torch")
    argv = ["--models", "fplnet", "--backends", *backends, "--sizes", "64x96",
            "--iterations", "6", "--warmup", "1", "--threads", "2", "--json", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    rows = {(r["backend"], r["mode"]): r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {(b, m) for b in backends for m in ("latency", "throughput")}
    for key in [*((b, m) for b in backends[:2] for m in ("latency", "throughput")),
                ("torch", "latency")]:  # fmt: skip
        row = rows[key]
        assert row["status"] == "ok", row.get("reason")
        assert row["fps"] > 0 and row["bare_fps"] > 0
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]
    assert rows[("openvino", "throughput")]["in_flight"] >= 2  # the streams OpenVINO chose
    assert rows[("onnxruntime", "throughput")]["in_flight"] == 2  # one per thread
    for runtime in backends[:2]:
        assert rows[(runtime, "latency")]["in_flight"] == 1
    skipped = rows[("torch", "throughput")]
    assert skipped["status"] == "skipped" and "torch runs one frame at a time" in skipped["reason"]
    printed = capsys.readouterr().out
    assert " lat " in printed and " thr" in printed  # the mode column of both rows
