"""seg-export: weights -> ONNX (fixed or dynamic size), -> TensorRT engine, -> fp16 weights.

seg-export --model fplnet --weights models/fplnet_camvid.safetensors --onnx fplnet.onnx
seg-export --model rgpnet --variant resnet18 --weights w.safetensors --onnx r18.onnx --dynamic
seg-export --model desanet --weights w.safetensors --onnx d.onnx --tensorrt d.engine --fp16
seg-export --model rgpnet --weights w.safetensors --fp16-weights models/rgpnet_camvid.safetensors
seg-export --from-onnx f.onnx --tensorrt f.engine --fp16      # on the Jetson, no PyTorch export
seg-export --sidecar-for trtexec.engine --from-onnx f.onnx [--fp16]   # an engine trtexec built
seg-export --describe my_model.onnx    # your own ONNX: what it holds, a model.onnx.yaml to fill
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from seg_ros.inference.config import cuda_index
from seg_ros.tools.options import HelpFormatter, add_old_name, parse_size


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="seg-export",
        description=__doc__.split("\n\n")[0],
        epilog="\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", help="fplnet, rgpnet or desanet (not with --from-onnx)")
    p.add_argument(
        "--from-onnx",
        type=Path,
        help="build --tensorrt from this seg_ros ONNX file (its metadata names the model and "
        "size): no PyTorch export, so a Jetson needs only TensorRT and onnx",
    )
    p.add_argument(
        "--describe",
        type=Path,
        metavar="ONNX",
        help="your own model: print its inputs and outputs and write a starting description "
        "<ONNX>.yaml beside it (never replacing one)",
    )
    p.add_argument("--variant", help="model variant (default: the weights' or the registry's)")
    p.add_argument(
        "--weights",
        help="safetensors weights (default: the shipped models/<model>_camvid.safetensors; a "
        "random network, warned, where none is shipped); the output line names the file used",
    )
    p.add_argument("--num-classes", type=int, help="classes of a random-init network")
    p.add_argument(
        "--onnx",
        type=Path,
        help="ONNX output path (with --tensorrt and no --onnx, the ONNX is a temporary file)",
    )
    p.add_argument(
        "--input-size",
        type=parse_size,
        help="network input HEIGHTxWIDTH (default: the weights' input size, else 512x1024)",
    )
    add_old_name(p, "--size", "input_size", type=parse_size)
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    p.add_argument("--opset", type=int, help="ONNX opset (default: 17, or 19 for DESANet)")
    p.add_argument(
        "--exporter",
        choices=("torchscript", "dynamo"),
        default="torchscript",
        help="torch.onnx exporter (torchscript: real opset 17 and fast; dynamo: opset >= 18)",
    )
    p.add_argument("--tensorrt", type=Path, help="also build a TensorRT engine at this path")
    p.add_argument(
        "--sidecar-for",
        type=Path,
        metavar="ENGINE",
        help="write the sidecar of an engine built elsewhere (trtexec), after checking the "
        "engine's own I/O; the model comes from --from-onnx (the ONNX it was built from) or "
        "--weights; --fp16 if it was built with fp16",
    )
    p.add_argument("--fp16", action="store_true", help="build the TensorRT engine in fp16")
    p.add_argument("--workspace", type=float, default=2.0, help="TensorRT workspace in GiB")
    p.add_argument("--device", default="cuda", help="CUDA device for the engine (cuda:N)")
    p.add_argument("--check", action="store_true", help="check ONNX Runtime against PyTorch")
    p.add_argument(
        "--fp16-weights",
        type=Path,
        help="write a copy of --weights with fp16 parameters (half the size; loads as fp32)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="seg-export: %(message)s")
    from seg_ros.inference.errors import PipelineError
    from seg_ros.inference.loading import load_network
    from seg_ros.weights import WeightsError

    try:
        for path in (args.onnx, args.tensorrt, args.fp16_weights):
            # A typo in a folder name must not become a new folder tree.
            if path is not None and not path.expanduser().resolve().parent.is_dir():
                raise PipelineError(f"folder {path.parent} does not exist (for {path})")
        if args.describe is not None:
            return describe(args.describe)
        if args.sidecar_for is not None:
            return sidecar_for(args)
        if args.from_onnx is not None:
            return engine_from_onnx(args)
        if args.model is None:
            raise PipelineError("--model is needed (or --from-onnx for an engine)")
        if args.fp16_weights is not None:
            half_weights(args)
        if args.onnx is None and args.tensorrt is None:
            if args.fp16_weights is not None:
                return 0
            raise PipelineError("nothing to do: give --onnx, --tensorrt and/or --fp16-weights")
        if args.dynamic and args.tensorrt is not None:
            raise PipelineError("TensorRT engines are built for one size; drop --dynamic")
        if args.tensorrt is not None:
            require_tensorrt(args.device)  # before any work: nothing exported, nothing written
        loaded = load_network(args.model, args.variant, args.weights, args.num_classes)
        size = args.input_size or tuple(loaded.metadata.input_size)
        with tempfile.TemporaryDirectory(prefix="seg-export-") as scratch:
            # An ONNX the user did not name goes to a scratch folder, never beside the engine,
            # where it could replace a file of theirs.
            onnx_path = args.onnx or Path(scratch) / "model.onnx"
            export(loaded, onnx_path, size, args)
            if args.check:
                check(loaded, onnx_path, size)
            if args.tensorrt is not None:
                from seg_ros.inference.tensorrt_engine import build_engine

                build_engine(
                    onnx_path,
                    args.tensorrt,
                    size,
                    "fp16" if args.fp16 else "fp32",
                    int(args.workspace * (1 << 30)),
                    cuda_index(args.device),
                    loaded.metadata.to_strings(),
                )
                print(f"wrote {args.tensorrt} and {args.tensorrt}.json")
    except (PipelineError, WeightsError, ValueError, OSError) as e:
        print(f"seg-export: {e}", file=sys.stderr)
        return 2
    return 0


def require_tensorrt(device: str) -> None:
    """Refuse at once where no engine can be built: TensorRT missing or too old, or no GPU."""
    from seg_ros.inference.errors import BackendUnavailableError
    from seg_ros.inference.tensorrt_engine import import_tensorrt

    import_tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"--tensorrt builds on a CUDA GPU ({device}); PyTorch sees none on this machine"
        )


def describe(path: Path) -> int:
    """What an ONNX holds, and a description to fill in beside it (never over one)."""
    from seg_ros.own_model import (
        description_path,
        probe_output,
        read_graph,
        read_own_model,
        starting_description,
    )
    from seg_ros.weights import WeightsError

    graph = read_graph(path)
    print(f"{graph.path}: opset {graph.opset}")
    for kind, tensors in (("input", graph.inputs), ("output", graph.outputs)):
        for tensor in tensors:
            print(f"  {kind} {tensor.text()}")
    target = description_path(graph.path)
    if target.exists():
        try:
            read_own_model(graph.path)
            print(f"{target} exists and fits the ONNX: nothing written")
        except WeightsError as e:
            print(f"{target} exists (not replaced) but does not fit: {e}")
            return 1
        return 0
    fixed = graph.inputs[0].spatial() if len(graph.inputs) == 1 else None
    probed = probe_output(graph, fixed or (512, 512)) if graph.inputs else None
    if probed is not None:
        print(f"  one run at {fixed or (512, 512)} gave an output of shape {list(probed)}")
    target.write_text(starting_description(graph, probed))
    print(f"wrote {target}: fill in the lines marked TODO, then run it with weights:={path}")
    return 0


def onnx_metadata(path: Path) -> tuple[dict[str, str], tuple[int, int]]:
    """The seg_ros weights metadata and fixed input size an exported ONNX carries, or an own
    model's (its description; the size it fixes or names)."""
    from seg_ros.inference.errors import PipelineError
    from seg_ros.inference.export import read_onnx_metadata
    from seg_ros.own_model import description_path, read_own_model

    raw = read_onnx_metadata(path)
    if "format" not in raw and description_path(path).is_file():
        own = read_own_model(path)
        size = own.fixed_size or tuple(own.metadata.input_size)
        if not size:
            raise PipelineError(f"{path} has a dynamic size: add input_size to its description")
        return own.metadata.to_strings(), (int(size[0]), int(size[1]))
    if "format" not in raw:
        raise PipelineError(
            f"{path} carries no seg_ros metadata; export it with seg-export, or describe your "
            "own model beside it (seg-export --describe)"
        )
    if raw.get("onnx_dynamic") != "false" or "onnx_input_size" not in raw:
        raise PipelineError(f"{path} has a dynamic size; export a fixed-size ONNX")
    h, w = (int(v) for v in raw["onnx_input_size"].split("x"))
    return {k: v for k, v in raw.items() if not k.startswith("onnx_")}, (h, w)


def sidecar_for(args: argparse.Namespace) -> int:
    from seg_ros.inference.errors import PipelineError
    from seg_ros.inference.tensorrt_engine import read_sidecar, sidecar_for_engine
    from seg_ros.own_model import read_any_metadata

    if (args.from_onnx is None) == (args.weights is None):
        raise PipelineError("--sidecar-for takes the model from --from-onnx or --weights (one)")
    if args.from_onnx is not None:
        metadata, size = onnx_metadata(args.from_onnx)
    else:
        metadata, size = read_any_metadata(args.weights).to_strings(), None
    path = sidecar_for_engine(
        args.sidecar_for, metadata, "fp16" if args.fp16 else "fp32", cuda_index(args.device)
    )
    built = tuple(read_sidecar(args.sidecar_for).input_size)
    if size is not None and built != size:
        path.unlink()  # written just now, by us
        raise PipelineError(f"{args.sidecar_for} takes {built}, {args.from_onnx} is {size}")
    print(f"wrote {path}")
    return 0


def engine_from_onnx(args: argparse.Namespace) -> int:
    """--tensorrt from an existing seg_ros ONNX (fixed size), its metadata copied to the
    sidecar."""
    from seg_ros.inference.errors import PipelineError
    from seg_ros.inference.tensorrt_engine import build_engine

    if args.tensorrt is None:
        raise PipelineError("--from-onnx builds a TensorRT engine: give --tensorrt PATH")
    metadata, (h, w) = onnx_metadata(args.from_onnx)
    if args.model and args.model != metadata.get("model"):
        raise PipelineError(f"{args.from_onnx} holds {metadata.get('model')!r}, not {args.model!r}")
    require_tensorrt(args.device)
    build_engine(
        args.from_onnx,
        args.tensorrt,
        (h, w),
        "fp16" if args.fp16 else "fp32",
        int(args.workspace * (1 << 30)),
        cuda_index(args.device),
        metadata,
    )
    print(f"wrote {args.tensorrt} and {args.tensorrt}.json")
    return 0


def half_weights(args: argparse.Namespace) -> None:
    from seg_ros.inference.errors import PipelineError
    from seg_ros.weights import read_metadata, save_half_weights

    if args.weights is None:
        raise PipelineError("--fp16-weights needs --weights")
    meta = read_metadata(args.weights)
    if meta.model != args.model:
        raise PipelineError(f"{args.weights} holds {meta.model!r} weights, not {args.model!r}")
    out = save_half_weights(args.weights, args.fp16_weights)
    size = Path(args.weights).stat().st_size, out.stat().st_size
    print(f"wrote {out} ({size[1] / 1e6:.1f} MB, from {size[0] / 1e6:.1f} MB)")


def export(loaded, onnx_path: Path, size: tuple[int, int], args: argparse.Namespace) -> None:
    import time

    from seg_ros.inference.export import export_onnx, onnx_opset

    start = time.perf_counter()
    export_onnx(
        loaded.network,
        onnx_path,
        size,
        dynamic=args.dynamic,
        opset=args.opset,
        exporter=args.exporter,
        metadata=loaded.metadata,
    )
    shape = "dynamic size" if args.dynamic else f"{size[0]}x{size[1]}"
    source = "RANDOM weights" if loaded.random_init else f"weights {loaded.weights_path}"
    what = f"wrote {onnx_path}" if args.onnx else "exported the ONNX for the engine"
    print(
        f"{what} ({loaded.metadata.model}/{loaded.metadata.variant}, {source}, {shape}, "
        f"opset {onnx_opset(onnx_path)}, {time.perf_counter() - start:.1f} s)"
    )


def check(loaded, onnx_path: Path, size: tuple[int, int]) -> None:
    import numpy as np
    import onnxruntime as ort
    import torch

    from seg_ros.inference.parity import compare_logits

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = loaded.network(x).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    report = compare_logits(expected, np.asarray(got), "onnxruntime vs torch", 0.999)
    print(report.summary())
    if not report.passed:
        raise ValueError("ONNX Runtime does not match PyTorch")


if __name__ == "__main__":
    sys.exit(main())
