"""seg-train: train a network from a recipe (config/train/*.yaml), resuming when possible.

seg-train fplnet_camvid --data-root ../shared/data/camvid --output runs/fplnet
seg-train fplnet_camvid_encoder --set dataset=folder --data-root my_data --output runs/mine
torchrun --nproc-per-node 4 -m seg_ros.tools.train rgpnet_cityscapes --device cuda
seg-train rgpnet_camvid --output runs/rgpnet --write-resume-point int8
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from seg_ros.tools.options import HelpFormatter


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="seg-train", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("recipe", help="recipe YAML path, or a name from config/train/")
    p.add_argument("--data-root", help="dataset folder (overrides the recipe's data_root)")
    p.add_argument("--output", help="run folder for checkpoints, logs and best.safetensors")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 (default: auto)")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any recipe key, e.g. --set batch_size=4 --set loss.main=[ohem_ce]",
    )
    p.add_argument(
        "--write-resume-point",
        nargs="?",
        const="fp16",
        choices=("fp16", "int8"),
        help="write the run folder's resume_point.safetensors from its last.pt (weights and "
        "progress, no optimizer state: small enough to keep where last.pt is not) and exit; "
        "fp16 weights (default), or int8 per output channel at half that size; a run whose "
        "folder has it but no last.pt resumes from it",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from seg_ros.paths import resolve_recipe
    from seg_ros.training.config import TrainConfig
    from seg_ros.training.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides: dict[str, object] = {}
    for item in args.overrides:
        if "=" not in item:
            print(f"seg-train: --set expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        key, value = item.split("=", 1)
        overrides[key] = value
    for key in ("data_root", "output", "epochs"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    try:
        config = TrainConfig.from_yaml(resolve_recipe(args.recipe), overrides)
        if args.write_resume_point:
            return _write_resume_point(Path(config.output), args.write_resume_point)
        trainer = Trainer(config, args.device, "seg-train " + shlex.join(argv or sys.argv[1:]))
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"seg-train: {e}", file=sys.stderr)
        return 2
    try:
        result = trainer.fit()
    finally:
        if trainer.dist.world_size > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    if trainer.dist.main:
        print(
            f"best val mIoU {result['best_miou']:.4f}; weights: {result['output']}/best.safetensors"
        )
    return 0


def _write_resume_point(output: Path, weights: str) -> int:
    from seg_ros.training.resume_point import RESUME_POINT, write_resume_point
    from seg_ros.training.trainer import CHECKPOINT

    if not (output / CHECKPOINT).is_file():
        print(f"seg-train: {output / CHECKPOINT} not found: nothing to resume", file=sys.stderr)
        return 2
    size = write_resume_point(output / CHECKPOINT, output / RESUME_POINT, weights)
    print(f"{output / RESUME_POINT}: {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
