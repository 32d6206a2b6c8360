"""The training loop on a tiny CamVid-layout tree: learning, files, resume, progressive resizing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from training_helpers import tiny_recipe

from seg_ros.tools.train import main as train_main
from seg_ros.training import trainer as trainer_module
from seg_ros.training.config import TrainConfig
from seg_ros.training.resume_point import (
    RESUME_POINT,
    ResumePointError,
    read_resume_point,
    write_resume_point,
)
from seg_ros.training.synthetic import write_camvid
from seg_ros.training.trainer import BEST, CHECKPOINT, Trainer, autocast_dtype
from seg_ros.weights import load_model

CHECKPOINT_KEYS = {
    "model",
    "optimizer",
    "scaler",
    "epoch",
    "step",
    "best_miou",
    "history",
    "train_seconds",
    "config",
}


@pytest.fixture(scope="module")
def camvid_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_camvid(tmp_path_factory.mktemp("camvid"), {"train": 8, "val": 2})


def tiny_config(root: Path, output: Path, **overrides: object) -> TrainConfig:
    return TrainConfig.from_dict(tiny_recipe(root, output, **overrides))


def test_two_epochs_lower_the_loss_and_write_loadable_files(
    camvid_root: Path, tmp_path: Path
) -> None:
    trainer = Trainer(tiny_config(camvid_root, tmp_path / "run"), device="cpu")
    result = trainer.fit()
    history = trainer.history
    assert [r["epoch"] for r in history] == [1, 2]
    assert history[1]["loss"] < history[0]["loss"]
    assert result["epochs"] == 2 and 0 <= result["best_miou"] <= 1

    model, meta = load_model(tmp_path / "run" / BEST, "fplnet", "encoder")
    assert meta.dataset == "camvid" and meta.num_classes == 11
    assert meta.input_size == [32, 48]
    assert meta.training["val_miou"] == pytest.approx(result["best_miou"], abs=1e-5)
    assert model(torch.zeros(1, 3, 32, 48)).shape == (1, 11, 32, 48)

    state = torch.load(tmp_path / "run" / CHECKPOINT, map_location="cpu", weights_only=True)
    assert set(state) == CHECKPOINT_KEYS
    assert state["epoch"] == 2 and state["step"] == 8  # 8 frames / batch 2 x 2 epochs
    assert (tmp_path / "run" / "history.json").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()


class KilledError(Exception):
    pass


def killed_in_epoch_two(config: TrainConfig, monkeypatch: pytest.MonkeyPatch) -> Trainer:
    """A run whose process dies after epoch 1's checkpoint."""
    trainer = Trainer(config, device="cpu")
    train_epoch = Trainer.train_epoch

    def dies_in_epoch_two(self: Trainer) -> float:
        if self.epoch == 1:
            raise KilledError
        return train_epoch(self)

    monkeypatch.setattr(Trainer, "train_epoch", dies_in_epoch_two)
    with pytest.raises(KilledError):
        trainer.fit()
    monkeypatch.undo()
    return trainer


def test_resume_after_a_kill_continues_where_it_stopped(
    camvid_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unbroken = Trainer(tiny_config(camvid_root, tmp_path / "unbroken"), device="cpu")
    unbroken.fit()

    config = tiny_config(camvid_root, tmp_path / "killed")
    first = killed_in_epoch_two(config, monkeypatch)
    train_epoch = Trainer.train_epoch
    state = torch.load(tmp_path / "killed" / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 4

    second = Trainer(config, device="cpu")
    calls = []
    monkeypatch.setattr(
        Trainer, "train_epoch", lambda self: calls.append(self.epoch) or train_epoch(self)
    )
    second.fit()
    assert calls == [1]  # resumed: only epoch 2 was trained again, not a restart
    assert second.step == 8 and len(second.history) == 2
    assert second.history[0] == first.history[0]
    # same augmentations and order as a run that never stopped
    assert second.history[1]["loss"] == pytest.approx(unbroken.history[1]["loss"], rel=1e-5)
    for name, value in unbroken.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("weights", ["fp16", "int8"])
def test_a_resume_point_carries_a_run_onto_a_replaced_machine(
    camvid_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights: str
) -> None:
    first = killed_in_epoch_two(tiny_config(camvid_root, tmp_path / "old_machine"), monkeypatch)
    train_epoch = Trainer.train_epoch
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(camvid_root, tmp_path / "old_machine")))
    no_run = ["--output", str(tmp_path / "no_run"), "--write-resume-point"]
    assert train_main([str(recipe), *no_run]) == 2  # no last.pt there: nothing to write
    flag = ["--write-resume-point"] + ([] if weights == "fp16" else [weights])
    assert train_main([str(recipe), *flag]) == 0
    point = tmp_path / "old_machine" / RESUME_POINT
    # Against the fp32 weights that last.pt holds beside SGD's momentum: fp16 half of them,
    # int8 a quarter (plus a scale per output channel and the small tensors in fp16).
    weights_bytes = sum(t.numel() * 4 for t in first.model.state_dict().values())
    assert point.stat().st_size < {"fp16": 0.6, "int8": 0.35}[weights] * weights_bytes

    new_machine = tmp_path / "new_machine"
    new_machine.mkdir()
    shutil.copy(point, new_machine / RESUME_POINT)  # all that survived: no last.pt
    second = Trainer(tiny_config(camvid_root, new_machine), device="cpu")
    started_from: list[dict[str, torch.Tensor]] = []

    def records_its_start(self: Trainer) -> float:
        started_from.append({k: v.clone() for k, v in self.model.state_dict().items()})
        return train_epoch(self)

    monkeypatch.setattr(Trainer, "train_epoch", records_its_start)
    second.fit()
    assert len(started_from) == 1  # resumed at epoch 1 of 2, not restarted
    assert second.step == 8 and second.history[0] == first.history[0]
    for name, value in first.model.state_dict().items():  # epoch 1's weights, rounded
        start = started_from[0][name]
        if weights == "int8" and value.dim() >= 2:
            # within half a step of its output channel's int8 grid
            step = value.reshape(len(value), -1).abs().amax(1) / 127
            error = (start - value).reshape(len(value), -1).abs().amax(1)
            assert (error <= step / 2 * 1.001 + 1e-12).all(), name
        else:
            torch.testing.assert_close(start, value, rtol=1e-3, atol=1e-4)
    assert (new_machine / CHECKPOINT).is_file()  # from here on it resumes as usual


def test_a_first_format_resume_point_is_still_read(tmp_path: Path) -> None:
    # The fp16 files written before int8 existed (format /1, no "weights" key) stay readable.
    from safetensors.torch import save_file

    progress = {"epoch": "3", "step": "12", "best_miou": "-1.0", "train_seconds": "9.5"}
    metadata = {"format": "seg_ros-resume-point/1", "config": "{}", "history": "[]", **progress}
    save_file({"w": torch.full((2, 3), 0.5).half()}, str(tmp_path / RESUME_POINT), metadata)
    state = read_resume_point(tmp_path / RESUME_POINT)
    assert state["weights"] == "fp16" and state["epoch"] == 3 and state["history"] == []
    assert state["model"]["w"].dtype == torch.float32
    assert torch.equal(state["model"]["w"], torch.full((2, 3), 0.5))


def test_a_resume_point_never_replaces_another_file_and_a_damaged_one_is_named(
    camvid_root: Path, tmp_path: Path
) -> None:
    Trainer(tiny_config(camvid_root, tmp_path, epochs=1), device="cpu").fit()
    theirs = tmp_path / "notes.safetensors"
    theirs.write_text("a user's file")
    with pytest.raises(ResumePointError, match="not a seg_ros resume point; not replacing"):
        write_resume_point(tmp_path / CHECKPOINT, theirs)
    assert theirs.read_text() == "a user's file"

    point = tmp_path / RESUME_POINT
    write_resume_point(tmp_path / CHECKPOINT, point)
    write_resume_point(tmp_path / CHECKPOINT, point)  # its own file: replaced
    data = point.read_bytes()
    point.write_bytes(data[: len(data) // 2])
    (tmp_path / CHECKPOINT).unlink()
    with pytest.raises(ResumePointError, match=r"resume_point\.safetensors: corrupt or truncated"):
        Trainer(tiny_config(camvid_root, tmp_path, epochs=2), device="cpu").fit()


def test_resume_refuses_a_checkpoint_of_another_model(camvid_root: Path, tmp_path: Path) -> None:
    Trainer(tiny_config(camvid_root, tmp_path, epochs=1), device="cpu").fit()
    other = Trainer(tiny_config(camvid_root, tmp_path, variant="full"), device="cpu")
    with pytest.raises(ValueError, match="was written for fplnet/encoder"):
        other.fit()
    # refused before writing: the first run's files are untouched
    assert "variant: encoder" in (tmp_path / "config.yaml").read_text()


def test_progressive_resizing_reaches_dataloader_workers(camvid_root: Path, tmp_path: Path) -> None:
    config = tiny_config(
        camvid_root,
        tmp_path,
        progressive=[[0, 0.5], [1, 1.0]],
        workers=1,
        val_every=2,
        loss={"main": ["label_relaxation"]},
    )
    trainer = Trainer(config, device="cpu")
    assert [trainer.resolution_for(e) for e in (0, 1, 5)] == [0.5, 1.0, 1.0]
    trainer.fit()
    # a persistent worker keeps its own copy of the transform, so this only holds if the
    # loader is rebuilt when the resolution changes
    assert [r["input_hw"] for r in trainer.history] == [[16, 24], [32, 48]]
    assert "val_miou" not in trainer.history[0] and "val_miou" in trainer.history[1]


def test_yaml_off_means_amp_off() -> None:
    assert TrainConfig.from_dict({"amp": False}).amp == "off"
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="unknown loss option"):
        TrainConfig.from_dict({"loss": {"mian": ["ce"]}})


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu avx2 avx512f avx512_vnni", None),  # bf16 emulated: slower than fp32
        ("fpu avx2 avx512f avx512_bf16", torch.bfloat16),  # Zen 4, Cooper Lake
        ("fpu avx512f amx_bf16 amx_tile", torch.bfloat16),  # Sapphire Rapids
    ],
)
def test_amp_auto_picks_bf16_where_the_cpu_has_bf16_instructions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: str, expected: torch.dtype | None
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(trainer_module, "CPUINFO", cpuinfo)
    assert autocast_dtype("auto", torch.device("cpu")) is expected
    assert autocast_dtype("off", torch.device("cpu")) is None
