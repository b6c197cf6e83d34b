"""A folder of images with point labels, as samples in memory and as training tensors.

Layout: DIR/images/NAME.{png,jpg,bmp,tif} beside DIR/labels/NAME.txt, optionally restricted by
a split file of stems. Labels are normalised, so an image and its label agree whatever size the
image is read or resized to. Two other layouts are datasets too:
- DIR/images beside DIR/boxes/NAME.csv (another detection dataset's boxes, data/boxes.py): a
  ClassChoice makes each class's boxes targets, ignored regions or background;
- DIR/images alone, with neither labels/ nor boxes/: backgrounds, every image without a target
  (street scenes a detector must stay quiet on). Within a labels/ folder a missing label is still
  an error: there it is a mistake, not a statement that the image is empty.

A bad file (an image that cannot be decoded, a malformed label, a label without its image) stops
loading with an InputError naming it, unless the caller passes a `skipped` list: then the file is
left out and its one-line reason appended there, so a long run can go on and report them at the end.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch

from pinpoint.codecs.heatmap import encode
from pinpoint.codecs.snap import blob_radii
from pinpoint.config import TrainConfig
from pinpoint.data import transforms as T
from pinpoint.data.boxes import ClassChoice, box_mask, read_boxes
from pinpoint.data.images import IMAGE_SUFFIXES, find_image, image_size, list_images, read_image
from pinpoint.data.labels import read_labels
from pinpoint.data.synth import random_target, render_target
from pinpoint.errors import InputError
from pinpoint.files import NOT_REGULAR, is_hidden, not_regular_files, read_user_text
from pinpoint.points import Points

Found = TypeVar("Found")


@dataclass
class Sample:
    """One labelled image: grey float32 pixels and its target points in pixels."""

    stem: str
    image: np.ndarray  # (H, W) float32 in [0, 1]
    xy: np.ndarray  # (N, 2) pixels, x = column, y = row
    path: Path
    boxes: np.ndarray | None = None  # (N, 2) widths and heights of the targets' boxes, where labels give them (videos)
    ignore: np.ndarray | None = None  # (K, 4) regions left out of the loss and the scores: centre x, y, width, height

    @property
    def truth(self) -> Points:
        """The labelled points, each scored 1: what predictions are matched against."""
        return Points(self.xy, np.ones(len(self.xy)), self.image.shape)


def read_split(path: str | os.PathLike) -> list[str]:
    """Stems listed in a split file, one per line; CRLF, blank lines and file suffixes tolerated."""
    return [stem for _, stem in split_entries(path)]


def split_entries(path: str | os.PathLike) -> list[tuple[int, str]]:
    """(line number, stem) of each image a split file lists. A stem listed twice is refused with
    both lines: counted twice, its image would weigh double in training and in the scores."""
    first_line: dict[str, int] = {}
    entries = []
    for number, line in enumerate(read_user_text(path, "split file").splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES + (".txt",) else name
        if stem in first_line:
            raise InputError(f"{path}:{number}: {stem} is listed again (first on line {first_line[stem]})")
        first_line[stem] = number
        entries.append((number, stem))
    if not entries:
        raise InputError(f"{path}: split file lists no image")
    return entries


def split_images(images: Path, split: str | os.PathLike, skipped: list[str] | None = None) -> list[Path]:
    """The image of each stem a split file lists, found now, so that a stem without an image fails
    before any work, named by the split file and line. With `skipped` a list it is recorded there."""
    return [path for path in split_members(split, lambda stem: find_image(images, stem), skipped, f"an image in {images}")
            if path is not None]


def split_members(split: str | os.PathLike, find: Callable[[str], Found], skipped: list[str] | None,
                  what: str) -> list[Found | None]:
    """`find(stem)` for each stem of a split file: its InputError names the split file and line, or
    with `skipped` a list is recorded there (None in the result).

    A file of several lines none of which names `what` is no split file of this dataset (another
    dataset's split, or a file given by mistake: /etc/passwd): said so, without quoting its lines."""
    entries = split_entries(split)
    found: list[Found | None] = []
    problems: list[str] = []
    for number, stem in entries:
        try:
            found.append(find(stem))
        except InputError as exc:
            problems.append(f"{split}:{number}: {exc}")
            found.append(None)
    if len(entries) > 1 and len(problems) == len(entries):
        raise InputError(f"{split}: not a split file of this dataset: none of its {len(entries)} lines names {what} "
                         "(a split file lists one name per line)")
    report_problems(problems, skipped)
    return found


def dataset_stems(data_dir: str | os.PathLike, split: str | os.PathLike | None = None,
                  skipped: list[str] | None = None) -> list[str]:
    """The stems of a dataset: those of the split file, or every image in DIR/images.

    Without a split file the folder is the dataset, so whatever in it cannot be used is an error
    rather than silently left out: a label with no image (a renamed or missing image) and an entry
    named like an image that is not a readable file. With `skipped` a list, they are recorded there.
    """
    data_dir = Path(data_dir)
    if not (data_dir / "images").is_dir():
        raise InputError(f"{data_dir}: no images/ folder (expected DIR/images and DIR/labels)")
    images = data_dir / "images"
    if split is not None:
        stems = [path.stem for path in split_images(images, split, skipped)]
        if not stems:
            raise InputError(f"{split}: no image of this split was found in {images}")
        return stems
    stems = [p.stem for p in list_images(images)]
    not_files = not_regular_files(images, IMAGE_SUFFIXES)
    problems = [f"{p}: {NOT_REGULAR.format(what='image')}" for p in not_files]
    known = set(stems) | {p.stem for p in not_files}  # their labels are not the problem
    for folder, pattern, what in (("labels", "*.txt", "label"), ("boxes", "*.csv", "boxes CSV")):
        if (data_dir / folder).is_dir():
            problems += [f"{p}: {what} without an image (no {images / p.stem}.* beside it)"
                         for p in sorted((data_dir / folder).glob(pattern)) if p.stem not in known and not is_hidden(p)]
    report_problems(problems, skipped)
    if not stems:
        raise InputError(f"{images}: no images found")
    return stems


def label_kind(data_dir: str | os.PathLike) -> str:
    """How a dataset's images are labelled: "labels" (point files), "boxes" (data/boxes.py) or
    "backgrounds" (neither folder: no image holds a target)."""
    data_dir = Path(data_dir)
    return next((kind for kind in ("labels", "boxes") if (data_dir / kind).is_dir()), "backgrounds")


def load_sample(data_dir: str | os.PathLike, stem: str, classes: ClassChoice | None = None) -> Sample:
    """Read one image and its label (point file, boxes by `classes`, or none for backgrounds); a
    missing label is an error naming the file."""
    data_dir = Path(data_dir)
    path = find_image(data_dir / "images", stem)
    image = read_image(path)
    height, width = image.shape
    kind = label_kind(data_dir)
    if kind == "boxes":
        found = read_boxes(data_dir / "boxes" / f"{stem}.csv", image.shape, classes or ClassChoice())
        return Sample(stem, image, found.xy, path, found.boxes, found.ignore if len(found.ignore) else None)
    if kind == "backgrounds":
        return Sample(stem, image, np.zeros((0, 2)), path)
    labels = read_labels(data_dir / "labels" / f"{stem}.txt", truth=True)
    return Sample(stem, image, labels.xy * np.array([width, height], dtype=np.float64), path)


def box_classes(data_dir: str | os.PathLike, stems: list[str]) -> set[str]:
    """Every class the boxes files of these images hold. A file that cannot be read is left to
    load_sample, which names it (or, with --skip-bad, leaves it out)."""
    data_dir = Path(data_dir)
    found: set[str] = set()
    for stem in stems:
        try:
            size = image_size(find_image(data_dir / "images", stem))
            found |= read_boxes(data_dir / "boxes" / f"{stem}.csv", size, ClassChoice()).classes
        except InputError:
            pass
    return found


def load_samples(data_dir: str | os.PathLike, split: str | os.PathLike | None = None,
                 skipped: list[str] | None = None, classes: ClassChoice | None = None) -> list[Sample]:
    """Every sample of a dataset (or split); bad files raise, or are recorded in `skipped` and left out."""
    return load_stems(data_dir, dataset_stems(data_dir, split, skipped), skipped, classes)


def load_stems(data_dir: str | os.PathLike, stems: list[str], skipped: list[str] | None = None,
               classes: ClassChoice | None = None) -> list[Sample]:
    """The samples of `stems`; with `skipped` a list, a bad image or label is recorded there and left out."""
    samples = []
    for stem in stems:
        try:
            samples.append(load_sample(data_dir, stem, classes))
        except InputError as exc:
            report_problems([str(exc)], skipped)
    return samples


def report_problems(problems: list[str], skipped: list[str] | None) -> None:
    """Raise the first problem, or, when the caller collects them, record them all."""
    if problems and skipped is None:
        raise InputError(problems[0])
    if skipped is not None:
        skipped.extend(problems)


def format_skipped(skipped: list[str], who: str) -> str:
    """The end-of-run list of bad files: a count, then each file with its reason."""
    return "\n".join([f"{who}: skipped {len(skipped)} bad file(s):"] + [f"  {line}" for line in skipped])


class EpochSampler(torch.utils.data.Sampler[int]):
    """This process's share of an epoch's shuffled order, from a given batch on.

    The order is DistributedSampler's: a permutation seeded by (seed + epoch), trimmed to a multiple
    of the number of processes, rank r taking positions r, r + N, r + 2N, ... With the per-process
    batch b = global batch / N, process r's k-th batch holds positions k*B + r + N*j, so the N
    batches of step k together are exactly positions [k*B, (k+1)*B): the global batch one process
    would draw with the same seed. A resumed run starts at batch `first_batch` of the epoch, which
    the order being a function of (seed, epoch) alone makes the batch it was at when it stopped.
    """

    def __init__(self, dataset_size: int, world_size: int, rank: int, seed: int, batch_per_process: int):
        self.order = torch.utils.data.DistributedSampler(range(dataset_size), num_replicas=world_size, rank=rank,
                                                         shuffle=True, seed=seed, drop_last=True)
        self.batch = batch_per_process
        self.first_batch = 0

    def set_epoch(self, epoch: int, first_batch: int = 0) -> None:
        self.order.set_epoch(epoch)
        self.first_batch = first_batch

    def __iter__(self):
        return iter(list(self.order)[self.first_batch * self.batch:])

    def __len__(self) -> int:
        return max(len(self.order) - self.first_batch * self.batch, 0)


class TrainingSet(torch.utils.data.Dataset):
    """Samples -> (image (1, h, w), target, weight) tensors, with the run's geometry and augmentation.

    Heatmap models get a gaussian heatmap target (1, h, w) and a weight map (1, h, w): 0 on the
    sample's ignored regions (moved by every crop, flip and turn with the image), 1 elsewhere. The
    regression model gets the first target's normalised position (2,) with weight 0 for images
    without a target.

    `synth_targets` (one rate per sample, default none) is the chance that a training crop gets 1 to 3
    synthetic targets of the synth module's target model added at random places outside its ignored
    regions, their brightness set against the crop's own noise: targets on the clutter of real
    backgrounds, where the labelled datasets hold them mostly on sky.
    """

    def __init__(self, samples: list[Sample], cfg: TrainConfig, output: str, seed: int = 0,
                 synth_targets: Sequence[float] | None = None):
        self.samples = samples
        self.cfg = cfg
        self.output = output
        self.seed = seed
        self.epoch = 0
        self.synth_targets = list(synth_targets) if synth_targets is not None else [0.0] * len(samples)
        # standardise once, on the whole image, as inference does (crops must not see other statistics)
        self.images = [T.standardize(s.image) for s in samples]
        self.keep = [keep_mask(s) for s in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Different, reproducible augmentation every epoch. DataLoader workers see it only if they copy
        the dataset after this call, i.e. when they start with the epoch (not persistent workers)."""
        self.epoch = epoch

    def __getitem__(self, index: int):
        rng = np.random.default_rng((self.seed, self.epoch, index))
        image, xy, keep = self.images[index], self.samples[index].xy, self.keep[index]
        if self.cfg.img_size:
            image, xy, keep = with_mask(T.resize, image, xy, keep, (self.cfg.img_size, self.cfg.img_size))
        else:
            image, xy, keep = self._crop(image, xy, keep, rng)
        if self.synth_targets[index] > 0 and rng.random() < self.synth_targets[index]:
            image, xy = paste_targets(image, xy, keep, rng)
        return self._tensors(*self._augment(image, xy, keep, rng))

    def whole(self, index: int, stride: int):
        """The un-augmented whole image as inference sees it (resized, or padded to `stride`), with its target."""
        image, xy, keep = self.images[index], self.samples[index].xy, self.keep[index]
        if self.cfg.img_size:
            image, xy, keep = with_mask(T.resize, image, xy, keep, (self.cfg.img_size, self.cfg.img_size))
        else:
            image = T.pad_to_multiple(image, stride)
            keep = None if keep is None else T.pad_to_multiple(keep, stride)
        return self._tensors(image, xy, keep)

    def _tensors(self, image: np.ndarray, xy: np.ndarray, keep: np.ndarray | None = None):
        cfg = self.cfg
        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        if self.output == "heatmap":
            sigma = np.maximum(cfg.sigma, cfg.blob_sigma * blob_radii(image, xy)) if cfg.blob_sigma else cfg.sigma
            weight = torch.ones((1,) + image.shape[:2]) if keep is None else \
                torch.from_numpy(np.ascontiguousarray(keep, dtype=np.float32))[None]
            return tensor, torch.from_numpy(encode(xy, image.shape, sigma))[None], weight
        height, width = image.shape
        if len(xy):
            point = torch.tensor([xy[0, 0] / width, xy[0, 1] / height], dtype=torch.float32)
            return tensor, point.clamp(0, 1), torch.tensor(1.0)
        return tensor, torch.zeros(2), torch.tensor(0.0)

    def _crop(self, image: np.ndarray, xy: np.ndarray, keep: np.ndarray | None, rng: np.random.Generator):
        """A crop_size window of the image (and of its keep mask), centred near a target with
        probability crop_on_target."""
        size = self.cfg.crop_size
        height, width = image.shape[:2]
        if len(xy) and rng.random() < self.cfg.crop_on_target:
            cx, cy = xy[rng.integers(len(xy))] + rng.uniform(-size * 0.4, size * 0.4, 2)
            left, top = int(round(cx - size / 2)), int(round(cy - size / 2))
        else:
            left = int(rng.integers(min(0, width - size), max(width - size, 0) + 1))
            top = int(rng.integers(min(0, height - size), max(height - size, 0) + 1))
        if keep is not None:  # outside the image the loss looks: the network must stay quiet on the padding too
            keep = T.crop(keep, NO_POINTS, top, left, (size, size), fill=1)[0]
        # outside the image: its mean grey (0 once standardised)
        return (*T.crop(image, xy, top, left, (size, size), fill=float(image.mean())), keep)

    def _augment(self, image: np.ndarray, xy: np.ndarray, keep: np.ndarray | None, rng: np.random.Generator):
        cfg = self.cfg
        if cfg.flip and rng.random() < 0.5:
            image, xy, keep = with_mask(T.hflip, image, xy, keep)
        if cfg.vflip and rng.random() < 0.5:
            image, xy, keep = with_mask(T.vflip, image, xy, keep)
        if cfg.rot90 and image.shape[0] == image.shape[1]:
            image, xy, keep = with_mask(T.rot90, image, xy, keep, int(rng.integers(4)))
        if cfg.intensity_jitter > 0:
            strength = cfg.intensity_jitter
            gain, offset = float(np.exp(rng.normal(0, strength))), float(rng.normal(0, strength))
            image = image * gain + offset
        return image, xy, keep


NO_POINTS = np.zeros((0, 2))


def keep_mask(sample: Sample) -> np.ndarray | None:
    """(H, W) uint8: where the loss looks (1) and where not (0, the sample's ignored regions); None
    when it looks everywhere. uint8, as 640 x 512 frames would take 1.3 MB each in float."""
    return None if sample.ignore is None else (~box_mask(sample.ignore, sample.image.shape)).astype(np.uint8)


def with_mask(transform: Callable, image: np.ndarray, xy: np.ndarray, keep: np.ndarray | None, *args):
    """A geometric transform of `image` and its points (data/transforms.py), made to the keep mask
    too, so that ignored regions stay on the pixels they cover."""
    image, xy = transform(image, xy, *args)
    return image, xy, None if keep is None else transform(keep.astype(np.float32), NO_POINTS, *args)[0]


PASTE_MARGIN = 4.0  # px: a pasted target's centre stays this far inside the crop
PASTE_SEPARATION = 12.0  # px from every other target, so that each stays a peak of its own


def paste_targets(image: np.ndarray, xy: np.ndarray, keep: np.ndarray | None,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`image` (H, W) with 1 to 3 synthetic targets added where the loss looks, and `xy` with their
    centres appended. Brightness is the target model's (3 to 40 noise sigmas), against the noise of
    this image: the median absolute difference of neighbouring pixels, which texture barely moves."""
    height, width = image.shape
    noise = 1.4826 * float(np.median(np.abs(np.diff(image, axis=1)))) / math.sqrt(2.0)
    noise = max(noise, 0.02)  # a flat or quantised crop has no measurable noise: 2% of a spread
    canvas = np.array(image, dtype=np.float32, copy=True)
    points = [tuple(p) for p in np.asarray(xy, np.float64).reshape(-1, 2)]
    for _ in range(int(rng.integers(1, 4))):
        look = random_target(rng, noise)
        for _attempt in range(20):
            x, y = rng.uniform(PASTE_MARGIN, width - 1 - PASTE_MARGIN), rng.uniform(PASTE_MARGIN, height - 1 - PASTE_MARGIN)
            if keep is not None and keep[int(round(y)), int(round(x))] < 0.5:
                continue
            if all(math.hypot(x - px, y - py) >= PASTE_SEPARATION for px, py in points):
                render_target(canvas, dataclasses.replace(look, x=x, y=y))
                points.append((x, y))
                break
    return canvas, np.array(points, np.float64).reshape(-1, 2)
