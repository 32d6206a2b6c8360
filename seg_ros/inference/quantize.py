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

from seg_ros.inference import preprocess
from seg_ros.inference.errors import PipelineError
from seg_ros.inference.scoring import miou_of

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


def quantize(
    weights: str | Path | None,
    model: str,
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
    import nncf
    import openvino as ov

    from seg_ros.inference.artifacts import file_digest
    from seg_ros.inference.backends.openvino_backend import convert_from_torch, write_metadata
    from seg_ros.inference.pipeline import Pipeline

    if not calibration:
        raise PipelineError("no calibration frames")
    if not validation:
        raise PipelineError("no validation frames: the int8 model must be checked before use")
    start = time.perf_counter()
    fp32 = Pipeline(
        model=model,
        variant=variant,
        weights=str(weights) if weights else None,  # None: the shipped weights
        backend="openvino",
        input_size=input_size,
        threads=threads,
        output_resolution="input",
    )
    meta, size = fp32.metadata, fp32.input_size
    weights = fp32.weights_path  # the file actually used, for the int8 pipeline's parity check
    classes = meta.num_classes
    network = fp32.reference_network
    # Symbolic sizes: the int8 model then runs at any input size (the backend reshapes it).
    ov_model = convert_from_torch(network, size, dynamic=True)

    def prepare(image: np.ndarray) -> np.ndarray:
        small = preprocess.resize_to_network(preprocess.check_image(image), size)
        return fp32.backend.prepare(small)

    calib = nncf.Dataset([prepare(im) for im in calibration])
    progress(f"fp32 on {validation_name} ({len(validation)} frames) ...")
    fp32_miou = miou_of(fp32, validation, classes)
    progress(f"fp32 mIoU {fp32_miou:.2f}; quantizing from {len(calibration)} frames ...")
    ignored = nncf.IgnoredScope(types=list(ignored_types)) if ignored_types else None
    presets = {
        "mixed": nncf.QuantizationPreset.MIXED,
        "performance": nncf.QuantizationPreset.PERFORMANCE,
    }
    if preset not in presets:
        raise PipelineError(f"preset {preset!r} is not known; choose from {sorted(presets)}")
    if accuracy_control:

        def validate(compiled: Any, items: Iterable[Any]) -> float:
            from seg_ros.metrics import ConfusionMatrix

            cm = ConfusionMatrix(classes)
            for batch, label in items:
                logits = compiled(batch)[0]
                cm.update(_labels_at(logits, label.shape), label)
            return float(cm.miou())

        val = nncf.Dataset([(prepare(im), lb) for im, lb in validation])
        int8_model = nncf.quantize_with_accuracy_control(
            ov_model,
            calib,
            val,
            validation_fn=validate,
            max_drop=max_drop / 100.0,
            drop_type=nncf.DropType.ABSOLUTE,
            subset_size=len(calibration),
            ignored_scope=ignored,
            preset=presets[preset],
        )
        method = f"NNCF {nncf.__version__} accuracy control, max drop {max_drop:g}"
    else:
        kwargs: dict[str, Any] = {
            "subset_size": len(calibration),
            "preset": presets[preset],
            "fast_bias_correction": fast_bias_correction,
        }
        if ignored is not None:
            kwargs["ignored_scope"] = ignored
        int8_model = nncf.quantize(ov_model, calib, **kwargs)
        bias = "fast" if fast_bias_correction else "full"
        method = f"NNCF {nncf.__version__} post-training quantization ({preset}, {bias} bias)"
    if ignored_types:
        method += f", fp32 kept for {', '.join(ignored_types)}"

    folder = Path(tempfile.mkdtemp(prefix="seg_ros_int8_"))
    try:
        candidate = folder / "model.xml"
        write_metadata(int8_model, meta.to_strings())
        ov.save_model(int8_model, str(candidate), compress_to_fp16=False)
        int8 = Pipeline(
            model=model,
            variant=meta.variant,
            weights=str(weights) if weights else None,
            backend="openvino",
            precision="int8",
            engine=str(candidate),
            threads=threads,
            output_resolution="input",
        )
        progress(f"int8 on {validation_name} ...")
        int8_miou = miou_of(int8, validation, classes)
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
            if not force:
                return report
        write_metadata(int8_model, {**meta.to_strings(), **report.metadata()})
        tmp = output.with_name(output.stem + ".tmp.xml")
        ov.save_model(int8_model, str(tmp), compress_to_fp16=False)
        tmp.with_suffix(".bin").replace(output.with_suffix(".bin"))
        tmp.replace(output)
        report.written = True
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _labels_at(logits: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from seg_ros.inference.postprocess import argmax_nchw, resize_labels

    return resize_labels(argmax_nchw(np.asarray(logits)), tuple(shape[:2]))
