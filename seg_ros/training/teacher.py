"""Distillation targets: teachers' softmax averaged over teachers, scales and flips, one map per
training frame.

Computed once before training and kept on disk beside the run, not per step: the teachers
(e.g. RGPNet and DESANet with multi-scale + flip) cost tens of student steps per frame on a CPU.
Stored as uint8 (probability x 255, HxWxC) so CamVid's train split is ~0.7 GB; the training
transform warps each map with the same scale, crop and flip as its label.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seg_ros.inference.artifacts import file_digest
from seg_ros.metrics import ConfusionMatrix
from seg_ros.paths import atomic_write
from seg_ros.training.datasets import SegmentationDataset
from seg_ros.training.evaluate import normalise, predict_probabilities
from seg_ros.weights import load_model


class TeacherError(ValueError):
    pass


class TeacherTargets:
    """The teachers for ``dataset``: checked against its classes when built (a wrong or corrupt
    file fails before any training), computed into a folder by :meth:`prepare`, read by index."""

    def __init__(
        self,
        teachers: Sequence[str | Path],
        dataset: SegmentationDataset,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
    ) -> None:
        if not teachers:
            raise TeacherError("distillation needs at least one teacher weights file")
        if not scales or min(scales) <= 0:
            raise TeacherError(f"teacher scales must be positive, got {list(scales)}")
        self.dataset = dataset
        self.scales = [float(s) for s in scales]
        self.flip = bool(flip)
        self.paths = [Path(t) for t in teachers]
        self.models = []
        classes = list(dataset.label_set.classes)
        for path in self.paths:
            if not path.is_file():
                raise TeacherError(f"teacher weights not found: {path}")
            model, meta = load_model(path)
            if list(meta.class_names) != classes:
                raise TeacherError(
                    f"teacher {path} predicts {meta.class_names}, but {dataset.name} has {classes}"
                )
            self.models.append((model.eval(), meta))
        self._maps: list[np.ndarray] = []

    def key(self) -> dict[str, object]:
        """What the targets depend on; its digest names the folder, so other teachers or
        settings never reuse (or overwrite) these maps."""
        return {
            "teachers": [{"path": str(p), "sha256": file_digest(p, 64)} for p in self.paths],
            "scales": self.scales,
            "flip": self.flip,
            "dataset": self.dataset.name,
            "frames": [str(image.name) for image, _ in self.dataset.samples],
        }

    def predict(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """HxWxC uint8 probabilities at ``size`` (the label's), the teachers' mean."""
        mean = self.probabilities(image, size)
        return (mean.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()

    @torch.no_grad()
    def probabilities(self, image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """CxHxW float probabilities at ``size``, the teachers' mean (each teacher at its own
        input size and normalisation)."""
        total = None
        for model, meta in self.models:
            x = normalise(
                torch.from_numpy(image)[None], torch.tensor(meta.mean), torch.tensor(meta.std)
            )
            # Each teacher sees the frame at the size it was trained and validated for.
            in_size = tuple(meta.input_size)
            if tuple(x.shape[-2:]) != in_size:
                x = F.interpolate(x, in_size, mode="bilinear", align_corners=False)
            p = predict_probabilities(model, x, self.scales, self.flip, output_size=size)
            p = p / p.sum(1, keepdim=True)
            total = p if total is None else total + p
        return total[0] / len(self.models)

    def prepare(self, root: Path, log: Callable[[str], None] = print) -> Path:
        """Compute the missing maps under ``root/teacher-<digest>/`` (each written whole, so an
        interrupted run resumes where it stopped) and map them all into memory."""
        key = self.key()
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        folder = root / f"teacher-{digest}"
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            manifest.write_text(json.dumps(key, indent=1))
        todo = [i for i in range(len(self.dataset)) if not (folder / f"{i:05d}.npy").is_file()]
        if todo:
            log(
                f"teacher targets: {len(todo)} of {len(self.dataset)} frames to compute "
                f"({len(self.models)} teacher(s), scales {self.scales}, flip {self.flip}) "
                f"into {folder}"
            )
        for n, i in enumerate(todo, 1):
            image, label = self.dataset.load(i)
            soft = self.predict(image, label.shape)
            with atomic_write(folder / f"{i:05d}.npy") as tmp:
                np.save(tmp, soft)
            if n % 50 == 0:
                log(f"  teacher targets {n}/{len(todo)}")
        self._maps = [
            np.load(folder / f"{i:05d}.npy", mmap_mode="r") for i in range(len(self.dataset))
        ]
        for i, soft in enumerate(self._maps):
            expected = (*self.dataset.load(i)[1].shape, self.dataset.label_set.num_classes)
            if soft.shape != expected or soft.dtype != np.uint8:
                raise TeacherError(
                    f"{folder / f'{i:05d}.npy'} is {soft.dtype} {soft.shape}, expected uint8 "
                    f"{expected}: remove the folder to recompute it"
                )
        return folder

    def __getitem__(self, index: int) -> np.ndarray:
        if not self._maps:
            raise RuntimeError("TeacherTargets.prepare() must run before the maps are read")
        return self._maps[index]


def mean_confusion(
    targets: TeacherTargets, indices: Iterable[int] | None = None
) -> ConfusionMatrix:
    """The confusion matrix of the teachers' mean on their dataset: what a ``distill:`` set
    teaches, scored before a run is spent on it. Argmax of the float mean, not of the uint8
    maps, whose rounding would invent ties."""
    dataset = targets.dataset
    cm = ConfusionMatrix(dataset.label_set.num_classes)
    for i in range(len(dataset)) if indices is None else indices:
        image, label = dataset.load(i)
        prediction = targets.probabilities(image, label.shape).argmax(0)
        cm.update(prediction, torch.from_numpy(label))
    return cm


class DistillationSet(torch.utils.data.Dataset):
    """``dataset``'s frames with their teacher maps: (image, label, soft), transformed together."""

    def __init__(self, dataset: SegmentationDataset, targets: TeacherTargets) -> None:
        self.dataset = dataset
        self.targets = targets

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        image, label = self.dataset.load(index)
        soft = np.asarray(self.targets[index])
        if self.dataset.transform is not None:
            return self.dataset.transform(image, label, soft)
        return image, label, soft
