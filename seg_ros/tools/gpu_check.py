"""seg-gpu-check: the TensorRT path on a real GPU, in one short run (a few minutes).

    seg-gpu-check [--device cuda:0] [--input-size 256x512] [--out /tmp/seg_gpu_check]

One line per check, then a summary: FPLNet fp32 and fp16 engines built and run with labels
compared to PyTorch fp32; DESANet with TensorRT's plugins (from 10.1; refused by name below);
inference from a second thread (the node's worker); a stale engine (sidecar of another
TensorRT version) refused with the reason. Exits 0 when every check passed, 1 otherwise, 2
when there is no CUDA/TensorRT here.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import numpy as np
    import torch

    if not torch.cuda.is_available():
        print("seg-gpu-check: no CUDA device here; nothing checked", file=sys.stderr)
        return 2
    try:
        import tensorrt as trt
    except ImportError:
        print("seg-gpu-check: TensorRT is not installed; nothing checked", file=sys.stderr)
        return 2
    import os

    from seg_ros.inference import Pipeline
    from seg_ros.inference.engine import tensorrt_version
    from seg_ros.inference.errors import BackendUnavailableError, EngineMismatchError
    from seg_ros.inference.parity import synthetic_scene

    h, w = args.input_size
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["SEG_ROS_CACHE"] = str(args.out)
    image = synthetic_scene(h, w)
    results: list[dict[str, Any]] = []
    print(f"seg-gpu-check: {torch.cuda.get_device_name(0)}, TensorRT {trt.__version__}, "
          f"torch {torch.__version__}, {args.device}, {h}x{w}")  # fmt: skip

    def check(name: str, body: Callable[[], str]) -> None:
        start = time.perf_counter()
        try:
            detail, ok = body(), True
        except Exception as e:  # a check's failure is its result
            detail, ok = f"{type(e).__name__}: {e}", False
            traceback.print_exc(file=sys.stderr)
        seconds = time.perf_counter() - start
        results.append({"check": name, "passed": ok, "detail": detail, "seconds": seconds})
        print(f"{'PASS' if ok else 'FAIL'} {name} ({seconds:.1f} s): {detail}", flush=True)

    reference = Pipeline(model="fplnet", backend="torch", device=args.device, input_size=(h, w))

    def engine(precision: str) -> Callable[[], str]:
        def run() -> str:
            p = Pipeline(model="fplnet", backend="tensorrt", device=args.device,
                         precision=precision, input_size=(h, w))  # fmt: skip
            same = float(np.mean(p(image).labels == reference(image).labels))
            if same < 0.99:
                raise AssertionError(f"labels agree with torch fp32 on only {same:.2%}")
            return f"labels agree with torch fp32 on {same:.2%}; {p.describe().get('parity')}"

        return run

    check("fplnet fp32 engine", engine("fp32"))
    check("fplnet fp16 engine", engine("fp16"))

    def desanet() -> str:
        try:
            p = Pipeline(model="desanet", backend="tensorrt", device=args.device,
                         input_size=(h, w))  # fmt: skip
        except BackendUnavailableError as e:
            if tensorrt_version(trt) < (10, 1) and "DeformConv" in str(e):
                return f"refused as it must be below TensorRT 10.1: {e}"
            raise
        if tensorrt_version(trt) < (10, 1):
            raise AssertionError("built below TensorRT 10.1, where DeformConv has no importer")
        return f"built with plugins, labels {p(image).labels.shape}"

    check("desanet engine (DeformConv plugin)", desanet)

    def second_thread() -> str:
        p = Pipeline(model="fplnet", backend="tensorrt", device=args.device, input_size=(h, w))
        out: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: out.update(labels=p(image).labels))
        thread.start()
        thread.join(timeout=60)
        if "labels" not in out:
            raise AssertionError("no result from the second thread")
        return f"labels {out['labels'].shape} from a thread other than the builder's"

    check("inference from a second thread", second_thread)

    def stale() -> str:
        built = sorted(args.out.glob("fplnet_*_fp32_*.engine"))
        if not built:
            raise AssertionError("no cached fp32 engine to age")
        copy = args.out / "stale.engine"
        copy.write_bytes(built[0].read_bytes())
        sidecar = json.loads(Path(f"{built[0]}.json").read_text())
        sidecar["tensorrt"] = "0.0.0"
        Path(f"{copy}.json").write_text(json.dumps(sidecar))
        try:
            Pipeline(model="fplnet", backend="tensorrt", device=args.device,
                     engine=str(copy), input_size=(h, w))  # fmt: skip
        except EngineMismatchError as e:
            return f"refused: {e}"
        raise AssertionError("an engine of another TensorRT version was used")

    check("stale engine refused", stale)
    passed = sum(r["passed"] for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
