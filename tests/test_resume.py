"""A training killed with SIGKILL in the middle of an epoch resumes to the very weights of an uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pinpoint.checkpoints import load_checkpoint
from pinpoint.cli import main
from pinpoint.config import TrainConfig
from pinpoint.train import autocast_dtype, train

SRC = Path(__file__).resolve().parents[1] / "src"
# 20 training images, batch 4: 5 batches per epoch, a resumable last.pt after batches 2 and 4
SETTINGS = dict(model="heatmap", img_size=0, crop_size=32, sigma=1.5, loss="focal", epochs=2, batch=4, lr=3e-3,
                lr_step=1, lr_gamma=0.5, device="cpu", workers=0, progress=False, deterministic=True, save_every_steps=2)
KILL_AT = (1, 2)  # (epochs done, batches done in the next one) of the checkpoint after which the run is killed

# Runs the CLI, but stops dead after writing the mid-epoch checkpoint KILL_AT, so that the test can
# SIGKILL a run that is certainly in the middle of an epoch (a timed kill could land anywhere).
PAUSING_CLI = """
import sys, time
from pathlib import Path
import pinpoint.train
from pinpoint.cli import main

write = pinpoint.train.save_checkpoint

def save_then_pause(ckpt, path):
    write(ckpt, path)
    if (ckpt["epoch"], ckpt.get("step")) == ({epoch}, {step}):
        Path({marker!r}).write_text("paused")
        time.sleep(600)

pinpoint.train.save_checkpoint = save_then_pause
sys.exit(main(sys.argv[1:]))
"""


def cli_args(cfg: TrainConfig) -> list[str]:
    return ["train", "--data", cfg.data, "--split", cfg.split, "--val-split", cfg.val_split, "--model", cfg.model,
            "--img-size", str(cfg.img_size), "--crop-size", str(cfg.crop_size), "--sigma", str(cfg.sigma), "--loss", cfg.loss,
            "--epochs", str(cfg.epochs), "--batch", str(cfg.batch), "--lr", str(cfg.lr), "--lr-step", str(cfg.lr_step),
            "--lr-gamma", str(cfg.lr_gamma), "--device", cfg.device, "--deterministic",
            "--save-every-steps", str(cfg.save_every_steps), "--ema", str(cfg.ema), "--out", cfg.out, "--no-progress"]


def read_log(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(ema: float, spot_data: Path, tmp_path: Path, monkeypatch,
                                                                   capsys) -> None:
    settings = dict(SETTINGS, ema=ema)
    split = tmp_path / "train20.txt"
    split.write_text("\n".join((spot_data / "train.txt").read_text().split()[:20]) + "\n")
    data = dict(data=str(spot_data), split=str(split), val_split=str(spot_data / "val.txt"))
    reference = train(TrainConfig(**data, **settings, out=str(tmp_path / "reference")))

    run, marker = tmp_path / "killed", tmp_path / "paused"
    script = PAUSING_CLI.format(epoch=KILL_AT[0], step=KILL_AT[1], marker=str(marker))
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", script, *cli_args(TrainConfig(**data, **settings, out=str(run)))],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "the training never reached the mid-epoch checkpoint"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.stderr.close()

    stopped = load_checkpoint(run / "last.pt")
    assert (stopped["epoch"], stopped["step"]) == KILL_AT
    assert [row["epoch"] for row in stopped["history"]] == [1]
    steps = []
    adam_step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: steps.append(1) or adam_step(self, *a, **k))
    assert main(["train", "--resume", str(run), "--no-progress", "--device", "cpu"]) == 0
    assert "continuing after epoch 1, batch 2" in capsys.readouterr().out
    assert len(steps) == 5 - 2  # only the batches the killed run had not done

    expected = load_checkpoint(reference / "last.pt")
    resumed = load_checkpoint(run / "last.pt")
    assert (resumed["epoch"], resumed["step"]) == (2, 0)
    for weights in ("model", "trained_model") if ema else ("model",):  # with ema, "model" is the average
        for key, value in expected[weights].items():
            assert torch.equal(resumed[weights][key], value), (weights, key)
    if ema:
        assert int(resumed["ema"]["n_averaged"]) == 2 * 5
        assert any(not torch.equal(resumed["model"][k], v) for k, v in resumed["trained_model"].items())
    for key, value in expected["optimizer"]["state"].items():
        assert all(torch.equal(resumed["optimizer"]["state"][key][name], v) for name, v in value.items())
    columns = ("epoch", "lr", "train_loss", "val_loss", "val_f1", "val_ap", "val_threshold")
    assert [[row[c] for c in columns] for row in read_log(run)] == [[row[c] for c in columns] for row in read_log(reference)]
    best = load_checkpoint(run / "best.pt")
    assert best["epoch"] == load_checkpoint(reference / "best.pt")["epoch"]
    assert not list(run.glob(".*tmp*")), "temporary files left behind"


def test_resume_needs_a_last_checkpoint(tmp_path: Path, capsys) -> None:
    assert main(["train", "--resume", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "last.pt" in err
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    assert main(["train", "--resume", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read checkpoint" in err


def test_train_without_data_or_resume_is_a_clear_error(capsys) -> None:
    assert main(["train", "--epochs", "1"]) == 2
    assert "--data" in capsys.readouterr().err


def test_a_finished_run_resumes_to_itself(spot_data: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(data=str(spot_data), split=str(spot_data / "val.txt"), val_fraction=0.0,
                      **{**SETTINGS, "epochs": 1, "save_every_steps": 0}, out=str(tmp_path))
    train(cfg)
    before = load_checkpoint(tmp_path / "last.pt")
    assert main(["train", "--resume", str(tmp_path), "--no-progress"]) == 0
    after = load_checkpoint(tmp_path / "last.pt")
    assert all(torch.equal(after["model"][k], v) for k, v in before["model"].items())


def test_mixed_precision_choices_on_the_cpu() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("off", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="--amp fp16"):
        autocast_dtype("fp16", cpu)


def test_bf16_autocast_trains_on_the_cpu(spot_data: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(data=str(spot_data), split=str(spot_data / "val.txt"), val_fraction=0.0, amp="bf16",
                      **{**SETTINGS, "epochs": 1, "save_every_steps": 0, "deterministic": False}, out=str(tmp_path))
    train(cfg)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert all(v.dtype in (torch.float32, torch.int64) for v in ckpt["model"].values())  # weights stay fp32
    assert torch.isfinite(torch.tensor(ckpt["history"][0]["train_loss"]))
