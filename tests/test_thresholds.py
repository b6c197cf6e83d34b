"""The threshold step that ends training (train.store_thresholds): streamed in bounded memory, the
--tta cut only for a run trained with --tta, and a run stopped during the step finished by --resume."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pinpoint.checkpoints import load_checkpoint
from pinpoint.cli import main
from pinpoint.config import TrainConfig
from pinpoint.data.dataset import load_samples
from pinpoint.metrics import best_threshold
from pinpoint.predict import Detector
from pinpoint.train import add_tta_threshold, ground_truth, train

TESTS = Path(__file__).resolve().parent
QUICK = dict(model="pinnet-s2d-gated", img_size=0, crop_size=64, sigma=1.5, epochs=8, batch=8, lr=3e-3, rot90=False,
             intensity_jitter=0.0, progress=False)


def quick_run(spot_data: Path, out: Path, **settings) -> Path:
    return train(TrainConfig(data=str(spot_data), split=str(spot_data / "train.txt"), val_split=str(spot_data / "val.txt"),
                             out=str(out), **{**QUICK, **settings}))


@pytest.fixture(scope="module")
def runs(spot_data: Path, tmp_path_factory) -> dict[str, Path]:
    """One run trained as by default and one with --tta, otherwise alike."""
    return {"plain": quick_run(spot_data, tmp_path_factory.mktemp("plain")),
            "tta": quick_run(spot_data, tmp_path_factory.mktemp("tta"), tta=True)}


def cut_images(spot_data: Path):
    return load_samples(spot_data, spot_data / "train.txt") + load_samples(spot_data, spot_data / "val.txt")


def test_a_run_trained_with_tta_carries_both_cuts_from_the_same_passes(runs: dict[str, Path], spot_data: Path) -> None:
    images = cut_images(spot_data)
    for averaged in (False, True):
        detector = Detector.load(runs["tta"] / "best.pt", device="cpu")
        detector.settings["tta"] = averaged  # each cut is the one its own heatmaps give, on every image at once
        found = detector.predict_batch([s.image for s in images], conf=0.01)
        assert detector.threshold == best_threshold(found, ground_truth(images), 3.0, smooth=0.1).threshold
    assert load_checkpoint(runs["tta"] / "best.pt")["inference"]["tta"]  # --tta: the checkpoint's default too


def test_a_run_trained_without_tta_has_no_tta_cut_and_detect_says_so(runs: dict[str, Path], spot_data: Path,
                                                                      capsys) -> None:
    inference = load_checkpoint(runs["plain"] / "best.pt")["inference"]
    assert not inference["tta"] and "tta_threshold" not in inference and 0 < inference["threshold"] < 1
    image = sorted((spot_data / "images").iterdir())[0]
    args = ["detect", "--weights", str(runs["plain"] / "best.pt"), "--source", str(image), "--no-progress", "--device", "cpu"]
    assert main([*args, "--tta"]) == 0
    assert "--tta: this model's run cut no threshold for averaged heatmaps" in capsys.readouterr().err
    for more in ([], ["--tta", "--conf", "0.3"]):  # without --tta, or with a threshold given: nothing to say
        assert main([*args, *more]) == 0
        assert "warning" not in capsys.readouterr().err


def test_a_tta_cut_is_added_to_a_finished_run_as_training_with_tta_makes_it(runs: dict[str, Path], spot_data: Path,
                                                                           tmp_path: Path) -> None:
    run = Path(shutil.copytree(runs["plain"], tmp_path / "run"))
    add_tta_threshold(run)
    inference = load_checkpoint(run / "best.pt")["inference"]
    assert not inference["tta"] and inference["threshold"] == load_checkpoint(runs["plain"] / "best.pt")["inference"]["threshold"]
    detector = Detector.load(run / "best.pt", device="cpu")
    detector.settings["tta"] = True
    images = cut_images(spot_data)
    found = detector.predict_batch([s.image for s in images], conf=0.01)
    assert inference["tta_threshold"] == best_threshold(found, ground_truth(images), 3.0, smooth=0.1).threshold


def test_a_run_stopped_in_the_threshold_step_is_usable_and_resume_finishes_it(spot_data: Path, tmp_path: Path,
                                                                               monkeypatch, capsys) -> None:
    import pinpoint.train

    run = tmp_path / "run"
    args = ["train", "--data", str(spot_data), "--split", str(spot_data / "train.txt"), "--val-split",
            str(spot_data / "val.txt"), "--epochs", "6", "--lr", "3e-3", "--crop-size", "64", "--sigma", "1.5",
            "--out", str(run), "--no-progress"]

    def stopped(path, samples, *args):  # Ctrl+C a few images into the step
        detector = Detector.load(path, device="cpu")
        for sample in samples[:3]:
            detector.predict(sample.image)
        raise KeyboardInterrupt

    monkeypatch.setattr(pinpoint.train, "store_thresholds", stopped)
    assert main(args) == 130
    trained = load_checkpoint(run / "last.pt")
    assert trained["epoch"] == 6
    Detector.load(run / "best.pt", device="cpu")  # usable: the validation's threshold
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "epoch 6/6" not in out and "chosen on 42 images" in out  # no epoch again: the step alone
    with open(run / "log.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
    after = load_checkpoint(run / "last.pt")
    assert all(torch.equal(after["model"][k], v) for k, v in trained["model"].items())
    images = cut_images(spot_data)
    found = Detector.load(run / "best.pt", device="cpu").predict_batch([s.image for s in images], conf=0.01)
    stored = load_checkpoint(run / "best.pt")["inference"]["threshold"]
    assert stored == best_threshold(found, ground_truth(images), 3.0, smooth=0.1).threshold


MEMORY_PROBE = """
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, {tests!r})
from conftest import random_checkpoint
from pinpoint.config import TrainConfig
from pinpoint.data.dataset import Sample
from pinpoint.train import store_thresholds

def status(key):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key + ":"))
    return int(line.split()[1]) / 1024

checkpoint = random_checkpoint(Path({folder!r}) / "model.pt", "pinnet-s2d-gated")
rng = np.random.default_rng(0)
frames = []
for i in range({frames}):
    image = (0.3 + 0.02 * rng.standard_normal((512, 640))).astype(np.float32)
    image[200:203, 300 + i % 100:303 + i % 100] = 0.9
    frames.append(Sample(f"f{{i}}", image, np.array([[301.0 + i % 100, 201.0]]), Path("f.png")))
torch.set_num_threads(1)
store_thresholds(checkpoint, frames[:2], TrainConfig(progress=False), torch.device("cpu"))  # warm: the model's own memory
Path("/proc/self/clear_refs").write_text("5")
before = status("VmRSS")
store_thresholds(checkpoint, frames, TrainConfig(progress=False), torch.device("cpu"))
print(status("VmHWM") - before)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads and resets the peak resident set in /proc (Linux)")
def test_the_threshold_step_stays_in_bounded_memory(tmp_path: Path) -> None:
    """200 frames of 640 x 512 (260 MB of data): the step adds the memory of one frame's pass, not of 200."""
    code = MEMORY_PROBE.format(tests=str(TESTS), folder=str(tmp_path), frames=200)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    added_mb = float(result.stdout.split()[-1])
    assert added_mb < 300, added_mb
