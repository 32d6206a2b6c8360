"""seg-quantize: an int8 OpenVINO model, checked on a validation split before it is written.

seg-quantize --model fplnet --data-root ../shared/data/camvid --output fplnet_int8.xml
seg-quantize --model fplnet --weights w.safetensors --calibration my_frames/ --data-root \\
    data/camvid --val-split val --max-drop 0.5 --output fplnet_int8.xml
then: segmentation_node --ros-args -p backend:=openvino -p precision:=int8 \\
    -p engine:=fplnet_int8.xml

Calibration frames come from a dataset split (default: --data-root's train split), an image
folder, a video or a rosbag2 (--calibration); the validation split must have labels. The
model is written only if its val mIoU is at most --max-drop points below fp32 (exit 1
otherwise; --force writes it flagged in its metadata).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from seg_ros.tools.output_paths import outputs_refused


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from seg_ros.inference.quantize import DEFAULT_MAX_DROP
    from seg_ros.tools.options import HelpFormatter, add_old_name, parse_size

    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="seg-quantize", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--model", help="fplnet, rgpnet or desanet (not for your own model.onnx in --weights)"
    )
    p.add_argument("--variant", help="model variant (default: the weights')")
    p.add_argument(
        "--weights",
        help="seg_ros weights (default: the shipped ones for --model), or your own model.onnx "
        "with its model.onnx.yaml",
    )
    p.add_argument("--output", type=Path, required=True, help="int8 model path (.xml)")
    p.add_argument("--data-root", required=True, help="labelled dataset folder")
    p.add_argument("--dataset", default="camvid", help="dataset reader (default: camvid)")
    p.add_argument("--calibration", help="image folder, video or rosbag2 (default: --train-split)")
    p.add_argument("--train-split", default="train", help="calibration split (default: train)")
    p.add_argument("--val-split", default="val", help="validation split (default: val)")
    p.add_argument("--frames", type=int, default=300, help="calibration frames (default: 300)")
    p.add_argument("--val-frames", type=int, help="only the first N validation frames")
    p.add_argument(
        "--max-drop",
        type=float,
        default=DEFAULT_MAX_DROP,
        help="mIoU points int8 may lose against fp32 (default: %(default)s)",
    )
    p.add_argument(
        "--accuracy-control",
        action="store_true",
        help="NNCF's accuracy-aware quantization: layers go back to fp32 until within --max-drop",
    )
    p.add_argument(
        "--keep-fp32",
        nargs="+",
        default=[],
        metavar="OP_TYPE",
        help="OpenVINO op types left unquantized (e.g. PRelu)",
    )
    p.add_argument("--preset", choices=("mixed", "performance"), default="mixed")
    p.add_argument(
        "--full-bias-correction", action="store_true", help="NNCF's slower, finer bias correction"
    )
    p.add_argument(
        "--input-size", type=parse_size, help="network input HxW (default: the weights')"
    )
    add_old_name(p, "--size", "input_size", type=parse_size)
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--force", action="store_true", help="write it even past --max-drop (flagged)")
    p.add_argument("--json", type=Path, help="also write the report here")
    return p.parse_args(argv)


def arguments_problem(args: argparse.Namespace) -> str | None:
    from seg_ros.own_model import is_onnx_model

    if args.model is None and not is_onnx_model(args.weights):
        return "--model is needed (or --weights your own model.onnx)"
    if args.output.suffix.lower() != ".xml":
        return "--output must end in .xml (OpenVINO IR)"
    if not args.output.expanduser().resolve().parent.is_dir():
        return f"folder {args.output.parent} does not exist"
    return None


def check_classes(weights: str | None, dataset: object) -> None:
    """The accuracy guard scores label ids: refuse a validation split of other classes."""
    if not weights:
        return  # the shipped weights: their dataset is the reader's (camvid)
    from seg_ros.labels import class_mismatch
    from seg_ros.own_model import read_any_metadata

    meta = read_any_metadata(weights)
    problem = class_mismatch(list(meta.class_names), list(dataset.label_set.classes))
    if problem:
        raise ValueError(f"{weights} and {dataset.name} disagree: {problem}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if outputs_refused("seg-quantize", {"--output": args.output, "--json": args.json}):
        return 2
    problem = arguments_problem(args)
    if problem:
        print(f"seg-quantize: {problem}", file=sys.stderr)
        return 2
    from seg_ros.inference.errors import PipelineError
    from seg_ros.inference.quantize import quantize
    from seg_ros.training.datasets import DatasetError, build_dataset
    from seg_ros.weights import WeightsError

    size = args.input_size
    try:
        val = build_dataset(args.dataset, args.data_root, args.val_split)
        check_classes(args.weights, val)
        n_val = min(args.val_frames or len(val), len(val))
        validation = [val.load(i) for i in range(n_val)]
        if args.calibration:
            from seg_ros.tools.frame_sources import open_source

            frames = open_source(args.calibration, 0, 0)
            calibration = list(itertools.islice(frames, args.frames))
            calibration_name = args.calibration
        else:
            train = build_dataset(args.dataset, args.data_root, args.train_split)
            step = max(1, len(train) // args.frames)
            indices = list(range(0, len(train), step))[: args.frames]
            calibration = [train.load(i)[0] for i in indices]
            calibration_name = train.name
        report = quantize(
            args.weights,
            args.model,
            calibration,
            validation,
            args.output,
            calibration_name,
            val.name,
            variant=args.variant,
            input_size=size,
            max_drop=args.max_drop,
            accuracy_control=args.accuracy_control,
            force=args.force,
            threads=args.threads,
            ignored_types=args.keep_fp32,
            preset=args.preset,
            fast_bias_correction=not args.full_bias_correction,
            progress=lambda m: print(f"seg-quantize: {m}", flush=True),
        )
    except (PipelineError, WeightsError, DatasetError, ValueError, OSError, SystemExit) as e:
        print(f"seg-quantize: {e}", file=sys.stderr)
        return 2
    print(
        f"seg-quantize: fp32 {report.fp32_miou:.2f} -> int8 {report.int8_miou:.2f} mIoU on "
        f"{report.validation} (drop {report.drop:.2f}, allowed {report.max_drop:g}); "
        f"{report.method}; {report.seconds:.0f} s"
    )
    for flag in report.flags:
        print(f"seg-quantize: WARNING: {flag}", file=sys.stderr)
    if args.json:
        data = {**report.metadata(), "written": report.written, "flags": report.flags}
        data["drop"] = round(report.drop, 3)
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    if not report.written:
        print(
            "seg-quantize: not written: the int8 model is not accurate enough; try "
            "--accuracy-control, --keep-fp32 or more --frames (or --force)",
            file=sys.stderr,
        )
        return 1
    print(f"seg-quantize: wrote {args.output} and {args.output.with_suffix('.bin')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
