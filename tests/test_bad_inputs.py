"""A corpus of broken files: each is a one-line error naming it, and --skip-bad goes on and lists them."""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinpoint.cli import main
from pinpoint.data.labels import Labels, format_labels, parse_labels
from pinpoint.errors import InputError


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
