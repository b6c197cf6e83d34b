"""A short training on synthetic spots: the loss falls, the schedule steps, the checkpoint alone finds the targets."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import pinpoint
from pinpoint.checkpoints import load_checkpoint
from pinpoint.config import TrainConfig
from pinpoint.errors import InputError
from pinpoint.evaluate import evaluate_dataset
from pinpoint.train import ground_truth, split_stems, train


@pytest.fixture(scope="module")
def heatmap_run(spot_data: Path, tmp_path_factory) -> Path:
    cfg = TrainConfig(data=str(spot_data), split=str(spot_data / "train.txt"), val_split=str(spot_data / "val.txt"),
                      out=str(tmp_path_factory.mktemp("run")), model="pinnet-s2d-gated", img_size=0, crop_size=64, sigma=1.5,
                      loss="focal", epochs=15, batch=8, lr=3e-3, schedule="step", lr_step=10, lr_gamma=0.1,
                      rot90=False, intensity_jitter=0.0, progress=False)
    return train(cfg)


def read_log(run: Path) -> list[dict[str, float]]:
    with open(run / "log.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_training_lowers_the_loss_and_writes_its_outputs(heatmap_run: Path) -> None:
    log = read_log(heatmap_run)
    assert len(log) == 15
    assert log[-1]["train_loss"] < 0.5 * log[0]["train_loss"]
    assert log[-1]["val_loss"] < log[0]["val_loss"]
    for name in ("best.pt", "last.pt", "log.csv", "loss.png", "config.json"):
        assert (heatmap_run / name).stat().st_size > 0
    assert not list(heatmap_run.glob(".*tmp*")), "temporary files left behind"


def test_step_schedule_really_steps(heatmap_run: Path) -> None:
    lrs = [row["lr"] for row in read_log(heatmap_run)]
    assert lrs[0] == pytest.approx(3e-3) and lrs[9] == pytest.approx(3e-3)
    assert lrs[10] == pytest.approx(3e-4) and lrs[-1] == pytest.approx(3e-4)


def test_checkpoint_alone_finds_the_planted_targets(heatmap_run: Path, spot_data: Path) -> None:
    ckpt = load_checkpoint(heatmap_run / "best.pt")
    assert ckpt["model_name"] == "pinnet-s2d-gated" and ckpt["config"]["sigma"] == 1.5
    assert 0.01 <= ckpt["inference"]["threshold"] <= 1.0  # cut on the training and validation images
    scores = evaluate_dataset(spot_data, spot_data / "test.txt", weights=str(heatmap_run / "best.pt"), distances=(3.0,), device="cpu")[3.0]
    assert scores.targets > 0
    assert scores.Pd >= 0.9 and scores.precision >= 0.9
    assert scores.loc_error_px < 0.5


def test_python_api_predicts_on_arrays_and_paths(heatmap_run: Path, spot_data: Path) -> None:
    detector = pinpoint.load(heatmap_run / "best.pt", device="cpu")
    path = sorted((spot_data / "images").iterdir())[-1]
    from_path = detector.predict(path)
    import cv2

    from_array = detector.predict(cv2.imread(str(path)))  # BGR uint8
    assert len(from_path) >= 1
    np.testing.assert_allclose(from_path.xy, from_array.xy, atol=1e-6)
    assert from_path.image_size == (64, 64)
    assert (from_path.score >= detector.threshold).all()


def test_regression_model_trains(spot_data: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(data=str(spot_data), split=str(spot_data / "train.txt"), val_split=str(spot_data / "val.txt"),
                      out=str(tmp_path), model="regression", img_size=64, epochs=6, batch=8, lr=3e-3, progress=False)
    run = train(cfg)
    log = read_log(run)
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    points = pinpoint.load(run / "best.pt", device="cpu").predict(sorted((spot_data / "images").iterdir())[0])
    assert len(points) == 1 and points.image_size == (64, 64)


def test_validation_is_carved_from_training_when_not_given(spot_data: Path) -> None:
    cfg = TrainConfig(data=str(spot_data), split=str(spot_data / "train.txt"), val_fraction=0.25, seed=3)
    train_stems, val_stems = split_stems(cfg)
    assert len(val_stems) == 9 and len(train_stems) == 27
    assert not set(train_stems) & set(val_stems)
    assert split_stems(cfg) == (train_stems, val_stems)  # seeded


def test_view_averaging_is_exact_for_a_symmetric_scene_and_switchable(heatmap_run: Path, spot_data: Path) -> None:
    from pinpoint.detect import make_detector

    plain = make_detector(str(heatmap_run / "best.pt"), None, "cpu", tta=False)
    averaged = make_detector(str(heatmap_run / "best.pt"), None, "cpu", tta=True)
    assert averaged.settings["tta"] and not plain.settings["tta"]
    assert averaged.settings["tta_views"] == [[0, False], [0, True], [2, True], [2, False]]  # trained without quarter turns
    # a scene symmetric under both mirrors: averaging cannot change the heatmap's symmetry
    image = np.full((64, 64), 0.2, np.float32)
    image[31:33, 31:33] = 0.9
    _, heat_avg = averaged.predict_with_heatmap(image)
    np.testing.assert_allclose(heat_avg, heat_avg[::-1, ::-1], atol=1e-5)
    # on real frames it is an average of four passes: close to the plain heatmap, not equal to it
    path = sorted((spot_data / "images").iterdir())[-1]
    _, heat_plain = plain.predict_with_heatmap(path)
    _, heat_tta = averaged.predict_with_heatmap(path)
    assert 0 < np.abs(heat_plain - heat_tta).max() < 0.5


def test_checkpoint_carries_thresholds_cut_on_every_training_image(heatmap_run: Path, spot_data: Path) -> None:
    from pinpoint.data.dataset import load_samples
    from pinpoint.metrics import best_threshold
    from pinpoint.predict import Detector

    plain = Detector.load(heatmap_run / "best.pt", device="cpu")
    assert not plain.settings["tta"] and plain.threshold == plain.settings["threshold"]
    assert "tta_threshold" not in plain.settings  # cut only for a run trained with --tta (test_thresholds.py)
    # the cut the training and validation images give
    images = load_samples(spot_data, spot_data / "train.txt") + load_samples(spot_data, spot_data / "val.txt")
    found = plain.predict_batch([s.image for s in images], conf=0.01)
    assert plain.threshold == best_threshold(found, ground_truth(images), 3.0, smooth=0.1).threshold
    assert 0 < plain.threshold < 1


def test_views_are_the_symmetries_training_augmented_with() -> None:
    from pinpoint.predict import ALL_VIEWS, MIRRORS, tta_views

    assert tta_views(True, True, True) == ALL_VIEWS and len(set(ALL_VIEWS)) == 8
    assert tta_views(True, True, False) == MIRRORS
    assert tta_views(True, False, False) == [(0, False), (0, True)]  # kept upright: the sky stays above
    assert tta_views(False, True, False) == [(0, False), (2, True)]
    assert tta_views(False, False, True) == [(0, False), (1, False), (2, False), (3, False)]
    assert tta_views(False, False, False) == [(0, False)]


class RowIndex:
    """A stand-in network that is not indifferent to turns: each pixel's row index, scaled to [0, 1)."""

    name, threads = "row-index", 1

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        rows = np.arange(batch.shape[2], dtype=np.float32)[:, None] / 100
        return torch.from_numpy(np.broadcast_to(rows, batch.shape).copy())


class Squash:
    """A stand-in network that turns with its input: each pixel's value through a sigmoid."""

    name, threads = "squash", 1

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        return torch.sigmoid(torch.from_numpy(batch))


@pytest.mark.parametrize("name", ["as is", "upright", "mirrors", "all"])
def test_each_view_is_turned_back_into_the_image_frame(name: str) -> None:
    from types import SimpleNamespace

    from pinpoint.predict import ALL_VIEWS, MIRRORS, Detector, inference_settings

    views = {"as is": [(0, False)], "upright": [(0, False), (0, True)], "mirrors": MIRRORS, "all": ALL_VIEWS}[name]
    settings = inference_settings(SimpleNamespace(output="heatmap", stride=1), 0, 0.5, 10, tta=True, views=views)
    batch = np.random.default_rng(0).normal(size=(2, 1, 24, 40)).astype(np.float32)  # not square
    # a network that turns with its input gives the same heatmap through every view
    torch.testing.assert_close(Detector(None, settings, backend=Squash()).run(batch), Squash()(batch))
    # one that does not: averaged over views that turn rows over, each pixel's row index becomes its mean
    square = batch[:, :, :, :24]
    averaged = Detector(None, settings, backend=RowIndex()).run(square)[0, 0].numpy()
    if name in ("mirrors", "all"):
        np.testing.assert_allclose(averaged, 0.115, atol=1e-6)  # (23 / 2) / 100 everywhere
    else:
        np.testing.assert_allclose(averaged, RowIndex()(square)[0, 0].numpy(), atol=1e-6)


def test_checkpoint_carries_the_snap_setting_and_detect_can_override_it(heatmap_run: Path) -> None:
    from pinpoint.detect import make_detector

    ckpt = load_checkpoint(heatmap_run / "best.pt")
    assert ckpt["config"]["snap"] is True and ckpt["config"]["threshold_smoothing"] == 0.1  # the defaults
    # validation decided, epoch by epoch, whether snapping stays; the checkpoint carries its epoch's decision
    best_row = next(row for row in read_log(heatmap_run) if row["epoch"] == ckpt["epoch"])
    assert ckpt["inference"]["snap"] is bool(best_row["val_snap"])
    for override in (True, False):
        assert make_detector(str(heatmap_run / "best.pt"), None, "cpu", snap=override).settings["snap"] is override


def test_weight_average_follows_the_ramped_decay() -> None:
    from torch.optim.swa_utils import AveragedModel

    from pinpoint.train import ema_update

    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    ema = AveragedModel(model, multi_avg_fn=ema_update(0.9), use_buffers=True)
    expected = model[0].weight.detach().clone()
    for step in range(40):
        with torch.no_grad():
            model[0].weight.add_(1.0)
        model(torch.randn(4, 2))  # moves the BatchNorm statistics and its integer batch counter
        ema.update_parameters(model)
        if step:  # the first update copies; after n updates the decay is min(0.9, (1 + n) / (10 + n))
            d = min(0.9, (1 + step) / (10 + step))
            expected = d * expected + (1 - d) * model[0].weight.detach()
        else:
            expected = model[0].weight.detach().clone()
    assert torch.allclose(ema.module[0].weight, expected, atol=1e-5)
    # a weight growing by 1 per step is followed 9 steps behind with a fixed d = 0.9, 4 behind after 40 ramped steps
    lag = model[0].weight - ema.module[0].weight
    assert torch.all((lag > 3.5) & (lag < 6))
    assert ema.module[1].num_batches_tracked.dtype == torch.int64
    assert ema.module[1].num_batches_tracked == model[1].num_batches_tracked


def test_init_starts_from_a_checkpoints_weights(heatmap_run: Path, spot_data: Path, tmp_path: Path) -> None:
    # lr 0 and no weight average: what best.pt holds after one epoch is exactly what training started from
    run = train(TrainConfig(data=str(spot_data), split=str(spot_data / "train.txt"), val_split=str(spot_data / "val.txt"),
                            out=str(tmp_path), model="pinnet-s2d-gated", crop_size=64, epochs=1, lr=0.0, ema=0.0,
                            init=str(heatmap_run / "best.pt"), progress=False))
    source = load_checkpoint(heatmap_run / "best.pt")["model"]
    started = load_checkpoint(run / "best.pt")["model"]
    weights = [k for k in source if k.endswith(".weight")]
    assert weights and all(torch.equal(source[k], started[k]) for k in weights)
    assert read_log(run)[0]["val_f1"] >= 0.9  # a random network finds nothing after an epoch at lr 0


@pytest.mark.parametrize("model, init, message", [
    ("pinnet-s2d", "best.pt", "not the one being trained"),
    ("heatmap", "missing.pt", "--init .*not found"),
])
def test_init_from_another_network_or_no_file_is_refused(heatmap_run: Path, spot_data: Path, tmp_path: Path,
                                                         model: str, init: str, message: str) -> None:
    cfg = TrainConfig(data=str(spot_data), split=str(spot_data / "train.txt"), out=str(tmp_path), model=model,
                      crop_size=64, epochs=1, init=str(heatmap_run / init), progress=False)
    with pytest.raises(InputError, match=message):
        train(cfg)


def test_best_pt_holds_the_final_epoch(heatmap_run: Path) -> None:
    best, last = load_checkpoint(heatmap_run / "best.pt"), load_checkpoint(heatmap_run / "last.pt")
    assert best["epoch"] == last["epoch"] == len(read_log(heatmap_run)) == 15
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in best["model"])


def test_init_from_an_exported_onnx_file_is_refused(heatmap_run: Path, spot_data: Path, tmp_path: Path) -> None:
    from pinpoint.export import export_onnx

    onnx_file = export_onnx(heatmap_run / "best.pt", tmp_path / "model.onnx")
    cfg = TrainConfig(data=str(spot_data), split=str(spot_data / "train.txt"), out=str(tmp_path / "run"), model="heatmap",
                      crop_size=64, epochs=1, init=str(onnx_file), progress=False)
    with pytest.raises(InputError, match="ONNX file has no trainable weights"):
        train(cfg)


@pytest.mark.parametrize("saved, refused", [
    ({"paste": 3}, "paste = 3"), ({"teacher": "x3/best.pt"}, "teacher = 'x3/best.pt'"), ({"keep": "best"}, "keep = 'best'"),
    ({"threshold_images": "val"}, "threshold_images = 'val'"), ({"scale_jitter": 0.3}, "scale_jitter = 0.3"),
])
def test_a_saved_run_with_a_removed_setting_names_it(saved: dict, refused: str) -> None:
    # a run that used a removed lever cannot go on as it began; left at its off value, it is dropped
    current = TrainConfig().to_dict()
    with pytest.raises(InputError, match=f"^runs/x/last.pt: setting {re.escape(refused)} is no longer supported"):
        TrainConfig.from_dict({**current, **saved}, "runs/x/last.pt")
    off = {"paste": 0, "dim": 0.0, "teacher": "", "keep": "last", "threshold_images": "all", "weight_decay": 0.0}
    assert TrainConfig.from_dict({**current, **off}) == TrainConfig()
