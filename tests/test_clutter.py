"""Learning to stay quiet on clutter: box datasets and their class choice, backgrounds-only
datasets, ignored regions (out of the loss and the scores) and synthetic targets pasted into crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pinpoint.config import TrainConfig
from pinpoint.data.boxes import ClassChoice, box_mask, inside_boxes, read_boxes
from pinpoint.data.dataset import Sample, TrainingSet, load_samples, paste_targets
from pinpoint.errors import InputError
from pinpoint.evaluate import evaluate_dataset
from pinpoint.losses import heatmap_loss_terms
from pinpoint.metrics import Evaluator
from pinpoint.points import Points

HEADER = "x,y,w,h,class\n"


def write_boxes(path: Path, rows: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + rows)
    return path


def box_dataset(root: Path, n: int = 3, size: tuple[int, int] = (48, 64)) -> Path:
    """n grey frames, each with a bright 'person' at (20, 16) in a 6 x 8 box and a warm 'car' at (45, 30)."""
    (root / "images").mkdir(parents=True)
    for i in range(n):
        image = np.full(size, 60, np.uint8)
        image[14:19, 18:23] = 200
        image[26:35, 38:53] = 120
        cv2.imwrite(str(root / "images" / f"f{i}.png"), image)
        write_boxes(root / "boxes" / f"f{i}.csv", "20,16,6,8,Person\n45,30,16,10,Car\n")
    return root


def test_class_choice_gives_targets_ignored_regions_and_background(tmp_path: Path) -> None:
    path = write_boxes(tmp_path / "a.csv", "20,16,6,8,Person\n45,30,16,10,Car\n5,5,3,3,DontCare\n")
    everything_ignored = read_boxes(path, (48, 64), ClassChoice())
    assert len(everything_ignored.xy) == 0 and len(everything_ignored.ignore) == 3
    people = read_boxes(path, (48, 64), ClassChoice(targets=("Person",), background=("Car",)))
    assert people.xy.tolist() == [[20, 16]] and people.boxes.tolist() == [[6, 8]]
    assert people.ignore.tolist() == [[5, 5, 3, 3]]  # DontCare: not named, ignored
    assert people.classes == {"Person", "Car", "DontCare"}
    strict = ClassChoice(targets=("Person",), ignore=("DontCare",))
    with pytest.raises(InputError, match=f"{path}:3: class 'Car' is in none of the recipe's classes"):
        read_boxes(path, (48, 64), strict)


@pytest.mark.parametrize("row, says", [
    ("20,16,6\n", "expected 5 values"),
    ("20,abc,6,8,Person\n", "must be numbers"),
    ("20,16,0,8,Person\n", "w and h > 0"),
    ("20,16,6,8,\n", "the class named"),
    ("70,16,6,8,Person\n", "lies outside the 64 x 48 image"),
    ("20,16,6,80,Person\n", "larger than it"),
])
def test_a_bad_box_row_is_named_with_its_file_and_row(row: str, says: str, tmp_path: Path) -> None:
    path = write_boxes(tmp_path / "a.csv", "10,10,4,4,Car\n" + row)
    with pytest.raises(InputError, match=f"{path}:3: .*{says}"):
        read_boxes(path, (48, 64), ClassChoice())


def test_a_box_may_run_past_the_border_by_its_centre_in_the_image(tmp_path: Path) -> None:
    path = write_boxes(tmp_path / "a.csv", "63,10,13,8,Car\n")  # HIT-UAV has boxes 1 px past the border
    assert read_boxes(path, (48, 64), ClassChoice()).ignore.tolist() == [[63, 10, 13, 8]]


def test_box_mask_and_inside_boxes_agree_on_pixel_centres() -> None:
    boxes = np.array([[10.5, 20.0, 5.0, 4.0], [0.0, 0.0, 3.0, 3.0]])
    mask = box_mask(boxes, (40, 30))
    rows, cols = np.nonzero(np.ones((40, 30), bool))
    assert np.array_equal(inside_boxes(np.stack([cols, rows], 1).astype(float), boxes), mask.reshape(-1))
    assert mask.sum() == 6 * 5 + 2 * 2  # columns 8..13 x rows 18..22; the corner box cut to 2 x 2


def test_a_folder_of_images_alone_is_backgrounds(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "street.png"), np.full((32, 40), 90, np.uint8))
    [sample] = load_samples(tmp_path)
    assert sample.xy.shape == (0, 2) and sample.ignore is None
    (tmp_path / "labels").mkdir()  # with a labels/ folder, a missing label is a mistake again
    with pytest.raises(InputError, match="street.txt"):
        load_samples(tmp_path)


def test_points_in_ignored_regions_are_neither_hits_nor_false_alarms() -> None:
    truth = Points(np.array([[10.0, 10.0]]), np.ones(1), (50, 60))
    pred = Points(np.array([[10.0, 11.0], [40.0, 30.0], [5.0, 45.0]]), np.array([0.9, 0.8, 0.7]), (50, 60))
    ignore = np.array([[40.0, 30.0, 10.0, 10.0]])
    judged, plain = Evaluator((3.0,)), Evaluator((3.0,))
    judged.add(pred, truth, ignore=ignore)
    plain.add(pred, truth)
    with_ignore, without = judged.result()[3.0], plain.result()[3.0]
    assert (with_ignore.true_positives, with_ignore.false_positives) == (1, 1)
    assert (without.true_positives, without.false_positives) == (1, 2)
    assert without.free_pixels - with_ignore.free_pixels == 11 * 11  # the box's pixel centres leave the free area


def test_eval_on_a_box_dataset_counts_false_alarms_outside_the_boxes(tmp_path: Path) -> None:
    data = box_dataset(tmp_path / "hit")
    scores = evaluate_dataset(data, method="tophat", distances=(3.0,))[3.0]
    assert scores.targets == 0 and scores.free_pixels == 3 * (48 * 64 - 7 * 9 - 17 * 11)
    # the top-hat fires on the bright person and the warm car; both are ignored
    assert scores.false_positives == 0


def test_the_weight_map_leaves_ignored_regions_out_of_the_loss() -> None:
    target = torch.zeros(1, 1, 16, 16)
    target[0, 0, 4, 4] = 1.0
    weight = torch.ones(1, 1, 16, 16)
    weight[0, 0, 8:, 8:] = 0
    quiet = torch.full((1, 1, 16, 16), 0.01)
    loud = quiet.clone()
    loud[0, 0, 10, 10] = 0.99  # a confident peak inside the ignored corner
    for kind in ("focal", "mse"):
        assert torch.allclose(heatmap_loss_terms(quiet, target, kind, weight)[0], heatmap_loss_terms(loud, target, kind, weight)[0])
        assert heatmap_loss_terms(loud, target, kind)[0] > heatmap_loss_terms(quiet, target, kind)[0]
        ones = torch.ones_like(weight)
        assert all(torch.equal(a, b) for a, b in zip(heatmap_loss_terms(loud, target, kind, ones), heatmap_loss_terms(loud, target, kind)))


def test_the_weight_map_follows_every_crop_flip_and_turn() -> None:
    image = np.full((80, 96), 0.2, np.float32)
    image[30:41, 50:61] = 0.9  # a bright square: the ignored object
    sample = Sample("obj", image, np.zeros((0, 2)), Path("obj.png"), ignore=np.array([[55.0, 35.0, 11.0, 11.0]]))
    cfg = TrainConfig(img_size=0, crop_size=48, crop_on_target=0.0, vflip=True, rot90=True, intensity_jitter=0.0)
    dataset = TrainingSet([sample], cfg, "heatmap")
    seen_ignored = 0
    for epoch in range(40):
        dataset.set_epoch(epoch)
        crop, _, weight = dataset[0]
        bright = crop[0].numpy() > crop[0].numpy().mean() + 1  # the square's pixels, wherever they went
        assert np.array_equal(weight[0].numpy() == 0, bright), epoch
        seen_ignored += bright.any()
    assert seen_ignored > 5
    whole = dataset.whole(0, 32)[2][0].numpy()
    assert whole.shape == (96, 96) and (whole == 0).sum() == 121


def test_synthetic_targets_land_where_their_points_say_and_outside_ignored_regions() -> None:
    rng = np.random.default_rng(3)
    background = rng.normal(0, 0.1, (96, 96)).astype(np.float32)
    keep = np.ones((96, 96), np.uint8)
    keep[:, :48] = 0  # the left half ignored
    found = 0
    for seed in range(30):
        image, xy = paste_targets(background, np.array([[70.0, 10.0]]), keep, np.random.default_rng(seed))
        assert xy[0].tolist() == [70.0, 10.0] and 2 <= len(xy) <= 4
        assert np.all(xy[1:, 0] >= 47.5)
        added = image - background
        assert added[:, :47].max() < added[:, 48:].max()  # only the tails of a wide blob cross over
        for x, y in xy[1:]:  # the brightest added pixel sits on the pasted point
            r, c = int(round(y)), int(round(x))
            window = added[max(r - 2, 0):r + 3, max(c - 2, 0):c + 3]
            assert window.max() == pytest.approx(added[max(r - 6, 0):r + 7, max(c - 6, 0):c + 7].max())
            found += 1
    assert found > 40


def test_synthetic_targets_are_drawn_in_the_share_of_crops_asked(tmp_path: Path) -> None:
    sample = Sample("bg", np.random.default_rng(0).normal(0.5, 0.05, (64, 64)).astype(np.float32), np.zeros((0, 2)), Path("bg.png"))
    cfg = TrainConfig(img_size=0, crop_size=64, crop_on_target=0.0, intensity_jitter=0.0)
    for rate in (0.0, 0.5, 1.0):
        dataset = TrainingSet([sample], cfg, "heatmap", synth_targets=[rate])
        with_targets = 0
        for epoch in range(200):
            dataset.set_epoch(epoch)
            with_targets += bool(dataset[0][1].max() > 0.5)
        assert abs(with_targets / 200 - rate) < 0.1, (rate, with_targets)


def test_validation_reports_false_alarms_for_a_dataset_without_targets(tmp_path: Path, capsys) -> None:
    from pinpoint.cli import main
    from pinpoint.data.synth import synthesize

    synthesize(tmp_path / "spots", n=12, min_size=48, max_size=48)
    (tmp_path / "plain" / "images").mkdir(parents=True)
    for i in range(6):
        cv2.imwrite(str(tmp_path / "plain" / "images" / f"b{i}.png"),
                    np.random.default_rng(i).integers(40, 200, (48, 48)).astype(np.uint8))
    sets = tmp_path / "sets.toml"
    sets.write_text('[[dataset]]\npath = "spots"\n\n[[dataset]]\npath = "plain"\nweight = 0.5\n')
    out = tmp_path / "run"
    assert main(["train", "--data", str(sets), "--epochs", "1", "--batch", "4", "--crop-size", "32", "--epoch-size", "16",
                 "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch 1/1"))
    assert "(F1 spots " in line and "; false alarms an image plain " in line
    header = (out / "log.csv").read_text().splitlines()[0].split(",")
    assert "val_f1_spots" in header and "val_fa_plain" in header and "val_f1_plain" not in header
