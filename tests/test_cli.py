"""Every CLI verb end to end in a temporary folder, and bad input as a one-line error."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pinpoint.cli import main
from pinpoint.data.labels import read_labels


@pytest.fixture(scope="module")
def trained(spot_data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli-run")
    assert main(["train", "--data", str(spot_data), "--split", str(spot_data / "train.txt"), "--val-split", str(spot_data / "val.txt"),
                 "--img-size", "0", "--crop-size", "64", "--sigma", "1.5",
                 "--epochs", "8", "--batch", "8", "--lr", "3e-3", "--out", str(out), "--no-progress"]) == 0
    return out


def test_synth_writes_a_dataset(tmp_path: Path, capsys) -> None:
    assert main(["synth", str(tmp_path / "s"), "--n", "6", "--seed", "2"]) == 0
    assert len(list((tmp_path / "s" / "images").glob("*.png"))) == 6
    assert len(list((tmp_path / "s" / "labels").glob("*.txt"))) == 6
    assert "6 images" in capsys.readouterr().out


def test_train_writes_checkpoints(trained: Path) -> None:
    assert (trained / "best.pt").is_file() and (trained / "last.pt").is_file() and (trained / "loss.png").is_file()


def test_detect_writes_labels_and_pictures(trained: Path, spot_data: Path, tmp_path: Path) -> None:
    assert main(["detect", "--weights", str(trained / "best.pt"), "--source", str(spot_data), "--split", str(spot_data / "test.txt"),
                 "--save-txt", str(tmp_path / "txt"), "--save-vis", str(tmp_path / "vis"), "--device", "cpu"]) == 0
    stems = (spot_data / "test.txt").read_text().split()
    assert sorted(p.stem for p in (tmp_path / "txt").iterdir()) == sorted(stems)
    labels = read_labels(tmp_path / "txt" / f"{stems[0]}.txt")
    assert labels.scores is not None and len(labels) >= 1
    picture = cv2.imread(str(tmp_path / "vis" / f"{stems[0]}.png"))
    assert picture.shape == (64, 64, 3)
    # the JET overlay colours the picture: a grey image would have equal channels
    assert np.abs(picture[:, :, 0].astype(int) - picture[:, :, 2]).max() > 10


def test_detect_on_a_single_image(trained: Path, spot_data: Path, tmp_path: Path) -> None:
    image = sorted((spot_data / "images").iterdir())[0]
    assert main(["detect", "--weights", str(trained / "best.pt"), "--source", str(image), "--save-txt", str(tmp_path), "--device", "cpu"]) == 0
    assert (tmp_path / f"{image.stem}.txt").is_file()


def test_eval_from_checkpoint_prediction_folder_and_classical(trained: Path, spot_data: Path, tmp_path: Path, capsys) -> None:
    split = str(spot_data / "test.txt")
    assert main(["eval", "--data", str(spot_data), "--split", split, "--weights", str(trained / "best.pt"), "--dist", "3", "5", "--json", "--device", "cpu"]) == 0
    from_weights = json.loads(capsys.readouterr().out)
    assert set(from_weights) == {"3px", "5px"}
    assert from_weights["3px"]["Pd"] >= 0.8
    # the same predictions written to a folder and scored from there give the same headline numbers
    main(["detect", "--weights", str(trained / "best.pt"), "--source", str(spot_data), "--split", split, "--save-txt", str(tmp_path / "pred"), "--device", "cpu"])
    capsys.readouterr()
    assert main(["eval", "--data", str(spot_data), "--split", split, "--pred", str(tmp_path / "pred"), "--json"]) == 0
    from_folder = json.loads(capsys.readouterr().out)
    for key in ("Pd", "precision", "true_positives", "false_positives"):
        assert from_folder["3px"][key] == from_weights["3px"][key]
    assert main(["eval", "--data", str(spot_data), "--split", split, "--method", "tophat"]) == 0
    table = capsys.readouterr().out
    assert "Pd" in table and "precision" in table


def test_convert_masks_and_coco_round_trip(tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    masks.mkdir()
    mask = np.zeros((20, 40), np.uint8)
    mask[4:7, 10:13] = 255  # centroid (11, 5)
    cv2.imwrite(str(masks / "a.png"), mask)
    assert main(["convert", "masks", "--masks", str(masks), "--out", str(tmp_path / "data" / "labels")]) == 0
    np.testing.assert_allclose(read_labels(tmp_path / "data" / "labels" / "a.txt").xy, [[11 / 40, 5 / 20]])
    (tmp_path / "data" / "images").mkdir()
    cv2.imwrite(str(tmp_path / "data" / "images" / "a.png"), mask)
    assert main(["convert", "labels-to-coco", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "coco.json")]) == 0
    assert main(["convert", "coco-to-labels", "--coco", str(tmp_path / "coco.json"), "--out", str(tmp_path / "back")]) == 0
    assert (tmp_path / "back" / "a.txt").read_text() == (tmp_path / "data" / "labels" / "a.txt").read_text()


def test_demo_runs_end_to_end(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), "--n", "20", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    for made in ("run/best.pt", "run/loss.png", "eval/scores.json", "eval/pr.png", "eval/per_image.csv", "pred", "vis",
                 "videos/videos/synth_video_00.mkv", "tracks/synth_video_00.csv", "tracks/synth_video_01.mp4"):
        assert (tmp_path / "demo" / made).exists(), made
        assert made.split("/")[0] in out
    assert list((tmp_path / "demo" / "vis").glob("*.png"))
    assert "tracked" in out and "IDF1" in out


def test_bad_label_is_a_one_line_error_naming_file_and_line(spot_data: Path, trained: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "bad"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    cv2.imwrite(str(data / "images" / "x.png"), np.zeros((16, 16), np.uint8))
    (data / "labels" / "x.txt").write_text("2\n0.5 0.5\n0.5 nan\n")
    assert main(["eval", "--data", str(data), "--weights", str(trained / "best.pt"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("pinpoint: error: ") and "x.txt:3" in err


def test_missing_label_and_missing_checkpoint_are_clear_errors(tmp_path: Path, capsys) -> None:
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "lonely.png"), np.zeros((16, 16), np.uint8))
    # no labels/ folder: backgrounds, and a run of backgrounds alone has nothing to learn
    assert main(["train", "--data", str(tmp_path), "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "no target in any image (a folder without labels/ is read as backgrounds)" in capsys.readouterr().err
    (tmp_path / "labels").mkdir()  # with labels/, a missing label is named
    assert main(["train", "--data", str(tmp_path), "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "lonely.txt" in capsys.readouterr().err
    assert main(["detect", "--weights", str(tmp_path / "nope.pt"), "--source", str(tmp_path)]) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_console_entry_point_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "pinpoint", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for verb in ("synth", "train", "eval", "detect", "convert", "demo"):
        assert verb in result.stdout


def help_entries(verb: str, capsys) -> dict[str, str]:
    """`pinpoint VERB --help`'s options section: each option's first flag -> its entry, lines joined."""
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    options = capsys.readouterr().out.split("options:")[1]
    options = "\n".join(line for line in options.splitlines() if line.startswith(" "))  # group headings and epilog out
    entries = re.split(r"\n  (?=-)", "\n" + options)[1:]  # an entry starts with a flag at the left margin
    return {entry.split()[0].rstrip(","): " ".join(entry.split()) for entry in entries}


def test_verb_help_shows_each_options_default(capsys) -> None:
    """Defaults come from TrainConfig, so the help cannot drift from what train does; flags and unset paths stay bare."""
    from pinpoint.config import TrainConfig

    entries, defaults = help_entries("train", capsys), TrainConfig()
    for option, value in [("--epochs", defaults.epochs), ("--lr", defaults.lr), ("--img-size", defaults.img_size),
                          ("--seed", defaults.seed), ("--loss", defaults.loss), ("--ema", defaults.ema)]:
        assert entries[option].endswith(f"(default {value})"), entries[option]
    assert not any(text.endswith(("(default False)", "(default )", "(default None)")) for text in entries.values())
    assert "(default" not in entries["--init"] and "(default" not in entries["--deterministic"]
    assert help_entries("bench", capsys)["--backend"].endswith("(default torch onnxruntime)")  # a list as it is typed


def test_train_help_is_grouped_and_fits_a_screen(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert len(text.splitlines()) <= 60 and max(map(len, text.splitlines())) <= 80
    headings = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings == ["options", "data", "model", "augmentation", "schedule", "decoding (stored in the checkpoint)",
                        "devices and reliability"]
    for removed in ("--paste", "--dim", "--teacher", "--scale-jitter", "--keep", "--threshold-images"):
        assert removed not in text  # measured, did not help: docs/research-log.md, "Removed options"


@pytest.mark.parametrize("flags, named", [(["--nms-kernel", "4"], "--nms-kernel 4"), (["--ema", "1.0"], "--ema 1.0"),
                                          (["--model", "pinnet-s2d", "--crop-size", "40"], "--crop-size 40"),
                                          (["--threshold-smoothing", "0.7"], "--threshold-smoothing 0.7"),
                                          (["--blob-sigma", "-1"], "--blob-sigma -1"),
                                          (["--init", "missing.pt"], "--init missing.pt: checkpoint not found")])
def test_training_settings_that_would_fail_later_are_refused_up_front(spot_data: Path, tmp_path: Path, capsys,
                                                                       flags: list[str], named: str) -> None:
    args = ["train", "--data", str(spot_data), "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress", *flags]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"pinpoint: error: {named}")
    assert not (tmp_path / "run" / "last.pt").exists()
