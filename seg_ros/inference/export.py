"""PyTorch network -> ONNX, with the seg_ros weights metadata inside the file.

The default exporter is TorchScript (``dynamo=False``): it writes real opset 17 with dynamic
height/width in seconds, where the dynamo exporter writes opset 18 at least (F.pad has no
adapter to 17) and takes up to 90 s for a ResNet-101. ``exporter="dynamo"`` is there for when
the TorchScript exporter is gone. DESANet's deformable conv is taught to either exporter here
(ONNX DeformConv, opset >= 19).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from seg_ros.compat import (
    TORCH_DYNAMO_EXPORTER,
    torch_release,
    torchscript_export_kwargs,
    torchscript_max_opset,
)
from seg_ros.inference.errors import PipelineError

MIN_OPSET = 17  # the opset every model exports to (README)
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
EXPORTERS = ("torchscript", "dynamo")
METADATA_PREFIX = "seg_ros."


def min_opset(network: Any) -> int:
    """The lowest opset ``network`` exports to (19 for DESANet's DeformConv, else 17)."""
    return max(MIN_OPSET, int(getattr(network, "onnx_min_opset", MIN_OPSET)))


def export_onnx(
    network: Any,
    path: str | Path,
    input_size: tuple[int, int] = (512, 1024),
    dynamic: bool = False,
    opset: int | None = None,
    exporter: str = "torchscript",
    metadata: Any = None,
) -> Path:
    """Write ``network`` (fp32, eval, CPU) to ``path`` as ONNX; returns the path.

    ``input_size`` is the (height, width) traced with, and the fixed size unless ``dynamic``
    (then batch, height and width are free). ``metadata``: a ``WeightsMetadata`` stored in the
    file's metadata_props, so an ONNX file alone can drive a pipeline.
    """
    import onnx
    import torch

    opset = _check_opset(network, exporter, opset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    network = network.eval().float().cpu()
    h, w = input_size
    example = (torch.zeros(1, 3, h, w),)
    with torch.no_grad(), warnings.catch_warnings():
        # Deprecation and tracer warnings of the TorchScript exporter are expected: it is chosen
        # deliberately (speed, real opset 17), and the traced shapes are symbolic in our models.
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            _torchscript_export(network, example, path, opset, dynamic)
            proto = onnx.load(str(path))
        else:
            proto = _dynamo_export(network, example, opset, dynamic)
    props = {
        "onnx_input_size": f"{h}x{w}",
        "onnx_dynamic": str(dynamic).lower(),
        "onnx_exporter": exporter,
    }
    if metadata is not None:
        props.update(metadata.to_strings())
    _set_metadata(proto, props)
    onnx.save(proto, str(path))
    return path


def _check_opset(network: Any, exporter: str, opset: int | None) -> int:
    """The opset to write (the network's lowest by default), or why this exporter cannot."""
    import torch

    if exporter not in EXPORTERS:
        raise PipelineError(f"exporter {exporter!r} is not known; choose from {list(EXPORTERS)}")
    lowest = min_opset(network)
    opset = opset or lowest
    if opset < lowest:
        raise PipelineError(
            f"{type(network).__name__} needs ONNX opset >= {lowest} (asked for {opset})"
        )
    if exporter == "dynamo" and opset < 18:
        raise PipelineError("the dynamo exporter writes opset 18 or newer; use 'torchscript'")
    if exporter == "dynamo" and torch_release() < TORCH_DYNAMO_EXPORTER:
        raise PipelineError(
            f"the dynamo exporter needs torch >= {'.'.join(map(str, TORCH_DYNAMO_EXPORTER))}; "
            f"this is torch {torch.__version__}: use exporter 'torchscript'"
        )
    if exporter == "torchscript" and opset > torchscript_max_opset():
        raise PipelineError(
            f"{type(network).__name__} needs ONNX opset {opset}, and the TorchScript exporter of "
            f"torch {torch.__version__} writes at most {torchscript_max_opset()}: export it "
            "where a newer torch is installed and copy the .onnx (seg-export --tensorrt ... "
            "--from-onnx builds an engine from it)"
        )
    return opset


def _torchscript_export(
    network: Any, example: tuple, path: Path, opset: int, dynamic: bool
) -> None:
    import torch

    from seg_ros.models.deform import has_deform_conv, register_onnx_symbolic

    if has_deform_conv(network):
        register_onnx_symbolic()
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        network,
        example,
        str(path),
        **torchscript_export_kwargs(),
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes} if dynamic else None,
        do_constant_folding=True,
    )


def _dynamo_export(network: Any, example: tuple, opset: int, dynamic: bool) -> Any:
    import torch

    from seg_ros.models.deform import has_deform_conv, onnx_custom_translations

    table = onnx_custom_translations() if has_deform_conv(network) else None
    shapes = None
    if dynamic:
        auto = torch.export.Dim.AUTO
        shapes = ({0: auto, 2: auto, 3: auto},)
    program = torch.onnx.export(
        network,
        example,
        dynamo=True,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=shapes,
        custom_translation_table=table,
        verbose=False,
    )
    return program.model_proto


def _set_metadata(proto: Any, props: dict[str, str]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in props.items():
        full = METADATA_PREFIX + key
        entry = existing.get(full) or proto.metadata_props.add()
        entry.key, entry.value = full, value


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The seg_ros entries of an ONNX file's metadata_props, prefix stripped ({} if none)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises several types for a damaged file
        raise PipelineError(f"{path}: not a readable ONNX file ({e})") from None
    n = len(METADATA_PREFIX)
    return {p.key[n:]: p.value for p in proto.metadata_props if p.key.startswith(METADATA_PREFIX)}


def onnx_opset(path: str | Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
