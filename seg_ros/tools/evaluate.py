"""seg-eval: mIoU and per-class IoU of a weights file on a dataset split.

seg-eval models/fplnet_camvid.safetensors --data-root ../shared/data/camvid --split val
seg-eval best.safetensors --dataset cityscapes --data-root data/cityscapes --scales 0.5 0.75 1 \
    1.25 1.5 1.75 --flip --json val.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="seg-eval", description=__doc__.split("\n\n")[0])
    p.add_argument("weights", help="seg_ros weights (.safetensors), or a name from models/")
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
        type=int,
        nargs=2,
        metavar=("HEIGHT", "WIDTH"),
        help="run the network at this size (default: each frame's own); scored at label size",
    )
    p.add_argument(
        "--scales", type=float, nargs="+", default=[1.0], help="e.g. 0.5 0.75 1 1.25 1.5 1.75"
    )
    p.add_argument("--flip", action="store_true", help="also average horizontally flipped views")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 (default: auto)")
    p.add_argument(
        "--amp",
        default="off",
        choices=["off", "auto", "bf16", "fp16"],
        help="autocast precision (default: off = fp32, the reference figures)",
    )
    p.add_argument("--limit", type=int, help="only the first N frames (a quick look)")
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
        raise FileNotFoundError(f"weights not found: {name_or_path}")
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from seg_ros.training.datasets import DATASETS, DatasetError, build_dataset
    from seg_ros.training.evaluate import evaluate, format_table, report
    from seg_ros.training.trainer import autocast_dtype
    from seg_ros.weights import WeightsError, load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        weights = resolve_weights(args.weights)
        model, meta = load_model(weights)
        name = args.dataset or meta.dataset
        if name not in DATASETS:
            raise ValueError(
                f"the weights were trained on {meta.dataset!r}, which has no reader; "
                f"pass --dataset (one of {sorted(DATASETS)})"
            )
        options: dict[str, object] = {}
        if args.classes:
            options["classes"] = args.classes
        if args.max_size:
            options["max_size"] = args.max_size
        dataset = build_dataset(name, args.data_root, args.split, **options)
        if dataset.label_set.num_classes != meta.num_classes:
            raise ValueError(
                f"{weights} predicts {meta.num_classes} classes, but {dataset.name} has "
                f"{dataset.label_set.num_classes}"
            )
        device = torch.device(
            args.device
            if args.device != "auto"
            else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        amp_dtype = autocast_dtype(args.amp, device)
    except (FileNotFoundError, ValueError, DatasetError, WeightsError) as e:
        print(f"seg-eval: {e}", file=sys.stderr)
        return 2

    model.to(device)
    indices = range(min(args.limit, len(dataset))) if args.limit else None
    start = time.perf_counter()
    cm = evaluate(
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
    seconds = time.perf_counter() - start
    frames = len(indices) if indices is not None else len(dataset)
    class_names = meta.class_names
    setting = f"scales {' '.join(f'{s:g}' for s in args.scales)}" + (" + flip" if args.flip else "")
    print(f"{meta.model}/{meta.variant} on {dataset.name} ({frames} frames, {setting})")
    print(format_table(cm, class_names))
    if args.json:
        result = {
            "weights": str(weights),
            "model": meta.model,
            "variant": meta.variant,
            "dataset": name,
            "split": args.split,
            "frames": frames,
            "input_size": args.input_size,
            "scales": args.scales,
            "flip": args.flip,
            "device": str(device),
            "amp": args.amp,
            "seconds": round(seconds, 2),
            **report(cm, class_names),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
