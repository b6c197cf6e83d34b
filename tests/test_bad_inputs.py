"""The bad-input suite: broken files, hostile checkpoints, outputs over inputs, silent wrong answers.

Each is a one-line error naming the file (and line) or the right result; --skip-bad goes on and lists
broken files. The corpus is the table of docs/bad-inputs.md (test_the_docs_table_is_the_corpus).
"""

from __future__ import annotations

import csv
import json
import os
import re
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pinpoint
from bad_input_table import DOCS_TABLE, add_rows, row, suite_rows, table_rows
from conftest import random_checkpoint
from pinpoint.checkpoints import load_checkpoint
from pinpoint.cli import main
from pinpoint.data.images import image_size, read_image
from pinpoint.data.labels import Labels, format_labels, parse_labels, read_labels
from pinpoint.errors import InputError
from pinpoint.files import atomic_path, is_temporary, numbered_folder


def png_bytes(size: int = 32, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    image = (40 + 10 * rng.random((size, size))).astype(np.uint8)
    image[size // 2, size // 3] = 250
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def with_size_in_header(png: bytes, width: int, height: int) -> bytes:
    """The same PNG whose IHDR announces another size, with the chunk's CRC recomputed so decoders trust it."""
    data = bytearray(png)
    assert data[12:16] == b"IHDR"
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def good_dataset(root: Path, n: int = 4) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        (root / "images" / f"good{i}.png").write_bytes(png_bytes(seed=i))
        (root / "labels" / f"good{i}.txt").write_text(format_labels(np.array([[1 / 3, 0.5]])))
    return root


def bad_image(content: bytes) -> Callable[[Path, str], Path]:
    def make(root: Path, stem: str) -> Path:
        (root / "labels" / f"{stem}.txt").write_text("1\n0.5 0.5\n")
        path = root / "images" / f"{stem}.png"
        path.write_bytes(content)
        return path
    return make


def bad_label(text: str) -> Callable[[Path, str], Path]:
    def make(root: Path, stem: str) -> Path:
        (root / "images" / f"{stem}.png").write_bytes(png_bytes())
        path = root / "labels" / f"{stem}.txt"
        path.write_text(text)
        return path
    return make


def label_without_image(root: Path, stem: str) -> Path:
    path = root / "labels" / f"{stem}.txt"
    path.write_text("1\n0.5 0.5\n")
    return path


def image_without_label(root: Path, stem: str) -> Path:
    (root / "images" / f"{stem}.png").write_bytes(png_bytes())
    return root / "labels" / f"{stem}.txt"  # the error names the missing label file


def folder_named_like_an_image(root: Path, stem: str) -> Path:
    """Root reads any file whatever its mode, so 'unreadable' is played by a folder where an image should be."""
    path = root / "images" / f"{stem}.png"
    path.mkdir()
    (root / "labels" / f"{stem}.txt").write_text("1\n0.5 0.5\n")
    return path


def unreadable_image(root: Path, stem: str) -> Path:
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading (see folder_named_like_an_image)")
    path = bad_image(png_bytes())(root, stem)
    path.chmod(0)
    return path


IMAGE_CASES: dict[str, Callable[[Path, str], Path]] = {
    "zero-byte image": bad_image(b""),
    "truncated png": bad_image(png_bytes()[: len(png_bytes()) // 2]),
    "text named .png": bad_image(b"this is a note, not a picture\n"),
    "40000 x 40000 header": bad_image(with_size_in_header(png_bytes(), 40000, 40000)),
    "unreadable image": unreadable_image,
}
DATASET_CASES: dict[str, Callable[[Path, str], Path]] = {
    **IMAGE_CASES,
    "label with nan": bad_label("2\n0.5 0.5\n0.25 nan\n"),
    "wrong count": bad_label("3\n0.5 0.5\n0.25 0.75\n"),
    "coordinate 1.5": bad_label("1\n1.5 0.5\n"),
    "coordinate -0.1": bad_label("1\n0.5 -0.1\n"),
    "label without image": label_without_image,
    "image without label": image_without_label,
    "folder named like an image": folder_named_like_an_image,
}


def assert_one_line_error(capsys, path: Path) -> None:
    err = capsys.readouterr().err
    assert err.startswith("pinpoint: error: ") and err.count("\n") == 1, err
    assert str(path) in err, err


@pytest.mark.parametrize("case", DATASET_CASES)
def test_train_stops_with_one_line_naming_the_file(case: str, tmp_path: Path, capsys) -> None:
    root = good_dataset(tmp_path / "data")
    bad = DATASET_CASES[case](root, "bad")
    code = main(["train", "--data", str(root), "--epochs", "1", "--batch", "2", "--device", "cpu",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    assert_one_line_error(capsys, bad)
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("case", DATASET_CASES)
def test_eval_stops_with_one_line_naming_the_file(case: str, tmp_path: Path, capsys) -> None:
    root = good_dataset(tmp_path / "data")
    bad = DATASET_CASES[case](root, "bad")
    assert main(["eval", "--data", str(root), "--method", "tophat"]) == 2
    assert_one_line_error(capsys, bad)


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_detect_stops_with_one_line_naming_the_file(case: str, tmp_path: Path, capsys) -> None:
    root = good_dataset(tmp_path / "data")
    bad = IMAGE_CASES[case](root, "bad")
    assert main(["detect", "--method", "tophat", "--source", str(root / "images"), "--save-txt", str(tmp_path / "pred"), "--no-progress"]) == 2
    assert_one_line_error(capsys, bad)


def test_train_skip_bad_goes_on_and_lists_every_bad_file(tmp_path: Path, capsys) -> None:
    root = good_dataset(tmp_path / "data", n=5)
    bad = {}
    for i, (case, make) in enumerate(DATASET_CASES.items()):
        if make is unreadable_image and os.geteuid() == 0:
            continue
        bad[case] = make(root, f"bad{i:02d}")
    run = tmp_path / "run"
    assert main(["train", "--data", str(root), "--epochs", "1", "--batch", "2", "--img-size", "0", "--crop-size", "32",
                 "--device", "cpu", "--out", str(run), "--no-progress", "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert f"skipped {len(bad)} bad file(s):" in out
    listed = (run / "skipped.txt").read_text().splitlines()
    assert len(listed) == len(bad)
    for case, path in bad.items():
        assert sum(line.startswith(f"{path}:") for line in listed) == 1, case
        assert f"  {path}:" in out, case
    used = re.search(r"(\d+) training / (\d+) validation images", out)
    assert used and int(used[1]) + int(used[2]) == 5  # the good images, and only those
    assert (run / "last.pt").is_file()


def test_detect_skip_bad_goes_on_and_lists_every_bad_image(tmp_path: Path, capsys) -> None:
    root = good_dataset(tmp_path / "data", n=2)
    bad = {case: make(root, f"bad{i}") for i, (case, make) in enumerate(IMAGE_CASES.items())
           if not (make is unreadable_image and os.geteuid() == 0)}
    pred = tmp_path / "pred"
    assert main(["detect", "--method", "tophat", "--source", str(root / "images"), "--save-txt", str(pred), "--skip-bad", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "in 2 image(s)" in out and f"skipped {len(bad)} bad file(s):" in out
    for path in bad.values():
        assert f"  {path}:" in out
    assert sorted(p.name for p in pred.iterdir()) == ["good0.txt", "good1.txt"]


# --- the label parser under structured mutations of valid files -------------------------------------

SOURCE = "fuzz/labels/x.txt"
TOKENS = st.sampled_from(["nan", "NaN", "inf", "-inf", "1.5", "-0.1", "1e309", "1e-400", "-0", "+0.5", "0x1", "1_0", "",
                          "abc", "0,5", "0.5 0.5", "\t", "\u00a0", "\u2028", "\x0b", "\x85", "\ufeff", "١", "½", "1e", "--1"])
UNIT = st.floats(0, 1, allow_nan=False)


@st.composite
def mutated_label_text(draw) -> str:
    """A valid label file after 1 to 4 edits of the kinds real files suffer."""
    xy = np.array(draw(st.lists(st.tuples(UNIT, UNIT), min_size=1, max_size=6)), dtype=np.float64).reshape(-1, 2)
    scores = np.array(draw(st.lists(UNIT, min_size=len(xy), max_size=len(xy)))) if draw(st.booleans()) else None
    lines = format_labels(xy, scores).splitlines()
    kinds = st.sampled_from(["drop", "duplicate", "token", "token", "token", "count", "blank", "column", "cut", "crlf", "bom"])
    for edit in draw(st.lists(kinds, min_size=1, max_size=4)):
        i = draw(st.integers(0, len(lines) - 1))
        if edit == "drop":
            lines.pop(i)
        elif edit == "duplicate":
            lines.insert(i, lines[i])
        elif edit == "token":  # mostly a point line: the count line has its own edit
            i = draw(st.integers(1, len(lines) - 1)) if len(lines) > 1 else 0
            fields = lines[i].split(" ")
            fields[draw(st.integers(0, len(fields) - 1))] = draw(TOKENS | st.text(max_size=4) | st.floats().map(repr))
            lines[i] = " ".join(fields)
        elif edit == "count":
            lines[0] = str(draw(st.integers(-3, 10)))
        elif edit == "blank":
            lines.insert(i, draw(st.sampled_from(["", " ", "\t"])))
        elif edit == "column":
            lines[i] += " " + draw(TOKENS | st.floats(0, 1).map(str))
        elif edit == "cut":
            lines[i] = lines[i][: draw(st.integers(0, max(len(lines[i]) - 1, 0)))]
        elif edit == "crlf":
            lines = [line + "\r" for line in lines]
        elif edit == "bom":
            lines[0] = "\ufeff" + lines[0]
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


@settings(max_examples=400, deadline=None)
@given(mutated_label_text())
def test_label_parser_returns_labels_or_a_one_line_error_naming_the_source(text: str) -> None:
    try:
        labels = parse_labels(text, SOURCE)
    except InputError as exc:
        message = str(exc)
        assert message.startswith(SOURCE) and len(message.splitlines()) == 1, repr(message)
        return
    assert isinstance(labels, Labels)
    assert labels.xy.shape == (len(labels), 2) and labels.xy.dtype == np.float64
    assert np.isfinite(labels.xy).all() and (labels.xy >= 0).all() and (labels.xy <= 1).all()
    assert labels.scores is None or (labels.scores.shape == (len(labels),) and np.isfinite(labels.scores).all())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(UNIT, UNIT), max_size=6))
def test_unmutated_files_parse_back(points) -> None:
    xy = np.array(points, dtype=np.float64).reshape(-1, 2)
    np.testing.assert_allclose(parse_labels(format_labels(xy), SOURCE).xy, xy, atol=5e-7)


# =====================================================================================================
# The corpus of hostile and unusual inputs (issue 24). Every test below is one row of the table in
# docs/bad-inputs.md, registered by @row: what a user gave, and what pinpoint does with it.
# test_the_docs_table_is_the_corpus keeps the two the same.

add_rows(__name__, [
    ("A broken image or label file in train, eval or detect: zero bytes, truncated, text named .png, a 40000 x 40000 "
     "header, unreadable, a folder named like an image, NaN or out-of-range coordinates, a wrong count, a label "
     "without its image, an image without its label",
     "One line naming the file (and line). With --skip-bad the file is left out, and every one is listed at the end "
     "(train: also RUN/skipped.txt)"),
    ("A label file mutated at random (hypothesis: dropped, doubled, cut or blank lines, stray tokens, wrong counts, "
     "CRLF, byte-order marks)", "Either the labels it holds or one line naming the file (and line)"),
])


def run(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, *args: object, naming: tuple[object, ...] = ()) -> str:
    """Run a command that must stop with exit status 2 and one line `pinpoint: error: ...` holding each of `naming`."""
    code, out, err = run(capsys, *args)
    assert code == 2, (out, err)
    assert err.startswith("pinpoint: error: ") and err.count("\n") == 1, err
    for needle in naming:
        assert str(needle) in err, err
    return err


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return random_checkpoint(tmp_path_factory.mktemp("weights") / "best.pt")


def train_args(data: Path, out: Path, *more: object) -> list[object]:
    return ["train", "--data", data, "--model", "heatmap", "--epochs", 1, "--batch", 2, "--crop-size", 32,
            "--device", "cpu", "--no-progress", "--out", out, *more]


# --- 1. a checkpoint must not run code ---------------------------------------------------------------


class Payload:
    """Pickles as a call to exec that leaves a marker file: what a hostile .pt file does."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def hostile_copy(weights: Path, path: Path, marker: Path, **extra: object) -> Path:
    """A real checkpoint with a payload riding along, saved the way torch.save pickles anything."""
    torch.save({**load_checkpoint(weights), **extra, "note": Payload(marker)}, path)
    return path


def test_the_hostile_checkpoint_would_run_under_plain_pickle(weights: Path, tmp_path: Path) -> None:
    # the refusals below are of a live payload: loaded the old way, it runs
    marker = tmp_path / "ran"
    torch.load(hostile_copy(weights, tmp_path / "hostile.pt", marker), weights_only=False)
    assert marker.read_text() == "ran"


CONSUMERS: dict[str, Callable[[Path, Path, Path], list[object]]] = {
    "detect": lambda pt, data, tmp: ["detect", "--weights", pt, "--source", data / "images", "--no-progress"],
    "eval": lambda pt, data, tmp: ["eval", "--data", data, "--weights", pt, "--device", "cpu"],
    "export": lambda pt, data, tmp: ["export", "--weights", pt, "--out", tmp / "x.onnx"],
    "bench": lambda pt, data, tmp: ["bench", "--weights", pt, "--backend", "torch", "--batch", 1, "--seconds", 0.05],
    "train --init": lambda pt, data, tmp: train_args(data, tmp / "run", "--init", pt),
}


@row("A checkpoint (.pt) whose pickle calls Python code when loaded (exec, os.system), given to detect, eval, "
     "export, bench, train --init / --resume, annotate --weights or pinpoint.load()",
     "Refused before any of it runs (torch.load with weights_only=True): one line naming the file and the call it asks for")
@pytest.mark.parametrize("verb", CONSUMERS)
def test_a_checkpoint_that_would_run_code_is_refused(verb: str, weights: Path, tmp_path: Path, capsys) -> None:
    data = good_dataset(tmp_path / "data")
    marker = tmp_path / "ran"
    hostile = hostile_copy(weights, tmp_path / "hostile.pt", marker)
    refused(capsys, *CONSUMERS[verb](hostile, data, tmp_path), naming=(hostile, "refused", "(exec)"))
    assert not marker.exists()


def test_resume_annotate_and_load_refuse_it_too(weights: Path, tmp_path: Path, capsys) -> None:
    from pinpoint.annotate import make_server

    data = good_dataset(tmp_path / "data")
    marker = tmp_path / "ran"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    hostile_copy(weights, run_dir / "last.pt", marker, config={}, optimizer={}, scheduler={}, scaler={}, step=0,
                 processes=[], history=[])
    refused(capsys, "train", "--resume", run_dir, "--no-progress", naming=(run_dir / "last.pt", "refused"))
    hostile = hostile_copy(weights, tmp_path / "hostile.pt", marker)
    for load in (lambda: pinpoint.load(hostile), lambda: make_server(data, weights=hostile, port=0)):
        with pytest.raises(InputError, match="refused"):
            load()
    assert not marker.exists()


@row("A .pt file that is not a checkpoint: random bytes, a text file, a checkpoint missing a key, a model this "
     "version does not know, a NaN threshold",
     "One line naming the file and what is wrong with it")
@pytest.mark.parametrize("content, says", [
    (b"\x8a\x0f\x99 random bytes \x00\x01", "cannot read checkpoint"),
    (b"weights: see the attached spreadsheet\n", "cannot read checkpoint"),
    ("no inference", "not a pinpoint checkpoint (no inference)"),
    ("unknown model", "model 'pinnet-xl' is not one this version of pinpoint knows"),
    ("nan threshold", "threshold = nan"),
])
def test_files_that_are_not_checkpoints(content: object, says: str, weights: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "model.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        ckpt = load_checkpoint(weights)
        if content == "no inference":
            del ckpt["inference"]
        elif content == "unknown model":
            ckpt["model_name"] = "pinnet-xl"
        else:
            ckpt["inference"]["threshold"] = float("nan")
        torch.save(ckpt, path)
    refused(capsys, "detect", "--weights", path, "--source", good_dataset(tmp_path / "data"), naming=(path, says))


# --- 2. nothing a user made is overwritten ----------------------------------------------------------


@row("train --out FOLDER where FOLDER holds a run (best.pt, last.pt, ...)",
     "Refused before any work, naming --resume and --overwrite; --overwrite replaces the run")
def test_train_into_a_run_folder_is_refused_unless_overwrite(tmp_path: Path, capsys) -> None:
    data, out = good_dataset(tmp_path / "data"), tmp_path / "run"
    assert run(capsys, *train_args(data, out))[0] == 0
    before = {name: (out / name).read_bytes() for name in ("best.pt", "last.pt")}
    refused(capsys, *train_args(data, out), naming=(out, "holds a run already", "--resume", "--overwrite"))
    assert {name: (out / name).read_bytes() for name in before} == before
    stale = out / "skipped.txt"
    stale.write_text("from the old run\n")
    assert run(capsys, *train_args(data, out, "--overwrite"))[0] == 0
    assert (out / "best.pt").is_file() and not stale.exists()  # the old run's files went with it


@row("pinpoint train twice without --out", "runs/train, then runs/train2: a new folder each time, as other training tools do")
def test_train_without_out_takes_a_fresh_numbered_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    data = good_dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    args = [a for a in train_args(data, "x") if a not in ("--out", "x")]
    assert run(capsys, *args)[0] == 0
    first = (tmp_path / "runs" / "train" / "best.pt").read_bytes()
    code, out, _ = run(capsys, *args)
    assert code == 0 and str(Path("runs") / "train2") in out
    assert (tmp_path / "runs" / "train2" / "best.pt").is_file()
    assert (tmp_path / "runs" / "train" / "best.pt").read_bytes() == first


@row("pinpoint demo --out FOLDER where FOLDER is not empty; pinpoint demo twice without --out",
     "Refused before any work; without --out, the first free one of pinpoint-demo, pinpoint-demo2, ...")
def test_demo_never_writes_into_a_used_folder(tmp_path: Path, capsys) -> None:
    used = tmp_path / "mine"
    used.mkdir()
    (used / "notes.txt").write_text("keep me\n")
    refused(capsys, "demo", "--out", used, naming=(used, "not an empty folder"))
    assert (used / "notes.txt").read_text() == "keep me\n"
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "x").write_text("")
    (tmp_path / "base2").mkdir()  # empty: free
    assert numbered_folder(tmp_path / "base") == tmp_path / "base2"
    assert numbered_folder(tmp_path / "other") == tmp_path / "other" and (tmp_path / "other").is_dir()


@row("detect --save-txt DATA/labels (the ground truth beside the images); detect --save-vis DATA/images; "
     "export --out X.pt --weights X.pt; an output that is one of the inputs",
     "Refused before any work: one line naming the output and what it would overwrite")
def test_outputs_that_would_overwrite_inputs_are_refused(weights: Path, tmp_path: Path, capsys) -> None:
    data = good_dataset(tmp_path / "data")
    labels = {p.name: p.read_bytes() for p in (data / "labels").iterdir()}
    images = {p.name: p.read_bytes() for p in (data / "images").iterdir()}
    for source in (data, data / "images"):
        refused(capsys, "detect", "--method", "tophat", "--source", source, "--save-txt", data / "labels",
                naming=(data / "labels", "--save-txt would"))
        refused(capsys, "detect", "--method", "tophat", "--source", source, "--save-vis", data / "images",
                naming=(data / "images", "--save-vis would"))
    assert {p.name: p.read_bytes() for p in (data / "labels").iterdir()} == labels
    assert {p.name: p.read_bytes() for p in (data / "images").iterdir()} == images
    saved = weights.read_bytes()
    refused(capsys, "export", "--weights", weights, "--out", weights, naming=(weights, ".onnx"))
    refused(capsys, "detect", "--weights", weights, "--source", data, "--save-json", weights, naming=(weights, "overwrite an input"))
    refused(capsys, "bench", "--weights", weights, "--json", weights, naming=(weights, "overwrite an input"))
    assert weights.read_bytes() == saved


@row("A folder holding a.png and a.jpg (or a.png and a.PNG), in detect, eval, train or annotate",
     "Refused: one line naming both files (their labels and outputs would share one name)")
@pytest.mark.parametrize("names", [("a.png", "a.jpg"), ("a.png", "a.PNG")])
@pytest.mark.parametrize("verb", ["detect", "eval", "train", "annotate"])
def test_two_images_with_one_stem_are_refused_in_every_verb(verb: str, names: tuple[str, str], tmp_path: Path, capsys) -> None:
    from pinpoint.annotate import make_server

    data = good_dataset(tmp_path / "data")
    for name in names:
        (data / "images" / name).write_bytes(png_bytes(seed=7))
    (data / "labels" / "a.txt").write_text("1\n0.5 0.5\n")
    if verb == "annotate":
        with pytest.raises(InputError, match=f"two images share the name a .*{re.escape(names[1])}"):
            make_server(data, port=0)
        return
    args = {"detect": ["detect", "--method", "tophat", "--source", data, "--save-txt", tmp_path / "pred", "--no-progress"],
            "eval": ["eval", "--data", data, "--method", "tophat"],
            "train": train_args(data, tmp_path / "run")}[verb]
    refused(capsys, *args, naming=("two images share the name a", *names))


# --- 3. no silent wrong answer -----------------------------------------------------------------------


def grid_of_spots(path: Path, count: int = 144) -> Path:
    """A frame with `count` bright dots 10 px apart: more targets than the default cap of 100."""
    columns = int(np.ceil(np.sqrt(count)))
    side = columns * 10 + 10
    image = np.full((side, side), 40, np.uint8)
    for k in range(count):
        image[10 + 10 * (k // columns), 10 + 10 * (k % columns)] = 250
    cv2.imwrite(str(path), image)
    return path


@row("An image with more points above the threshold than the cap (--max-points, 100 by default)",
     "The best N are kept and a warning says which images reached the cap; --max-points N raises it "
     "(detect, eval and Detector.predict(max_points=...)); Points.capped is True")
def test_the_cap_of_points_is_an_option_and_is_reported(weights: Path, tmp_path: Path, capsys) -> None:
    image = grid_of_spots(tmp_path / "grid.png")
    code, _, err = run(capsys, "detect", "--method", "tophat", "--source", image, "--save-txt", tmp_path / "a",
                       "--max-points", 100, "--no-progress")
    assert code == 0 and read_labels(tmp_path / "a" / "grid.txt").xy.shape == (100, 2)
    assert "warning: 1 image(s) had more points above the threshold than --max-points 100" in err and "grid" in err
    code, _, err = run(capsys, "detect", "--method", "tophat", "--source", image, "--save-txt", tmp_path / "b", "--no-progress")
    assert code == 0 and len(read_labels(tmp_path / "b" / "grid.txt")) == 144 and "warning" not in err
    # a checkpoint's cap: every peak of random weights passes --conf 0
    code, _, err = run(capsys, "detect", "--weights", weights, "--source", image, "--conf", 0, "--save-json",
                       tmp_path / "c.json", "--no-progress")
    frame = json.loads((tmp_path / "c.json").read_text())["frames"][0]
    assert code == 0 and len(frame["points"]) == 100 and frame["capped"] is True
    assert "the checkpoint's 100" in err
    detector = pinpoint.load(weights, device="cpu")
    many = detector.predict(image, conf=0.0, max_points=100_000)
    assert len(many) > 100 and not many.capped
    few = detector.predict(image, conf=0.0, max_points=5)
    assert len(few) == 5 and few.capped and np.array_equal(few.score, many.score[:5])
    code, _, err = run(capsys, "eval", "--data", good_dataset(tmp_path / "data"), "--weights", weights, "--conf", 0,
                       "--max-points", 1, "--device", "cpu")
    assert code == 0 and "than --max-points 1" in err


def mjpeg_video(path: Path, frames: int = 12) -> tuple[Path, bytes, list[int]]:
    """An MJPG .avi of a moving dot; returns it, its bytes and where each frame's JPEG starts."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(frames):
        frame = np.full((48, 64), 40, np.uint8)
        frame[20:23, 4 * i + 2:4 * i + 5] = 250
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    data = path.read_bytes()
    starts = [m.start() for m in re.finditer(b"\xff\xd8\xff", data)]
    assert len(starts) == frames
    return path, data, starts


@row("A video with a frame that cannot be decoded, and a video cut short (fewer frames than its header says)",
     "The frames after a bad one are still read, under their own frame numbers; a warning names the frames left "
     "out and says how many of the header's frames were read")
def test_a_bad_video_frame_does_not_end_the_stream(tmp_path: Path, capsys) -> None:
    path, data, starts = mjpeg_video(tmp_path / "clip.avi")
    damaged = bytearray(data)
    damaged[starts[5]:starts[6] - 8] = bytes(starts[6] - 8 - starts[5])  # frame 5's picture wiped out
    bad = tmp_path / "bad.avi"
    bad.write_bytes(bytes(damaged))
    code, _, err = run(capsys, "detect", "--method", "tophat", "--source", bad, "--save-csv", tmp_path / "bad.csv", "--no-progress")
    with open(tmp_path / "bad.csv", newline="") as f:
        frames = sorted({int(r["frame"]) for r in csv.DictReader(f)})
    assert code == 0 and frames == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert "1 frame(s) could not be decoded and were left out (frame 5)" in err
    short = tmp_path / "short.avi"
    short.write_bytes(data[:starts[8]])
    code, out, err = run(capsys, "detect", "--method", "tophat", "--source", short, "--no-progress")
    # nothing saved: the points go to standard output as CSV, the summary to standard error
    assert code == 0 and out.startswith("frame,name,x,y,score\n") and "in 8 image(s)" in err
    assert "read 8 of the 12 frames its header announces" in err


@row("An image array of int32, int64 or uint32 (a Python list of ints, an int32 TIFF)",
     "Read by the range its values use (0..255 as 8-bit, 0..65535 as 16-bit, else minimum to maximum): "
     "the same points as the 8-bit image")
@pytest.mark.parametrize("kind", ["int32", "int64", "uint32", "list", "tiff", "wide"])
def test_integer_images_wider_than_16_bits(kind: str, tmp_path: Path) -> None:
    from pinpoint.detect import ClassicalDetector

    eight = cv2.imread(str(grid_of_spots(tmp_path / "g.png", 16)), cv2.IMREAD_UNCHANGED)
    detector = ClassicalDetector("tophat")
    expected = detector.predict(eight)
    if kind == "tiff":
        assert cv2.imwrite(str(tmp_path / "g.tif"), eight.astype(np.int32))
        given: object = tmp_path / "g.tif"
    elif kind == "list":
        given = eight.tolist()
    elif kind == "wide":  # a 20-bit sensor: stretched from its minimum to its maximum, the same picture
        given = eight.astype(np.int64) * 4096 - 100_000
    else:
        given = eight.astype(kind)
    found = detector.predict(given)
    assert len(found) == len(expected) == 16
    np.testing.assert_allclose(found.xy, expected.xy, atol=1e-4)


@row("A label line with a decimal comma (0,1 0); a ground-truth label with a score column (x y score)",
     "One line naming the file and line: a decimal comma is not read as two numbers, and ground truth takes "
     "exactly x y (prediction files keep their score column)")
def test_decimal_commas_and_score_columns_in_ground_truth(tmp_path: Path, capsys) -> None:
    with pytest.raises(InputError, match=r"^a\.txt:2: '0,1' looks like a decimal comma"):
        parse_labels("1\n0,1 0\n", "a.txt")
    assert parse_labels("1\n0.25,0.5\n", "a.txt").xy.tolist() == [[0.25, 0.5]]  # a comma alone still separates
    data = good_dataset(tmp_path / "data")
    (data / "labels" / "good1.txt").write_text("1\n0.5 0.5 0.9\n")
    for args in (train_args(data, tmp_path / "run"), ["eval", "--data", data, "--method", "tophat"]):
        refused(capsys, *args, naming=(f"{data / 'labels' / 'good1.txt'}:2", "ground truth takes 'x y'"))
    assert parse_labels("1\n0.5 0.5 0.9\n").scores.tolist() == [0.9]  # predictions keep their score


@row("--conf nan, convert masks --threshold nan, --lr nan, and other NaN or out-of-range numbers",
     "Refused when the command line is read: one line naming the option, the value and its limits")
@pytest.mark.parametrize("args, says", [
    (["detect", "--method", "tophat", "--source", "x.png", "--conf", "nan"], "--conf nan: must be a finite number"),
    (["detect", "--method", "tophat", "--source", "x.png", "--conf", "1.5"], "--conf 1.5: must be a number >= 0 and <= 1"),
    (["convert", "masks", "--masks", "m", "--out", "o", "--threshold", "nan"], "--threshold nan: must be a finite number"),
    (["train", "--data", "d", "--lr", "nan"], "--lr nan: must be a finite number"),
    (["train", "--data", "d", "--epochs", "0"], "--epochs 0: must be a whole number >= 1"),
    (["train", "--data", "d", "--crop-size", "0"], "--crop-size 0: must be a whole number >= 1"),
    (["train", "--data", "d", "--img-size", "-8"], "--img-size -8: must be a whole number >= 0"),
    (["train", "--data", "d", "--workers", "-1"], "--workers -1: must be a whole number >= 0"),
    (["train", "--data", "d", "--nms-kernel", "4"], "--nms-kernel 4: must be an odd whole number >= 1"),
    (["train", "--data", "d", "--epochs", "2.5"], "--epochs 2.5: a whole number >= 1 was expected"),
    (["eval", "--data", "d", "--method", "tophat", "--dist", "-1"], "--dist -1: must be a number > 0"),
    (["detect", "--method", "tophat", "--source", "x.png", "--max-points", "0"], "--max-points 0: must be a whole number >= 1"),
    (["annotate", "d", "--port", "70000"], "--port 70000: must be a whole number >= 0 and <= 65535"),
])
def test_numbers_are_checked_when_the_command_line_is_read(args: list[str], says: str, capsys) -> None:
    refused(capsys, *args, naming=(says,))


@row("--model misspelt (train, bench, demo)", "One line listing the models that exist")
def test_a_misspelt_model_lists_the_names(tmp_path: Path, capsys) -> None:
    err = refused(capsys, "train", "--data", tmp_path, "--model", "pinnet-s2d-gatd", naming=("--model", "pinnet-s2d-gatd"))
    assert "pinnet-s2d-gated" in err and "heatmap" in err


@row("A split file listing an image twice", "One line naming the split file, the line and the first line it was on")
def test_a_stem_listed_twice_in_a_split_is_refused(tmp_path: Path, capsys) -> None:
    data = good_dataset(tmp_path / "data")
    split = tmp_path / "test.txt"
    split.write_text("good0\r\ngood1\r\ngood2\r\ngood1.png\r\n")
    refused(capsys, "eval", "--data", data, "--split", split, "--method", "tophat",
            naming=(f"{split}:4: good1 is listed again (first on line 2)",))


@row("A split file naming an image that is not there", "One line naming the split file, its line and the image looked for")
def test_a_missing_split_stem_names_the_split_and_line(tmp_path: Path, capsys) -> None:
    data = good_dataset(tmp_path / "data")
    split = tmp_path / "train.txt"
    split.write_text("good0\n\ngohst\n")
    for args in (train_args(data, tmp_path / "run", "--split", split), ["eval", "--data", data, "--split", split, "--method", "tophat"],
                 ["detect", "--method", "tophat", "--source", data, "--split", split]):
        refused(capsys, *args, naming=(f"{split}:3: ", data / "images" / "gohst"))


@row("Images whose names hold a comma, a quote or a line break, in --save-csv",
     "Written with Python's csv module: every name reads back exactly")
def test_csv_names_are_quoted(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    names = ["a,b", 'say "hi"', "two\nlines", "plain"]
    for i, name in enumerate(names):
        grid_of_spots(folder / f"{name}.png", 4 + i)
    assert run(capsys, "detect", "--method", "tophat", "--source", folder, "--save-csv", tmp_path / "p.csv", "--no-progress")[0] == 0
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted({r["name"] for r in rows}) == sorted(names)
    assert len(rows) == 4 + 5 + 6 + 7


def exif_image(path: Path, stored: np.ndarray, orientation: int) -> Path:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, exif=exif.tobytes(), **({"quality": 100} if path.suffix == ".jpg" else {}))
    return path


@row("A JPEG (or PNG) with an EXIF orientation (a camera's picture stored sideways)",
     "Read as displayed, the orientation applied, as browsers and labelling tools show it: in every reader "
     "(train, eval, detect, annotate, convert)")
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(suffix: str, orientation: int, tmp_path: Path) -> None:
    from PIL import Image, ImageOps

    stored = np.full((40, 60), 30, np.uint8)
    stored[5:8, 48:51] = 250  # a target near the stored picture's top right corner
    stored[30:33, 10:13] = 140
    path = exif_image(tmp_path / f"frame{suffix}", stored, orientation)
    with Image.open(path) as im:
        displayed = np.asarray(ImageOps.exif_transpose(im).convert("L"), dtype=np.float32) / 255
    got = read_image(path)
    assert got.shape == displayed.shape == ((60, 40) if orientation >= 5 else (40, 60))
    assert np.abs(got - displayed).max() < (0.03 if suffix == ".jpg" else 1e-6)
    assert image_size(path) == got.shape


@row("A COCO file whose image size disagrees with the image beside it (the tool saw another frame, or the "
     "image was resized since)", "convert coco-to-labels refuses it: one line naming the image and both sizes")
def test_coco_sizes_are_checked_against_the_images(tmp_path: Path, capsys) -> None:
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    exif_image(images / "cam.jpg", np.full((40, 60), 30, np.uint8), 6)  # stored 60 x 40, displayed 40 x 60
    coco = {"images": [{"id": 1, "file_name": "cam.jpg", "width": 60, "height": 40}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": [10.5, 30.5, 2]}],
            "categories": [{"id": 1, "name": "target"}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    out = tmp_path / "data" / "labels"
    refused(capsys, "convert", "coco-to-labels", "--coco", tmp_path / "coco.json", "--out", out,
            naming=("cam.jpg", "60 x 40 in the JSON", "40 x 60 as displayed"))
    assert not list(out.glob("*.txt"))
    coco["images"][0].update(width=40, height=60)
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    assert run(capsys, "convert", "coco-to-labels", "--coco", tmp_path / "coco.json", "--out", out)[0] == 0
    np.testing.assert_allclose(read_labels(out / "cam.txt").xy, [[10 / 40, 30 / 60]])


# --- 4. no traceback --------------------------------------------------------------------------------


@row("An output path under a regular file (--save-csv FILE/out.csv), or a folder where a file goes (--save-json DIR)",
     "Refused before the first frame is read: one line naming the path")
def test_output_paths_are_checked_before_the_work(tmp_path: Path, capsys) -> None:
    data = good_dataset(tmp_path / "data")
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder\n")
    (tmp_path / "adir").mkdir()
    pred = tmp_path / "pred"
    for flag, path, says in (("--save-csv", blocker / "out.csv", "a file where --save-csv needs a folder"),
                             ("--save-json", tmp_path / "adir", "must be a file"),
                             ("--save-vis", blocker / "vis", "a file where --save-vis needs a folder")):
        refused(capsys, "detect", "--method", "tophat", "--source", data, "--save-txt", pred, flag, path, naming=(says,))
        assert not pred.exists() or not any(pred.iterdir())  # no frame was processed
    refused(capsys, *train_args(data, blocker), naming=(blocker, "must be a folder"))
    refused(capsys, "eval", "--data", data, "--method", "tophat", "--report", blocker / "r", naming=(blocker,))


@row("Other values that name nothing usable: --device foo, --threads 100000, a --source that is a device, "
     "synth into a path that is a file, predict(conf=nan) in Python",
     "One line naming the value (a ValueError naming it, in Python)")
def test_values_that_name_nothing_usable(weights: Path, tmp_path: Path, capsys) -> None:
    data = good_dataset(tmp_path / "data")
    blocker = tmp_path / "afile"
    blocker.write_text("x\n")
    refused(capsys, "detect", "--weights", weights, "--source", data, "--device", "foo", naming=("--device foo: not a device",))
    refused(capsys, "detect", "--method", "tophat", "--source", data, "--threads", 100000, naming=("--threads 100000",))
    refused(capsys, "detect", "--method", "tophat", "--source", "/dev/null", naming=("/dev/null: not a regular file or a folder",))
    refused(capsys, "synth", blocker / "set", "--n", 2, naming=(blocker, "a file where OUT needs a folder"))
    with pytest.raises(ValueError, match="conf nan: must be a finite number"):
        pinpoint.load(weights, device="cpu").predict(np.zeros((32, 32), np.float32), conf=float("nan"))


@row("Training on videos (videos/ beside labels/*.csv) or on a dataset file (.toml): a malformed CSV row, a label past "
     "the video's end, a video that does not decode, a dataset file with an unknown key or a missing folder",
     "One line naming the file and row (or the dataset); with --skip-bad a bad video is left out and listed")
def test_bad_video_datasets_and_dataset_files(tmp_path: Path, capsys) -> None:
    from test_videos import dot_video

    for name in ("a", "b", "c"):  # one of three is held out for validation
        dot_video(tmp_path / "clips", name)
    labels = tmp_path / "clips" / "labels" / "b.csv"
    labels.write_text(labels.read_text() + "99,10,20,4,4,drone\n")
    args = ["train", "--data", tmp_path / "clips", "--epochs", 1, "--batch", 2, "--crop-size", 32, "--device", "cpu",
            "--no-progress", "--every", 4]
    refused(capsys, *args, "--out", tmp_path / "r1", naming=(f"{labels}:14: frame 99 is past the video's end",))
    labels.write_text("frame,x,y,w,h,class\n0,ten,20,4,4,drone\n")
    refused(capsys, *args, "--out", tmp_path / "r2", naming=(f"{labels}:2: frame must be a whole number",))
    dot_video(tmp_path / "clips", "b")  # good labels again, then a video that does not decode
    (tmp_path / "clips" / "videos" / "b.avi").write_bytes(b"garbage")
    code, out, _ = run(capsys, *args, "--out", tmp_path / "r3", "--skip-bad")
    assert code == 0 and "skipped 1 bad file(s)" in out and "b.avi: cannot open video" in out
    sets = tmp_path / "sets.toml"
    sets.write_text('[[dataset]]\npath = "nowhere"\n')
    refused(capsys, "train", "--data", sets, "--out", tmp_path / "r4", "--no-progress", naming=("nowhere: no images/ folder",))
    sets.write_text('[[dataset]]\npath = "clips"\nsplits = "a.txt"\n')
    refused(capsys, "train", "--data", sets, "--out", tmp_path / "r5", naming=(f"{sets}: dataset 1: unknown key 'splits'",))


# --- 5. smaller ----------------------------------------------------------------------------------------


@row("A label or image file that is a link to /dev/zero (or a FIFO)", "One line naming the file: only regular files are read, "
     "text files up to a size bound")
@pytest.mark.parametrize("which", ["labels/good1.txt", "images/good1.png"])
def test_links_to_endless_files_are_refused(which: str, tmp_path: Path, capsys) -> None:
    data = good_dataset(tmp_path / "data")
    (data / which).unlink()
    (data / which).symlink_to("/dev/zero")
    refused(capsys, "eval", "--data", data, "--method", "tophat", naming=(data / which, "not a regular file"))


@row("Temporary files a killed run left (.last.<hex>.tmp.pt in a run, .NAME.<hex>.tmp.txt in labels/)",
     "Never listed as images or labels; removed when a verb next writes into that folder, once an hour old")
def test_temporaries_of_killed_runs_are_ignored_and_swept(tmp_path: Path, capsys) -> None:
    data = good_dataset(tmp_path / "data")
    left = data / "labels" / ".good0.0123456789ab.tmp.txt"
    left.write_text("1\n0.5")  # half-written
    assert run(capsys, "eval", "--data", data, "--method", "tophat")[0] == 0
    out = tmp_path / "run"
    out.mkdir()
    old, fresh = out / ".last.00112233aabb.tmp.pt", out / ".best.445566778899.tmp.pt"
    old.write_bytes(b"half a checkpoint")
    fresh.write_bytes(b"being written now")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    assert run(capsys, *train_args(data, out))[0] == 0
    assert not old.exists() and fresh.exists()  # a live writer's file is left alone


def test_is_temporary_matches_what_atomic_writes_leave(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "last.pt") as tmp:
        assert is_temporary(tmp)
    assert not is_temporary(tmp_path / "last.pt") and not is_temporary(tmp_path / ".hidden.txt")


@row("A PNG with a bad checksum, a video whose index is missing: libpng and FFmpeg print their own complaints",
     "Only pinpoint's one line reaches the terminal")
def test_library_chatter_does_not_reach_stderr(tmp_path: Path) -> None:
    png = bytearray(png_bytes(64))
    png[len(png) // 2] ^= 0xFF  # inside the compressed data: zlib's check fails, libpng says so on stderr
    (tmp_path / "crc.png").write_bytes(bytes(png))
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    noise = np.random.default_rng(0)
    for _ in range(20):
        writer.write(noise.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    whole = (tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[:len(whole) // 2])  # the index (moov atom) sits at the end: gone
    for source in ("crc.png", "cut.mp4"):
        result = subprocess.run([sys.executable, "-m", "pinpoint", "detect", "--method", "tophat", "--source",
                                 str(tmp_path / source), "--no-progress"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and result.stderr.startswith("pinpoint: error: "), result.stderr
        assert result.stderr.count("\n") == 1 and source in result.stderr, result.stderr


@row("A blank line inside a label file", "One line naming the file and the blank line (not line 1)")
def test_a_blank_line_is_blamed_on_its_own_line(tmp_path: Path, capsys) -> None:
    data = good_dataset(tmp_path / "data")
    (data / "labels" / "good2.txt").write_text("2\n0.5 0.5\n\n0.25 0.25\n")
    refused(capsys, "eval", "--data", data, "--method", "tophat", naming=(f"{data / 'labels' / 'good2.txt'}:3: blank line",))


# --- 6. the newer verbs hold the same line (issue 34) --------------------------------------------------


def dot_videos(root: Path, names: tuple[str, ...] = ("a", "b"), suffix: str = ".avi") -> Path:
    """A video dataset of 64 x 48 videos of 8 frames: a bright dot moving right by 4 px a frame from
    x 6, y 20, in each video of `names`, and its label CSV (test_videos.dot_video)."""
    from test_videos import dot_video

    for name in names:
        dot_video(root, name, frames=8, suffix=suffix)
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


TRACK = ("track", "--method", "tophat", "--no-progress")


@row("track --save-csv DATA/labels (a video dataset's ground truth), --save-csv DATA/labels/NAME.csv for one of its "
     "videos, --save-video DATA/videos (the input videos); any output put among a dataset's images, videos or labels",
     "Refused before any work: one line naming the output and the folder or file it would write over")
def test_track_never_writes_over_ground_truth_or_videos(tmp_path: Path, capsys) -> None:
    data = dot_videos(tmp_path / "vset", suffix=".mp4")
    before = snapshot(data)
    refused(capsys, *TRACK, "--source", data, "--save-csv", data / "labels", naming=(data / "labels", "--save-csv"))
    refused(capsys, *TRACK, "--source", data, "--save-mot", data / "labels", naming=(data / "labels", "--save-mot"))
    refused(capsys, *TRACK, "--source", data / "videos" / "a.mp4", "--save-csv", data / "labels" / "a.csv",
            naming=(data / "labels" / "a.csv", "--save-csv"))
    refused(capsys, *TRACK, "--source", data, "--save-video", data / "videos", naming=(data / "videos", "--save-video"))
    refused(capsys, *TRACK, "--source", data / "videos" / "a.mp4", "--save-video", data / "videos" / "b.mp4",
            naming=(data / "videos" / "b.mp4", "--save-video"))
    refused(capsys, "detect", "--method", "tophat", "--source", data / "videos" / "a.mp4", "--save-txt", data / "labels",
            naming=(data / "labels", "--save-txt"))
    assert snapshot(data) == before
    assert run(capsys, *TRACK, "--source", data, "--save-csv", tmp_path / "tracks")[0] == 0  # elsewhere: written
    assert sorted(p.name for p in (tmp_path / "tracks").iterdir()) == ["a.csv", "b.csv"]


def not_a_regular_file(kind: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        if kind == "link to /dev/zero":
            path.symlink_to("/dev/zero")
        elif kind == "FIFO":
            os.mkfifo(path)
        elif kind == "folder":
            path.mkdir()
        else:
            path.symlink_to(path.parent / "gone.png")
    return make


@row("detect --source DIR where DIR (or DIR/images) holds an entry named like an image that is not a regular file: "
     "a link to /dev/zero, a FIFO, a folder, a broken link",
     "One line naming it, as eval and train do; with --skip-bad it is left out and listed at the end")
@pytest.mark.parametrize("kind", ["link to /dev/zero", "FIFO", "folder", "broken link"])
def test_detect_names_entries_that_are_not_images(kind: str, tmp_path: Path, capsys) -> None:
    data = good_dataset(tmp_path / "data", n=2)
    odd = data / "images" / "odd.png"
    not_a_regular_file(kind)(odd)
    for source in (data, data / "images"):
        refused(capsys, "detect", "--method", "tophat", "--source", source, "--no-progress", naming=(odd, "not a regular file"))
    code, out, err = run(capsys, "detect", "--method", "tophat", "--source", data, "--skip-bad", "--no-progress",
                         "--save-txt", tmp_path / "pred")
    assert code == 0 and "skipped 1 bad file(s)" in out and str(odd) in out, (out, err)
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["good0.txt", "good1.txt"]


@row("track --source DIR where DIR holds videos and an image (a cover picture); a folder holding a video and a README; "
     "track on an image dataset folder (DIR/images beside DIR/labels); detect on a folder of videos",
     "Videos and images together are refused, naming how many of each; other files are ignored; a dataset folder is "
     "read through its images/ or videos/; detect on a folder of videos says to give one video, or to use track")
def test_track_reads_what_a_folder_holds(tmp_path: Path, capsys) -> None:
    mixed = dot_videos(tmp_path / "mixed") / "videos"
    (mixed / "cover.png").write_bytes(png_bytes())
    refused(capsys, *TRACK, "--source", mixed, naming=(mixed, "2 video(s)", "1 image(s)"))
    clips = tmp_path / "clips"
    clips.mkdir()
    (mixed / "a.avi").rename(clips / "a.avi")
    (clips / "README.md").write_text("clips from the roof camera\n")
    code, out, err = run(capsys, *TRACK, "--source", clips, "--save-csv", tmp_path / "a.csv")
    assert code == 0 and "of 1 sequence(s)" in out, err
    data = good_dataset(tmp_path / "data")
    code, out, err = run(capsys, *TRACK, "--source", data, "--save-csv", tmp_path / "frames.csv")
    assert code == 0 and "4 frame(s) of 1 sequence(s)" in out, err
    refused(capsys, "detect", "--method", "tophat", "--source", clips, naming=(clips, "1 video", "track"))


@row("track --save-csv - (standard output, as detect takes it); --save-video -; --save-csv - for several videos",
     "The CSV goes to standard output and the summary to stderr; an output that standard output cannot take is refused "
     "with one line")
def test_track_writes_its_csv_to_standard_output(tmp_path: Path, capsys, monkeypatch) -> None:
    data = dot_videos(tmp_path / "vset")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *TRACK, "--source", data / "videos" / "a.avi", "--save-csv", "-")
    assert code == 0 and out.startswith("frame,track,x,y,score\n") and "pinpoint track:" in err, (out, err)
    assert not (tmp_path / "-").exists()
    refused(capsys, *TRACK, "--source", data / "videos" / "a.avi", "--save-video", "-", naming=("--save-video -",))
    refused(capsys, *TRACK, "--source", data, "--save-csv", "-", naming=("--save-csv -", "2 videos"))
    assert not (tmp_path / "-").exists()


@row("Two outputs of one run naming one file: track --save-csv o.txt --save-mot o.txt, detect --save-csv o.x "
     "--save-json o.x, both on standard output (-), or a file where an output folder puts a per-image file",
     "Refused before any work: one line naming both options")
def test_two_outputs_on_one_file_are_refused(tmp_path: Path, capsys) -> None:
    data = good_dataset(tmp_path / "data")
    video = dot_videos(tmp_path / "vset") / "videos" / "a.avi"
    out = tmp_path / "o.txt"
    refused(capsys, *TRACK, "--source", video, "--save-csv", out, "--save-mot", out, naming=(out, "--save-csv", "--save-mot"))
    refused(capsys, "detect", "--method", "tophat", "--source", data, "--save-csv", tmp_path / "o.x", "--save-json",
            tmp_path / "o.x", naming=(tmp_path / "o.x", "--save-csv", "--save-json"))
    refused(capsys, "detect", "--method", "tophat", "--source", data, "--save-csv", "-", "--save-json", "-",
            naming=("--save-csv", "--save-json", "standard output"))
    refused(capsys, "detect", "--method", "tophat", "--source", data, "--save-txt", tmp_path / "pred", "--save-csv",
            tmp_path / "pred" / "good1.txt", naming=(tmp_path / "pred" / "good1.txt", "--save-txt", "--save-csv"))
    assert not out.exists() and not (tmp_path / "o.x").exists() and not (tmp_path / "pred" / "good1.txt").exists()


@row("A label file listing one point twice, or a video label CSV with a row repeated (the same frame, centre, box and class)",
     "One line naming the file, the repeated line and the line it repeats: counted twice it would be a second target")
def test_a_target_labelled_twice_is_refused(tmp_path: Path, capsys) -> None:
    data = good_dataset(tmp_path / "data")
    label = data / "labels" / "good1.txt"
    label.write_text("3\n0.25 0.5\n0.75 0.5\n0.25 0.5\n")
    refused(capsys, "eval", "--data", data, "--method", "tophat", naming=(f"{label}:4", "line 2"))
    refused(capsys, *train_args(data, tmp_path / "run"), naming=(f"{label}:4", "line 2"))
    videos = dot_videos(tmp_path / "vset")
    csv_path = videos / "labels" / "b.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join([lines[0]] + [line for line in lines[1:] for _ in range(2)]) + "\n")
    refused(capsys, "eval", "--data", videos, "--method", "tophat", naming=(f"{csv_path}:3", "row 2"))
    refused(capsys, "eval", "--data", videos, "--method", "tophat", "--track", naming=(f"{csv_path}:3", "row 2"))


@row("videos.csv listing a video twice, or giving a range named all (the name of the whole set)",
     "One line naming videos.csv and the line")
def test_a_bad_video_table_is_refused(tmp_path: Path, capsys) -> None:
    data = dot_videos(tmp_path / "vset")
    table = data / "videos.csv"
    table.write_text("name,distance\na,CLOSE\nb,ALL\n")
    refused(capsys, "eval", "--data", data, "--method", "tophat", "--track", naming=(f"{table}:3", "all"))
    table.write_text("name,distance\na,CLOSE\nb,DISTANT\na,MEDIUM\n")
    refused(capsys, "eval", "--data", data, "--method", "tophat", "--track", naming=(f"{table}:4", "line 2"))
    table.write_text("name,distance\na,CLOSE\nb,DISTANT\n")
    code, out, err = run(capsys, "eval", "--data", data, "--method", "tophat", "--track", "--json")
    assert code == 0 and {group: r["videos"] for group, r in json.loads(out).items()} == {"all": 2, "close": 1, "distant": 1}


@row("A dataset file naming one folder twice (under two names, or by two paths), so that its images would be in two "
     "datasets", "Refused: one line naming the dataset file, both datasets and an image they share")
def test_a_dataset_file_naming_one_folder_twice_is_refused(tmp_path: Path, capsys) -> None:
    good_dataset(tmp_path / "data")
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    sets = tmp_path / "sets.toml"
    for second in ("data", "alias", "./data/"):
        sets.write_text(f'[[dataset]]\nname = "one"\npath = "data"\n\n[[dataset]]\nname = "two"\npath = "{second}"\n')
        refused(capsys, "train", "--data", sets, "--out", tmp_path / "run", "--no-progress",
                naming=(sets, "'one'", "'two'", "good0"))
        assert not (tmp_path / "run").exists()
    (tmp_path / "first.txt").write_text("good0\ngood1\n")
    (tmp_path / "second.txt").write_text("good2\ngood3\n")  # one folder, two halves: no image twice
    sets.write_text(f'[[dataset]]\nname = "one"\npath = "data"\nsplit = "{tmp_path / "first.txt"}"\n\n'
                    f'[[dataset]]\nname = "two"\npath = "data"\nsplit = "{tmp_path / "second.txt"}"\n')
    assert run(capsys, *train_args(sets, tmp_path / "run"))[0] == 0


@row("A video label box larger than its frame (10000 x 10000 in a 64 x 48 video)",
     "One line naming the file and row: a box wider or taller than the frame is not a target's")
def test_a_box_larger_than_the_frame_is_refused(tmp_path: Path, capsys) -> None:
    data = dot_videos(tmp_path / "vset")
    csv_path = data / "labels" / "a.csv"
    csv_path.write_text(csv_path.read_text().replace("1,10.000,20.000,5.00,5.00", "1,10.000,20.000,10000,10000"))
    refused(capsys, "eval", "--data", data, "--method", "tophat", naming=(f"{csv_path}:3", "10000 x 10000", "64 x 48"))
    refused(capsys, "eval", "--data", data, "--method", "tophat", "--track", naming=(f"{csv_path}:3",))


@row("A boxes dataset (images/ beside boxes/NAME.csv: x,y,w,h,class, as HIT-UAV): a malformed row, a box centred "
     "outside its image, a class the dataset file's class choice leaves out, a class the dataset file names that no "
     "boxes file holds (a typo)", "One line naming the boxes CSV and its row; for the misnamed class, the dataset file and "
     "the line naming it, with the classes there are")
def test_bad_boxes_datasets(tmp_path: Path, capsys) -> None:
    from test_clutter import HEADER, box_dataset

    data = box_dataset(tmp_path / "hit", n=4)
    boxes = data / "boxes" / "f1.csv"
    good = boxes.read_text()
    sets = tmp_path / "sets.toml"
    sets.write_text(f'[[dataset]]\npath = "{data}"\ntargets = ["Person"]\nignore = ["DontCare"]\nbackground = ["Car"]\n')
    for rows, says in (("20,16,6,8,Person\n45,x,16,10,Car\n", "x, y, w and h must be numbers"),
                       ("20,16,6,8,Person\n45,60,16,10,Car\n", "lies outside the 64 x 48 image"),
                       ("20,16,6,8,Person\n45,30,16,10,Truck\n", "class 'Truck' is in none of the recipe's classes")):
        boxes.write_text(HEADER + rows)
        for args in (["eval", "--data", data, "--method", "tophat"], train_args(sets, tmp_path / "run")):
            if "Truck" in rows and args[0] == "eval":
                continue  # eval ignores every class: any name is fine there
            refused(capsys, *args, naming=(f"{boxes}:3: ", says))
    boxes.write_text(good)
    sets.write_text(sets.read_text().replace('"Person"', '"Persn"'))
    refused(capsys, *train_args(sets, tmp_path / "run"), naming=(f"{sets}:3: ", "'Persn'", "Car, Person"))
    assert not (tmp_path / "run").exists()


@row("A dataset of images alone (no labels/ or boxes/ folder), or one whose every label is 0",
     "Valid: backgrounds, each point on them a false alarm (eval), crops without targets (train). A run whose datasets "
     "hold no target at all is refused in one line, unless synthetic targets are asked for (--synth-targets)")
def test_backgrounds_only_datasets(tmp_path: Path, capsys) -> None:
    street = tmp_path / "street" / "images"
    street.mkdir(parents=True)
    for i in range(3):
        image = np.full((40, 48), 50, np.uint8)
        image[10 + 5 * i, 20] = 250  # a lamp: what a detector must not report
        cv2.imwrite(str(street / f"s{i}.png"), image)
    code, out, _ = run(capsys, "eval", "--data", street.parent, "--method", "tophat", "--json")
    scores = json.loads(out)["3px"]
    assert code == 0 and scores["targets"] == 0 and scores["false_positives"] >= 3 and scores["FA_per_MP"] > 0
    refused(capsys, *train_args(street.parent, tmp_path / "run"), naming=(street.parent, "no target in any image"))
    assert not (tmp_path / "run").exists()
    assert run(capsys, *train_args(street.parent, tmp_path / "run", "--synth-targets", 0.5))[0] == 0


def flat_frame(side: int) -> np.ndarray:
    """A noise-free flat background of `side` x `side` with 4 small targets at known places."""
    image = np.full((side, side), 0.2, np.float32)
    for cx, cy in ((0.25, 0.25), (0.75, 0.3), (0.3, 0.7), (0.7, 0.75)):
        x, y = cx * side, cy * side
        rows, cols = np.mgrid[int(y) - 10:int(y) + 11, int(x) - 10:int(x) + 11]
        image[rows, cols] += 0.3 * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * 1.5 ** 2)).astype(np.float32)
    return image


@row("A large noise-free image: a flat background of 2048 x 2048 or more with 4 small targets",
     "The 4 targets, as at 512 px: an image's spread is taken as at least 2% of its range, so a noise-free background "
     "does not make its targets thousands of spreads tall")
def test_a_large_noise_free_image_gives_its_targets() -> None:
    detector = pinpoint.load(device="cpu")
    for side in (512, 3000):
        points = detector.predict(flat_frame(side))
        assert len(points) == 4, (side, points.xy, points.score)
        truth = np.array([[0.25, 0.25], [0.75, 0.3], [0.3, 0.7], [0.7, 0.75]]) * side
        assert (np.min(np.hypot(*(points.xy[:, None] - truth[None]).transpose(2, 0, 1)), axis=0) < 1.0).all()


@row("Numbers too large to compute with: track --gate 1e308, --confirm 5 1e9, --max-missed 1e9, --track-score 1e308, "
     "eval --dist 1e308, train --sigma / --blob-sigma / --lr / --lr-gamma 1e308, synth --max-size 100000, bench --seconds "
     "1e308, TrackerSettings(gate_px=1e308) in Python",
     "Refused when read: one line naming the option, the value and its limits (a ValueError in Python), so that the "
     "arithmetic stays finite and memory bounded")
def test_numbers_too_large_to_compute_with_are_refused(tmp_path: Path, capsys) -> None:
    from pinpoint.tracking import TrackerSettings

    video = dot_videos(tmp_path / "vset") / "videos" / "a.avi"
    for args, says in ((["--gate", "1e308"], "--gate 1e308: must be"), (["--confirm", "5", "1e9"], "--confirm"),
                       (["--max-missed", "1000000000"], "--max-missed 1000000000: must be"),
                       (["--track-score", "1e308"], "--track-score 1e308: must be")):
        refused(capsys, *TRACK, "--source", video, *args, naming=(says,))
    data = good_dataset(tmp_path / "data")
    refused(capsys, "eval", "--data", data, "--method", "tophat", "--dist", "1e308", naming=("--dist 1e308: must be",))
    for option in ("--sigma", "--blob-sigma", "--lr", "--lr-gamma"):
        refused(capsys, *train_args(data, tmp_path / "run", option, "1e308"), naming=(f"{option} 1e308: must be",))
    assert not (tmp_path / "run").exists()
    refused(capsys, "synth", tmp_path / "big", "--n", 1, "--max-size", 100000, naming=("--max-size 100000: must be",))
    refused(capsys, "bench", "--model", "heatmap", "--seconds", "1e308", naming=("--seconds 1e308: must be",))
    with pytest.raises(ValueError, match="gate"):
        TrackerSettings(gate_px=1e308)


@row("train --epoch-size 100000000 (an epoch's list of samples would not fit in memory)",
     "Refused when the command line is read: at most 10,000,000 samples an epoch")
def test_epoch_size_is_bounded(tmp_path: Path, capsys) -> None:
    refused(capsys, "train", "--data", tmp_path, "--epoch-size", "100000000", naming=("--epoch-size 100000000: must be",))


@row("A training refused for bad data, or stopped (Ctrl+C) before its first checkpoint",
     "Leaves no run folder behind: the folder it made is removed (a folder the user made is left as it was)")
def test_a_training_that_never_started_leaves_no_run_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    import pinpoint.train

    data = good_dataset(tmp_path / "data")
    (data / "labels" / "good1.txt").write_text("1\n0.5 nan\n")
    refused(capsys, *train_args(data, tmp_path / "run"), naming=(data / "labels" / "good1.txt",))
    assert not (tmp_path / "run").exists()
    monkeypatch.chdir(tmp_path)
    refused(capsys, *[a for a in train_args(data, "x") if a not in ("--out", "x")], naming=("good1.txt",))
    assert not (tmp_path / "runs").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    refused(capsys, *train_args(data, mine))
    assert mine.is_dir()  # the user's folder stays
    (data / "labels" / "good1.txt").write_text("1\n0.5 0.5\n")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pinpoint.train, "training_loss", interrupted)
    code, _, err = run(capsys, *train_args(data, tmp_path / "stopped"))
    assert code == 130 and "interrupted" in err
    assert not (tmp_path / "stopped").exists()


@row("Messages that must point the right way: a label row outside the frame (after a good row of that frame), a video "
     "label CSV that is missing (in a split file or not), a file given as a split that is not one (/etc/passwd)",
     "The row itself is named; a missing label CSV is named with the split file and line before any video is read; "
     "a file none of whose lines names an image is said to be no split file, without quoting it")
def test_messages_point_the_right_way(tmp_path: Path, capsys, monkeypatch) -> None:
    import pinpoint.detect

    data = dot_videos(tmp_path / "vset", names=("a", "b", "c"))
    csv_path = data / "labels" / "b.csv"
    csv_path.write_text(csv_path.read_text() + "3,500,20,5,5,drone\n")  # frame 3's second row, outside the 64 x 48 frame
    refused(capsys, "eval", "--data", data, "--method", "tophat", naming=(f"{csv_path}:10: ",))
    csv_path.unlink()
    split = tmp_path / "val.txt"
    split.write_text("a\nb\nc\n")
    calls = []
    monkeypatch.setattr(pinpoint.detect, "detect_classical", lambda *a, **k: calls.append(1))
    for args in (["--split", split], []):
        for track in (["--track"], []):
            err = refused(capsys, "eval", "--data", data, "--method", "tophat", *args, *track, naming=(csv_path,))
            assert (f"{split}:2: " in err) == bool(args), err
    assert calls == []  # refused before any frame was scored
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    images = good_dataset(tmp_path / "data")
    for args in (["eval", "--data", images, "--method", "tophat", "--split", passwd],
                 ["detect", "--method", "tophat", "--source", images, "--split", passwd]):
        err = refused(capsys, *args, naming=(passwd, "not a split file"))
        assert "root" not in err.replace(str(tmp_path), "")


# --- the docs' table ---------------------------------------------------------------------------------


def test_the_docs_table_is_the_corpus() -> None:
    """docs/bad-inputs.md lists every case of the suite, and only those; `python tests/bad_input_table.py` prints the table."""
    assert table_rows(DOCS_TABLE.read_text()) == suite_rows(), \
        "run `python tests/bad_input_table.py` and paste its table into " + str(DOCS_TABLE)
