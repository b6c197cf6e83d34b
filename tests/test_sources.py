"""Frame sources (image, folder, dataset, glob, list, video), background reading, and streaming detection outputs."""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pinpoint.cli import main
from pinpoint.codecs.heatmap import encode
from pinpoint.config import TrainConfig
from pinpoint.data import transforms as T
from pinpoint.detect import batches, detect_folder
from pinpoint.errors import InputError
from pinpoint.models.registry import create_model
from pinpoint.predict import Detector
from pinpoint.sources import Frame, open_source, prefetch
from pinpoint.train import make_checkpoint, save_checkpoint

FRAME_SIZE = (48, 64)  # (H, W)


def spot_frame(x: float, y: float, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """8-bit frame: dark background, one bright spot at (x, y)."""
    return (np.clip(0.15 + 0.8 * encode(np.array([[x, y]]), size, 1.5), 0, 1) * 255).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def write_video(path: Path, fourcc: str, positions: list[tuple[float, float]], fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (FRAME_SIZE[1], FRAME_SIZE[0]))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    for x, y in positions:
        writer.write(cv2.cvtColor(spot_frame(x, y), cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


POSITIONS = [(10.0 + 6 * i, 12.0 + 3 * i) for i in range(7)]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", "mp4v", POSITIONS)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """Random weights with BatchNorm statistics measured on spot frames: distinct peaks, no training."""
    torch.manual_seed(0)
    model = create_model("heatmap")
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    frames = np.stack([T.standardize(spot_frame(x, y).astype(np.float32) / 255) for x, y in POSITIONS])[:, None]
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(frames))
    model.eval()
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(make_checkpoint(model, TrainConfig(model="heatmap", img_size=0), 0.5, 0, {}), path)
    return path


@pytest.fixture(scope="module")
def detector(weights: Path) -> Detector:
    return Detector.load(weights, "cpu")


def test_each_kind_of_source(tmp_path: Path) -> None:
    for i, name in enumerate(["b", "a", "c"]):
        write_png(tmp_path / "data" / "images" / f"{name}.png", spot_frame(10 + i, 20))
    (tmp_path / "data" / "test.txt").write_text("c\r\na\r\n")
    write_png(tmp_path / "loose" / "z.png", spot_frame(5, 5))
    (tmp_path / "loose" / "notes.md").write_text("not an image")

    image = open_source(tmp_path / "loose" / "z.png")
    assert image.kind == "image" and [f.name for f in image] == ["z"]
    folder = open_source(tmp_path / "loose")
    assert folder.kind == "folder" and folder.total == 1
    dataset = open_source(tmp_path / "data")
    assert [f.name for f in dataset] == ["a", "b", "c"]
    assert [f.name for f in open_source(tmp_path / "data", tmp_path / "data" / "test.txt")] == ["c", "a"]
    pattern = open_source(str(tmp_path / "data" / "images" / "[ab].png"))
    assert pattern.kind == "glob" and [f.name for f in pattern] == ["a", "b"]

    listing = tmp_path / "lists" / "frames.txt"
    listing.parent.mkdir()
    listing.write_text(f"# two frames\r\n\r\n../data/images/c.png\r\n{tmp_path / 'loose' / 'z.png'}\r\n")
    listed = open_source(listing)
    frames = list(listed)
    assert listed.kind == "list" and [(f.index, f.name) for f in frames] == [(0, "c"), (1, "z")]
    assert frames[0].image.dtype == np.float32 and frames[0].image.shape == FRAME_SIZE
    assert frames[0].image[20, 12] == pytest.approx(spot_frame(12, 20)[20, 12] / 255)
    assert listed.paths == [tmp_path / "lists" / "../data/images/c.png", tmp_path / "loose" / "z.png"]


def test_bad_sources_are_one_line_errors(tmp_path: Path) -> None:
    write_png(tmp_path / "one" / "a.png", spot_frame(5, 5))
    write_png(tmp_path / "two" / "a.png", spot_frame(6, 6))
    listing = tmp_path / "list.txt"
    listing.write_text("one/a.png\n# fine\nmissing.png\n")
    with pytest.raises(InputError, match=r"list\.txt:3: missing\.png: no such image$"):
        open_source(listing)
    listing.write_text("one/a.png\nnotes.md\n")
    with pytest.raises(InputError, match=r"list\.txt:2: notes\.md: not a supported image"):
        open_source(listing)
    listing.write_text("# nothing\n\n")
    with pytest.raises(InputError, match="holds no image paths"):
        open_source(listing)
    with pytest.raises(InputError, match="two images share the name a"):
        open_source(str(tmp_path / "*" / "a.png"))
    with pytest.raises(InputError, match="no image matches this pattern"):
        open_source(str(tmp_path / "*.jpg"))
    with pytest.raises(InputError, match="no such file or folder"):
        open_source(tmp_path / "nowhere")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(InputError, match=r"x\.gif: not a supported image, video or list file"):
        open_source(tmp_path / "x.gif")
    with pytest.raises(InputError, match="--split applies to a folder source"):
        open_source(tmp_path / "one" / "a.png", split=listing)
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match=r"broken\.mp4: cannot open video"):
        open_source(tmp_path / "broken.mp4")


@pytest.mark.parametrize("name,fourcc", [("clip.mp4", "mp4v"), ("clip.avi", "MJPG")])
def test_video_frames_in_order_with_their_names(tmp_path: Path, name: str, fourcc: str) -> None:
    source = open_source(write_video(tmp_path / name, fourcc, POSITIONS))
    frames = list(source)
    assert source.kind == "video" and source.total == 7 and source.fps == pytest.approx(10.0)
    assert [f.name for f in frames] == [f"clip_{i:06d}" for i in range(7)]
    assert [f.index for f in frames] == list(range(7))
    for frame, (x, y) in zip(frames, POSITIONS):
        assert frame.image.shape == FRAME_SIZE and frame.image.dtype == np.float32
        row, col = np.unravel_index(np.argmax(frame.image), FRAME_SIZE)
        assert abs(col - x) <= 1 and abs(row - y) <= 1  # lossy codecs: the spot stays within a pixel


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pinpoint-reader") and t.is_alive()]


def test_reader_errors_surface_as_one_input_error_naming_the_file(tmp_path: Path) -> None:
    write_png(tmp_path / "f" / "a.png", spot_frame(5, 5))
    (tmp_path / "f" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    write_png(tmp_path / "f" / "c.png", spot_frame(7, 7))
    seen = []
    with pytest.raises(InputError) as info:
        for frame in prefetch(open_source(tmp_path / "f"), depth=2, label="f"):
            seen.append(frame.name)
    assert seen == ["a"]
    assert str(info.value).startswith(str(tmp_path / "f" / "b.png") + ": ") and "\n" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__

    def failing():
        yield 1
        raise RuntimeError("sensor unplugged\nsecond line")

    with pytest.raises(InputError, match=r"^camera: reading failed \(RuntimeError: sensor unplugged\)$"):
        list(prefetch(failing(), label="camera"))
    time.sleep(0.05)
    assert not _reader_threads()

    skipped: list[str] = []
    names = [f.name for f in prefetch(open_source(tmp_path / "f").frames(skipped))]
    assert names == ["a", "c"] and len(skipped) == 1 and skipped[0].startswith(str(tmp_path / "f" / "b.png"))


def test_prefetch_reads_ahead_only_so_far_and_stops_with_the_consumer() -> None:
    produced = []

    def counting():
        for i in range(1000):
            produced.append(i)
            yield i

    stream = prefetch(counting(), depth=3)
    assert next(stream) == 0
    time.sleep(0.3)  # the reader fills the queue and waits
    assert 3 <= len(produced) <= 3 + 2  # the queue, the item in the reader's hand, the one handed out
    stream.close()
    time.sleep(0.3)
    assert not _reader_threads() and len(produced) <= 6


def test_batches_cut_at_the_batch_size_and_at_a_size_change() -> None:
    shapes = [(4, 4)] * 5 + [(2, 2)] + [(4, 4)] * 2
    frames = [Frame(i, str(i), np.zeros(s, np.float32), "x") for i, s in enumerate(shapes)]
    assert [[f.index for f in g] for g in batches(frames, 3)] == [[0, 1, 2], [3, 4], [5], [6, 7]]


def test_detect_on_a_video_writes_labels_tables_and_an_annotated_video(video: Path, detector: Detector, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = detect_folder(detector, video, save_txt=out / "labels", save_csv=out / "points.csv", save_json=out / "points.json",
                        save_video=out / "annotated.mp4", conf=0.5, batch=3, progress=False)
    expected = [detector.predict(frame.image, conf=0.5) for frame in open_source(video)]
    assert run.frames == 7 and run.points == sum(len(p) for p in expected) and run.points >= 7
    assert run.notes == [] and run.capped == []  # every frame read, no frame over the cap

    assert sorted(p.name for p in (out / "labels").iterdir()) == [f"clip_{i:06d}.txt" for i in range(7)]
    assert int((out / "labels" / "clip_000003.txt").read_text().splitlines()[0]) == len(expected[3])

    with open(out / "points.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["frame", "name", "x", "y", "score"] and len(rows) == run.points
    first = [r for r in rows if r["frame"] == "0"]
    assert all(r["name"] == "clip_000000" for r in first)
    np.testing.assert_allclose([[float(r["x"]), float(r["y"])] for r in first], expected[0].xy, atol=1e-3)
    np.testing.assert_allclose([float(r["score"]) for r in first], expected[0].score, atol=1e-5)

    document = json.loads((out / "points.json").read_text())
    assert document["kind"] == "video" and document["fps"] == pytest.approx(10.0)
    assert [f["name"] for f in document["frames"]] == [f"clip_{i:06d}" for i in range(7)]
    assert sum(len(f["points"]) for f in document["frames"]) == run.points
    assert (document["frames"][6]["height"], document["frames"][6]["width"]) == FRAME_SIZE

    capture = cv2.VideoCapture(str(out / "annotated.mp4"))
    written = 0
    while True:
        ok, picture = capture.read()
        if not ok:
            break
        assert picture.shape == (*FRAME_SIZE, 3)
        written += 1
    capture.release()
    assert written == 7
    assert not list(out.glob(".*.tmp*"))  # atomic writes leave no temporary behind


def test_detect_cli_on_a_glob_and_a_list_file(weights: Path, tmp_path: Path, capsys) -> None:
    for i in range(3):
        write_png(tmp_path / "frames" / f"f{i}.png", spot_frame(10 + 5 * i, 20))
    (tmp_path / "frames" / "f9.png").write_bytes(b"broken")

    code = main(["detect", "--weights", str(weights), "--source", str(tmp_path / "frames" / "f*.png"), "--save-json",
                 str(tmp_path / "g.json"), "--batch", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"pinpoint: error: {tmp_path / 'frames' / 'f9.png'}: ") and err.count("\n") == 1

    assert main(["detect", "--weights", str(weights), "--source", str(tmp_path / "frames" / "f*.png"), "--skip-bad",
                 "--save-json", str(tmp_path / "g.json"), "--no-progress"]) == 0
    assert "skipped 1 bad file" in capsys.readouterr().out
    assert [f["name"] for f in json.loads((tmp_path / "g.json").read_text())["frames"]] == ["f0", "f1", "f2"]

    (tmp_path / "list.txt").write_text("frames/f2.png\nframes/f0.png\n")
    assert main(["detect", "--method", "tophat", "--source", str(tmp_path / "list.txt"), "--save-csv", str(tmp_path / "l.csv"),
                 "--save-txt", str(tmp_path / "txt"), "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "txt").iterdir()) == ["f0.txt", "f2.txt"]
    assert (tmp_path / "l.csv").read_text().startswith("frame,name,x,y,score\n")

