"""seg-bench: end-to-end pipeline speed per model x backend x precision x size, in one process.

seg-bench --models fplnet rgpnet:resnet18 desanet:resnet18 --backends torch onnxruntime \
          --precisions fp32 bf16 --input-sizes 512x1024 --json bench.json

Per combination: median and p95 milliseconds of each stage (preprocess, inference,
postprocess, total), frames per second, achieved GFLOP/s of the network, label agreement
with fp32 eager PyTorch on the same input, and the bare runtime (the backend's network call
alone, on a prepared input, timed in the same run) with the pipeline's overhead over it.
int8 rows run the OpenVINO model given with --int8 (made by seg-quantize), else the one shipped
for the weights, found as the node finds it. A combination
that cannot run here (no GPU, onnxruntime in bf16) is listed as skipped with the reason.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from seg_ros.compat import zip_strict
from seg_ros.inference.config import INFERENCE_MODES
from seg_ros.machine import cpu_name
from seg_ros.tools.options import HelpFormatter, add_old_name, parse_size
from seg_ros.tools.output_paths import outputs_refused

STAGES = ("preprocess", "inference", "postprocess", "total")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="seg-bench",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=["fplnet", "rgpnet:resnet18", "desanet:resnet18"],
        help="MODEL, MODEL:VARIANT or your own model.onnx (default: fplnet rgpnet:resnet18 "
        "desanet:resnet18)",
    )
    p.add_argument(
        "--backends", nargs="+", default=["torch"], help="torch onnxruntime openvino tensorrt auto"
    )
    p.add_argument("--precisions", nargs="+", default=["fp32"], help="fp32 bf16 fp16 int8")
    p.add_argument(
        "--modes",
        nargs="+",
        choices=INFERENCE_MODES,
        default=list(INFERENCE_MODES),
        help="inference modes: latency (one frame at a time) and throughput (frames in flight, "
        "where the runtime runs several: OpenVINO, onnxruntime on the CPU); each beside its bare "
        "runtime",
    )
    p.add_argument(
        "--int8",
        nargs="*",
        default=[],
        metavar="MODEL[:VARIANT]=PATH",
        help="int8 OpenVINO model (.xml from seg-quantize) per model, for the int8 rows "
        "(default: the one shipped for the weights, as the node uses)",
    )
    p.add_argument(
        "--input-sizes", nargs="+", type=parse_size, default=[(512, 1024)], help="network input HxW"
    )
    add_old_name(p, "--sizes", "input_sizes", type=parse_size, nargs="+")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default: cpu)")
    p.add_argument(
        "--weights",
        nargs="*",
        default=[],
        metavar="MODEL[:VARIANT]=PATH",
        help="weights per model (default: the shipped ones, else random init, marked)",
    )
    p.add_argument(
        "--images",
        type=Path,
        help="folder of images to run and measure agreement on (default: a synthetic scene)",
    )
    p.add_argument("--max-images", type=int, default=8, help="images used from --images")
    p.add_argument("--iterations", type=int, default=20, help="timed frames per combination")
    p.add_argument("--warmup", type=int, default=3, help="untimed frames first")
    p.add_argument("--compile", default="off", help="torch.compile mode for the torch backend")
    p.add_argument("--threads", type=int, help="CPU threads (default: the libraries' choice)")
    p.add_argument("--no-parity", action="store_true", help="skip the build-time parity guard")
    p.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    return p.parse_args(argv)


def load_images(folder: Path | None, size: tuple[int, int], limit: int) -> list[np.ndarray]:
    """RGB uint8 frames at network size (resized outside the timed region, so the measured
    preprocessing is the network-size path a camera at that size takes)."""
    import cv2

    from seg_ros.inference.parity import synthetic_scene

    if folder is None:
        return [synthetic_scene(*size, seed=i) for i in range(2)]
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp")
    )[:limit]
    if not files:
        raise ValueError(f"no images in {folder}")
    out = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        out.append(cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR))
    return out


def network_gflop(network: Any, size: tuple[int, int]) -> float | None:
    """GFLOP of one forward pass (2 x multiply-accumulates), counted by torch's FlopCounter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        with torch.inference_mode(), counter:
            network(torch.zeros(1, 3, *size))
    except Exception:  # a counter gap must not stop the benchmark
        return None
    return counter.get_total_flops() / 1e9


def summarise(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for stage in STAGES:
        values = np.array([s[stage] for s in samples])
        out[stage] = {
            "median": round(float(np.median(values)), 3),
            "p95": round(float(np.percentile(values, 95)), 3),
        }
    return out


def run_one(
    spec: RowSpec, args: argparse.Namespace, weights: dict[str, str], cache: dict[Any, Any]
) -> dict[str, Any]:
    """One row: build the pipeline (a failure is a skipped row with the reason), time it
    against the bare runtime, and score its labels against fp32 eager PyTorch."""
    from seg_ros.inference import PipelineError
    from seg_ros.inference.parity import agreement
    from seg_ros.models import resolve_variant
    from seg_ros.own_model import VARIANT, is_onnx_model

    model, variant, backend, precision, size, mode = spec
    own = is_onnx_model(model)
    row: dict[str, Any] = {
        "mode": mode,
        "model": model,
        # a skipped row names it like the others
        "variant": VARIANT if own else resolve_variant(model, variant),
        "backend": backend,
        "device": args.device,
        "precision": precision,
        "input_size": list(size),
        "compile": args.compile if backend == "torch" else "off",
    }
    try:
        pipeline = _pipeline(spec, args, weights)
    except (PipelineError, ValueError) as e:
        row.update(status="skipped", reason=str(e))
        return row
    if mode == "throughput" and pipeline.in_flight == 1:  # the latency row measures it
        row.update(status="skipped", reason=pipeline.describe_in_flight())
        return row
    info = pipeline.describe()
    row.update(
        model=info["model"],  # an own model: its description's name (the path is its weights)
        variant=info["variant"],
        device=info["device"],
        weights=info["weights"]
        or (f"engine {pipeline.config.engine}" if pipeline.config.engine else "random init"),
        random_init=pipeline.random_init,
        engine=pipeline.config.engine or info.get("openvino_model"),  # the int8 model that ran
    )
    images = load_images(args.images, size, args.max_images)
    ref_key = (model, info["variant"], info["weights"], size)
    if ref_key not in cache:
        cache[ref_key] = _references(pipeline, images, size)
    refs, gflop = cache[ref_key]
    timed = timed_in_flight if mode == "throughput" else _timed
    row.update(timed(pipeline, images, args, gflop))
    labels = [pipeline(im).labels for im in images]
    agree = [agreement(a, b) for a, b in zip_strict(labels, refs)] if refs else None
    row.update(
        agreement=round(float(np.mean(agree)), 5) if agree else None,
        agreement_images=len(refs),
        parity=pipeline.parity.as_dict() if pipeline.parity else None,
    )
    return row


class RowSpec(NamedTuple):
    model: str
    variant: str | None  # as asked (None: the default)
    backend: str
    precision: str
    size: tuple[int, int]
    mode: str = "latency"


def _pipeline(spec: RowSpec, args: argparse.Namespace, weights: dict[str, str]) -> Any:
    from seg_ros.inference import Pipeline, PipelineConfig
    from seg_ros.own_model import is_onnx_model

    model, variant, backend, precision, size, mode = spec
    own = is_onnx_model(model)
    if own:  # your own model: the ONNX is its weights (an int8 IR of it via --int8)
        weights = {**weights, model: model}
    key = f"{model}:{variant}" if f"{model}:{variant}" in weights else model
    engine = None
    if precision == "int8":
        # None: the pipeline runs the int8 model shipped for the weights, or says why not.
        engine = args.int8_models.get(f"{model}:{variant}") or args.int8_models.get(model)
        if engine is not None and key not in weights:
            from seg_ros.inference.loading import shipped_weights

            # The fp32 network beside the engine: for the parity check and the agreement.
            shipped = shipped_weights(model)
            if shipped is not None:
                weights = {**weights, key: str(shipped)}
    return Pipeline(
        engine=engine,
        model=PipelineConfig.model if own else model,  # an own model names itself
        variant=variant,
        weights=weights.get(key),
        backend=backend,
        device=args.device,
        precision=precision,
        input_size=size,
        output_resolution="network",
        compile=args.compile if backend == "torch" else "off",
        threads=args.threads,
        parity_check=not args.no_parity,
        inference_mode=mode,
    )


def _references(pipeline: Any, images: list[np.ndarray], size: tuple[int, int]) -> tuple:
    """fp32 eager PyTorch's labels for ``images`` and the network's GFLOP (none without a
    network: an engine given alone)."""
    from seg_ros.inference.parity import reference_logits

    network = pipeline.reference_network
    if pipeline.own_model is not None:  # your own model: its ONNX on onnxruntime's fp32 CPU
        from seg_ros.inference.decode import label_map
        from seg_ros.inference.pipeline import onnxruntime_reference
        from seg_ros.inference.postprocess import argmax_nchw, resize_labels

        path = pipeline.own_model.path
        outputs = [onnxruntime_reference(path, pipeline.prepare(im).batch) for im in images]
        if any(o is None for o in outputs):
            return [], None
        m = pipeline.metadata
        decode = (lambda o: label_map(o, m.num_classes)) if m.output == "labels" else argmax_nchw
        return [resize_labels(decode(o), size) for o in outputs], None
    if network is None:
        return [], None
    m = pipeline.metadata
    refs = [reference_logits(network, im, m.mean, m.std)[0].argmax(0) for im in images]
    return refs, network_gflop(network, size)


def _timed(
    pipeline: Any, images: list[np.ndarray], args: argparse.Namespace, gflop: float | None
) -> dict[str, Any]:
    """Warm up, then time the pipeline's frames interleaved with the bare runtime's calls."""
    for i in range(args.warmup):
        pipeline(images[i % len(images)])
    samples, cpu_ms, bare_ms = [], [], []
    batch, infer = bare_call(pipeline, images[0])
    for i in range(args.iterations):
        cpu = time.process_time()
        samples.append(pipeline(images[i % len(images)], want_color=True).timings)
        cpu_ms.append((time.process_time() - cpu) * 1000.0)
        # Interleaved with the pipeline's frames, so load that comes and goes hits both.
        start = time.perf_counter()
        infer(batch)
        bare_ms.append((time.perf_counter() - start) * 1000.0)
    stats = summarise(samples)
    total = stats["total"]["median"]
    bare = float(np.median(bare_ms))
    totals = [s["total"] for s in samples]
    return {
        "status": "ok",
        "in_flight": 1,
        "latency_ms": _percentiles(totals),
        "bare_fps": round(1000.0 / bare, 2) if bare else None,
        "iterations": args.iterations,
        "timings_ms": stats,
        "fps": round(1000.0 / total, 2) if total else None,
        # CPU time of this process per frame (all threads): well below total x threads means
        # other processes took the cores, and the wall-clock figures are pessimistic.
        "cpu_ms": round(float(np.median(cpu_ms)), 3),
        "threads": _threads(),
        "gflop": round(gflop, 2) if gflop else None,
        "gflops_per_s": round(gflop / (stats["inference"]["median"] / 1000.0), 1)
        if gflop
        else None,
        "pre_post_share": round(
            (stats["preprocess"]["median"] + stats["postprocess"]["median"]) / total, 4
        ),
        "bare_ms": round(bare, 3),
        "overhead": round(total / bare - 1.0, 4) if bare else None,
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p99": round(float(np.percentile(values, 99)), 2),
    }


def timed_in_flight(
    pipeline: Any, images: list[np.ndarray], args: argparse.Namespace, gflop: float | None
) -> dict[str, Any]:
    """Frames back to back with ``pipeline.in_flight`` in the network at once, finished in
    order on a thread of their own (as the node does); then the bare runtime the same way."""
    for i in range(args.warmup):
        pipeline(images[i % len(images)])
    landed: queue.Queue[Any] = queue.Queue()
    started: list[float] = []
    samples: list[dict[str, float]] = []
    ended: list[float] = []

    def finisher() -> None:
        for _ in range(args.iterations):
            frame, error = landed.get()
            if error is not None:
                raise error
            samples.append(pipeline.finish(frame, want_color=True).timings)
            ended.append(time.perf_counter())

    thread = threading.Thread(target=finisher)
    cpu = time.process_time()
    thread.start()
    for i in range(args.iterations):
        started.append(time.perf_counter())
        frame = pipeline.prepare(images[i % len(images)])
        pipeline.infer_async(frame, None, lambda f, e: landed.put((f, e)))
    thread.join()
    cpu_ms = (time.process_time() - cpu) * 1000.0 / args.iterations
    wall = ended[-1] - started[0]
    stats = summarise(samples)
    bare_fps = bare_throughput(pipeline, images[0], args.iterations)
    fps = args.iterations / wall
    return {
        "status": "ok",
        "in_flight": pipeline.in_flight,
        "latency_ms": _percentiles([(e - s) * 1000.0 for s, e in zip(started, ended)]),
        "bare_fps": round(bare_fps, 2),
        "iterations": args.iterations,
        "timings_ms": stats,
        "fps": round(fps, 2),
        "cpu_ms": round(cpu_ms, 3),
        "threads": _threads(),
        "gflop": round(gflop, 2) if gflop else None,
        "gflops_per_s": round(gflop * fps, 1) if gflop else None,
        "pre_post_share": round(
            (stats["preprocess"]["median"] + stats["postprocess"]["median"])
            / stats["total"]["median"],
            4,
        ),
        "bare_ms": round(1000.0 / bare_fps, 3),
        "overhead": round(bare_fps / fps - 1.0, 4),
    }


def bare_throughput(pipeline: Any, image: np.ndarray, frames: int) -> float:
    """Frames a second of the runtime alone with as many frames in flight as the pipeline
    keeps, on one prepared input: OpenVINO's AsyncInferQueue on the same compiled model, or
    onnxruntime's same session run from that many threads."""
    from seg_ros.inference import preprocess

    backend = pipeline.backend
    batch = backend.prepare(preprocess.resize_to_network(image, pipeline.input_size))
    n = pipeline.in_flight
    if hasattr(backend, "compiled"):
        import openvino as ov

        requests = ov.AsyncInferQueue(backend.compiled, n)
        start = time.perf_counter()
        for _ in range(frames):
            requests.start_async({0: batch})
        requests.wait_all()
        return frames / (time.perf_counter() - start)
    feed, outputs = {backend.input_name: batch}, [backend.output_name]
    each = -(-frames // n)
    workers = [
        threading.Thread(target=lambda: [backend.session.run(outputs, feed) for _ in range(each)])
        for _ in range(n)
    ]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return each * n / (time.perf_counter() - start)


def bare_call(pipeline: Any, image: np.ndarray) -> tuple[Any, Any]:
    """The backend's network call alone (the bare runtime: no resize, no normalisation, no
    argmax) and an input prepared once for it."""
    from seg_ros.inference import preprocess

    backend = pipeline.backend
    batch = backend.prepare(preprocess.resize_to_network(image, pipeline.input_size))
    backend.infer(batch)
    return batch, backend.infer


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'model':<18} {'backend':<11} {'prec':<5} {'size':<9} {'mode':<6} {'pre ms':>13} "
        f"{'infer ms':>15} {'post ms':>13} {'total ms':>15} {'cpu ms':>7} {'FPS':>6} "
        f"{'p50/p99 ms':>13} {'GFLOP/s':>8} {'pre+post':>8} {'agree':>8} {'bare FPS':>8} "
        f"{'over':>6}  weights"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        name = f"{r['model']}:{r['variant'] or 'default'}"
        size = f"{r['input_size'][0]}x{r['input_size'][1]}"
        backend = r["backend"] + ("+cmp" if r.get("compile", "off") != "off" else "")
        mode = "lat" if r["mode"] == "latency" else f"thr{r.get('in_flight') or ''}"
        lead = f"{name:<18} {backend:<11} {r['precision']:<5} {size:<9} {mode:<6}"
        if r["status"] != "ok":
            lines.append(f"{lead} skipped: {r['reason']}")
            continue
        t = r["timings_ms"]
        cells = [f"{t[s]['median']:6.1f}/{t[s]['p95']:6.1f}" for s in STAGES]
        agree = f"{r['agreement']:.2%}" if r["agreement"] is not None else "n/a"
        gflops = f"{r['gflops_per_s']:8.0f}" if r["gflops_per_s"] else f"{'n/a':>8}"
        weights = "RANDOM INIT" if r["random_init"] else r["weights"]
        over = f"{r['overhead']:+6.1%}" if r.get("overhead") is not None else f"{'n/a':>6}"
        lat = r["latency_ms"]
        latency = f"{lat['p50']:6.1f}/{lat['p99']:6.1f}"
        lines.append(
            f"{lead} {cells[0]:>13} {cells[1]:>15} {cells[2]:>13} {cells[3]:>15} "
            f"{r['cpu_ms']:7.1f} {r['fps']:6.1f} {latency:>13} {gflops} "
            f"{r['pre_post_share']:8.1%} {agree:>8} {r.get('bare_fps') or 0:8.1f} {over}  {weights}"
        )
    lines.append(
        "times: median/p95 ms over the timed frames; cpu: this process's CPU ms per frame "
        "(all threads; far below total x threads = cores taken by others); agree: labels "
        "equal to fp32 eager on the same input; +cmp: torch.compile (mode in the JSON); mode: "
        "lat = one frame at a time, thrN = N frames in flight; p50/p99: a frame's time from "
        "prepare to finished; bare FPS: the runtime's network call alone in the same mode; "
        "over: the pipeline's time per frame over bare's - 1"
    )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": cpu_name(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if outputs_refused("seg-bench", {"--json": args.json}):
        return 2
    import logging

    logging.basicConfig(level=logging.WARNING, format="seg-bench: %(message)s")
    weights: dict[str, str] = {}
    args.int8_models = {}
    for flag, items, target in (
        ("--weights", args.weights, weights),
        ("--int8", args.int8, args.int8_models),
    ):
        for item in items:
            if "=" not in item:
                print(f"seg-bench: {flag} expects MODEL=PATH, got {item!r}", file=sys.stderr)
                return 2
            k, v = item.split("=", 1)
            target[k] = v
    problem = check_names(args)
    if problem:
        print(f"seg-bench: {problem}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    cache: dict[Any, Any] = {}
    # The table once: its header first, then each row as it is measured.
    print("\n".join(format_table([]).splitlines()[:2]), flush=True)
    from seg_ros.own_model import is_onnx_model

    for named in args.models:
        # an own model's path may hold a ':'; it has no variant
        model, _, variant = (named, "", "") if is_onnx_model(named) else named.partition(":")
        for size in args.input_sizes:
            for backend in args.backends:
                for precision in args.precisions:
                    for mode in args.modes:
                        spec = RowSpec(model, variant or None, backend, precision, size, mode)
                        row = run_one(spec, args, weights, cache)
                        rows.append(row)
                        print(format_table([row]).splitlines()[2], flush=True)
    report = {
        "command": "seg-bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "seconds": round(time.perf_counter() - start, 1),
        "results": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"JSON: {args.json}")
    measured = [r for r in rows if r["status"] == "ok"]
    if not measured:
        print("seg-bench: nothing was measured (every combination was skipped)", file=sys.stderr)
        return 1
    return 0


def check_names(args: argparse.Namespace) -> str | None:
    """Why the named models, variants, backends or precisions are not known, or None."""
    from seg_ros.inference.config import BACKENDS, PRECISIONS
    from seg_ros.models import list_models
    from seg_ros.own_model import is_onnx_model

    models = list_models()
    for spec in args.models:
        if is_onnx_model(spec):  # your own model: checked when its pipeline is built
            continue
        model, _, variant = spec.partition(":")
        if model not in models:
            return f"unknown model {model!r}; choose from {sorted(models)}"
        if variant and variant not in models[model]:
            return f"unknown variant {variant!r} of {model}; choose from {list(models[model])}"
    for name, given, allowed in (
        ("backend", args.backends, BACKENDS),
        ("precision", args.precisions, PRECISIONS),
    ):
        for value in given:
            if value not in allowed:
                return f"unknown {name} {value!r}; choose from {list(allowed)}"
    return None


if __name__ == "__main__":
    sys.exit(main())
