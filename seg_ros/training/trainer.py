"""The training loop: SGD + poly LR, mixed precision, validation, checkpoints with resume.

Run under ``torchrun`` for several GPUs/nodes: DistributedDataParallel with a distributed
sampler (SyncBatchNorm on CUDA). Every process validates its share of the frames and the
confusion matrices are summed; rank 0 alone logs and writes files.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from seg_ros.compat import grad_scaler, zip_strict
from seg_ros.machine import cpu_name
from seg_ros.models import build_model, resolve_variant
from seg_ros.models.common import as_train_output
from seg_ros.paths import atomic_write
from seg_ros.training.config import TrainConfig
from seg_ros.training.datasets import SegmentationDataset, build_dataset
from seg_ros.training.evaluate import evaluate, normalise
from seg_ros.training.losses import SoftTargetCrossEntropy, build_loss, enet_class_weights
from seg_ros.training.resume_point import RESUME_POINT, read_resume_point
from seg_ros.training.schedules import poly_lr
from seg_ros.training.teacher import DistillationSet, TeacherTargets
from seg_ros.training.transforms import TrainTransform
from seg_ros.weights import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    WeightsMetadata,
    load_weights,
    save_weights,
)

CHECKPOINT = "last.pt"
BEST = "best.safetensors"
# The schedule's last epoch, whatever validation said: the honest file when val is not a
# held-out set (train+val runs) or when selecting on it would flatter the reported figure.
FINAL = "final.safetensors"
# Decoded frames are cached only when the split takes at most this share of free memory.
CACHE_MEMORY_SHARE = 0.5
CPUINFO = Path("/proc/cpuinfo")


def cpu_has_bf16_instructions() -> bool:
    """AMX (Sapphire Rapids on) or AVX512-BF16 (Cooper Lake, Zen 4): bf16 matmuls in hardware."""
    try:
        flags = set(CPUINFO.read_text().split())
    except OSError:
        return False
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype a recipe's ``amp`` asks for on this device (None = fp32)."""
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError("amp=fp16 needs CUDA; use bf16 on the CPU")
        return torch.float16
    if amp != "auto":
        raise ValueError(f"amp must be auto, bf16, fp16 or off, got {amp!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # bf16 pays off only with bf16 instructions: a training step at 288x384, batch 8, one
    # thread on a Zen 4 EPYC took 2.5 s bf16 vs 3.5 fp32 (FPLNet), 4.0 vs 7.6 (DESANet-HN),
    # and RGPNet-R18 1.38 vs 2.2 on two threads; without them bf16 is slower than fp32.
    return torch.bfloat16 if cpu_has_bf16_instructions() else None


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_request: str) -> tuple[DistInfo, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = device_request.startswith("cuda") or (
        device_request == "auto" and torch.cuda.is_available()
    )
    if world > 1:
        info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if want_cuda else "gloo")
        device = torch.device(f"cuda:{info.local_rank}" if want_cuda else "cpu")
    else:
        info = DistInfo()
        device = torch.device(
            device_request if device_request != "auto" else ("cuda" if want_cuda else "cpu")
        )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return info, device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def collate(batch: list[tuple[np.ndarray, ...]]) -> tuple[torch.Tensor, ...]:
    """(images, labels) or, with distillation, (images, labels, teacher maps)."""
    images = torch.from_numpy(np.stack([b[0] for b in batch]))
    labels = torch.from_numpy(np.stack([b[1] for b in batch])).long()
    if len(batch[0]) == 2:
        return images, labels
    return images, labels, torch.from_numpy(np.stack([b[2] for b in batch]))


def load_matching(model: nn.Module, path: str | Path) -> tuple[int, int]:
    """Load the tensors of a weights file whose names and shapes match (encoder -> full net)."""
    state, _ = load_weights(path)
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ValueError(f"{path}: no tensor matches the model being trained")
    model.load_state_dict(matched, strict=False)
    return len(matched), len(own)


class Trainer:
    def __init__(self, config: TrainConfig, device: str = "auto", command: str = "") -> None:
        self.config = config
        self.dist, self.device = init_distributed(device)
        self.command = command or " ".join(sys.argv)
        self.output = Path(config.output)
        self.amp_dtype = autocast_dtype(config.amp, self.device)
        seed_everything(config.seed)

        self.variant = resolve_variant(config.model, config.variant)
        self._build_data()
        self.model, self.train_model = self._build_model()
        self._build_optimisation()
        self._build_loader()

        self.epoch = 0
        self.step = 0
        self.best_miou = -1.0
        self.history: list[dict[str, Any]] = []
        self.train_seconds = 0.0
        self.input_hw: list[int] = []
        self.writer = None
        if not self.dist.main:
            print(
                f"[rank {self.dist.rank}/{self.dist.world_size}] {self.device}: "
                f"{len(self.loader)} batches of {config.batch_size} per epoch",
                flush=True,
            )

    def _build_data(self) -> None:
        """The datasets, the training transform and the distillation targets' source."""
        c = self.config
        self.train_set = build_dataset(
            c.dataset, c.data_root, c.train_split, cache=c.cache, **c.dataset_options
        )
        self.val_set = build_dataset(
            c.dataset, c.data_root, c.val_split, cache=c.cache, **c.dataset_options
        )
        self.label_set = self.train_set.label_set
        self.transform = TrainTransform(
            crop=tuple(c.crop),
            scale=tuple(c.scale),
            flip=c.flip,
            color_jitter=c.color_jitter,
            gridmask=tuple(c.gridmask) if c.gridmask else None,
        )
        self.train_set.transform = self.transform
        self.teacher_targets = None
        if c.distill.teachers:
            # Built (and the teacher files checked) now; their maps are computed in fit(),
            # once resume has vouched for the output folder.
            self.teacher_targets = TeacherTargets(
                c.distill.teachers, self.train_set, c.distill.scales, c.distill.flip
            )
        for dataset in (self.train_set, self.val_set):
            if c.cache:
                self._check_cache(dataset)

    def _build_model(self) -> tuple[nn.Module, nn.Module]:
        """The network on its device, and the module that trains it (DDP across processes)."""
        c = self.config
        model = build_model(c.model, self.variant, self.label_set.num_classes, **c.model_options)
        if c.init:
            n, total = load_matching(model, c.init)
            self.log(f"initialised {n}/{total} tensors from {c.init}")
        model.to(self.device)
        if c.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.dist.world_size > 1 and self.device.type == "cuda" and c.sync_bn:
            # Swaps the BN layers inside ``model`` (same parameters, same state-dict names).
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        train_model: nn.Module = model
        if self.dist.world_size > 1:
            # device_ids names the one GPU of this process; CPU modules must pass None.
            train_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        return model, train_model

    def _build_optimisation(self) -> None:
        """Loss (with class weights), optimiser, gradient scaler, input normalisation."""
        c = self.config
        model = self.model
        weights = None
        if c.loss.class_weights == "enet":
            weights = enet_class_weights(self.train_set.pixel_counts()).to(self.device)
            self.log("class weights: " + " ".join(f"{w:.2f}" for w in weights.tolist()))
        elif c.loss.class_weights != "none":
            raise ValueError(f"class_weights must be 'enet' or 'none', got {c.loss.class_weights}")
        self.criterion = build_loss(
            c.loss.main,
            c.loss.aux,
            c.loss.aux_weight,
            weights,
            c.loss.ohem_thresh,
            c.loss.ohem_min_kept,
            c.loss.relax_kernel,
            c.loss.rmi_radius,
            c.loss.rmi_pool,
            c.loss.rmi_bce_weight,
        ).to(self.device)
        self.distill_loss = SoftTargetCrossEntropy()
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay
        )
        self.scaler = grad_scaler(enabled=self.amp_dtype == torch.float16)
        # ImageNet statistics for every recipe, so backbones can start from ImageNet weights.
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device)
        self.std = torch.tensor(IMAGENET_STD, device=self.device)

    def _build_loader(self) -> None:
        """The sampler and loader, and the steps they make."""
        c = self.config
        self.sampler = None
        if self.dist.world_size > 1:
            self.sampler = torch.utils.data.distributed.DistributedSampler(
                self.train_set,
                self.dist.world_size,
                self.dist.rank,
                shuffle=True,
                seed=c.seed,
                drop_last=True,
            )
        if c.workers > 0 and self.train_set.caching:
            # Decode once here so forked workers share these pages instead of each decoding
            # (and holding) its own copy.
            self.train_set.preload()
        self.loader_resolution = self.transform.resolution
        self.loader = self._make_loader()
        if len(self.loader) == 0:
            raise ValueError(
                f"batch_size {c.batch_size} x {self.dist.world_size} process(es) is larger "
                f"than the {len(self.train_set)} training images"
            )
        steps = len(self.loader)
        if c.max_steps_per_epoch:
            steps = min(steps, c.max_steps_per_epoch)
        self.steps_per_epoch = steps
        self.total_steps = steps * c.epochs

    def log(self, message: str) -> None:
        if self.dist.main:
            print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)

    def _check_cache(self, dataset: SegmentationDataset) -> None:
        need = dataset.cache_bytes_estimate()
        free = available_memory()
        if free is not None and need > CACHE_MEMORY_SHARE * free:
            dataset.set_cache(False)
            self.log(
                f"not caching {dataset.name}: ~{need / 2**30:.1f} GiB decoded, "
                f"{free / 2**30:.1f} GiB free; frames are decoded every epoch"
            )

    def _make_loader(self) -> torch.utils.data.DataLoader:
        c = self.config
        data: torch.utils.data.Dataset = self.train_set
        if self.teacher_targets is not None:
            data = DistillationSet(self.train_set, self.teacher_targets)
        return torch.utils.data.DataLoader(
            data,
            batch_size=c.batch_size,
            shuffle=self.sampler is None,
            sampler=self.sampler,
            num_workers=c.workers,
            collate_fn=collate,
            drop_last=True,
            persistent_workers=c.workers > 0,
            worker_init_fn=_worker_seed,
        )

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best_miou": self.best_miou,
            "history": self.history,
            "train_seconds": self.train_seconds,
            "config": json.dumps(self.config.to_dict()),
        }
        with atomic_write(self.output / CHECKPOINT) as tmp:  # a kill mid-save keeps the last
            torch.save(state, tmp)

    def resume(self) -> bool:
        path = self.output / CHECKPOINT
        if path.is_file():
            # weights_only: a checkpoint is data, never code.
            state = torch.load(path, map_location=self.device, weights_only=True)
        elif (self.output / RESUME_POINT).is_file():
            # A replaced machine kept only the committed resume point: fp16 weights, no momentum.
            path = self.output / RESUME_POINT
            state = read_resume_point(path)
        else:
            return False
        saved = json.loads(state["config"])
        theirs = (
            saved["model"],
            resolve_variant(saved["model"], saved["variant"]),
            saved["dataset"],
        )
        mine = (self.config.model, self.variant, self.config.dataset)
        if theirs != mine:
            raise ValueError(
                f"{path} was written for {'/'.join(theirs)}, not {'/'.join(mine)}; "
                "use another --output or delete it"
            )
        self.model.load_state_dict(state["model"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
        else:
            self.log(
                f"{path.name}: weights rounded to {state['weights']}, "
                "SGD momentum starts again from zero"
            )
        self.epoch = state["epoch"]
        self.step = state["step"]
        self.best_miou = state["best_miou"]
        self.history = state["history"]
        self.train_seconds = state["train_seconds"]
        self.log(f"resumed from {path} at epoch {self.epoch}, best mIoU {self.best_miou:.4f}")
        return True

    def metadata(self, miou: float, iou: np.ndarray) -> WeightsMetadata:
        c = self.config
        return WeightsMetadata(
            model=c.model,
            variant=self.variant,
            num_classes=self.label_set.num_classes,
            dataset=self.label_set.name,
            class_names=list(self.label_set.classes),
            palette=[list(p) for p in self.label_set.palette],
            mean=list(IMAGENET_MEAN),
            std=list(IMAGENET_STD),
            # The size it was validated at, which the pipeline uses as its default.
            input_size=list(c.val_input_size or self.val_set.load(0)[0].shape[:2]),
            model_options=c.model_options,
            training={
                "epoch": self.epoch,
                "epochs": c.epochs,
                "val_miou": round(miou, 5),
                "val_iou": {n: _round(v) for n, v in zip_strict(self.label_set.classes, iou)},
                "val_split": f"{c.dataset}/{c.val_split}",
                "train_seconds": round(self.train_seconds),
                "command": self.command,
                "recipe": c.to_dict(),
                "hardware": hardware(self.device),
                "processes": self.dist.world_size,
                "torch": torch.__version__,
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            },
        )

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        c = self.config
        # Resume (which refuses another model's checkpoint) before writing anything, so a
        # wrong --output never overwrites another run's files.
        self.resume()
        if self.dist.main:
            self.output.mkdir(parents=True, exist_ok=True)
            (self.output / "config.yaml").write_text(_yaml(c.to_dict()))
            self.writer = _summary_writer(self.output)
        if self.teacher_targets is not None:
            if self.dist.main:
                self.teacher_targets.prepare(self.output, self.log)
            if self.dist.world_size > 1:
                dist.barrier()  # the other processes read the maps rank 0 wrote
            if not self.dist.main:
                self.teacher_targets.prepare(self.output, self.log)
        self.log(
            f"training {c.model}/{self.variant} on {self.train_set.name} "
            f"({len(self.train_set)} frames) for {c.epochs} epochs x {self.steps_per_epoch} "
            f"steps, device {self.device}, autocast {self.amp_dtype}, "
            f"world size {self.dist.world_size}"
        )
        while self.epoch < c.epochs:
            start = time.perf_counter()
            loss = self.train_epoch()
            self.epoch += 1
            self.train_seconds += time.perf_counter() - start
            record: dict[str, Any] = {
                "epoch": self.epoch,
                "loss": loss,
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": round(self.train_seconds),
                # what the network saw, so progressive resizing can be checked after the fact
                "input_hw": self.input_hw,
            }
            if self.epoch % c.val_every == 0 or self.epoch == c.epochs:
                record.update(self.validate())
            self.history.append(record)
            if self.writer is not None:
                self.writer.add_scalar("train/epoch_loss", loss, self.epoch)
            if self.dist.main:
                self.save_checkpoint()
                (self.output / "history.json").write_text(json.dumps(self.history, indent=1))
                msg = f"epoch {self.epoch}/{c.epochs} loss {loss:.4f}"
                if "val_miou" in record:
                    msg += f" val mIoU {record['val_miou']:.4f} (best {self.best_miou:.4f})"
                self.log(msg + f" [{self.train_seconds / 60:.1f} min]")
            if self.dist.world_size > 1:
                dist.barrier()
        if self.writer is not None:
            self.writer.close()
        return {"best_miou": self.best_miou, "epochs": self.epoch, "output": str(self.output)}

    def resolution_for(self, epoch: int) -> float:
        factor = 1.0
        for start, value in self.config.progressive or []:
            if epoch >= start:
                factor = value
        return factor

    def train_epoch(self) -> float:
        c = self.config
        self.train_model.train()
        self.transform.resolution = self.resolution_for(self.epoch)
        if self.transform.resolution != self.loader_resolution:
            self.log(f"progressive resizing: resolution x{self.transform.resolution:g}")
            if c.workers > 0:
                # Persistent workers hold a copy of the transform made when they started: new
                # workers are the only way they see the new resolution.
                self.loader = self._make_loader()
            self.loader_resolution = self.transform.resolution
        # Seeded per epoch so a resumed run sees the same augmentations as an unbroken one.
        seed_everything(c.seed * 1000 + self.epoch + self.dist.rank * 100_000)
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
        total, count = 0.0, 0
        bar = self._progress_bar()
        for i, (images, labels, *soft) in enumerate(self.loader):
            if i >= self.steps_per_epoch:
                break
            lr = poly_lr(
                c.lr,
                self.step,
                self.total_steps,
                c.poly_power,
                round(c.warmup_epochs * self.steps_per_epoch),
            )
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.input_hw = list(images.shape[1:3])
            x = normalise(images.to(self.device, non_blocking=True), self.mean, self.std)
            if c.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = labels.to(self.device, non_blocking=True)
            with torch.autocast(
                self.device.type,
                dtype=self.amp_dtype or torch.float32,
                enabled=self.amp_dtype is not None,
            ):
                outputs = self.train_model(x)
            loss = self.criterion(outputs, y)
            if soft:
                logits = as_train_output(outputs).logits
                loss = loss + c.distill.weight * self.distill_loss(
                    logits, soft[0].to(self.device, non_blocking=True)
                )
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {self.step}")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            total += loss.item()
            count += 1
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{lr:.5f}", refresh=False)
            if self.dist.main and (i + 1) % c.log_every == 0:
                if bar is None:
                    self.log(
                        f"  epoch {self.epoch + 1} step {i + 1}/{self.steps_per_epoch} "
                        f"loss {total / count:.4f} lr {lr:.5f}"
                    )
                if self.writer is not None:
                    self.writer.add_scalar("train/loss", loss.item(), self.step)
                    self.writer.add_scalar("train/lr", lr, self.step)
        if bar is not None:
            bar.close()
        if self.dist.world_size > 1:
            # The epoch's loss over every process's batches, not rank 0's alone.
            sums = torch.tensor([total, float(count)], dtype=torch.float64, device=self.device)
            dist.all_reduce(sums)
            total, count = float(sums[0]), int(sums[1])
        return total / max(count, 1)

    def _progress_bar(self) -> Any:
        if not (self.dist.main and self.config.progress_bar):
            return None
        try:
            from tqdm import tqdm
        except ImportError:  # tqdm is an optional extra (train)
            return None
        # disable=None: only on a terminal, so log files keep the plain log lines
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
            leave=False,
            disable=None,
            dynamic_ncols=True,
        )
        if bar.disable:
            bar.close()
            return None
        return bar

    def validate(self) -> dict[str, Any]:
        """Every process scores its share of the frames; the summed confusion matrix decides
        the best model (on all ranks alike), which rank 0 writes."""
        c = self.config
        world = self.dist.world_size
        if world > 1:
            # DDP keeps rank 0's BN statistics; every shard must be scored with the same model.
            for buffer in self.model.buffers():
                dist.broadcast(buffer, 0)
        cm = evaluate(
            self.model,
            self.val_set,
            list(IMAGENET_MEAN),
            list(IMAGENET_STD),
            self.device,
            amp_dtype=self.amp_dtype if c.val_amp else None,
            channels_last=c.channels_last,
            input_size=tuple(c.val_input_size) if c.val_input_size else None,
            indices=range(self.dist.rank, len(self.val_set), world) if world > 1 else None,
        )
        if world > 1:
            matrix = torch.from_numpy(cm.matrix).to(self.device)
            dist.all_reduce(matrix)
            cm.matrix = matrix.cpu().numpy()
        miou, iou = cm.miou(), cm.iou()
        if self.writer is not None:
            self.writer.add_scalar("val/mIoU", miou, self.epoch)
            self.writer.add_scalar("val/pixel_acc", cm.pixel_accuracy(), self.epoch)
            for name, value in zip_strict(self.label_set.classes, iou):
                self.writer.add_scalar(f"val_iou/{name}", np.nan_to_num(value), self.epoch)
        if miou > self.best_miou:
            self.best_miou = miou
            if self.dist.main:
                save_weights(self.output / BEST, self.model.state_dict(), self.metadata(miou, iou))
        if self.epoch == c.epochs and self.dist.main:
            save_weights(self.output / FINAL, self.model.state_dict(), self.metadata(miou, iou))
        return {"val_miou": miou, "val_pixel_acc": cm.pixel_accuracy()}


def _worker_seed(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _round(v: float) -> float | None:
    return None if math.isnan(v) else round(float(v), 5)


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def _summary_writer(output: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra
        return None
    return SummaryWriter(str(output / "tensorboard"))


def available_memory() -> int | None:
    """MemAvailable in bytes (Linux), or None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} threads"
