"""seg-models: every network variant with its parameters, GMACs and forward time here.

seg-models                          # table at 512x1024 and 1024x2048, fp32 eager CPU
seg-models --no-time --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from seg_ros.compat import zip_strict
from seg_ros.tools.options import HelpFormatter, add_old_name, parse_size
from seg_ros.tools.output_paths import outputs_refused


def time_forward(model: object, size: tuple[int, int], repeat: int) -> float:
    """Median ms of an fp32 eager forward pass (batch 1, channels_last) after one warm-up."""
    import torch

    x = torch.randn(1, 3, *size).contiguous(memory_format=torch.channels_last)
    model = model.to(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(repeat):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="seg-models", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--num-classes", type=int, default=19)
    p.add_argument(
        "--input-sizes",
        type=parse_size,
        nargs="+",
        default=[(512, 1024), (1024, 2048)],
        help="network input sizes HxW for the GMAC columns",
    )
    add_old_name(p, "--sizes", "input_sizes", type=parse_size, nargs="+")
    p.add_argument(
        "--time-size",
        type=parse_size,
        default=(512, 1024),
        help="input size HxW for the forward time",
    )
    p.add_argument("--repeat", type=int, default=3, help="timed forward passes per variant")
    p.add_argument("--no-time", action="store_true", help="skip the forward timing")
    p.add_argument("--models", nargs="+", help="only these models (e.g. fplnet rgpnet)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", help="also write the rows as JSON to this file")
    args = p.parse_args(argv)
    if outputs_refused("seg-models", {"--json": args.json}):
        return 2

    import torch

    from seg_ros.models import build_model, list_models
    from seg_ros.models.complexity import count_macs, count_parameters

    unknown = sorted(set(args.models or ()) - set(list_models()))
    if unknown:
        print(
            f"seg-models: unknown model(s) {unknown}; choose from {sorted(list_models())}",
            file=sys.stderr,
        )
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for name, variants in list_models().items():
        if args.models and name not in args.models:
            continue
        for variant in variants:
            model = build_model(name, variant, args.num_classes).eval()
            row = {"model": name, "variant": variant, "parameters": count_parameters(model)}
            for h, w in args.input_sizes:
                row[f"gmacs_{h}x{w}"] = round(
                    count_macs(name, variant, (h, w), args.num_classes) / 1e9, 2
                )
            if not args.no_time:
                row[f"forward_ms_{args.time_size[0]}x{args.time_size[1]}"] = round(
                    time_forward(model, args.time_size, args.repeat), 1
                )
            rows.append(row)
            print_row(rows, len(rows) == 1)
    if args.json:
        meta = {
            "num_classes": args.num_classes,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "precision": "fp32 eager, channels_last, batch 1",
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    return 0


def print_row(rows: list[dict], header: bool) -> None:
    row = rows[-1]
    keys = list(row)
    # Rows print as they are measured, so widths are fixed before the longest value is seen.
    widths = [max(len(k), 12) for k in keys]
    if header:
        print(" | ".join(k.ljust(w) for k, w in zip_strict(keys, widths)))
        print("-|-".join("-" * w for w in widths))
    cells = [f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()]
    print(" | ".join(c.ljust(w) for c, w in zip_strict(cells, widths)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
