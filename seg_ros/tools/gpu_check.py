"""seg-gpu-check: the TensorRT path on a real GPU, in one short run (a few minutes).

    seg-gpu-check [--device cuda:0] [--input-size 256x512] [--out /tmp/seg_gpu_check]

One line per check, then a summary: FPLNet fp32 and fp16 engines built and run with labels
compared to PyTorch fp32; DESANet with TensorRT's plugins (from 10.1; refused by name below);
inference from a second thread (the node's worker); frames in flight (throughput mode: two
contexts on two streams) giving the one-at-a-time labels; a stale engine (sidecar of another
TensorRT version) refused with the reason. Exits 0 when every check passed, 1 otherwise, 2
when there is no CUDA/TensorRT here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg_ros.tools.options import HelpFormatter, add_old_name, parse_size


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="seg-gpu-check", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--input-size", type=parse_size, default=(256, 512), help="network input HxW")
    add_old_name(p, "--size", "input_size", type=parse_size)
    p.add_argument("--out", type=Path, default=Path("/tmp/seg_gpu_check"), help="engines here")
    return p.parse_args(argv)


@dataclass
class Context:
    """What every check uses: the options, TensorRT, a test image, the torch reference."""

    args: argparse.Namespace
    trt: Any
    image: Any
    reference: Any


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("seg-gpu-check: no CUDA device here; nothing checked", file=sys.stderr)
        return 2
    try:
        import tensorrt as trt
    except ImportError:
        print("seg-gpu-check: TensorRT is not installed; nothing checked", file=sys.stderr)
        return 2
    from seg_ros.inference import Pipeline
    from seg_ros.inference.parity import synthetic_scene

    h, w = args.input_size
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["SEG_ROS_CACHE"] = str(args.out)
    print(f"seg-gpu-check: {torch.cuda.get_device_name(0)}, TensorRT {trt.__version__}, "
          f"torch {torch.__version__}, {args.device}, {h}x{w}")  # fmt: skip
    reference = Pipeline(model="fplnet", backend="torch", device=args.device, input_size=(h, w))
    ctx = Context(args, trt, synthetic_scene(h, w), reference)
    results = [_check(name, lambda c=check: c(ctx)) for name, check in CHECKS]
    passed = sum(r["passed"] for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    return 0 if passed == len(results) else 1


def _check(name: str, body: Callable[[], str]) -> dict[str, Any]:
    """Run one check; its failure is its result (printed with the traceback)."""
    start = time.perf_counter()
    try:
        detail, ok = body(), True
    except Exception as e:
        detail, ok = f"{type(e).__name__}: {e}", False
        traceback.print_exc(file=sys.stderr)
    seconds = time.perf_counter() - start
    print(f"{'PASS' if ok else 'FAIL'} {name} ({seconds:.1f} s): {detail}", flush=True)
    return {"check": name, "passed": ok, "detail": detail, "seconds": seconds}


def _engine(ctx: Context, precision: str) -> str:
    import numpy as np

    from seg_ros.inference import Pipeline

    p = Pipeline(model="fplnet", backend="tensorrt", device=ctx.args.device,
                 precision=precision, input_size=ctx.args.input_size)  # fmt: skip
    same = float(np.mean(p(ctx.image).labels == ctx.reference(ctx.image).labels))
    if same < 0.99:
        raise AssertionError(f"labels agree with torch fp32 on only {same:.2%}")
    return f"labels agree with torch fp32 on {same:.2%}; {p.describe().get('parity')}"


def _desanet(ctx: Context) -> str:
    from seg_ros.inference import Pipeline
    from seg_ros.inference.errors import BackendUnavailableError
    from seg_ros.inference.tensorrt_engine import tensorrt_version

    old = tensorrt_version(ctx.trt) < (10, 1)
    try:
        p = Pipeline(model="desanet", backend="tensorrt", device=ctx.args.device,
                     input_size=ctx.args.input_size)  # fmt: skip
    except BackendUnavailableError as e:
        if old and "DeformConv" in str(e):
            return f"refused as it must be below TensorRT 10.1: {e}"
        raise
    if old:
        raise AssertionError("built below TensorRT 10.1, where DeformConv has no importer")
    return f"built with plugins, labels {p(ctx.image).labels.shape}"


def _second_thread(ctx: Context) -> str:
    from seg_ros.inference import Pipeline

    p = Pipeline(model="fplnet", backend="tensorrt", device=ctx.args.device,
                 input_size=ctx.args.input_size)  # fmt: skip
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(labels=p(ctx.image).labels))
    thread.start()
    thread.join(timeout=60)
    if "labels" not in out:
        raise AssertionError("no result from the second thread")
    return f"labels {out['labels'].shape} from a thread other than the builder's"


def _in_flight(ctx: Context) -> str:
    import numpy as np

    from seg_ros.inference import Pipeline
    from seg_ros.inference.parity import synthetic_scene

    options = {"model": "fplnet", "backend": "tensorrt", "device": ctx.args.device,
               "input_size": ctx.args.input_size}  # fmt: skip
    one, many = Pipeline(**options), Pipeline(**options, inference_mode="throughput")
    if many.in_flight < 2:
        raise AssertionError(f"throughput mode runs {many.describe_in_flight()}")
    images = [synthetic_scene(*ctx.args.input_size, seed=i) for i in range(8)]
    staged = [many.prepare(image) for image in images]
    landed: list[Any] = []
    lock = threading.Lock()

    def done(frame: Any, error: BaseException | None) -> None:
        with lock:
            landed.append(error)

    start = time.perf_counter()
    for frame in staged:
        many.infer_async(frame, None, done)
    many.wait_idle()
    seconds = time.perf_counter() - start
    if len(landed) != len(images) or any(e is not None for e in landed):
        raise AssertionError(f"{len(landed)} of {len(images)} landed, errors {landed}")
    for frame, image in zip(staged, images):
        if not np.array_equal(many.finish(frame).labels, one(image).labels):
            raise AssertionError("a frame in flight has other labels than one at a time")
    return f"{many.describe_in_flight()}; 8 frames in {seconds * 1e3:.0f} ms, labels equal"


def _stale(ctx: Context) -> str:
    from seg_ros.inference import Pipeline
    from seg_ros.inference.errors import EngineMismatchError

    built = sorted(ctx.args.out.glob("fplnet_*_fp32_*.engine"))
    if not built:
        raise AssertionError("no cached fp32 engine to age")
    copy = ctx.args.out / "stale.engine"
    copy.write_bytes(built[0].read_bytes())
    sidecar = json.loads(Path(f"{built[0]}.json").read_text())
    sidecar["tensorrt"] = "0.0.0"
    Path(f"{copy}.json").write_text(json.dumps(sidecar))
    try:
        Pipeline(model="fplnet", backend="tensorrt", device=ctx.args.device,
                 engine=str(copy), input_size=ctx.args.input_size)  # fmt: skip
    except EngineMismatchError as e:
        return f"refused: {e}"
    raise AssertionError("an engine of another TensorRT version was used")


CHECKS: list[tuple[str, Callable[[Context], str]]] = [
    ("fplnet fp32 engine", lambda ctx: _engine(ctx, "fp32")),
    ("fplnet fp16 engine", lambda ctx: _engine(ctx, "fp16")),
    ("desanet engine (DeformConv plugin)", _desanet),
    ("inference from a second thread", _second_thread),
    ("frames in flight (throughput mode)", _in_flight),
    ("stale engine refused", _stale),
]


if __name__ == "__main__":
    sys.exit(main())
