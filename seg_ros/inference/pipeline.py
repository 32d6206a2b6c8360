"""Image in, labels / colour mask / overlay / stage timings out: the one path every user of a
network takes (node, demo, bag evaluation, benchmark). No ROS here.

    pipeline = Pipeline(model="rgpnet", variant="resnet18", weights="rgpnet.safetensors")
    result = pipeline(frame_bgr, color_order="bgr")
    result.labels, result.color, result.overlay, result.timings

Stages: preprocess (resize on uint8, colour order, normalise into the backend's tensor),
inference (the backend's network, finished), postprocess (argmax where the logits are, label
resize, colour LUT, overlay blend).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.inference import decode, postprocess, preprocess
from seg_ros.inference.backends import Backend, BuildContext, EngineInfo, backend_class
from seg_ros.inference.config import MIN_SIDE, PipelineConfig
from seg_ros.inference.errors import (
    ConfigError,
    PipelineError,
    PipelineWeightsError,
)
from seg_ros.inference.loading import LoadedNetwork, load_network
from seg_ros.inference.parity import (
    ParityReport,
    compare_logits,
    reference_logits,
    require,
    synthetic_scene,
)
from seg_ros.labels import IGNORE_INDEX
from seg_ros.paths import atomic_write
from seg_ros.weights import WeightsError, WeightsMetadata, model_mismatch

__all__ = ["FrameOptions", "Pipeline", "PipelineConfig", "PipelineError", "SegmentationResult"]

log = logging.getLogger("seg_ros.inference")


@dataclass
class SegmentationResult:
    labels: np.ndarray  # HxW uint8 class ids, 255 = unlabeled
    color: np.ndarray | None  # HxWx3 uint8 RGB (None when not requested)
    overlay: np.ndarray | None  # HxWx3 uint8 RGB (None when not requested)
    timings: dict[str, float] = field(default_factory=dict)  # ms: preprocess, inference, ...
    # HxW uint8, the winning class's softmax probability x 255 (config.confidence, else None)
    confidence: np.ndarray | None = None


@dataclass(frozen=True)
class FrameOptions:
    """The settings a frame is finished with that change without a rebuild. Each frame takes
    one set at ``prepare`` and keeps it through ``infer`` and ``finish``, so a change made
    while it is between stages never mixes two sets in one output."""

    output_resolution: str = "input"
    overlay_alpha: float = 0.5
    min_confidence: float = 0.0

    @classmethod
    def of(cls, config: PipelineConfig) -> FrameOptions:
        return cls(
            config.output_resolution, float(config.overlay_alpha), float(config.min_confidence)
        )


@dataclass
class Staged:
    """One image on its way through the stages (see Pipeline.prepare/infer/finish)."""

    image: np.ndarray  # the input, HxWx3
    order: str
    options: FrameOptions
    small: np.ndarray  # RGB at network size
    batch: Any  # the backend's prepared input
    t0: float
    t1: float = 0.0
    t2: float = 0.0
    t_labels: float = 0.0
    labels: np.ndarray | None = None  # network-size labels, after infer
    confidence: np.ndarray | None = None  # network-size mono8 confidence (config.confidence)


class Pipeline:
    """A network on a backend with its pre- and postprocessing; see the module docstring.

    Every failure to build raises ``PipelineError`` (or a subclass) naming the problem.
    """

    def __init__(self, config: PipelineConfig | None = None, **overrides: Any) -> None:
        config = dataclasses.replace(config) if config is not None else PipelineConfig()
        for key, value in overrides.items():
            if key not in PipelineConfig.__dataclass_fields__:
                raise ConfigError(
                    f"unknown pipeline option {key!r}; known: "
                    f"{sorted(PipelineConfig.__dataclass_fields__)}"
                )
            setattr(config, key, value)
        self.config = config.validate()
        self.parity: ParityReport | None = None
        self.weights_path: Path | None = None
        self.random_init = False
        self._network: LoadedNetwork | None = None
        self._temporary: list[Path] = []  # folders of this pipeline's own, removed once built

        self.backend_name = resolve_backend(config)
        self._backend_class = backend_class(self.backend_name)
        self._engine_info: EngineInfo | None = None
        self._own = _read_own(config.weights)
        engine_meta = self._engine_metadata()
        if self._own is not None:
            # Your own model: the ONNX is the network, its description the metadata.
            self.metadata = self._own.metadata
            self.weights_path = self._own.path
            if engine_meta is not None:
                _check_same_model(engine_meta, self.metadata, config.engine or "")
            _check_confidence(self.metadata, config.confidence, config.min_confidence)
        elif engine_meta is not None and not config.weights:
            # The engine is the model: its own metadata names the classes.
            self.metadata = engine_meta
        else:
            self._network = load_network(
                config.model, config.variant, config.weights, config.num_classes
            )
            self.metadata = self._network.metadata
            self.weights_path = self._network.weights_path
            self.random_init = self._network.random_init
            if engine_meta is not None:
                _check_same_model(engine_meta, self.metadata, config.engine or "")
        self.variant = self.metadata.variant
        self.input_size = self._input_size()
        try:
            self.backend = self._make_backend()
        finally:
            self._remove_temporary()
        if config.parity_check:
            self._check_parity()
        self._lut = postprocess.palette_lut(self.metadata.palette)
        self._describe_backend = self.backend.describe()

    # -- building ---------------------------------------------------------------------------
    def _engine_metadata(self) -> WeightsMetadata | None:
        """The seg_ros metadata inside a given ONNX file / next to a given engine, if any."""
        c = self.config
        if not c.engine:
            return None
        path = Path(c.engine).expanduser()
        if not self._backend_class.engine_kinds:
            self._backend_class.read_engine(path)  # raises, naming the backends that take one
        if not path.is_file():
            raise PipelineError(f"engine file not found: {path}")
        self._engine_info = self._backend_class.read_engine(path)
        raw = self._engine_info.metadata
        if "format" not in raw:
            if not c.weights:
                raise PipelineError(
                    f"{path} carries no seg_ros metadata (class names, palette, mean/std); "
                    "pass weights=... for them, or export it with seg-export"
                )
            return None
        try:
            meta = WeightsMetadata.from_strings(raw, str(path))
        except WeightsError as e:
            raise PipelineWeightsError(str(e)) from e
        mismatch = model_mismatch(meta, str(path), c.model, c.variant)
        if mismatch and self._own is None:  # an own model's engine is checked against it
            raise PipelineWeightsError(mismatch)
        return meta

    def _input_size(self) -> tuple[int, int]:
        c = self.config
        fixed = self._engine_info.input_size if self._engine_info is not None else None
        source = c.engine
        if self._own is not None and self._own.fixed_size is not None:
            # The ONNX's own fixed size binds every backend: its graph was traced at it.
            fixed, source = self._own.fixed_size, str(self._own.path)
            reshapes = False
        else:
            reshapes = self._backend_class.reshapes_engine
        size = c.input_size or fixed or tuple(self.metadata.input_size)
        if not size:
            raise ConfigError(
                f"{self._own.path if self._own else c.weights} takes any input size and its "
                "description has no input_size: add input_size: [H, W] there, or set input_size"
            )
        if 0 in size:
            size = follow_aspect(size, fixed or tuple(self.metadata.input_size) or size)
        if fixed is not None and tuple(size) != fixed and not reshapes:
            raise ConfigError(
                f"input_size {size[0]}x{size[1]} was asked, but {source} is built for "
                f"{fixed[0]}x{fixed[1]}; leave input_size unset or export a new one"
            )
        return int(size[0]), int(size[1])

    def _make_backend(self) -> Backend:
        meta = self.metadata
        if meta.color_order == "bgr":
            # The network is fed BGR (prepare swaps): its normalisation follows the channels.
            meta = dataclasses.replace(meta, mean=meta.mean[::-1], std=meta.std[::-1])
        ctx = BuildContext(
            config=dataclasses.replace(self.config, backend=self.backend_name),
            metadata=meta,
            network=self._network.network if self._network is not None else None,
            onnx_model=self._own.path if self._own is not None else None,
            input_size=self.input_size,
            export_onnx=self._export_onnx,
            artifact=self._artifact,
            random_init=self.random_init,
            weights_path=self.weights_path,
        )
        return self._backend_class.build(ctx)

    def _remove_temporary(self) -> None:
        import shutil

        # The runtime has read the file into its session; the folder is this pipeline's own.
        for folder in self._temporary:
            shutil.rmtree(folder, ignore_errors=True)
        self._temporary.clear()

    def _artifact(self, suffix: str) -> Path:
        from seg_ros.inference.artifacts import artifact_path, file_digest

        tag = (
            f"random{self.metadata.num_classes}"
            if self.weights_path is None
            else file_digest(self.weights_path)
        )
        return artifact_path(self.metadata.model, self.variant, tag, self.input_size, suffix)

    def _export_onnx(self) -> Path:
        from seg_ros.inference.artifacts import prune, touch
        from seg_ros.inference.export import export_onnx

        if self._own is not None:
            return self._own.path  # the user's file is the export
        if self.weights_path is None:
            # Random weights: an export for this run only, never cached.
            import tempfile

            folder = Path(tempfile.mkdtemp(prefix="seg_ros_random_"))
            path = folder / "network.onnx"
            export_onnx(self._network.network, path, self.input_size, metadata=self.metadata)
            self._temporary.append(folder)
            return path
        path = self._artifact(".onnx")
        if path.is_file():
            log.info("using the ONNX export cached at %s", path)
            touch(path)
            return path
        log.warning("no engine given: exporting %s/%s to ONNX at %s (cached for the next "
                    "start)", self.metadata.model, self.variant, path)  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp:
            export_onnx(self._network.network, tmp, self.input_size, metadata=self.metadata)
        prune(keep=path)
        return path

    def _check_parity(self) -> None:
        """Fast paths must reproduce fp32 eager PyTorch's labels before they are used."""
        if self._own is not None:
            self._check_own_parity()
            return
        if self._network is None:
            self.backend.notes["parity"] = "not checked: no weights to compare the engine with"
            log.warning("parity of %s not checked: no weights given", self.config.engine)
            return
        image = synthetic_scene(*self.input_size)
        m = self.metadata
        reference = reference_logits(self._network.network, image, m.mean, m.std)
        what = f"{self.backend_name}/{self.backend.device}/{self.config.precision}"
        if self.backend_name == "torch" and self.config.compile != "off":
            what += f"/{self.config.compile}"
        try:
            output = self.backend.infer(self.backend.prepare(image))
            candidate, labels = self.backend.to_numpy(output), self.backend.labels(output)
        except Exception as e:  # a kernel missing for this dtype/device, a compiler failure
            raise PipelineError(f"{what} cannot run {self.metadata.model}: {e}") from e
        self.parity = compare_logits(
            reference, candidate, what, self._backend_class.min_agreement(self.config), labels
        )
        self.backend.notes["parity"] = self.parity.summary()
        require(self.parity)
        log.info("parity: %s", self.parity.summary())

    def _check_own_parity(self) -> None:
        """An own model's one run on a synthetic scene: its output must fit the description,
        and a path other than onnxruntime's fp32 CPU (OpenVINO's conversion, reduced
        precision, int8, an engine) must give the labels onnxruntime gives for the ONNX."""
        from seg_ros.own_model import check_output

        batch = self.prepare(synthetic_scene(*self.input_size)).batch
        # The same input for the reference, on the host (TensorRT's batch lives on the GPU).
        reference_input = self.backend.to_numpy(batch)
        what = f"{self.backend_name}/{self.backend.device}/{self.config.precision}"
        try:
            candidate = self.backend.to_numpy(self.backend.infer(batch))
        except Exception as e:  # a runtime refusing the graph at this size, a missing op
            raise PipelineError(f"{what} cannot run {self._own.path}: {e}") from e
        try:
            check_output(str(self._own.path), self.metadata, candidate)
        except WeightsError as e:
            raise PipelineWeightsError(str(e)) from None
        exact = self.backend_name == "onnxruntime" and self.backend.device == "cpu"
        if exact and self.config.precision == "fp32" and not self.config.engine:
            self.backend.notes["parity"] = "not needed: onnxruntime runs the ONNX itself"
            return
        reference = onnxruntime_reference(self._own.path, reference_input)
        if reference is None:
            self.backend.notes["parity"] = "not checked: onnxruntime (the reference) is missing"
            return
        if self.metadata.output == "labels":
            reference, candidate = one_hot(reference), one_hot(candidate, reference.shape[1])
        minimum = self._backend_class.min_agreement(self.config)
        self.parity = compare_logits(reference, candidate, f"{what} vs onnxruntime", minimum)
        self.backend.notes["parity"] = self.parity.summary()
        require(self.parity)

    # -- running ----------------------------------------------------------------------------
    def __call__(
        self,
        image: np.ndarray,
        color_order: str = "rgb",
        want_color: bool = True,
        want_overlay: bool = True,
    ) -> SegmentationResult:
        """Segment one HxWx3 (or HxW mono) uint8 image; outputs are RGB."""
        return self.finish(self.infer(self.prepare(image, color_order)), want_color, want_overlay)

    # The three stages, for callers that overlap them across frames (the node publishes one
    # frame while the next one's network runs): prepare -> infer -> finish.
    def prepare(
        self, image: np.ndarray, color_order: str = "rgb", options: FrameOptions | None = None
    ) -> Staged:
        """Stage 1: validate, resize and normalise (cheap, on the caller's thread). The frame
        keeps ``options`` (default: the config's, read now) to its last stage."""
        t0 = time.perf_counter()
        image = preprocess.check_image(image)
        order = preprocess.check_color_order(color_order)
        small = preprocess.to_rgb(preprocess.resize_to_network(image, self.input_size), order)
        options = options or FrameOptions.of(self.config)
        network_input = small if self.metadata.color_order == "rgb" else preprocess.swap_rb(small)
        frame = Staged(image, order, options, small, self.backend.prepare(network_input), t0)
        frame.t1 = time.perf_counter()
        return frame

    def infer(self, frame: Staged, want_confidence: bool | None = None) -> Staged:
        """Stage 2: the network and the argmax (network-size labels); the confidence too
        where it is asked for (``want_confidence``, default ``config.confidence``) or
        thresholded (the frame's ``min_confidence``): it needs the logits, which end here."""
        return self.infer_many([frame], [want_confidence])[0]

    @property
    def max_batch(self) -> int:
        """How many frames ``infer_many`` can run as one batch on this backend (1: one by one)."""
        return self.backend.max_batch

    @property
    def auto_batch(self) -> int:
        """How many it batches where the backend gains from it (a GPU; 1 on a CPU)."""
        return self.backend.auto_batch

    def infer_many(
        self, frames: list[Staged], want_confidence: list[bool | None] | None = None
    ) -> list[Staged]:
        """Stage 2 for up to ``max_batch`` frames prepared for it (e.g. one per camera): one
        batch on the backend, then each frame's labels as ``infer`` gives them. Each frame's
        inference time is the batch's: that is how long each of them waited. (No more than
        ``max_batch``: backends that run one frame at a time prepare into, and return, buffers
        of their own that the next frame overwrites.)"""
        if not 0 < len(frames) <= self.max_batch:
            raise ValueError(
                f"infer_many takes 1 to {self.max_batch} frames on {self.backend_name} "
                f"(max_batch), not {len(frames)}"
            )
        wants = want_confidence or [None] * len(frames)
        logits = self.backend.infer_many([f.batch for f in frames])
        t2 = time.perf_counter()
        for frame, frame_logits, want in zip(frames, logits, wants):
            self._take_labels(frame, frame_logits, want, t2)
        return frames

    @property
    def in_flight(self) -> int:
        """How many frames ``infer_async`` keeps in the network at once (1: one at a time)."""
        return self.backend.in_flight

    def infer_async(
        self,
        frame: Staged,
        want_confidence: bool | None,
        done: Callable[[Staged, BaseException | None], None],
    ) -> None:
        """Stage 2 without waiting for it, where the backend keeps frames in flight
        (``in_flight > 1``; else it runs here and now): ``done(frame, error)`` is called, from
        the runtime's thread, once the frame has its labels as ``infer`` gives them, or with
        the exception that stopped it. Waits only while ``in_flight`` frames are running."""

        def landed(logits: Any) -> None:
            try:
                self._take_labels(frame, logits, want_confidence, time.perf_counter())
            except Exception as e:  # handed on: the caller counts it against the frame
                done(frame, e)
                return
            done(frame, None)

        self.backend.start(frame.batch, landed, lambda error: done(frame, error))

    def wait_idle(self) -> None:
        """Return once every ``infer_async`` frame has called its ``done``."""
        self.backend.wait_idle()

    def _take_labels(self, frame: Staged, logits: Any, want: bool | None, t2: float) -> None:
        """The frame's labels (and confidence) from its logits, before the runtime reuses
        their memory; the argmax counts as its postprocessing, not the frames' before it."""
        started = time.perf_counter()
        threshold = frame.options.min_confidence
        output = self.metadata.output
        if output == "labels":
            labels = decode.label_map(self.backend.to_numpy(logits), self.metadata.num_classes)
        else:
            labels = self.backend.labels(logits)  # the argmax of probabilities too
        # An own model may answer at a stride of its input: labels leave at network size
        # (a no-op for seg_ros' networks, which answer at it).
        labels = postprocess.resize_labels(labels, self.input_size)
        wanted = self.config.confidence if want is None else want
        if wanted or threshold > 0:
            if output == "labels":  # no scores to take it from (refused at build and set)
                _check_confidence(self.metadata, wanted, threshold)
            if output == "probabilities":
                probability = decode.max_probability(self.backend.to_numpy(logits))
            else:
                probability = self.backend.confidence(logits)
            probability = postprocess.resize_confidence(probability, self.input_size)
            if threshold > 0:
                labels = np.where(probability < threshold, IGNORE_INDEX, labels)
                labels = labels.astype(np.uint8)
            if wanted:
                frame.confidence = postprocess.confidence_u8(probability)
        frame.labels = labels
        frame.t2, frame.t_labels = t2, t2 + (time.perf_counter() - started)
        frame.batch = None  # the runtime's buffer may be reused by the next frame

    def finish(
        self, frame: Staged, want_color: bool = True, want_overlay: bool = True
    ) -> SegmentationResult:
        """Stage 3: labels at the output size, colour mask, overlay."""
        t2 = time.perf_counter()
        image, order, small, labels = frame.image, frame.order, frame.small, frame.labels
        confidence, options = frame.confidence, frame.options
        if options.output_resolution == "input":
            labels = postprocess.resize_labels(labels, image.shape[:2])
            if confidence is not None:
                confidence = postprocess.resize_confidence(confidence, image.shape[:2])
            base = small if image.shape[:2] == self.input_size else None
        else:
            base = small
        color = overlay = None
        if want_color or want_overlay:
            color = postprocess.colorize(labels, self._lut)
        if want_overlay:
            if base is None:
                base = preprocess.to_rgb(image, order)
            overlay = postprocess.blend(base, color, options.overlay_alpha)
        if not want_color:
            color = None
        t3 = time.perf_counter()
        # argmax (in stage 2) counts as postprocessing; a wait between the stages does not
        post = (t3 - t2) + (frame.t_labels - frame.t2)
        timings = {
            "preprocess": (frame.t1 - frame.t0) * 1e3,
            "inference": (frame.t2 - frame.t1) * 1e3,
            "postprocess": post * 1e3,
            "total": ((frame.t1 - frame.t0) + (frame.t2 - frame.t1) + post) * 1e3,
        }
        return SegmentationResult(labels, color, overlay, timings, confidence)

    def warmup(self, iterations: int = 2) -> None:
        """Run a few synthetic frames so lazy initialisation (oneDNN primitives, cuDNN
        autotuning, compile) happens before the first real frame."""
        image = synthetic_scene(*self.input_size, seed=1)
        for _ in range(max(0, iterations)):
            self(image)

    def logits(self, image: np.ndarray, color_order: str = "rgb") -> np.ndarray:
        """float32 1xCxHxW logits at network resolution (for evaluation and parity)."""
        staged = self.prepare(image, color_order)
        return self.backend.to_numpy(self.backend.infer(staged.batch))

    @property
    def own_model(self) -> Any:
        """The described ONNX this pipeline runs (seg_ros.own_model.OwnModel), or None."""
        return self._own

    @property
    def reference_network(self) -> Any:
        """The fp32 PyTorch network (CPU, eval) this pipeline was built from, or None when it
        runs a given engine without weights. Fast paths are checked against it."""
        return self._network.network if self._network is not None else None

    def describe_in_flight(self) -> str:
        """The inference mode as it runs: how many frames in flight, or why one."""
        mode, n = self.config.inference_mode, self.backend.in_flight
        if n > 1:
            return f"{mode}: up to {n} frames in flight"
        if mode == "latency":
            return "latency: one frame at a time"
        note = self.backend.in_flight_note or f"{self.backend_name} runs one frame at a time"
        return f"{mode}: one frame at a time ({note})"

    def describe(self) -> dict[str, str]:
        c, m = self.config, self.metadata
        info = {
            "model": m.model,
            "variant": m.variant,
            "backend": self.backend_name + (" (auto)" if c.backend == "auto" else ""),
            "device": self.backend.device,
            "precision": c.precision,
            "input_size": f"{self.input_size[0]}x{self.input_size[1]}",
            "output_resolution": c.output_resolution,
            "inference_mode": self.describe_in_flight(),
            "weights": str(self.weights_path) if self.weights_path else "",
            "random_init": str(self.random_init).lower(),
            "engine": str(c.engine or ""),
            "dataset": m.dataset,
            "num_classes": str(m.num_classes),
        }
        if self._own is not None:
            info["description"] = str(self._own.description or "inside the ONNX")
            info["output"] = m.output
            info["color_order"] = m.color_order
        info.update({k: v for k, v in self._describe_backend.items() if k not in info})
        return info


def _read_own(weights: str | None) -> Any:
    """The own model ``weights`` names (an ONNX with its description), or None."""
    from seg_ros.own_model import is_onnx_model, read_own_model

    if not is_onnx_model(weights):
        return None
    try:
        return read_own_model(Path(weights).expanduser())
    except WeightsError as e:
        raise PipelineWeightsError(str(e)) from None


def _check_confidence(meta: WeightsMetadata, wanted: bool, threshold: float) -> None:
    from seg_ros.own_model import confidence_problem

    problem = confidence_problem(meta, wanted, threshold)
    if problem:
        raise ConfigError(problem)


def onnxruntime_reference(path: Path, batch: Any) -> np.ndarray | None:
    """The ONNX's own output for a prepared 1x3xHxW batch on onnxruntime's fp32 CPU (the
    yardstick for an own model's other paths), or None where onnxruntime is missing."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.asarray(batch, np.float32)}
    return np.asarray(session.run(None, feed)[0], np.float32)


def one_hot(labels: np.ndarray, classes: int | None = None) -> np.ndarray:
    """N(x1)xHxW class ids as NxCxHxW scores, so label outputs go through compare_logits."""
    ids = np.asarray(labels).reshape(labels.shape[0], *labels.shape[-2:]).astype(np.int64)
    classes = classes or int(ids.max()) + 1
    out = np.zeros((ids.shape[0], classes, *ids.shape[1:]), np.float32)
    np.put_along_axis(out, np.clip(ids, 0, classes - 1)[:, None], 1.0, axis=1)
    return out


def resolve_backend(config: PipelineConfig) -> str:
    """The backend ``config`` asks for; ``auto`` picks the fastest exact path here: an
    engine file's own runtime, OpenVINO on a CPU where it is installed (fp32: faster than
    torch's, the same labels; docs/BENCHMARKS.md), else PyTorch. An explicit choice is never
    replaced."""
    import importlib.util

    if config.backend != "auto":
        return config.backend
    if config.engine:
        suffix = Path(config.engine).suffix.lower()
        by_suffix = {".onnx": "onnxruntime", ".xml": "openvino", ".engine": "tensorrt"}
        if suffix in by_suffix:
            return by_suffix[suffix]
        raise ConfigError(
            f"backend 'auto' cannot tell the runtime of engine {config.engine} from its suffix "
            f"(known: {sorted(by_suffix)}); set backend"
        )
    if config.precision == "int8":
        return "openvino"
    from seg_ros.own_model import is_onnx_model

    if is_onnx_model(config.weights):  # never torch: it runs seg_ros' own networks only
        on_cpu = config.device == "cpu" and config.precision in ("fp32", "bf16")
        return "openvino" if on_cpu and importlib.util.find_spec("openvino") else "onnxruntime"
    # fp32 only: bf16 on OpenVINO depends on the CPU (and is slow without AMX), torch's bf16
    # path is the measured one.
    exact = config.precision == "fp32" and config.compile == "off"
    if config.device == "cpu" and exact and importlib.util.find_spec("openvino"):
        return "openvino"
    return "torch"


def follow_aspect(size: tuple[int, int], reference: tuple[int, int]) -> tuple[int, int]:
    """(h, 0) or (0, w): the missing side from ``reference``'s aspect ratio (at least
    MIN_SIDE), so one parameter at a time (`ros2 param set`, `param load`) is a valid size."""
    h, w = size
    ref_h, ref_w = reference
    if h == 0:
        h = max(MIN_SIDE, round(w * ref_h / ref_w))
    elif w == 0:
        w = max(MIN_SIDE, round(h * ref_w / ref_h))
    return int(h), int(w)


def _check_same_model(engine: WeightsMetadata, weights: WeightsMetadata, source: str) -> None:
    for key in ("model", "variant", "num_classes", "dataset"):
        a, b = getattr(engine, key), getattr(weights, key)
        if a != b:
            raise PipelineWeightsError(
                f"{source} and the weights disagree on {key}: {a!r} vs {b!r}"
            )
