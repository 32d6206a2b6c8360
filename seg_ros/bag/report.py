"""seg-bag-eval's report: JSON (every figure), Markdown (for people), per-frame CSV and PNG
plots (latency over time and its histogram, per-class IoU, sample overlays).

Plots use matplotlib's Agg backend: no display is needed, and a headless robot or CI machine
draws the same files.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.bag.evaluation import FrameRecord, Sample
from seg_ros.compat import zip_strict

PERCENTILES = (50, 90, 95, 99)
END_TO_END = "end_to_end"


def summarize(values: Sequence[float]) -> dict[str, float] | None:
    """count, mean, p50/p90/p95/p99 and max of ``values`` (ms), or None when there are none."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if data.size == 0:
        return None
    out: dict[str, float] = {"count": int(data.size), "mean": round(float(data.mean()), 3)}
    for p, v in zip_strict(PERCENTILES, np.percentile(data, PERCENTILES)):
        out[f"p{p}"] = round(float(v), 3)
    out["max"] = round(float(data.max()), 3)
    return out


def latency_summary(records: Sequence[FrameRecord]) -> dict[str, dict[str, float]]:
    stages: list[str] = []
    for r in records:
        stages += [s for s in r.latency_ms if s not in stages]
    out = {}
    for stage in stages:
        s = summarize([r.latency_ms.get(stage) for r in records])
        if s is not None:
            out[stage] = s
    return out


# Every file write_report may write (which ones depends on the figures), for the tools that
# must own the folder before writing into it.
REPORT_FILES = (
    "latency.png",
    "iou.png",
    "calibration.png",
    "samples.png",
    "frames.csv",
    "report.md",
    "report.json",
)


def write_report(
    out_dir: str | Path,
    summary: dict[str, Any],
    records: Sequence[FrameRecord],
    samples: Sequence[Sample],
    palette: Sequence[Sequence[int]],
    overlay_alpha: float = 0.5,
    dropped_s: Sequence[float] = (),
) -> dict[str, str]:
    """Write report.json, report.md, frames.csv and the PNGs into ``out_dir``; the paths of
    the files written (also stored in the JSON under "files"). ``dropped_s``: bag times of the
    frames that got no output (marked on the latency plot)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    if records:
        definition = summary.get("latency_definition", "")
        plot_latency(records, out / "latency.png", definition, dropped_s)
        files["latency_plot"] = "latency.png"
    accuracy = summary.get("accuracy")
    if accuracy:
        plot_iou(accuracy, out / "iou.png")
        files["iou_plot"] = "iou.png"
    if accuracy and accuracy.get("calibration"):
        plot_calibration(accuracy["calibration"], out / "calibration.png")
        files["calibration_plot"] = "calibration.png"
    if samples:
        plot_samples(samples, palette, out / "samples.png", overlay_alpha)
        files["samples_plot"] = "samples.png"
    write_frames_csv(records, out / "frames.csv")
    files["frames_csv"] = "frames.csv"
    files["markdown"] = "report.md"
    files["json"] = "report.json"
    summary = {**summary, "files": {**summary.get("files", {}), **files}}
    (out / "report.json").write_text(json.dumps(_clean(summary), indent=1) + "\n")
    (out / "report.md").write_text(markdown(summary))
    return {k: str(out / v) if k in files else v for k, v in summary["files"].items()}


def _clean(value: Any) -> Any:
    """JSON has no NaN: absent figures become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def write_frames_csv(records: Sequence[FrameRecord], path: Path) -> None:
    stages: list[str] = []
    for r in records:
        stages += [s for s in r.latency_ms if s not in stages]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "stamp_ns", "time_s", "labelled", *(f"{s}_ms" for s in stages)])
        for r in sorted(records, key=lambda r: r.index):
            row = [r.index, r.stamp_ns, f"{r.time_s:.6f}", int(r.labelled)]
            row += [_ms(r.latency_ms.get(s)) for s in stages]
            writer.writerow(row)


def _ms(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


# ---------------------------------------------------------------- Markdown


def markdown(summary: dict[str, Any]) -> str:
    """The report's report.md: the summary table and notes, then one section per figure."""
    bag = summary["bag"]
    lines = [f"# seg-bag-eval: {Path(bag['path']).name} ({summary['mode']})", ""]
    rows = _summary_rows(summary)
    lines += ["| | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in rows] + [""]
    for note in summary.get("notes", []):
        lines.append(f"- {note}")
    if summary.get("notes"):
        lines.append("")
    accuracy = summary.get("accuracy")
    if accuracy:
        lines += ["## Per-class IoU", "", "| class | IoU % |", "| --- | ---: |"]
        lines += [f"| {name} | {_pct(v)} |" for name, v in accuracy["iou"].items()]
        lines.append("")
    calibration = (accuracy or {}).get("calibration")
    if calibration:
        lines += _calibration_section(calibration)
    latency = summary.get("latency_ms", {})
    if latency:
        lines += ["## Latency (ms)", "", *_latency_table(latency), ""]
    lines += _node_section(summary.get("live"))
    files = summary.get("files", {})
    images = [
        ("latency_plot", "Latency"),
        ("iou_plot", "Per-class IoU"),
        ("calibration_plot", "Calibration and coverage"),
        ("samples_plot", "Samples"),
    ]
    for key, title in images:
        if key in files:
            lines += [f"## {title}", "", f"![{title}]({files[key]})", ""]
    if files.get("output_bag"):
        lines += [f"Output bag: `{files['output_bag']}`", ""]
    return "\n".join(lines)


def _summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    bag, frames = summary["bag"], summary["frames"]
    rows = [
        ("bag", f"`{bag['path']}` ({bag['storage']}, {bag['duration_s']:.2f} s)"),
        ("image topic", f"`{bag['image_topic']}` ({bag['image_type']})"),
        ("label topic", f"`{bag['label_topic']}`" if bag.get("label_topic") else "none"),
        ("model", _model_line(summary.get("model", {}))),
        (
            "frames",
            f"in {frames['in']}, out {frames['out']}, dropped {frames['dropped']}, "
            f"labelled {frames['labelled']}",
        ),
    ]
    accuracy = summary.get("accuracy")
    if accuracy:
        rows.append(("mIoU", f"{_pct(accuracy['miou'])} %"))
        rows.append(("pixel accuracy", f"{_pct(accuracy['pixel_accuracy'])} %"))
    fps = summary.get("fps", {})
    rows += [(f"FPS ({k.replace('_', ' ')})", f"{v:.2f}") for k, v in fps.items() if v]
    end = summary.get("latency_ms", {}).get(END_TO_END)
    if end:
        latency = f"p50 {end['p50']:.1f} ms, p99 {end['p99']:.1f} ms"
        rows.append(("end-to-end latency", f"{latency} ({summary.get('latency_definition', '')})"))
    return rows


def _calibration_section(calibration: dict[str, Any]) -> list[str]:
    lines = [
        "## Confidence",
        "",
        f"Expected calibration error {_pct(calibration['ece'])} % ({calibration['bins']} "
        f"bins, {calibration['pixels']} labelled pixels). A threshold keeps the pixels whose "
        "winning class has at least that softmax probability (the node's `min_confidence`);"
        " mIoU is over the pixels kept.",
        "",
        "| min_confidence | coverage % | mIoU % | pixel accuracy % |",
        "| ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['threshold']:.2f} | {_pct(r['coverage'])} | {_pct(r['miou'])} | "
        f"{_pct(r['pixel_accuracy'])} |"
        for r in calibration["coverage"]
    ]
    return [*lines, ""]


def _node_section(live: dict[str, Any] | None) -> list[str]:
    """A live run's figures as the node itself reports them."""
    if not live or not live.get("node_latency_ms"):
        return []
    lines = [
        "## The node's own figures (its /diagnostics, last window)",
        "",
        *_latency_table(live["node_latency_ms"]),
        "",
    ]
    counters = live.get("node_counters") or {}
    if counters:
        lines += ["| counter | value |", "| --- | ---: |"]
        lines += [f"| {k} | {v} |" for k, v in counters.items()] + [""]
    return lines


def _latency_table(latency: dict[str, dict[str, float]]) -> list[str]:
    keys = [
        k
        for k in ("p50", "p90", "p95", "p99", "max", "mean")
        if any(k in v for v in latency.values())
    ]
    lines = ["| stage | " + " | ".join(keys) + " |", "| --- |" + " ---: |" * len(keys)]
    for stage, values in latency.items():
        cells = [f"{values[k]:.2f}" if k in values else "-" for k in keys]
        lines.append(f"| {stage.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return lines


def _model_line(model: dict[str, Any]) -> str:
    if not model:
        return "unknown"
    parts = [f"{model.get('model', '?')}/{model.get('variant', '?')}"]
    for key in ("backend", "device", "precision"):
        if model.get(key):
            parts.append(str(model[key]))
    if model.get("input_size"):
        parts.append(f"input {model['input_size']} (h x w)")
    text = ", ".join(parts)
    if model.get("weights"):
        text += f", weights `{model['weights']}`"
    if str(model.get("random_init", "")).lower() == "true":
        text += " **(RANDOM WEIGHTS)**"
    return text


def _pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:.2f}"


# ---------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency(
    records: Sequence[FrameRecord],
    path: Path,
    definition: str = "",
    dropped_s: Sequence[float] = (),
) -> None:
    """Latency of every frame over the bag's time (per stage; dropped frames marked), and the
    end-to-end histogram."""
    plt = _pyplot()
    records = sorted(records, key=lambda r: r.index)
    t = np.asarray([r.time_s for r in records])
    fig, (over_time, histogram) = plt.subplots(
        1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [2, 1]}
    )
    stages = []
    for r in records:
        stages += [s for s in r.latency_ms if s not in stages]
    for stage in stages:
        values = np.asarray([r.latency_ms.get(stage, np.nan) for r in records], np.float64)
        if np.isfinite(values).any() and stage != "total":
            style = {"linewidth": 2.0} if stage == END_TO_END else {"linewidth": 1.0, "alpha": 0.8}
            over_time.plot(t, values, marker=".", label=stage.replace("_", " "), **style)
    if len(dropped_s):
        over_time.plot(
            dropped_s, np.zeros(len(dropped_s)), "x", color="tab:red",
            label=f"dropped ({len(dropped_s)})",
        )  # fmt: skip
    over_time.set_xlabel("bag time (s)")
    over_time.set_ylabel("latency (ms)")
    over_time.set_title("latency per frame")
    over_time.grid(alpha=0.3)
    over_time.legend(fontsize="small")
    end = np.asarray([r.latency_ms.get(END_TO_END, np.nan) for r in records], np.float64)
    end = end[np.isfinite(end)]
    if end.size:
        histogram.hist(end, bins=min(50, max(5, end.size // 2)), color="tab:blue", alpha=0.8)
        for p, style in ((50, "--"), (99, ":")):
            value = float(np.percentile(end, p))
            histogram.axvline(value, color="k", linestyle=style, label=f"p{p} {value:.1f} ms")
        histogram.legend(fontsize="small")
    histogram.set_xlabel("end-to-end latency (ms)")
    histogram.set_ylabel("frames")
    histogram.set_title("end-to-end latency")
    if definition:
        fig.suptitle(definition, fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_iou(accuracy: dict[str, Any], path: Path) -> None:
    """Per-class IoU bars (classes absent from truth and prediction are marked n/a), with the
    mIoU as a line."""
    plt = _pyplot()
    names = list(accuracy["iou"])
    values = [accuracy["iou"][n] for n in names]
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
    shown = [100 * v if v is not None else 0.0 for v in values]
    ax.barh(y, shown, color="tab:green")
    for i, v in enumerate(values):
        text = "n/a" if v is None else f"{100 * v:.1f}"
        ax.text(shown[i] + 1, i, text, va="center", fontsize="small")
    if accuracy.get("miou") is not None:
        miou = 100 * accuracy["miou"]
        ax.axvline(miou, color="k", linestyle="--", label=f"mIoU {miou:.2f} %")
        ax.legend(loc="lower right", fontsize="small")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel("IoU (%)")
    ax.set_title("per-class IoU")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_calibration(calibration: dict[str, Any], path: Path) -> None:
    """Reliability diagram (accuracy per confidence bin against the diagonal) and mIoU against
    coverage over the thresholds."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    bins = [b for b in calibration["reliability"] if b["accuracy"] is not None]
    width = bins[0]["high"] - bins[0]["low"] if bins else 0.1
    left.bar(
        [b["low"] for b in bins],
        [b["accuracy"] for b in bins],
        width=width,
        align="edge",
        edgecolor="k",
        color="tab:blue",
        label="accuracy",
    )
    left.plot([0, 1], [0, 1], "k--", label="calibrated")
    left.set_xlim(0, 1)
    left.set_ylim(0, 1)
    left.set_xlabel("confidence (winning class's softmax probability)")
    left.set_ylabel("pixel accuracy")
    left.set_title(f"reliability, ECE {100 * (calibration['ece'] or 0):.2f} %")
    left.legend(loc="upper left", fontsize="small")
    rows = [r for r in calibration["coverage"] if r["miou"] is not None]
    right.plot(
        [100 * r["coverage"] for r in rows], [100 * r["miou"] for r in rows], "o-", color="tab:red"
    )
    for r in rows:
        right.annotate(
            f"{r['threshold']:.2f}",
            (100 * r["coverage"], 100 * r["miou"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize="small",
        )
    right.set_xlabel("coverage (% of labelled pixels kept)")
    right.set_ylabel("mIoU over the kept pixels (%)")
    right.set_title("mIoU against coverage (labels: min_confidence)")
    right.invert_xaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def colorize(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    from seg_ros.inference.postprocess import colorize as lut_colorize
    from seg_ros.inference.postprocess import palette_lut

    return lut_colorize(labels, palette_lut(palette))


def overlay(
    image: np.ndarray, labels: np.ndarray, palette: Sequence[Sequence[int]], alpha: float
) -> np.ndarray:
    from seg_ros.inference.postprocess import blend

    return blend(image, colorize(labels, palette), alpha)


def plot_samples(
    samples: Sequence[Sample], palette: Sequence[Sequence[int]], path: Path, alpha: float = 0.5
) -> None:
    """One row per sample: the frame, the prediction over it, and the ground truth over it."""
    plt = _pyplot()
    with_truth = any(s.truth is not None for s in samples)
    cols = 3 if with_truth else 2
    h, w = samples[0].image.shape[:2]
    size = 4.0
    fig, axes = plt.subplots(
        len(samples), cols, figsize=(cols * size, len(samples) * size * h / w + 0.4), squeeze=False
    )
    for row, sample in zip_strict(axes, samples):
        panels = [
            (sample.image, f"frame {sample.index}"),
            (overlay(sample.image, sample.prediction, palette, alpha), "prediction"),
        ]
        if with_truth:
            truth = sample.truth
            panels.append(
                (overlay(sample.image, truth, palette, alpha), "ground truth")
                if truth is not None
                else (np.zeros_like(sample.image), "no label")
            )
        for ax, (image, title) in zip_strict(row, panels):
            ax.imshow(image)
            ax.set_title(title, fontsize="small")
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
