"""seg-train under torchrun: two CPU processes with the gloo backend on a tiny dataset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import yaml
from training_helpers import tiny_recipe

from seg_ros.paths import SOURCE_ROOT
from seg_ros.training.synthetic import write_camvid
from seg_ros.training.trainer import BEST, CHECKPOINT
from seg_ros.weights import load_model

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch built without gloo"
)


def test_torchrun_two_processes_gloo(tmp_path: Path) -> None:
    root = write_camvid(tmp_path / "camvid", {"train": 8, "val": 3})
    recipe = tmp_path / "tiny.yaml"
    # Its stderr is a pipe, so progress_bar=False changes nothing here.
    recipe.write_text(yaml.safe_dump(tiny_recipe(root, tmp_path / "run", log_every=1)))
    # The whole environment goes through: the venv's ROS bootstrap re-executes Python with
    # LD_LIBRARY_PATH, which the children must inherit.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "-m", "seg_ros.tools.train", str(recipe)]
    command += ["--device", "cpu", "--threads", "1"]
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]

    assert "[rank 1/2] cpu: 2 batches of 2 per epoch" in output  # the second rank ran
    assert "world size 2" in output
    assert output.count("best val mIoU") == 1  # rank 0 alone reports and writes
    # 8 frames shared by 2 processes of batch 2: 2 steps an epoch (one process takes 4)
    state = torch.load(tmp_path / "run" / CHECKPOINT, map_location="cpu", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 4
    assert all("val_miou" in r for r in state["history"])
    model, meta = load_model(tmp_path / "run" / BEST, "fplnet", "encoder")
    assert meta.training["processes"] == 2
    assert model(torch.zeros(1, 3, 32, 48)).shape == (1, 11, 32, 48)
