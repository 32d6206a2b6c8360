"""The training loop on a tiny CamVid-layout tree: learning, files, resume, progressive resizing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_helpers import tiny_recipe

from seg_ros.training.config import TrainConfig
from seg_ros.training.synthetic import write_camvid
from seg_ros.training.trainer import BEST, CHECKPOINT, Trainer
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


def test_resume_after_a_kill_continues_where_it_stopped(
    camvid_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unbroken = Trainer(tiny_config(camvid_root, tmp_path / "unbroken"), device="cpu")
    unbroken.fit()

    config = tiny_config(camvid_root, tmp_path / "killed")
    first = Trainer(config, device="cpu")
    train_epoch = Trainer.train_epoch

    def dies_in_epoch_two(self: Trainer) -> float:
        if self.epoch == 1:
            raise KilledError  # the process dies after epoch 1's checkpoint
        return train_epoch(self)

    monkeypatch.setattr(Trainer, "train_epoch", dies_in_epoch_two)
    with pytest.raises(KilledError):
        first.fit()
    monkeypatch.undo()
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
