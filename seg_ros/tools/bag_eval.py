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
import time
from pathlib import Path
from typing import Any

from seg_ros.tools.options import (
    add_param_arg,
    add_pipeline_args,
    config_from_args,
    model_from_args,
    node_params_from_args,
    param_pairs,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from seg_ros.bag.io import DEFAULT_DISTRO, DISTROS, STORAGES

    p = argparse.ArgumentParser(
        prog="seg-bag-eval",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    g.add_argument("--limit", type=int, help="only the first N frames")
    g = p.add_argument_group("report")
    g.add_argument("--out", type=Path, help="report folder (default: <bag>_<mode>_eval)")
    g.add_argument("--samples", type=int, default=6, help="sample frames in samples.png (6)")
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


def check_args(args: argparse.Namespace) -> None:
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
    from seg_ros.bag.io import BagError, BagReader, BagWriter, BagWriterThread, copy_bag
    from seg_ros.bag.report import write_report

    with BagReader(args.bag, args.ros_distro) as reader:
        info = reader.seg_ros_info()
        label_topic = choose_label_topic(reader, args, info)
        image_topic = choose_image_topic(reader, args, info, label_topic)
        pipeline = build_pipeline(args) if args.mode == "offline" else None
        classes, model = (
            classes_of_pipeline(pipeline) if pipeline else classes_for_live(args, info, label_topic)
        )
        check_class_count(classes, info, label_topic)
        frame_count = reader.counts[image_topic]
        if args.limit:
            frame_count = min(frame_count, args.limit)
        evaluation = BagEvaluation(classes, label_topic, frame_count, args.samples)
        source = FrameSource(reader, image_topic, label_topic, evaluation, args.limit)
        out_dir = args.out or Path(
            f"{re.sub(r'[.](mcap|db3)$', '', args.bag.name)}_{args.mode}_eval"
        )
        writer = None
        skipped: list[str] = []
        outputs = None
        if args.output_bag:
            outputs = output_topics(args.output_prefix, reader)
            storage = args.output_storage or storage_of(reader)
            # Live outputs arrive on a worker thread; rosbags' sqlite3 writer is bound to the
            # thread that opened it, so live writes go through a writer thread of their own.
            if pipeline is None:
                writer = BagWriterThread(args.output_bag, storage, args.ros_distro)
            else:
                writer = BagWriter(args.output_bag, storage, args.ros_distro)
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
                figures = run_live(args, source, evaluation, writer, outputs, classes, out_dir)
            if labels_never_paired(label_topic, evaluation, figures):
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
        summary["files"] = write_report(
            out_dir, summary, evaluation.records, evaluation.sample_list(), classes.palette,
            config_from_args(args).overlay_alpha, dropped_s,
        )  # fmt: skip
    return summary


def labels_never_paired(label_topic: str | None, evaluation: Any, figures: dict) -> bool:
    """Labels were read and frames answered, yet no label met its frame: the stamps differ,
    which is a recording problem to report, not an mIoU of nothing."""
    return bool(
        label_topic
        and evaluation.labels_read()
        and not evaluation.labelled_frames
        and figures["frames"]["out"]
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

    notes = list(figures.pop("notes", []))
    unpaired = source.labels_without_frame()
    if unpaired:
        notes.append(f"{unpaired} label(s) on {label_topic} match no frame's stamp")
    if skipped:
        notes.append(f"not copied to the output bag (no message definition): {', '.join(skipped)}")
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


def storage_of(reader: Any) -> str:
    storage = reader.storage
    return storage if storage in ("sqlite3", "mcap") else "mcap"


def recorded_fps(frames: int, duration_s: float) -> float | None:
    return round((frames - 1) / duration_s, 3) if frames > 1 and duration_s > 0 else None


def choose_label_topic(reader: Any, args: argparse.Namespace, info: dict[str, str]) -> str | None:
    from seg_ros.bag.io import IMAGE

    if args.no_labels:
        return None
    if args.label_topic:
        return reader.resolve_topic(args.label_topic, (IMAGE,), "label")
    recorded = info.get("label_topic")
    if recorded:
        return reader.resolve_topic(recorded, (IMAGE,), "label (named in the bag's metadata)")
    return None


def choose_image_topic(
    reader: Any, args: argparse.Namespace, info: dict[str, str], label_topic: str | None
) -> str:
    from seg_ros.bag.io import IMAGE_TYPES, BagError

    if args.image_topic:
        topic = reader.resolve_topic(args.image_topic, IMAGE_TYPES, "image")
    elif info.get("image_topic"):
        topic = reader.resolve_topic(info["image_topic"], IMAGE_TYPES, "image (bag metadata)")
    else:
        candidates = [t for t in reader.image_topics() if t != label_topic]
        if len(candidates) != 1:
            raise BagError(
                f"{reader.path} has {len(candidates)} image topics besides the labels; pass "
                f"--image-topic. Its topics:\n{reader.describe_topics()}"
            )
        topic = candidates[0]
    if topic == label_topic:
        raise BagError(f"{topic} cannot be both the image and the label topic")
    return topic


def build_pipeline(args: argparse.Namespace) -> Any:
    from seg_ros.inference.pipeline import Pipeline

    pipeline = Pipeline(config_from_args(args))
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
    from seg_ros.weights import read_metadata

    asked = config_from_args(args)
    model = {"model": args.model or "", "variant": args.variant or "", "backend": asked.backend,
             "device": asked.device, "precision": asked.precision}  # fmt: skip
    if args.weights:
        meta = read_metadata(args.weights)
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


def check_class_count(classes: Any, info: dict[str, str], label_topic: str | None) -> None:
    from seg_ros.bag.io import BagError

    recorded = info.get("num_classes")
    if label_topic and recorded and int(recorded) != classes.num_classes:
        raise BagError(
            f"the bag's labels are {info.get('dataset', '?')} ids ({recorded} classes), but the "
            f"model predicts {classes.num_classes} classes ({classes.dataset or '?'}); use "
            "weights trained on that label set, or --no-labels for latency only"
        )


def output_topics(prefix: str, reader: Any) -> dict[str, str]:
    from seg_ros.bag.io import BagError

    if not prefix.startswith("/"):
        raise BagError(f"--output-prefix must start with '/', got {prefix!r}")
    topics = {name: f"{prefix.rstrip('/')}/{name}" for name in ("labels", "color", "overlay")}
    clash = [t for t in topics.values() if t in reader.topics]
    if clash:
        raise BagError(f"the bag already has {', '.join(clash)}; choose another --output-prefix")
    return topics


# ---------------------------------------------------------------- offline


def run_offline(
    pipeline: Any, source: Any, evaluation: Any, writer: Any, outputs: dict[str, str] | None
) -> dict[str, Any]:
    from seg_ros.bag.io import decode_frame

    start = time.perf_counter()
    frames = 0
    sizes: set[tuple[int, int]] = set()
    for index, message in source:
        t0 = time.perf_counter()
        decoded = decode_frame(message)
        decode_ms = (time.perf_counter() - t0) * 1e3
        sizes.add((decoded.height, decoded.width))
        order = "bgr" if decoded.color_order == "bgr" else "rgb"
        result = pipeline(
            decoded.array,
            color_order=order,
            want_color=writer is not None,
            want_overlay=writer is not None,
        )
        t = result.timings
        latency = {
            "decode": decode_ms,
            "preprocess": t["preprocess"],
            "inference": t["inference"],
            "postprocess": t["postprocess"],
            "end_to_end": decode_ms + t["total"],
        }
        image = decoded.rgb() if evaluation.wants_sample(index) else None
        evaluation.add_prediction(
            index, message.stamp_ns, result.labels, latency, source.time_s(message), image
        )
        if writer is not None:
            stamp, frame_id, log = message.stamp_ns, message.frame_id, message.log_time_ns
            writer.write_image(outputs["labels"], log, result.labels, "mono8", stamp, frame_id)
            writer.write_image(outputs["color"], log, result.color, "rgb8", stamp, frame_id)
            writer.write_image(outputs["overlay"], log, result.overlay, "rgb8", stamp, frame_id)
        frames += 1
    seconds = time.perf_counter() - start
    totals = [r.latency_ms["end_to_end"] for r in evaluation.records]
    notes = []
    if sizes and sizes != {tuple(pipeline.input_size)}:
        h, w = pipeline.input_size
        notes.append(
            f"frames are resized to the network input {h}x{w} (h x w) and the labels resized back "
            "(nearest); seg-eval runs each frame at its own size unless given --input-size"
        )
    return {
        "frames": {"in": frames, "out": frames, "dropped": 0},
        "latency_definition": "bag message to labels: decode + preprocess + inference + "
        "postprocess, in this process",
        "fps": {
            "wall": round(frames / seconds, 3) if seconds > 0 else None,
            "pipeline": round(1000 * len(totals) / sum(totals), 3) if totals else None,
        },
        "notes": notes,
        "seconds": round(seconds, 3),
    }


# ---------------------------------------------------------------- live


def run_live(
    args: argparse.Namespace,
    source: Any,
    evaluation: Any,
    writer: Any,
    outputs: dict[str, str] | None,
    classes: Any,
    out_dir: Path,
) -> dict[str, Any]:
    from seg_ros.bag.io import COMPRESSED, BagError, decode_frame
    from seg_ros.image_codec import decode_image_msg
    from seg_ros.ros.bag_replay import ReplayFrame, ReplayOptions, replay
    from seg_ros.ros.contract import NodeStatus

    node_params: dict[str, Any] = {}
    if not args.node_running:
        node_params = node_params_from_args(args)
        node_params.setdefault("model", model_from_args(args))
        node_params.setdefault("output_resolution", "input")  # scored at the frames' size
        node_params.setdefault("diagnostics_period", 0.5)
    wanted = ("labels", "color", "overlay") if writer is not None else ("labels",)
    recorded = recorded_fps(source.reader.counts[source.image_topic], source.reader.duration_s)
    # The node's diagnostics then warn when it cannot keep up with the replay.
    node_params.setdefault("target_rate", round((recorded or 0.0) * args.rate_factor, 3))
    options = ReplayOptions(
        start_node=not args.node_running,
        namespace=args.namespace,
        node_name=args.node_name if args.node_running else "seg_bag_eval_node",
        node_params=node_params,
        outputs=wanted,
        rate_factor=args.rate_factor,
        startup_timeout=args.startup_timeout,
        drain_timeout=args.drain_timeout,
        log_dir=out_dir,
    )
    first_log: list[int] = []

    def frames() -> Any:
        for index, message in source:
            if not first_log:
                first_log.append(message.log_time_ns)
            yield ReplayFrame(
                index,
                message.log_time_ns,
                message.stamp_ns,
                message.frame_id,
                message.msg,
                message.msgtype == COMPRESSED,
            )

    def on_output(out: Any) -> None:
        frame = out.frame
        labels = decode_image_msg(out.messages["labels"]).array
        if not frame.compressed and labels.shape != (int(frame.msg.height), int(frame.msg.width)):
            raise BagError(
                f"the node's labels are {labels.shape[1]}x{labels.shape[0]}, not the frame's "
                f"{frame.msg.width}x{frame.msg.height}; set its output_resolution to input"
            )
        latency = {"end_to_end": (out.received_ns - out.sent_ns) / 1e6}
        image = None
        if evaluation.wants_sample(frame.index):
            from seg_ros.bag.io import BagMessage

            msgtype = COMPRESSED if frame.compressed else "sensor_msgs/msg/Image"
            image = decode_frame(BagMessage(source.image_topic, msgtype, 0, frame.msg)).rgb()
        time_s = (frame.log_time_ns - first_log[0]) / 1e9
        evaluation.add_prediction(frame.index, frame.stamp_ns, labels, latency, time_s, image)
        if writer is not None:
            # Logged when the robot would have had it: the frame's time plus the latency seen.
            log = frame.log_time_ns + (out.received_ns - out.sent_ns)
            writer.write_image(
                outputs["labels"], log, labels, "mono8", frame.stamp_ns, frame.frame_id
            )
            for name in ("color", "overlay"):
                array = decode_image_msg(out.messages[name]).array
                writer.write_image(
                    outputs[name], log, array, "rgb8", frame.stamp_ns, frame.frame_id
                )

    stats = replay(frames(), options, on_output)
    diagnostics = stats.diagnostics or {}
    status = NodeStatus(diagnostics)
    node_classes = status.model.get("num_classes")
    if node_classes and node_classes.isdigit() and int(node_classes) != classes.num_classes:
        raise BagError(
            f"the node predicts {node_classes} classes ({status.model.get('dataset', '?')}), but "
            f"the evaluation assumed {classes.num_classes}; pass the node's --weights"
        )
    received = stats.received
    span = (
        (stats.last_received_ns - stats.first_received_ns) / 1e9
        if received > 1 and stats.last_received_ns and stats.first_received_ns
        else 0.0
    )
    notes = []
    if stats.sent > received:
        notes.append(
            f"{stats.sent - received} of {stats.sent} frames got no output (the node drops stale "
            "frames when it is slower than the replay); accuracy is over the frames answered"
        )
    if diagnostics:
        notes.append(
            f"the node's own counters and latencies include the {stats.warmup_frames} warm-up "
            "frame(s) sent before the replay, and cover its last latency window only"
        )
    if stats.late:
        notes.append(f"{stats.late} output(s) came after --drain-timeout and count as dropped")
    return {
        "frames": {"in": stats.sent, "out": received, "dropped": stats.sent - received},
        "latency_definition": "frame stamp (set by the replayer at publish) to the labels' "
        "arrival, one clock",
        "fps": {
            "input": round((stats.sent - 1) / stats.send_span_s, 3) if stats.send_span_s else None,
            "output": round((received - 1) / span, 3) if span > 0 else None,
        },
        "notes": notes,
        "live": {
            "rate_factor": args.rate_factor,
            "node": "running" if args.node_running else "started",
            "namespace": stats.namespace,
            "node_name": stats.node_name,
            "node_params": node_params,
            "outputs": list(wanted),
            "warmup_frames": stats.warmup_frames,
            "late_outputs": stats.late,
            "node_log": stats.node_log,
            "node_exit_code": stats.node_exit_code,
            "node_latency_ms": status.latencies(),
            "node_counters": status.counters,
            "node_diagnostics": diagnostics,
        },
        "model_from_node": status.model,
    }


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
