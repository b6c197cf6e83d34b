"""Several datasets in one training run: which ones, and how much of every epoch each gets.

`pinpoint train --data` takes a folder (one dataset: images/ and labels/, or videos/ and labels/)
or a dataset file, a small TOML file with one [[dataset]] table per dataset:

    [[dataset]]
    name = "nuaa-sirst"                  # how validation reports it (default: the folder's name)
    path = "../shared/data/NUAA-SIRST"   # relative to this file
    split = "splits/50_50/train.txt"     # relative to path (default: every image or video)
    weight = 1                           # its share of each epoch, against the others' (default 1)

    [[dataset]]
    path = "../shared/data/drone-ir"     # videos/NAME.mp4 beside labels/NAME.csv
    split = "splits/train.txt"           # video names
    every = 10                           # every 10th labelled frame (default: --every)
    weight = 1

    [[dataset]]
    path = "../shared/data/HIT-UAV"      # images/ beside boxes/NAME.csv (x,y,w,h,class; data/boxes.py)
    split = "splits/train.txt"
    targets = ["Person"]                 # box centres as target points
    background = ["Car"]                 # clutter: nothing marked there
    ignore = ["Bicycle", "DontCare"]     # left out of the loss (default: every class not named above)
    synth_targets = 0.5                  # half its crops get 1 to 3 synthetic targets (default: --synth-targets)

    [[dataset]]
    path = "../shared/data/RoadScene"    # images/ alone: backgrounds, no image holds a target

Why weights: sampled in proportion to their sizes, 10,000 MDvsFA crops would drown 213
NUAA-SIRST images. Each epoch draws `epoch_size` samples (default: every training sample once),
split between the datasets by weight; within a dataset, a seeded permutation, started again
when a dataset's share is larger than the dataset.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pinpoint.data.boxes import ROLES, ClassChoice
from pinpoint.data.dataset import read_split
from pinpoint.data.images import IMAGE_SUFFIXES
from pinpoint.errors import InputError
from pinpoint.files import list_by_stem, read_user_text
from pinpoint.sources import VIDEO_SUFFIXES

DATASET_KEYS = {"name", "path", "split", "val_split", "weight", "every", "synth_targets", *ROLES}


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a training run."""

    name: str
    path: Path
    split: Path | None = None
    val_split: Path | None = None
    weight: float = 1.0
    every: int | None = None  # videos: every k-th labelled frame (None: the run's --every)
    classes: ClassChoice = ClassChoice()  # a boxes dataset: what each class is
    synth_targets: float | None = None  # the chance a training crop gets synthetic targets (None: the run's --synth-targets)
    named_at: tuple[tuple[str, str], ...] = ()  # (target or background class, "FILE:LINE" where the dataset file names it)


def is_dataset_file(data: str | os.PathLike) -> bool:
    return Path(data).suffix.lower() == ".toml"


def read_dataset_file(path: str | os.PathLike) -> list[DatasetSpec]:
    """The datasets a TOML dataset file lists; every problem is an InputError naming the file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    path = Path(path)
    text = read_user_text(path, "dataset file")
    text_lines = text.splitlines()
    starts = [number for number, line in enumerate(text_lines) if line.strip().startswith("[[dataset]]")]
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not a valid TOML dataset file ({exc})") from None
    tables = document.get("dataset")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise InputError(f"{path}: a dataset file holds one or more [[dataset]] tables")
    specs = []
    for number, table in enumerate(tables, start=1):
        where = f"{path}: dataset {number}"
        unknown = sorted(set(table) - DATASET_KEYS)
        if unknown:
            raise InputError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(DATASET_KEYS))})")
        if not isinstance(table.get("path"), str):
            raise InputError(f"{where}: needs a path (a folder with images/ and labels/, or videos/ and labels/)")
        folder = (path.parent / table["path"]).resolve()  # an absolute path stays itself; links resolved, to compare folders
        weight, every = table.get("weight", 1.0), table.get("every")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise InputError(f"{where}: weight must be a number > 0, got {weight!r}")
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise InputError(f"{where}: every must be a whole number >= 1, got {every!r}")
        split, val_split = (_relative(folder, table.get(key), where, key) for key in ("split", "val_split"))
        synth = table.get("synth_targets")
        if synth is not None and (isinstance(synth, bool) or not isinstance(synth, (int, float)) or not 0 <= synth <= 1):
            raise InputError(f"{where}: synth_targets must be a number from 0 to 1, got {synth!r}")
        classes = _class_choice(table, where)
        # targets and background change what is learnt: a misspelt one would quietly be ignored instead.
        # (A misspelt ignored class leaves its rows uncovered, which read_boxes names.)
        named_at = tuple((name, f"{path}:{_line_naming(text_lines, name, starts[number - 1] if number <= len(starts) else 0)}")
                         for name in classes.targets + classes.background)
        specs.append(DatasetSpec(str(table.get("name", folder.name)), folder, split, val_split, float(weight), every,
                                 classes, None if synth is None else float(synth), named_at))
    names = [spec.name for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError(f"{path}: two datasets are named {twice[0]!r}; give each a name of its own")
    check_disjoint(specs, path)
    return specs


def _class_choice(table: dict, where: str) -> ClassChoice:
    """The class choice of a [[dataset]] table: lists of class names, none in two roles."""
    lists: dict[str, tuple[str, ...] | None] = {}
    for role in ROLES:
        value = table.get(role)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value)):
            raise InputError(f"{where}: {role} must be a list of class names, got {value!r}")
        lists[role] = None if value is None else tuple(v.strip() for v in value)
    seen: dict[str, str] = {}
    for role in ROLES:
        for name in lists[role] or ():
            if name in seen:
                raise InputError(f"{where}: class {name!r} is both in {seen[name]} and in {role}")
            seen[name] = role
    return ClassChoice(lists["targets"] or (), lists["background"] or (), lists["ignore"])


def _line_naming(lines: list[str], name: str, start: int) -> int:
    """The line (from 1) at or after `start` (from 0) where a class name is quoted; the table's own line if none."""
    for number in range(start, len(lines)):
        if f'"{name}"' in lines[number] or f"'{name}'" in lines[number]:
            return number + 1
    return start + 1


def check_named_classes(spec: DatasetSpec, found: set[str]) -> None:
    """A class the dataset file names that none of the dataset's boxes files holds is a typo, or
    the wrong dataset: said with the file and line that name it, and the classes there are."""
    for name, where in spec.named_at:
        if name not in found:
            raise InputError(f"{where}: class {name!r} is in none of {spec.name}'s boxes files "
                             f"(classes there: {', '.join(sorted(found)) or 'none'})")


def check_disjoint(specs: list[DatasetSpec], path: Path) -> None:
    """Two datasets of one folder must not share an image (or video): it would be trained on and
    validated twice, and weigh double. One folder split in parts (each its own split file) is fine."""
    for i, a in enumerate(specs):
        for b in specs[i + 1:]:
            if a.path != b.path:
                continue
            shared = sorted(_members(a) & _members(b))
            if shared:
                more = f" and {len(shared) - 1} more" if len(shared) > 1 else ""
                raise InputError(f"{path}: datasets {a.name!r} and {b.name!r} are both {a.path} and share {shared[0]}{more}; "
                                 "each image must be in one dataset (give each its own split, or list the folder once)")


def _members(spec: DatasetSpec) -> set[str]:
    """The stems a dataset takes from its folder: its split's and val_split's, or every image or video there."""
    if spec.split is None:
        videos = spec.path / "videos"
        folder, suffixes = (videos, VIDEO_SUFFIXES) if videos.is_dir() else (spec.path / "images", IMAGE_SUFFIXES)
        stems = {p.stem for p in list_by_stem(folder, suffixes, "file")} if folder.is_dir() else set()
    else:
        stems = set(read_split(spec.split))
    return stems | (set(read_split(spec.val_split)) if spec.val_split else set())


def _relative(folder: Path, value: object, where: str, key: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{where}: {key} must be a path, got {value!r}")
    return Path(value) if Path(value).is_absolute() else folder / value


def epoch_shares(sizes: list[int], weights: list[float], epoch_size: int) -> list[int]:
    """How many of an epoch's samples each dataset gets: in proportion to the weights, adding up to
    `epoch_size` (largest remainders), and at least one from every dataset."""
    exact = [epoch_size * w / sum(weights) for w in weights]
    shares = [max(int(math.floor(e)), 1) for e in exact]
    for i in sorted(range(len(exact)), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True)[:max(epoch_size - sum(shares), 0)]:
        shares[i] += 1
    return [share if size else 0 for share, size in zip(shares, sizes)]


class MixtureSampler(torch.utils.data.Sampler[int]):
    """This process's share of an epoch drawn from several datasets by weight (see the module doc).

    Indices point into the datasets' samples concatenated in order. Like EpochSampler, the order
    is a function of (seed, epoch) alone, cut to a multiple of the global batch's processes, rank r
    taking positions r, r + N, ...; a resumed run starts at batch `first_batch` of the epoch.
    """

    def __init__(self, sizes: list[int], weights: list[float], epoch_size: int, world_size: int, rank: int,
                 seed: int, batch_per_process: int):
        self.sizes, self.weights = sizes, weights
        self.epoch_size = epoch_size or sum(sizes)
        self.world_size, self.rank, self.seed, self.batch = world_size, rank, seed, batch_per_process
        self.epoch, self.first_batch = 0, 0
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)

    def set_epoch(self, epoch: int, first_batch: int = 0) -> None:
        self.epoch, self.first_batch = epoch, first_batch

    def order(self) -> np.ndarray:
        """This process's indices of the epoch, in order (an array: 10 million of them take 80 MB, a list 400)."""
        rng = np.random.default_rng((self.seed, self.epoch))
        drawn = []
        for offset, size, share in zip(self.offsets, self.sizes, epoch_shares(self.sizes, self.weights, self.epoch_size)):
            laps = [rng.permutation(size) for _ in range(-(-share // size))] if size else []
            drawn.append(offset + np.concatenate(laps)[:share] if laps else np.zeros(0, dtype=int))
        order = rng.permutation(np.concatenate(drawn))
        usable = len(order) - len(order) % self.world_size
        return order[:usable][self.rank::self.world_size]

    def __iter__(self):
        return map(int, self.order()[self.first_batch * self.batch:])

    def __len__(self) -> int:
        total = sum(epoch_shares(self.sizes, self.weights, self.epoch_size))
        return max((total - total % self.world_size) // self.world_size - self.first_batch * self.batch, 0)
