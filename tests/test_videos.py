"""Video frames as training samples: labels per frame from a CSV, every k-th labelled frame, bad files named."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pinpoint.data.videos import is_video_dataset, load_video_frames, read_video_labels, video_stems
from pinpoint.errors import InputError

SIZE = (48, 64)  # H, W


def dot_video(root: Path, name: str, frames: int = 12, labelled: int | None = None,
              suffix: str = ".avi") -> list[tuple[float, float]]:
    """A video of a bright 3x3 dot moving right (.avi: MJPG, else mp4v), and its label CSV (the first
    `labelled` frames)."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(root / "videos" / f"{name}{suffix}"), fourcc, 10.0, (SIZE[1], SIZE[0]))
    centres = []
    for i in range(frames):
        frame = np.full(SIZE, 30, np.uint8)
        cx, cy = 6 + 4 * i, 20
        frame[cy - 1:cy + 2, cx - 1:cx + 2] = 250
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        centres.append((float(cx), float(cy)))
    writer.release()
    rows = [f"{i},{x:.3f},{y:.3f},5.00,5.00,drone" for i, (x, y) in enumerate(centres[:labelled or frames])]
    (root / "labels" / f"{name}.csv").write_text("frame,x,y,w,h,class\n" + "\n".join(rows) + "\n")
    return centres


def test_every_kth_labelled_frame_with_its_points(tmp_path: Path) -> None:
    centres = dot_video(tmp_path, "clip", frames=12, labelled=10)  # the last two frames carry no row
    assert is_video_dataset(tmp_path) and video_stems(tmp_path) == ["clip"]
    samples = load_video_frames(tmp_path, ["clip"], every=3)
    assert [s.stem for s in samples] == ["clip_000000", "clip_000003", "clip_000006", "clip_000009"]
    for sample in samples:
        index = int(sample.stem[-6:])
        assert sample.image.shape == SIZE and sample.xy.tolist() == [list(centres[index])]
        row, col = np.unravel_index(np.argmax(sample.image), SIZE)
        assert abs(col - centres[index][0]) <= 1 and abs(row - centres[index][1]) <= 1  # the label sits on its frame's dot
    assert len(load_video_frames(tmp_path, ["clip"], every=1)) == 10  # unlabelled frames are not samples


def test_several_targets_in_a_frame(tmp_path: Path) -> None:
    dot_video(tmp_path, "clip", frames=4)
    (tmp_path / "labels" / "clip.csv").write_text("frame,x,y,w,h,class\n0,10,20,4,4,bird\n0,30,20,4,4,bird\n2,12,20,4,4,bird\n")
    labels = read_video_labels(tmp_path / "labels" / "clip.csv")
    assert labels.points[0].tolist() == [[10, 20], [30, 20]] and sorted(labels.points) == [0, 2]
    assert [s.stem for s in load_video_frames(tmp_path, ["clip"], every=1)] == ["clip_000000", "clip_000002"]


@pytest.mark.parametrize("text, says", [
    ("frame,x,y\n0,1,2\n", ":1: expected the header frame,x,y,w,h,class"),
    ("frame,x,y,w,h,class\n0,10,20,4,4,drone\n1,abc,20,4,4,drone\n", ":3: frame must be a whole number"),
    ("frame,x,y,w,h,class\n0,10,20,4\n", ":2: expected 6 values"),
    ("frame,x,y,w,h,class\n-1,10,20,4,4,drone\n", ":2: frame must be >= 0"),
    ("frame,x,y,w,h,class\n0,nan,20,4,4,drone\n", ":2: frame must be >= 0, x and y finite"),
    ("frame,x,y,w,h,class\n0,10,20,4,4,drone\n40,10,20,4,4,drone\n", ":3: frame 40 is past the video's end (12 frames"),
    ("frame,x,y,w,h,class\n0,100,20,4,4,drone\n", ":2: a point of frame 0 lies outside the 64 x 48 frame"),
])
def test_bad_label_csvs_name_the_file_and_row(text: str, says: str, tmp_path: Path) -> None:
    dot_video(tmp_path, "clip")
    csv_path = tmp_path / "labels" / "clip.csv"
    csv_path.write_text(text)
    with pytest.raises(InputError) as info:
        load_video_frames(tmp_path, ["clip"], every=1)
    message = str(info.value)
    assert message.startswith(f"{csv_path}{says}") and "\n" not in message, message


def test_a_video_that_does_not_decode_is_named_or_skipped(tmp_path: Path) -> None:
    dot_video(tmp_path, "good")
    dot_video(tmp_path, "bad")
    (tmp_path / "videos" / "bad.avi").write_bytes(b"not a video at all")
    with pytest.raises(InputError, match=r"bad\.avi: cannot open video"):
        load_video_frames(tmp_path, ["good", "bad"], every=4)
    skipped: list[str] = []
    samples = load_video_frames(tmp_path, ["good", "bad", "absent"], every=4, skipped=skipped)
    assert {s.stem[:4] for s in samples} == {"good"} and len(skipped) == 2
    assert "bad.avi" in skipped[0] and "absent.*: no video with this name" in skipped[1]


def test_eval_scores_every_labelled_frame_of_a_video_dataset(tmp_path: Path) -> None:
    from pinpoint.data.labels import write_labels
    from pinpoint.evaluate import evaluate_dataset

    centres = dot_video(tmp_path / "data", "clip", frames=12, labelled=10)
    dot_video(tmp_path / "data", "other", frames=6)
    (tmp_path / "val.txt").write_text("clip\n")
    pred = tmp_path / "pred"
    for i, (x, y) in enumerate(centres[:10]):  # right on every labelled frame but the last, which gets a far point
        point = (x, y) if i < 9 else (x + 20, y)
        write_labels(pred / f"clip_{i:06d}.txt", np.array([point]) / [SIZE[1], SIZE[0]], np.array([0.9]))
    scores = evaluate_dataset(tmp_path / "data", tmp_path / "val.txt", pred_dir=str(pred), distances=(5.0,))[5.0]
    assert (scores.images, scores.targets, scores.true_positives, scores.false_positives) == (10, 10, 9, 1)
    assert scores.free_pixels == 10 * SIZE[0] * SIZE[1] - 10 * 81  # a disc of radius 5 holds 81 pixel centres
    with pytest.raises(InputError, match="other_000000"):  # every video without a split: `other` has no predictions
        evaluate_dataset(tmp_path / "data", pred_dir=str(pred), distances=(5.0,))
