"""Post-training int8 quantization for the OpenVINO backend (NNCF), checked before it is kept.

``quantize`` converts the fp32 network to OpenVINO, quantizes it with NNCF from calibration
frames, scores fp32 and int8 through the real pipeline on a labelled validation split, and
writes the int8 IR only when it kept its accuracy within ``max_drop`` mIoU points (or, with
``force``, writes it flagged). The figures go into the IR's metadata, where the OpenVINO
backend reads them back (diagnostics: "Int8 accuracy").
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.inference.backends.openvino_backend import ir_weights
from seg_ros.inference.errors import PipelineError
from seg_ros.inference.scoring import miou_of
from seg_ros.paths import atomic_write

log = logging.getLogger("seg_ros.inference")
# How much mIoU (points) an int8 model may lose against fp32 on the validation split.
DEFAULT_MAX_DROP = 0.5


@dataclass
class QuantizeReport:
    fp32_miou: float
    int8_miou: float
    max_drop: float
    calibration: str
    validation: str
    frames_calibration: int
    frames_validation: int
    seconds: float
    method: str
    written: bool = False
    flags: list[str] = field(default_factory=list)

    @property
    def drop(self) -> float:
        return self.fp32_miou - self.int8_miou

    @property
    def within(self) -> bool:
        return self.drop <= self.max_drop

    weights_digest: str = ""

    def metadata(self) -> dict[str, str]:
        return {
            "precision": "int8",
            "fp32_weights_digest": self.weights_digest,
            "fp32_val_miou": f"{self.fp32_miou:.2f}",
            "int8_val_miou": f"{self.int8_miou:.2f}",
            "int8_max_drop": f"{self.max_drop:g}",
            "int8_within_tolerance": str(self.within).lower(),
            "int8_calibration": self.calibration,
            "int8_validation": self.validation,
            "int8_method": self.method,
        }


# NNCF's presets by name: mixed (symmetric weights, asymmetric activations) or performance
PRESETS = ("mixed", "performance")


def quantize(
    weights: str | Path | None,
    model: str | None,
    calibration: Sequence[np.ndarray],
    validation: Sequence[tuple[np.ndarray, np.ndarray]],
    output: Path,
    calibration_name: str,
    validation_name: str,
    variant: str | None = None,
    input_size: tuple[int, int] | None = None,
    max_drop: float = DEFAULT_MAX_DROP,
    accuracy_control: bool = False,
    force: bool = False,
    threads: int | None = None,
    ignored_types: Sequence[str] = (),
    preset: str = "mixed",
    fast_bias_correction: bool = True,
    progress: Callable[[str], None] = print,
) -> QuantizeReport:
    """Quantize, check, and write ``output`` (.xml + .bin) as the module docstring says."""
    from seg_ros.inference.artifacts import file_digest
    from seg_ros.inference.pipeline import Pipeline, PipelineConfig

    _check_inputs(calibration, validation, preset)
    start = time.perf_counter()
    fp32 = Pipeline(
        model=model or PipelineConfig.model,  # an own model (ONNX weights) names itself
        variant=variant,
        weights=str(weights) if weights else None,  # None: the shipped weights
        backend="openvino",
        input_size=input_size,
        threads=threads,
        output_resolution="input",
    )
    meta, size = fp32.metadata, fp32.input_size
    weights = fp32.weights_path  # the file actually used, for the int8 pipeline's parity check

    def prepare(image: np.ndarray) -> np.ndarray:
        return fp32.prepare(image).batch  # resized, in the network's channel order, normalised

    progress(f"fp32 on {validation_name} ({len(validation)} frames) ...")
    fp32_miou = miou_of(fp32, validation, meta.num_classes)
    progress(f"fp32 mIoU {fp32_miou:.2f}; quantizing from {len(calibration)} frames ...")
    ov_model = _fp32_openvino(fp32, size)
    int8_model, method = _nncf_int8(
        ov_model,
        [prepare(im) for im in calibration],
        [(prepare(im), lb) for im, lb in validation] if accuracy_control else None,
        meta,
        max_drop,
        preset,
        ignored_types,
        fast_bias_correction,
    )

    progress(f"int8 on {validation_name} ...")
    int8_miou = _int8_miou(int8_model, meta, weights, validation, threads)
    report = QuantizeReport(
        fp32_miou=fp32_miou,
        int8_miou=int8_miou,
        max_drop=max_drop,
        calibration=f"{calibration_name} ({len(calibration)} frames)",
        validation=f"{validation_name} ({len(validation)} frames)",
        frames_calibration=len(calibration),
        frames_validation=len(validation),
        seconds=time.perf_counter() - start,
        method=method,
        weights_digest=file_digest(weights) if weights else "",
    )
    if not report.within:
        report.flags.append(f"int8 lost {report.drop:.2f} mIoU points (> {max_drop:g} allowed)")
    if report.within or force:
        _write(int8_model, {**meta.to_strings(), **report.metadata()}, output)
        report.written = True
    return report


def _fp32_openvino(fp32: Any, size: tuple[int, int]) -> Any:
    """The fp32 network as an OpenVINO model to quantize, with symbolic sizes where it has
    them: the int8 model then runs at any input size (the backend reshapes it)."""
    from seg_ros.inference.backends.openvino_backend import convert_from_torch, read_model

    if fp32.own_model is None:
        return convert_from_torch(fp32.reference_network, size, dynamic=True)
    model = read_model(fp32.own_model.path)  # an own model: its ONNX, as the user exported it
    if fp32.own_model.fixed_size is None:
        model.reshape([1, 3, -1, -1])
    return model


def _write(int8_model: Any, metadata: dict[str, str], output: Path) -> None:
    """The int8 model with its metadata (accuracy included) to ``output`` (.xml + .bin)."""
    import openvino as ov

    from seg_ros.inference.backends.openvino_backend import write_metadata

    write_metadata(int8_model, metadata)
    with atomic_write(output, companions=(ir_weights,)) as tmp:
        ov.save_model(int8_model, str(tmp), compress_to_fp16=False)


def _check_inputs(calibration: Sequence[Any], validation: Sequence[Any], preset: str) -> None:
    if not calibration:
        raise PipelineError("no calibration frames")
    if not validation:
        raise PipelineError("no validation frames: the int8 model must be checked before use")
    if preset not in PRESETS:
        raise PipelineError(f"preset {preset!r} is not known; choose from {sorted(PRESETS)}")


def _nncf_int8(
    ov_model: Any,
    calibration: list[Any],
    validation: list[Any] | None,
    meta: Any,
    max_drop: float,
    preset: str,
    ignored_types: Sequence[str],
    fast_bias_correction: bool,
) -> tuple[Any, str]:
    """NNCF's int8 model from prepared frames (with accuracy control where ``validation`` is
    given), and how it was made."""
    import nncf

    calib = nncf.Dataset(calibration)
    preset_value = getattr(nncf.QuantizationPreset, preset.upper())
    common: dict[str, Any] = {"subset_size": len(calibration), "preset": preset_value}
    if ignored_types:
        common["ignored_scope"] = nncf.IgnoredScope(types=list(ignored_types))
    if validation is not None:
        val = nncf.Dataset(validation)
        int8_model = _with_accuracy_control(ov_model, calib, val, meta, max_drop, common)
        method = f"NNCF {nncf.__version__} accuracy control, max drop {max_drop:g}"
    else:
        int8_model = nncf.quantize(
            ov_model, calib, fast_bias_correction=fast_bias_correction, **common
        )
        bias = "fast" if fast_bias_correction else "full"
        method = f"NNCF {nncf.__version__} post-training quantization ({preset}, {bias} bias)"
    if ignored_types:
        method += f", fp32 kept for {', '.join(ignored_types)}"
    return int8_model, method


def _with_accuracy_control(
    ov_model: Any, calib: Any, val: Any, meta: Any, max_drop: float, common: dict[str, Any]
) -> Any:
    """NNCF's accuracy-controlled quantization, judged by mIoU on ``val``."""
    import nncf

    from seg_ros.metrics import ConfusionMatrix

    def validate(compiled: Any, items: Iterable[Any]) -> float:
        cm = ConfusionMatrix(meta.num_classes)
        for batch, label in items:
            output = compiled(batch)[0]
            cm.update(_labels_at(output, label.shape, meta), label)
        return float(cm.miou())

    return nncf.quantize_with_accuracy_control(
        ov_model,
        calib,
        val,
        validation_fn=validate,
        max_drop=max_drop / 100.0,
        drop_type=nncf.DropType.ABSOLUTE,
        **common,
    )


def _int8_miou(
    int8_model: Any,
    meta: Any,
    weights: Path | None,
    validation: Sequence[tuple[np.ndarray, np.ndarray]],
    threads: int | None,
) -> float:
    """The int8 model's mIoU through the real pipeline (its parity check included), from a
    scratch copy that is removed afterwards."""
    import openvino as ov

    from seg_ros.inference.backends.openvino_backend import write_metadata
    from seg_ros.inference.pipeline import Pipeline, PipelineConfig
    from seg_ros.own_model import is_onnx_model

    folder = Path(tempfile.mkdtemp(prefix="seg_ros_int8_"))
    try:
        candidate = folder / "model.xml"
        write_metadata(int8_model, meta.to_strings())
        ov.save_model(int8_model, str(candidate), compress_to_fp16=False)
        own = weights is not None and is_onnx_model(weights)
        int8 = Pipeline(
            model=PipelineConfig.model if own else meta.model,  # an own model names itself
            variant=None if own else meta.variant,
            weights=str(weights) if weights else None,
            backend="openvino",
            precision="int8",
            engine=str(candidate),
            threads=threads,
            output_resolution="input",
        )
        return miou_of(int8, validation, meta.num_classes)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _labels_at(output: np.ndarray, shape: tuple[int, ...], meta: Any) -> np.ndarray:
    from seg_ros.inference.decode import label_map
    from seg_ros.inference.postprocess import argmax_nchw, resize_labels

    output = np.asarray(output)
    labels = label_map(output, meta.num_classes) if meta.output == "labels" else None
    return resize_labels(argmax_nchw(output) if labels is None else labels, tuple(shape[:2]))
