"""The label format, read and written in one place.

A label file holds the number of targets N on line 1, then N lines `x y` with x = column / W
and y = row / H (pixel-index convention: the centre of pixel (row i, column j) is (x=j, y=i)).
Predictions add a third column, the score. `0` alone is a valid file: an image with no target.
Windows line endings, a UTF-8 byte-order mark and trailing blank lines are accepted; anything
else that is off (a blank line inside, a decimal comma, a score column or one point given twice in
ground truth) raises InputError naming the file and the line.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np

from pinpoint.errors import InputError
from pinpoint.files import read_user_text, write_text

MAX_LABEL_BYTES = 16 * 1024 * 1024  # about half a million points: far more than any image holds

@dataclass(frozen=True)
class Labels:
    """Points of one image in normalised coordinates; `scores` is None for ground truth."""

    xy: np.ndarray  # (N, 2) float64, x = column / W, y = row / H, each in [0, 1]
    scores: np.ndarray | None = None  # (N,) float64 for predictions

    def __len__(self) -> int:
        return len(self.xy)


def parse_labels(text: str, source: str = "<labels>", truth: bool = False) -> Labels:
    """Parse the text of a label file; `source` names it in error messages.

    With `truth` (ground truth: what training and scoring learn from) a point line is exactly
    `x y` (a score column means a prediction file was put where labels belong) and no point is
    given twice (it would count as two targets).
    """
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(f"{source}: empty label file (expected a target count on line 1)")
    for index, line in enumerate(lines):
        if not line.strip():  # inside the file, not trailing: blamed on its own line, not on the count
            raise InputError(f"{source}:{index + 1}: blank line (the count is on line 1, then one point per line, none blank)")
    first = lines[0].strip()
    try:
        count = int(first)
    except ValueError:
        raise InputError(f"{source}:1: target count must be a whole number, got {first!r}") from None
    if count < 0:
        raise InputError(f"{source}:1: target count must not be negative, got {count}")
    body = lines[1:]
    if len(body) != count:
        raise InputError(f"{source}:1: count says {count} target(s) but the file has {len(body)} point line(s)")

    xy = np.zeros((count, 2), dtype=np.float64)
    scores = np.zeros(count, dtype=np.float64)
    columns = None
    first_line: dict[tuple[float, float], int] = {}  # ground truth: where each point was first given
    for index, line in enumerate(body):
        lineno = index + 2
        fields = _fields(line, f"{source}:{lineno}")
        if truth and len(fields) == 3:
            raise InputError(f"{source}:{lineno}: ground truth takes 'x y', got a third column (a score: is this a prediction file?)")
        if len(fields) not in (2, 3):
            raise InputError(f"{source}:{lineno}: expected {'x y' if truth else 'x y or x y score'}, got {len(fields)} values")
        if columns is None:
            columns = len(fields)
        elif len(fields) != columns:
            raise InputError(f"{source}:{lineno}: expected {columns} values like the lines above, got {len(fields)}")
        values = []
        for field in fields:
            try:
                value = float(field)
            except ValueError:
                raise InputError(f"{source}:{lineno}: not a number: {field!r}") from None
            if not math.isfinite(value):
                raise InputError(f"{source}:{lineno}: value must be finite, got {field!r}")
            values.append(value)
        for name, value in zip("xy", values[:2]):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{source}:{lineno}: {name} = {value:g} is outside [0, 1] (coordinates are normalised by the image size)")
        if truth:
            key = (values[0], values[1])
            if key in first_line:
                raise InputError(f"{source}:{lineno}: the same point as line {first_line[key]}: one target labelled twice "
                                 "would count as two")
            first_line[key] = lineno
        xy[index] = values[:2]
        if columns == 3:
            scores[index] = values[2]
    return Labels(xy, scores if columns == 3 else None)


def _fields(line: str, where: str) -> list[str]:
    """The values of a point line, separated by spaces, tabs or commas.

    A comma between two digits in a line that also has spaces is a decimal comma ("0,1 0" from a
    spreadsheet in a European locale): read as a separator it would give x = 0, y = 1, score = 0,
    a silent wrong answer, so it is refused.
    """
    words = line.split()
    if len(words) > 1:
        for word in words:
            if _DECIMAL_COMMA.search(word):
                raise InputError(f"{where}: {word!r} looks like a decimal comma; write decimals with a point (0.5)")
    return line.replace(",", " ").split()


_DECIMAL_COMMA = re.compile(r"\d,\d")


def read_labels(path: str | os.PathLike, truth: bool = False) -> Labels:
    """Read one label file; every problem is an InputError naming the file. `truth`: see parse_labels."""
    return parse_labels(read_user_text(path, "label file", MAX_LABEL_BYTES), str(path), truth)


def format_labels(xy: np.ndarray, scores: np.ndarray | None = None) -> str:
    """The text of a label file; coordinates are clipped into [0, 1] and written with 6 decimals."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    # Refuse rather than write 'nan', which read_labels would then reject: the bug is the caller's.
    if not np.isfinite(xy).all():
        raise ValueError("label coordinates must be finite")
    xy = np.clip(xy, 0.0, 1.0)
    lines = [str(len(xy))]
    if scores is None:
        lines += [f"{x:.6f} {y:.6f}" for x, y in xy]
    else:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(xy):
            raise ValueError(f"{len(xy)} points but {len(scores)} scores")
        if not np.isfinite(scores).all():
            raise ValueError("scores must be finite")
        lines += [f"{x:.6f} {y:.6f} {s:.6f}" for (x, y), s in zip(xy, scores)]
    return "\n".join(lines) + "\n"


def write_labels(path: str | os.PathLike, xy: np.ndarray, scores: np.ndarray | None = None) -> None:
    """Atomically write a label file (normalised `xy`, optional `scores`)."""
    write_text(path, format_labels(xy, scores))
