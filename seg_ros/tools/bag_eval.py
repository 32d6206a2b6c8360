"""seg-bag-eval: accuracy and latency of a segmentation model on a recorded rosbag2.

seg-bag-eval camvid_val --weights fplnet_camvid.safetensors                  # offline
seg-bag-eval drive.mcap --image-topic /camera/image_raw/compressed --no-labels
seg-bag-eval camvid_val --weights w.safetensors --mode live --rate-factor 0.5 --output-bag out
seg-bag-eval camvid_val --mode live --node-running --namespace /robot --weights w.safetensors

offline runs the pipeline on every frame as fast as it can. live replays the bag over DDS into a
segmentation node (one started here, or one already running) at the recorded rate times
--rate-factor and scores what comes back, dropped frames included. Ground truth (mono8 class
ids) is paired with frames by header stamp. The report (report.json, report.md, frames.csv,
latency.png, iou.png, samples.png) goes to --out.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from seg_ros.tools.options import (
    HelpFormatter,
    add_param_arg,
    add_pipeline_args,
    config_from_args,
    model_from_args,
    node_params_from_args,
    param_pairs,
)
from seg_ros.tools.output_paths import OwnedFolder, check_new_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from seg_ros.bag.io import DEFAULT_DISTRO, DISTROS, STORAGES

    p = argparse.ArgumentParser(
        prog="seg-bag-eval",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=HelpFormatter,
    )
    p.add_argument("bag", type=Path, help="rosbag2 folder (sqlite3 or mcap), or one .db3/.mcap")
    p.add_argument("--mode", default="offline", choices=["offline", "live"], help="(offline)")
    g = p.add_argument_group("model")
    add_pipeline_args(g)
    g = p.add_argument_group("bag")
    g.add_argument("--image-topic", help="Image or CompressedImage topic (default: the only one)")
    g.add_argument("--label-topic", help="ground truth, mono8 class ids (default: seg-make-bag's)")
    g.add_argument("--no-labels", action="store_true", help="ignore any label topic")
    g.add_argument(
        "--ros-distro",
        default=DEFAULT_DISTRO,
        choices=sorted(DISTROS),
        help="message definitions for bags that carry none (Humble's) and for new topics",
    )
    g.add_argument("--limit", type=int, help="only the first N frames, N >= 1 (default: all)")
    g = p.add_argument_group("report")
    g.add_argument("--out", type=Path, help="report folder (default: <bag>_<mode>_eval)")
    g.add_argument("--samples", type=int, default=6, help="sample frames in samples.png (6)")
    g.add_argument(
        "--no-calibration",
        action="store_true",
        help="skip the per-pixel confidence (ECE, mIoU against coverage): latency without "
        "the softmax it costs",
    )
    g.add_argument("--output-bag", type=Path, help="also write the bag with the outputs added")
    g.add_argument("--output-storage", choices=sorted(STORAGES), help="(default: the input's)")
    g.add_argument(
        "--output-prefix", default="/segmentation", help="output bag topics: <prefix>/labels, ..."
    )
    g = p.add_argument_group("live mode")
    g.add_argument("--rate-factor", type=float, default=1.0, help="x recorded rate (1.0)")
    g.add_argument("--node-running", action="store_true", help="use a running node")
    g.add_argument("--namespace", default="", help="the running node's namespace (/)")
    g.add_argument("--node-name", default="segmentation_node", help="its name, for diagnostics")
    add_param_arg(g, "--node-param", text="extra parameter for the node started here")
    g.add_argument("--startup-timeout", type=float, default=120.0, help="seconds (120)")
    g.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="an output later than this (s) after its frame counts as dropped (10)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from seg_ros.bag.io import BagError
    from seg_ros.inference.errors import PipelineError
    from seg_ros.ros.bag_replay import ReplayError
    from seg_ros.weights import WeightsError

    try:
        check_args(args)
        summary = run(args)
    except (BagError, PipelineError, WeightsError, ReplayError, ValueError) as e:
        print(f"seg-bag-eval: {e}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0


TOOL = "seg-bag-eval"
# What a live run's node leaves in the report folder (seg_ros.ros.bag_replay).
NODE_FILES = ("node.log", "node_params.yaml")


def report_folder(args: argparse.Namespace) -> OwnedFolder:
    out = args.out or Path(f"{re.sub(r'[.](mcap|db3)$', '', args.bag.name)}_{args.mode}_eval")
    return OwnedFolder(out, TOOL, "--out")


def check_args(args: argparse.Namespace) -> None:
    # Output paths first: a bad one must fail in a second, not after the whole bag.
    report_folder(args).check()
    check_new_path(args.output_bag, "--output-bag")
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    if args.samples < 0:
        raise ValueError("--samples must not be negative")
    if args.overlay_alpha is not None and not 0 <= args.overlay_alpha <= 1:
        raise ValueError("--overlay-alpha must be in [0, 1]")
    if args.no_labels and args.label_topic:
        raise ValueError("--no-labels and --label-topic contradict each other")
    if args.mode == "offline":
        live_only = [
            flag
            for flag, used in (
                ("--node-running", args.node_running),
                ("--namespace", args.namespace),
                ("--param", args.param),
                ("--rate-factor", args.rate_factor != 1.0),
            )
            if used
        ]
        if live_only:
            raise ValueError(f"{', '.join(live_only)} only apply to --mode live")
    else:
        if args.rate_factor <= 0:
            raise ValueError("--rate-factor must be positive")
        if args.threads:
            raise ValueError("--threads applies to --mode offline (the node sets its own)")
        if args.node_running:
            given = [f for f, v in (("--engine", args.engine), ("--param", args.param)) if v]
            if given:
                raise ValueError(
                    f"{', '.join(given)} configure a node started here, not a running one"
                )
        param_pairs(args.param)


# ---------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict[str, Any]:
    from seg_ros.bag.evaluation import BagEvaluation, FrameSource
    from seg_ros.bag.io import BagError, BagReader, copy_bag
    from seg_ros.bag.live import run_live
    from seg_ros.bag.offline import run_offline
    from seg_ros.bag.report import REPORT_FILES, write_report
    from seg_ros.bag.selection import (
        check_class_count,
        choose_image_topic,
        choose_label_topic,
        labels_never_paired,
    )

    with BagReader(args.bag, args.ros_distro) as reader:
        info = reader.seg_ros_info()
        label_topic = choose_label_topic(reader, info, args.label_topic, args.no_labels)
        image_topic = choose_image_topic(reader, info, label_topic, args.image_topic)
        # A running node publishes segmentation/confidence only if it was told to
        # (publish_confidence); waiting for it would stall the replay.
        calibrate = label_topic is not None and not args.no_calibration
        calibrate = calibrate and not (args.mode == "live" and args.node_running)
        pipeline = build_pipeline(args, calibrate) if args.mode == "offline" else None
        classes, model = (
            classes_of_pipeline(pipeline) if pipeline else classes_for_live(args, info, label_topic)
        )
        check_class_count(classes, info, label_topic)
        frame_count = reader.counts[image_topic]
        if args.limit:
            frame_count = min(frame_count, args.limit)
        evaluation = BagEvaluation(classes, label_topic, frame_count, args.samples)
        source = FrameSource(reader, image_topic, label_topic, evaluation, args.limit)
        owned = report_folder(args)
        out_dir = owned.folder
        owned.claim()
        owned.reserve(*REPORT_FILES, *NODE_FILES)
        writer, outputs = output_bag(args, reader, live=pipeline is None)
        skipped: list[str] = []
        try:
            if writer is not None:
                skipped = (
                    writer.call(lambda w: copy_bag(reader, w, image_topic, args.limit))
                    if pipeline is None
                    else copy_bag(reader, writer, image_topic, args.limit)
                )
            if pipeline is not None:
                figures = run_offline(pipeline, source, evaluation, writer, outputs)
            else:
                figures = run_live(
                    live_run(args, calibrate), source, evaluation, writer, outputs, classes,
                    out_dir,
                )  # fmt: skip
            if labels_never_paired(label_topic, evaluation, figures["frames"]["out"]):
                raise BagError(
                    f"none of the {evaluation.labels_read()} labels on {label_topic} has "
                    f"the stamp of a frame on {image_topic}; labels are paired with frames "
                    "by header stamp"
                )
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        if writer is not None:
            writer.close()
        model.update(figures.pop("model_from_node", {}))  # what the node says it serves
        summary = make_summary(args, reader, info, image_topic, label_topic, model, figures,
                               evaluation, source, skipped, out_dir)  # fmt: skip
        answered = {r.index for r in evaluation.records}
        dropped_s = [t for i, t in enumerate(source.times_s) if i not in answered]
        try:
            summary["files"] = write_report(
                out_dir, summary, evaluation.records, evaluation.sample_list(), classes.palette,
                config_from_args(args).overlay_alpha, dropped_s,
            )  # fmt: skip
        finally:
            owned.seal()
    return summary


def output_bag(args: argparse.Namespace, reader: Any, live: bool) -> tuple[Any, Any]:
    """The --output-bag writer and its topics, or (None, None)."""
    from seg_ros.bag.io import BagWriter, BagWriterThread
    from seg_ros.bag.selection import output_topics, storage_of

    if not args.output_bag:
        return None, None
    outputs = output_topics(args.output_prefix, reader)
    storage = args.output_storage or storage_of(reader)
    # Live outputs arrive on a worker thread; rosbags' sqlite3 writer is bound to the thread
    # that opened it, so live writes go through a writer thread of their own.
    kind = BagWriterThread if live else BagWriter
    return kind(args.output_bag, storage, args.ros_distro), outputs


def live_run(args: argparse.Namespace, confidence: bool = False) -> Any:
    """The live options; a node started here gets the model options given on the command line."""
    from seg_ros.bag.live import LiveRun

    node_params: dict[str, Any] = {}
    if not args.node_running:
        node_params = node_params_from_args(args)
        node_params.setdefault("model", model_from_args(args))
    return LiveRun(
        node_running=args.node_running,
        confidence=confidence,
        namespace=args.namespace,
        node_name=args.node_name,
        node_params=node_params,
        rate_factor=args.rate_factor,
        startup_timeout=args.startup_timeout,
        drain_timeout=args.drain_timeout,
    )


def make_summary(
    args: argparse.Namespace,
    reader: Any,
    info: dict[str, str],
    image_topic: str,
    label_topic: str | None,
    model: dict[str, Any],
    figures: dict[str, Any],
    evaluation: Any,
    source: Any,
    skipped: list[str],
    out_dir: Path,
) -> dict[str, Any]:
    """Everything report.json holds, before the report's own files are added."""
    from seg_ros.bag.report import latency_summary
    from seg_ros.bag.selection import recorded_fps, storage_of

    notes = list(figures.pop("notes", []))
    unpaired = source.labels_without_frame()
    if unpaired:
        notes.append(f"{unpaired} label(s) on {label_topic} match no frame's stamp")
    if skipped:
        notes.append(f"not copied to the output bag (no message definition): {', '.join(skipped)}")
    if label_topic and args.mode == "live" and args.node_running and not args.no_calibration:
        notes.append(
            "no calibration (ECE, coverage) with --node-running: it needs the node's "
            "segmentation/confidence; let seg-bag-eval start its own node to get it"
        )
    if str(model.get("random_init", "")).lower() == "true":
        notes.append("RANDOM WEIGHTS: the labels are meaningless; pass --weights")
    frames = figures.pop("frames")
    frames["labelled"] = evaluation.labelled_frames
    frames["labels_read"] = evaluation.labels_read() if label_topic else 0
    frames["labels_without_frame"] = unpaired
    count = reader.counts[image_topic]
    summary = {
        "tool": "seg-bag-eval",
        "mode": args.mode,
        "bag": {
            "path": str(args.bag),
            "storage": storage_of(reader),
            "image_topic": image_topic,
            "image_type": reader.topics[image_topic],
            "label_topic": label_topic,
            "frames": count,
            "duration_s": round(reader.duration_s, 3),
            "recorded_fps": recorded_fps(count, reader.duration_s),
            "limit": args.limit,
            "seg_ros": info,
        },
        "model": model,
        "frames": frames,
        "accuracy": evaluation.accuracy(),
        "latency_definition": figures.pop("latency_definition"),
        "latency_ms": latency_summary(evaluation.records),
        "fps": figures.pop("fps"),
        "notes": notes,
        **figures,
        "out_dir": str(out_dir),
    }
    if args.output_bag:
        summary["files"] = {"output_bag": str(args.output_bag)}
    return summary


def build_pipeline(args: argparse.Namespace, confidence: bool = False) -> Any:
    from seg_ros.inference.pipeline import Pipeline

    config = config_from_args(args)
    config.confidence = confidence
    pipeline = Pipeline(config)
    pipeline.warmup()
    return pipeline


def classes_of_pipeline(pipeline: Any) -> tuple[Any, dict[str, Any]]:
    from seg_ros.bag.evaluation import ClassInfo

    m = pipeline.metadata
    return ClassInfo(list(m.class_names), [list(c) for c in m.palette], m.dataset), dict(
        pipeline.describe()
    )


def classes_for_live(
    args: argparse.Namespace, info: dict[str, str], label_topic: str | None
) -> tuple[Any, dict[str, Any]]:
    """The classes the node will predict: from --weights, from what a node started here will
    load (its default weights), or for a running node from the bag's label set."""
    import json

    from seg_ros.bag.evaluation import ClassInfo
    from seg_ros.bag.io import BagError
    from seg_ros.labels import generic_label_set, get_label_set
    from seg_ros.own_model import read_any_metadata
    from seg_ros.weights import read_metadata

    asked = config_from_args(args)
    model = {"model": args.model or "", "variant": args.variant or "", "backend": asked.backend,
             "device": asked.device, "precision": asked.precision}  # fmt: skip
    if args.weights:
        meta = read_any_metadata(args.weights)
        model.update(model=meta.model, variant=meta.variant, weights=args.weights)
        return ClassInfo(meta.class_names, meta.palette, meta.dataset), model
    if not args.node_running:
        from seg_ros.inference.loading import choose_weights, random_metadata
        from seg_ros.models import resolve_variant

        name = args.model or "fplnet"
        path = choose_weights(name, args.variant, None)
        if path is None:
            meta = random_metadata(name, resolve_variant(name, args.variant), None)
            model["random_init"] = "true"
        else:
            meta = read_metadata(path)
            model["weights"] = str(path)
        model.update(model=meta.model, variant=meta.variant)
        return ClassInfo(meta.class_names, meta.palette, meta.dataset), model
    if "class_names" in info:
        names = json.loads(info["class_names"])
        dataset = info.get("dataset", "")
        try:
            palette = [list(c) for c in get_label_set(dataset).palette]
        except KeyError:
            palette = [list(c) for c in generic_label_set(len(names)).palette]
        if len(palette) != len(names):
            palette = [list(c) for c in generic_label_set(len(names)).palette]
        return ClassInfo(names, palette, dataset), model
    if label_topic:
        raise BagError(
            "pass --weights (the file the running node serves): the bag does not say what its "
            "class ids mean, and scoring needs the model's class count"
        )
    generic = generic_label_set(255)
    return ClassInfo(list(generic.classes), [list(c) for c in generic.palette]), model


def print_summary(summary: dict[str, Any]) -> None:
    frames = summary["frames"]
    print(
        f"{summary['mode']}: {frames['in']} frames in, {frames['out']} out, "
        f"{frames['dropped']} dropped, {frames['labelled']} labelled"
    )
    accuracy = summary.get("accuracy")
    if accuracy and accuracy.get("miou") is not None:
        print(
            f"mIoU {100 * accuracy['miou']:.2f} %, pixel accuracy "
            f"{100 * accuracy['pixel_accuracy']:.2f} %"
        )
    end = summary["latency_ms"].get("end_to_end")
    if end:
        print(
            f"end-to-end latency p50 {end['p50']:.1f} ms, p90 {end['p90']:.1f} ms, "
            f"p99 {end['p99']:.1f} ms ({summary['latency_definition']})"
        )
    fps = ", ".join(f"{k} {v:.2f}" for k, v in summary["fps"].items() if v)
    if fps:
        print(f"FPS: {fps}")
    for note in summary.get("notes", []):
        print(f"note: {note}")
    print(f"report: {summary['out_dir']}/report.md")


if __name__ == "__main__":
    sys.exit(main())
