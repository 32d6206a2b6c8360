"""seg-eval: mIoU and per-class IoU of a weights file on a dataset split.

seg-eval models/fplnet_camvid.safetensors --data-root ../shared/data/camvid --split val
seg-eval best.safetensors --dataset cityscapes --data-root data/cityscapes --scales 0.5 0.75 1 \
    1.25 1.5 1.75 --flip --json val.json
seg-eval fplnet_camvid --data-root ../shared/data/camvid --backend openvino --precision int8
seg-eval fplnet_camvid --ensemble rgpnet_camvid desanet_camvid --data-root ../shared/data/camvid

Without --backend it scores the PyTorch module itself (fp32: the model cards' figures); with
--backend the deployed path: each frame through the node's Pipeline on that runtime,
precision and input size (single scale), labels scored at label resolution.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from seg_ros.inference.config import BACKENDS, PRECISIONS
from seg_ros.tools.options import HelpFormatter, parse_size
from seg_ros.tools.output_paths import outputs_refused


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="seg-eval",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "weights",
        help="seg_ros weights (.safetensors), a name from models/, or your own model.onnx (its "
        "model.onnx.yaml beside it; scored on --backend, default auto)",
    )
    p.add_argument(
        "--dataset",
        help="camvid, cityscapes, mapillary or folder (default: the weights' dataset)",
    )
    p.add_argument("--data-root", required=True, help="dataset folder")
    p.add_argument("--split", default="val", help="dataset split (default: val)")
    p.add_argument("--classes", help="classes YAML of a folder dataset (default: in its root)")
    p.add_argument(
        "--max-size", type=int, help="shrink frames whose long side is larger (Mapillary)"
    )
    p.add_argument(
        "--input-size",
        type=parse_size,
        metavar="HxW",
        help="run the network at this size, e.g. 180x240 (default: each frame's own; with "
        "--backend the weights'); scored at label size",
    )
    p.add_argument(
        "--scales", type=float, nargs="+", default=[1.0], help="e.g. 0.5 0.75 1 1.25 1.5 1.75"
    )
    p.add_argument("--flip", action="store_true", help="also average horizontally flipped views")
    p.add_argument(
        "--ensemble",
        nargs="+",
        metavar="WEIGHTS",
        help="score the mean softmax of the weights and these (each at its own input size; "
        "with --scales/--flip): a distill: teacher set's figure before a run is spent on it",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 (default: auto)")
    p.add_argument(
        "--amp",
        default="off",
        choices=["off", "auto", "bf16", "fp16"],
        help="autocast precision (default: off = fp32, the reference figures)",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="score the deployed Pipeline on this runtime (default: the PyTorch module)",
    )
    p.add_argument(
        "--precision", default="fp32", choices=PRECISIONS, help="with --backend (default: fp32)"
    )
    p.add_argument("--engine", help="with --backend: ONNX / OpenVINO IR / TensorRT engine file")
    p.add_argument(
        "--limit", type=int, help="only the first N frames, N >= 1 (a quick look; default: all)"
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def resolve_weights(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    from seg_ros.paths import find_data

    found = find_data(Path("models") / f"{path.stem}.safetensors")
    if found is None:
        folder = find_data("models")
        names = sorted(p.stem for p in folder.glob("*.safetensors")) if folder else []
        raise FileNotFoundError(
            f"weights not found: {name_or_path} (neither a file nor a shipped name; "
            f"the shipped names: {', '.join(names) or 'none in this install'})"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if outputs_refused("seg-eval", {"--json": args.json}):
        return 2
    if args.limit is not None and args.limit < 1:
        print("seg-eval: --limit must be at least 1 (leave it out: every frame)", file=sys.stderr)
        return 2
    import torch

    from seg_ros.inference import PipelineConfig
    from seg_ros.inference.errors import PipelineError
    from seg_ros.metrics import format_table
    from seg_ros.own_model import is_onnx_model, read_any_metadata
    from seg_ros.training.datasets import DatasetError
    from seg_ros.training.teacher import TeacherError
    from seg_ros.training.trainer import autocast_dtype
    from seg_ros.weights import WeightsError, load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        weights = resolve_weights(args.weights)
        if is_onnx_model(weights):
            # An own model has no PyTorch module: its deployed path is what there is to score.
            model, meta = None, read_any_metadata(weights)
            args.backend = args.backend or "auto"
        else:
            model, meta = load_model(weights)
        dataset = _dataset(args, weights, meta)
        device = torch.device(
            args.device
            if args.device != "auto"
            else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        if args.ensemble:  # its members run where distillation computes them: the CPU
            device = torch.device("cpu")
        amp_dtype = autocast_dtype(args.amp, device)
        indices = None if args.limit is None else range(min(args.limit, len(dataset)))
        pipeline = targets = None
        if args.ensemble:
            targets = ensemble_targets(args, weights, dataset)
        elif args.backend is not None:
            # an own model names itself; model is then not consulted (the default stands)
            name = meta.model if model is not None else PipelineConfig.model
            pipeline = deployed_pipeline(args, weights, name, device)
        elif args.precision != "fp32" or args.engine:
            raise ValueError("--precision and --engine choose a deployed path: add --backend")
    except (
        FileNotFoundError,
        ValueError,
        DatasetError,
        WeightsError,
        PipelineError,
        TeacherError,
    ) as e:
        print(f"seg-eval: {e}", file=sys.stderr)
        return 2

    start = time.perf_counter()
    if targets is not None:
        from seg_ros.training.teacher import mean_confusion

        cm = mean_confusion(targets, indices)
    elif pipeline is not None:
        from seg_ros.inference.scoring import pipeline_confusion

        frames = indices if indices is not None else range(len(dataset))
        cm = pipeline_confusion(pipeline, (dataset[i] for i in frames), meta.num_classes)
    else:
        cm = module_confusion(model, dataset, meta, device, amp_dtype, indices, args)
    seconds = time.perf_counter() - start
    frames = len(indices) if indices is not None else len(dataset)
    print(f"{_scored(meta, pipeline, targets)} on {dataset.name} ({frames} frames, ", end="")
    print(f"{_setting(args, pipeline)})")
    print(format_table(cm, meta.class_names))
    if args.json:
        _write_json(args, weights, meta, frames, device, seconds, cm)
    return 0


def _scored(meta: Any, pipeline: Any, targets: Any) -> str:
    """What was scored, for the table's headline."""
    if targets is not None:
        members = " + ".join(f"{m.model}/{m.variant}" for _, m in targets.models)
        return f"mean softmax of {members}"
    return f"{meta.model}/{meta.variant}"


def _setting(args: argparse.Namespace, pipeline: Any) -> str:
    """How it was run: the deployed runtime, or the module's scales and flip."""
    if pipeline is not None:
        described = pipeline.describe()
        return f"{described['backend']} {described['precision']}, {described['input_size']}"
    return f"scales {' '.join(f'{s:g}' for s in args.scales)}" + (" + flip" if args.flip else "")


def ensemble_targets(args: argparse.Namespace, weights: Path, dataset: Any) -> Any:
    """The weights and --ensemble as a distillation teacher set (its loader checks each file
    and its classes); each member runs at its own input size, so --input-size is refused."""
    from seg_ros.own_model import is_onnx_model
    from seg_ros.training.teacher import TeacherTargets

    members = [weights, *(resolve_weights(w) for w in args.ensemble)]
    onnx = [str(m) for m in members if is_onnx_model(m)]
    if onnx:
        raise ValueError(f"--ensemble averages seg_ros weights files, not ONNX: {', '.join(onnx)}")
    fixed = {
        "--backend": args.backend,
        "--engine": args.engine,
        "--input-size": args.input_size,
        "--amp": args.amp != "off",
        "--precision": args.precision != "fp32",
        "--device": args.device not in ("auto", "cpu"),
    }
    clash = [name for name, given in fixed.items() if given]
    if clash:
        raise ValueError(
            "--ensemble scores the PyTorch modules on the CPU, each at its own input size in "
            f"fp32: drop {', '.join(clash)}"
        )
    return TeacherTargets(members, dataset, args.scales, args.flip)


def dataset_name(args: argparse.Namespace, meta: Any) -> str:
    """The dataset asked, else the one the weights were trained on."""
    return args.dataset or meta.dataset


def _dataset(args: argparse.Namespace, weights: Path, meta: Any) -> Any:
    """The split to score, read as the weights' classes (refused when they differ)."""
    from seg_ros.training.datasets import DATASETS, build_dataset

    name = dataset_name(args, meta)
    if name not in DATASETS:
        raise ValueError(
            f"the weights were trained on {meta.dataset!r}, which has no reader; "
            f"pass --dataset (one of {sorted(DATASETS)}; folder with --classes for your own)"
        )
    options: dict[str, object] = {}
    if args.classes:
        options["classes"] = args.classes
    if args.max_size:
        options["max_size"] = args.max_size
    dataset = build_dataset(name, args.data_root, args.split, **options)
    from seg_ros.labels import class_mismatch

    problem = class_mismatch(list(meta.class_names), list(dataset.label_set.classes))
    if problem:
        raise ValueError(f"{weights} and {dataset.name} disagree: {problem}")
    return dataset


def _write_json(
    args: argparse.Namespace,
    weights: Path,
    meta: Any,
    frames: int,
    device: Any,
    seconds: float,
    cm: Any,
) -> None:
    from seg_ros.metrics import report

    result = {
        "weights": str(weights),
        "model": meta.model,
        "variant": meta.variant,
        "dataset": dataset_name(args, meta),
        "split": args.split,
        "frames": frames,
        "input_size": list(args.input_size) if args.input_size else None,
        "scales": args.scales,
        "flip": args.flip,
        "device": str(device),
        "amp": args.amp,
        "backend": args.backend or "module",
        "ensemble": [str(resolve_weights(w)) for w in args.ensemble or []],
        "precision": args.precision,
        "seconds": round(seconds, 2),
        **report(cm, meta.class_names),
    }
    args.json.write_text(json.dumps(result, indent=1) + "\n")


def deployed_pipeline(args: argparse.Namespace, weights: Path, model: str, device: Any) -> Any:
    """The node's Pipeline for --backend: single scale, the weights' input size by default."""
    from seg_ros.inference import Pipeline, PipelineConfig

    if args.scales != [1.0] or args.flip or args.amp != "off":
        raise ValueError(
            "--backend scores the deployed single-scale path: drop --scales/--flip/--amp "
            "(choose its arithmetic with --precision)"
        )
    config = PipelineConfig(
        weights=str(weights),
        model=model,
        backend=args.backend,
        device=str(device),
        precision=args.precision,
        engine=args.engine,
        input_size=tuple(args.input_size) if args.input_size else None,
        threads=args.threads,
    )
    return Pipeline(config)


def module_confusion(
    model: Any, dataset: Any, meta: Any, device: Any, amp_dtype: Any, indices: Any, args: Any
) -> Any:
    from seg_ros.training.evaluate import evaluate

    model.to(device)
    return evaluate(
        model,
        dataset,
        meta.mean,
        meta.std,
        device,
        scales=args.scales,
        flip=args.flip,
        amp_dtype=amp_dtype,
        channels_last=True,  # as training validates, so the figures match its own
        progress=not args.quiet,
        input_size=tuple(args.input_size) if args.input_size else None,
        indices=indices,
    )


if __name__ == "__main__":
    sys.exit(main())
