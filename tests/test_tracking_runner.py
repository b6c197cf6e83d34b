"""`pinpoint track` end to end on synthetic videos: each output read back, the Python API, bad sources."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

import pinpoint
from pinpoint.cli import main
from pinpoint.data.synth_video import synthesize_videos
from pinpoint.errors import InputError

FRAMES = 24


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("videos")
    return root, synthesize_videos(root, n=2, frames=FRAMES, seed=5)


@pytest.fixture(scope="module")
def videos(synthetic) -> Path:
    return synthetic[0]


def test_track_a_folder_of_videos_writes_each_output_per_video(videos: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["track", "--source", str(videos), "--save-csv", str(out / "csv"), "--save-mot", str(out / "mot"),
                 "--save-video", str(out / "video"), "--no-progress", "--device", "cpu"]) == 0
    assert "frame(s) of 2 sequence(s)" in capsys.readouterr().out
    for name in ("synth_video_00", "synth_video_01"):
        with open(out / "csv" / f"{name}.csv", newline="") as f:
            reader = csv.reader(f)
            assert next(reader) == ["frame", "track", "x", "y", "score"]
            rows = list(reader)
        mot = [line.split(",") for line in (out / "mot" / f"{name}.txt").read_text().splitlines()]
        assert len(mot) == len(rows)
        for row, line in zip(rows, mot):  # the same points: frames from 1 in MOT, a box centred on the point
            assert int(line[0]) == int(row[0]) + 1 and line[1] == row[1] and 0 <= int(row[0]) < FRAMES
            assert float(line[2]) + float(line[4]) / 2 == pytest.approx(float(row[2]), abs=2e-3)
            assert (row[4] == "") == (line[6] == "-1")  # predicted points have no score
        capture = cv2.VideoCapture(str(out / "video" / f"{name}.mp4"))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
        capture.release()


def test_the_python_api_follows_a_target_with_one_id(synthetic) -> None:
    root, truth = synthetic
    frames = list(pinpoint.load(device="cpu").track(root / "videos" / "synth_video_01.mkv"))
    assert [f.index for f in frames] == list(range(FRAMES)) and {f.sequence for f in frames} == {"synth_video_01"}
    assert frames[3].name == "synth_video_01_000003"
    detector = pinpoint.load(device="cpu")
    assert frames[3].image.ndim == 2 and all((f.detections.score >= detector.threshold).all() for f in frames)
    target = truth["synth_video_01"][1]  # the pretrained model sees this one (video 00's targets are too faint for it)
    ids = [p.track for f, xy in zip(target.frames, target.xy) for p in frames[f].points if np.hypot(p.x - xy[0], p.y - xy[1]) < 3]
    assert len(ids) >= FRAMES - 2 and len(set(ids)) == 1


def test_a_single_video_names_files_not_folders(videos: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "one.csv"
    assert main(["track", "--source", str(videos / "videos" / "synth_video_01.mkv"), "--save-csv", str(csv_path),
                 "--no-progress", "--device", "cpu"]) == 0
    assert csv_path.read_text().startswith("frame,track,x,y,score\n")


def test_frames_of_different_sizes_are_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "frames" / "a.png"), np.zeros((32, 32), np.uint8))
    cv2.imwrite(str(tmp_path / "frames" / "b.png"), np.zeros((32, 40), np.uint8))
    with pytest.raises(InputError, match="b.png.*one size"):
        list(pinpoint.load(device="cpu").track(tmp_path / "frames"))
    assert main(["track", "--source", str(tmp_path / "frames"), "--save-csv", str(tmp_path / "t.csv"), "--no-progress"]) == 2
    assert not (tmp_path / "t.csv").exists()  # nothing half-written


@pytest.mark.parametrize("args, says", [(["--confirm", "4", "3"], "0 < M <= N"), (["--confirm", "2", "4.5"], "whole number"),
                                        (["--gate", "0"], "--gate 0"), (["--candidates", "0"], "--candidates 0"),
                                        (["--candidates", "1.5"], "--candidates 1.5")])
def test_bad_tracker_options_are_one_line(args, says, videos: Path, capsys) -> None:
    assert main(["track", "--source", str(videos), *args]) == 2
    assert says in capsys.readouterr().err


def test_tracker_options_without_track_are_refused_by_eval(videos: Path, capsys) -> None:
    assert main(["eval", "--data", str(videos), "--max-missed", "3"]) == 2
    assert "--max-missed is a tracker option: it needs --track" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", bytes(range(256)) * 20])
def test_a_video_that_does_not_decode_is_one_line_and_nothing_is_written(content: bytes, tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.mp4").write_bytes(content)
    assert main(["track", "--source", str(tmp_path / "bad.mp4"), "--save-csv", str(tmp_path / "t.csv"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.mp4" in err and not (tmp_path / "t.csv").exists()
