"""The model shipped inside the package: found by name, used wherever no --weights is given."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import pinpoint
from pinpoint import checkpoints
from pinpoint.checkpoints import PRETRAINED_PATH, load_checkpoint, weights_path
from pinpoint.cli import main
from pinpoint.codecs.heatmap import encode
from pinpoint.config import TrainConfig
from pinpoint.errors import InputError
from pinpoint.train import train

TARGET = (40.3, 25.7)  # x, y in pixels


def sky_with_a_target(size: tuple[int, int] = (64, 96), seed: int = 0) -> np.ndarray:
    """A smooth, faintly noisy sky with one small bright target at TARGET: what the model is for."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.35, 0.45, size[0])[:, None] * np.ones(size)
    image = rows + 0.01 * rng.standard_normal(size) + 0.4 * encode(np.array([TARGET]), size, 1.0)
    return np.clip(image, 0, 1).astype(np.float32)


def test_the_package_ships_a_small_model() -> None:
    assert PRETRAINED_PATH.is_file() and PRETRAINED_PATH.stat().st_size <= 2_000_000
    ckpt = load_checkpoint(PRETRAINED_PATH)
    assert ckpt["model_name"] == TrainConfig.model  # the default network, so --init pretrained fine-tunes it as is


def test_the_shipped_export_is_the_shipped_checkpoint_and_runs_where_it_is_fastest() -> None:
    from pinpoint.checkpoints import PRETRAINED_ONNX
    from pinpoint.predict import Detector

    pytest.importorskip("onnxruntime")
    fast, eager = pinpoint.load(device="cpu"), Detector.load(device="cpu")
    assert fast.backend.name == "onnxruntime" and eager.model is not None  # load() and detect: the export
    assert fast.settings == eager.settings
    # the same network: the same heatmap to float precision, the same points
    image = sky_with_a_target((96, 128), seed=3)
    (p_fast, h_fast), (p_eager, h_eager) = fast.predict_with_heatmap(image), eager.predict_with_heatmap(image)
    assert np.abs(h_fast - h_eager).max() < 1e-4
    np.testing.assert_allclose(p_fast.xy, p_eager.xy, atol=1e-3)
    assert PRETRAINED_ONNX.stat().st_size <= 2_000_000
    # on a GPU, or told to, the checkpoint runs in PyTorch
    assert Detector.load(device="cpu", fast=False).model is not None


def test_no_path_and_the_name_pretrained_mean_the_shipped_model() -> None:
    assert weights_path(None) == weights_path("") == weights_path("pretrained") == PRETRAINED_PATH
    assert weights_path("runs/x/best.pt") == Path("runs/x/best.pt")
    assert weights_path("./pretrained") == Path("pretrained")  # a file of that name, reached by its path


def test_a_missing_shipped_model_is_one_line(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(checkpoints, "PRETRAINED_PATH", tmp_path / "gone.pt")
    with pytest.raises(InputError, match="missing from this installation"):
        pinpoint.load()


def test_load_without_a_path_finds_a_target_on_a_sky() -> None:
    points = pinpoint.load(device="cpu").predict(sky_with_a_target())
    assert len(points) >= 1
    assert np.hypot(*(points.xy[np.argmax(points.score)] - TARGET)) <= 1.0


def test_detect_with_nothing_but_a_source_prints_the_points(tmp_path: Path, capsys) -> None:
    image = tmp_path / "sky.png"
    cv2.imwrite(str(image), np.round(sky_with_a_target() * 255).astype(np.uint8))
    assert main(["detect", "--source", str(image), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out)))  # standard output is the CSV alone
    assert rows and {row["name"] for row in rows} == {"sky"}
    best = max(rows, key=lambda row: float(row["score"]))
    assert np.hypot(float(best["x"]) - TARGET[0], float(best["y"]) - TARGET[1]) <= 1.0
    assert "pinpoint detect:" in err and list(tmp_path.iterdir()) == [image]  # nothing written beside the image


def test_train_init_pretrained_starts_from_the_shipped_weights(spot_data: Path, tmp_path: Path) -> None:
    run = train(TrainConfig(data=str(spot_data), split=str(spot_data / "train.txt"), epochs=1, lr=1e-9, init="pretrained",
                            out=str(tmp_path / "run"), progress=False, device="cpu"))
    tuned, shipped = load_checkpoint(run / "best.pt")["model"], load_checkpoint(PRETRAINED_PATH)["model"]
    weights = [k for k, v in shipped.items() if v.is_floating_point() and "running" not in k]
    assert weights and all(torch.allclose(tuned[k], shipped[k], atol=1e-5) for k in weights)
    # and from scratch they are not the shipped ones
    scratch = train(TrainConfig(data=str(spot_data), split=str(spot_data / "train.txt"), epochs=1, lr=1e-9,
                                out=str(tmp_path / "scratch"), progress=False, device="cpu"))
    assert not torch.allclose(load_checkpoint(scratch / "best.pt")["model"][weights[0]], shipped[weights[0]], atol=1e-5)


@pytest.mark.parametrize("flags, weights", [([], "pretrained"), (["--weights", "w.pt"], "w.pt"), (["--no-suggestions"], None)])
def test_annotate_suggests_with_the_shipped_model_unless_told(flags, weights, monkeypatch, tmp_path: Path) -> None:
    import pinpoint.annotate

    seen = {}
    monkeypatch.setattr(pinpoint.annotate, "serve", lambda data_dir, weights, **kw: seen.update(weights=weights))
    assert main(["annotate", str(tmp_path), *flags]) == 0
    assert seen == {"weights": weights}


def test_export_without_weights_writes_the_pretrained_model_here(monkeypatch, tmp_path: Path) -> None:
    from pinpoint.predict import Detector

    monkeypatch.chdir(tmp_path)
    shipped = PRETRAINED_PATH.with_suffix(".onnx").read_bytes()
    assert main(["export"]) == 0
    assert (tmp_path / "pretrained.onnx").is_file()
    assert PRETRAINED_PATH.with_suffix(".onnx").read_bytes() == shipped  # never into the installed package
    image = sky_with_a_target()
    onnx, torch_points = pinpoint.load("pretrained.onnx").predict(image), Detector.load(device="cpu").predict(image)
    assert np.allclose(onnx.xy, torch_points.xy, atol=1e-3) and np.allclose(onnx.score, torch_points.score, atol=1e-3)
