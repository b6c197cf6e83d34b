"""Box labels of other detection datasets, turned into what a point detector learns from.

Layout (HIT-UAV's): DIR/images/NAME.jpg beside DIR/boxes/NAME.csv with the header `x,y,w,h,class`
and one row per object: (x, y) the box centre in pixels of the pixel-index convention (the centre
of pixel (row i, column j) is x = j, y = i), w and h the box size in pixels, class a name. A file
with the header alone: nothing labelled in that image.

Such datasets label objects a small-target detector may or may not be after (people and cars seen
from a drone), so a ClassChoice says what each class is to the recipe:
- targets: a point at the box centre, a target like any other (the box also lets a point anywhere
  on the object match it when scoring);
- ignore: neither target nor background, left out of the loss and out of the scores (a point there
  is neither a hit nor a false alarm);
- background: nothing is marked, the object is clutter the detector must learn to stay quiet on.
Without a choice every class is ignored: the boxes then only say where not to judge, which is
what scoring false alarms on the rest of the frame needs.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pinpoint.errors import InputError
from pinpoint.files import read_user_text

BOX_COLUMNS = ("x", "y", "w", "h", "class")
MAX_BOX_BYTES = 16 * 1024 * 1024
ROLES = ("targets", "ignore", "background")


@dataclass(frozen=True)
class ClassChoice:
    """What each box class is to a recipe. `ignore` None: every class not named as a target or as
    background is ignored; a list: every class met must be named somewhere (a class nobody named is
    then a mistake in the files or in the choice, said with its file and row)."""

    targets: tuple[str, ...] = ()
    background: tuple[str, ...] = ()
    ignore: tuple[str, ...] | None = None

    def role(self, name: str) -> str | None:
        """"targets", "ignore" or "background"; None for a class the choice does not cover."""
        if name in self.targets:
            return "targets"
        if name in self.background:
            return "background"
        if self.ignore is None or name in self.ignore:
            return "ignore"
        return None

    def describe(self) -> str:
        parts = [f"{role}: {', '.join(getattr(self, role))}" for role in ROLES if getattr(self, role)]
        return "; ".join(parts) or "every class ignored"


@dataclass(frozen=True)
class BoxLabels:
    """One image's boxes sorted by role: target points with their boxes, and ignored regions."""

    xy: np.ndarray  # (N, 2) target centres in pixels
    boxes: np.ndarray  # (N, 2) the targets' box widths and heights
    ignore: np.ndarray  # (K, 4) ignored boxes: centre x, y, width, height in pixels
    classes: frozenset[str]  # every class the file holds


def read_boxes(path: str | os.PathLike, size: tuple[int, int], choice: ClassChoice) -> BoxLabels:
    """The boxes of one image of `size` (H, W); a malformed row, a box centred outside the image
    or a class the choice does not cover is an InputError naming the file and row."""
    path = Path(path)
    height, width = size
    reader = csv.reader(io.StringIO(read_user_text(path, "boxes CSV", MAX_BOX_BYTES)))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != BOX_COLUMNS:
        raise InputError(f"{path}:1: expected the header {','.join(BOX_COLUMNS)}, got {','.join(header or [])!r}")
    targets, target_boxes, ignored, classes = [], [], [], set()
    for number, row in enumerate(reader, start=2):
        if not row or not "".join(row).strip():
            continue
        where = f"{path}:{number}"
        if len(row) != len(BOX_COLUMNS):
            raise InputError(f"{where}: expected {len(BOX_COLUMNS)} values ({','.join(BOX_COLUMNS)}), got {len(row)}")
        try:
            x, y, w, h = (float(value) for value in row[:4])
        except ValueError:
            raise InputError(f"{where}: x, y, w and h must be numbers, got {','.join(row)!r}") from None
        name = row[4].strip()
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0 or not name:
            raise InputError(f"{where}: x and y must be finite, w and h > 0 and the class named, got {','.join(row)!r}")
        # the image spans -0.5 .. W - 0.5 in pixel-index coordinates; a box may run past the border (an
        # object the frame cuts: HIT-UAV has some 1 px past it), its centre not, nor may it outgrow the image
        if not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5) or w > width or h > height:
            raise InputError(f"{where}: box {w:g} x {h:g} at ({x:g}, {y:g}) lies outside the {width} x {height} image"
                             + (" (larger than it)" if w > width or h > height else ""))
        role = choice.role(name)
        if role is None:
            raise InputError(f"{where}: class {name!r} is in none of the recipe's classes ({choice.describe()})")
        classes.add(name)
        if role == "targets":
            targets.append((x, y))
            target_boxes.append((w, h))
        elif role == "ignore":
            ignored.append((x, y, w, h))
    return BoxLabels(np.array(targets, np.float64).reshape(-1, 2), np.array(target_boxes, np.float64).reshape(-1, 2),
                     np.array(ignored, np.float64).reshape(-1, 4), frozenset(classes))


def box_mask(boxes: np.ndarray, size: tuple[int, int], slack: float = 0.0) -> np.ndarray:
    """(H, W) bool: the pixels whose centres lie inside any of `boxes` ((K, 4) centre x, y, w, h),
    each grown by `slack` px on every side (scoring's tolerance for rounding)."""
    height, width = size
    mask = np.zeros((height, width), bool)
    for x, y, w, h in np.asarray(boxes, np.float64).reshape(-1, 4):
        c0, c1 = max(0, math.ceil(x - w / 2 - slack)), min(width - 1, math.floor(x + w / 2 + slack))
        r0, r1 = max(0, math.ceil(y - h / 2 - slack)), min(height - 1, math.floor(y + h / 2 + slack))
        mask[r0:r1 + 1, c0:c1 + 1] = True
    return mask


def inside_boxes(xy: np.ndarray, boxes: np.ndarray | None) -> np.ndarray:
    """(N,) bool: which points lie inside any of `boxes` ((K, 4) centre x, y, w, h; None: none)."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    if boxes is None or len(boxes) == 0:
        return np.zeros(len(xy), bool)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    offset = np.abs(xy[:, None, :] - boxes[None, :, :2])
    return np.any(np.all(offset <= boxes[None, :, 2:] / 2, axis=2), axis=1)
