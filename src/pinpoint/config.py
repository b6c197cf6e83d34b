"""Training settings: the one place where defaults, their types and their limits live.

A run's TrainConfig is saved inside every checkpoint, and the parts inference needs
(preprocessing and decoding) are copied out so that a checkpoint alone is enough to predict.

RULES holds each numeric setting's limits and CHOICES each named setting's choices. The command
line parses its options with them (a NaN learning rate or --epochs 0 is refused before anything
runs) and TrainConfig.check applies the same to a config built in Python.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pinpoint.errors import InputError


# The name of the model shipped inside the package (checkpoints.PRETRAINED_PATH, docs/model-card.md):
# --weights pretrained, --init pretrained, and what detect, eval and annotate use without --weights
PRETRAINED = "pretrained"


@dataclass(frozen=True)
class Rule:
    """The values a numeric setting may take: a whole number or a finite float, within bounds."""

    kind: type = float  # int or float
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the bound itself excluded
    high_open: bool = False
    odd: bool = False

    def reason(self, value: object) -> str | None:
        """Why `value` is refused, or None when it is fine."""
        if self.kind is int and (not isinstance(value, int) or isinstance(value, bool)):
            return "must be a whole number"
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return "must be a finite number"
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if below or above or (self.odd and value % 2 == 0):
            return f"must be {self.describe()}"
        return None

    def describe(self) -> str:
        low = None if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        high = None if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        bounds = " and ".join(b for b in (low, high) if b)
        what = ("an odd whole number" if self.odd else "a whole number") if self.kind is int else "a number"
        return f"{what} {bounds}".strip()

    def parse(self, text: str) -> int | float:
        """A value typed on the command line, checked; ValueError says why not."""
        try:
            value = self.kind(text)
        except ValueError:
            raise ValueError(f"{self.describe()} was expected") from None
        why = self.reason(value)
        if why:
            raise ValueError(why)
        return value


def check_value(flag: str, value: object, rule: Rule) -> None:
    """InputError `FLAG VALUE: why` when `value` breaks `rule`."""
    why = rule.reason(value)
    if why:
        raise InputError(f"{flag} {value}: {why}")


@dataclass
class TrainConfig:
    # data
    data: str = ""  # folder with images/ and labels/
    split: str | None = None  # file of training stems; None = every image in the folder
    val_split: str | None = None  # file of validation stems; None = carve val_fraction out of the training stems
    val_fraction: float = 0.1  # used only when val_split is None
    every: int = 10  # a video dataset's samples: every k-th labelled frame (a dataset file can set its own)
    # samples drawn per epoch from several datasets (a dataset file), split between them by weight;
    # 0 = as many as they hold. A single dataset ignores it: an epoch is each of its images once
    epoch_size: int = 0
    # the chance that a training crop gets 1 to 3 synthetic targets (the synth module's) added to it:
    # targets on real backgrounds and clutter. A dataset file can set its own per dataset
    synth_targets: float = 0.0
    # run folder: checkpoints, log.csv, loss.png; "" = the first free one of runs/train, runs/train2, ...
    out: str = ""
    overwrite: bool = False  # replace a run already in `out` (without it, such an `out` is refused)
    # model
    model: str = "pinnet-s2d-gated"  # a name from pinpoint.models.registry.MODELS ("heatmap", "regression": the seed references)
    model_args: dict[str, Any] = field(default_factory=dict)  # constructor arguments
    # a checkpoint of the same model whose weights training starts from (fine-tuning), "" = random weights
    init: str = ""
    # geometry: crops of crop_size at native resolution (img_size = 0), with inference at native size,
    # or every image resized to img_size x img_size (the seed recipe: 256)
    img_size: int = 0
    crop_size: int = 192
    crop_on_target: float = 0.5  # share of crops centred near a target, the rest random
    # augmentation
    flip: bool = True  # left-right flips
    # up-down flips and random quarter turns; both off keep every crop upright (sky above ground), a clue
    # to tell clutter from targets that on NUAA-SIRST was worth less than the turned crops (docs/research-log.md, -upright)
    vflip: bool = True
    rot90: bool = True
    intensity_jitter: float = 0.1  # random gain and offset strength (log-normal gain, normal offset), 0 = off
    # target and loss
    sigma: float = 2.0  # gaussian width in model-input pixels (the seed used radius 30, i.e. sigma ~10)
    # > 0: each target's gaussian widens to this many times the radius of its bright blob in the crop
    # (codecs.snap.blob_radii; sigma stays the floor), so an extended target is not a 2 px needle to hit
    blob_sigma: float = 1.0
    loss: str = "focal"  # "focal" (CenterNet) or "mse" (the seed's)
    # optimisation
    epochs: int = 100
    batch: int = 8
    lr: float = 2e-3
    ema: float = 0.995  # decay of the moving average of the weights that validation and checkpoints use; 0 = off
    schedule: str = "cosine"  # "cosine" (to 1% of lr) or "step" (x lr_gamma every lr_step epochs, the seed's)
    lr_step: int = 10
    lr_gamma: float = 0.1
    seed: int = 0
    workers: int = 0  # DataLoader worker processes; 0 loads in the main process
    device: str = "auto"  # auto | cpu | cuda | cuda:i
    # decoding (stored in the checkpoint as the defaults of detect)
    threshold: float = 0.3  # minimal peak score; replaced once training ends by the cut chosen on every training image
    # the threshold maximises F1 averaged over +-threshold_smoothing around it (metrics.best_threshold):
    # with a few dozen targets the single best cut is often the edge of a lucky step; 0 = that cut
    threshold_smoothing: float = 0.1
    # make averaging the heatmaps of the image's views that training augmented with (predict.tta_views:
    # with the default flips and quarter turns, all 8) the checkpoint's default in detect and eval: 8x
    # slower. The threshold for averaged heatmaps is cut only then (train.store_thresholds)
    tta: bool = False
    top_k: int = 100
    # peaks closer than (nms_kernel - 1) / 2 px to a higher one are dropped: an extended target's
    # plateau has several maxima, and two points within the 3 px match distance cannot both be hits
    nms_kernel: int = 7
    # move each point to the intensity centroid of the bright blob it sits on (codecs/snap.py): an
    # extended target's peak sits on its hottest part, its label on its centre. With validation images
    # it is kept only where it raises validation F1, or keeps it and lowers the localisation error (train.evaluate_detector)
    snap: bool = True
    match_px: float = 3.0  # distance at which validation counts a hit
    progress: bool = True
    # devices and reliability
    amp: str = "auto"  # mixed precision: auto = bf16 (fp16 on GPUs without bf16) on CUDA, off on the CPU | off | bf16 | fp16
    channels_last: bool = True  # NHWC memory layout on CUDA, where convolutions run faster in it; ignored on the CPU
    deterministic: bool = False  # deterministic kernels: bit-exact reruns and resumes on the CPU, a little slower
    save_every_steps: int = 0  # also write a resumable last.pt every K batches inside an epoch; 0 = at epoch ends only
    skip_bad: bool = False  # leave out unreadable images and malformed labels (listed at the end) instead of stopping

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> None:
        """Refuse settings outside RULES and CHOICES, named as the command line spells them."""
        for name, rule in RULES.items():
            check_value(option_name(name), getattr(self, name), rule)
        for name, choices in choices_of().items():
            value = getattr(self, name)
            if value not in choices:
                raise InputError(f"{option_name(name)} {value}: choose one of {', '.join(choices)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        """The config of a saved run. A setting removed since, left at what it did when off, is
        dropped; at any other value the run cannot go on as it began: an InputError names it."""
        for name, off in REMOVED.items():
            if name in values and values[name] != off:
                raise InputError(f"{source}: setting {name} = {values[name]!r} is no longer supported "
                                 f"(removed: it did not help on any dataset measured; docs/research-log.md)")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


SCORE = Rule(float, 0, 1)  # a score threshold: --conf, predict(conf=...)
COUNT = Rule(int, 1)  # a positive count: --max-points, --batch, ...

# An epoch's sample order is drawn whole (data/mixture.py): 10 million indices take about 80 MB and
# a second; 100 million would take gigabytes before the first batch
MAX_EPOCH_SIZE = 10_000_000

RULES: dict[str, Rule] = {
    "val_fraction": Rule(float, 0, 1, high_open=True),
    "every": Rule(int, 1),
    "epoch_size": Rule(int, 0, MAX_EPOCH_SIZE),
    "synth_targets": Rule(float, 0, 1),
    "img_size": Rule(int, 0),
    "crop_size": Rule(int, 1),
    "crop_on_target": Rule(float, 0, 1),
    "intensity_jitter": Rule(float, 0, 10),
    "sigma": Rule(float, 0, 100, low_open=True),  # px; a target's gaussian wider than this covers the crop
    "blob_sigma": Rule(float, 0, 100),
    "epochs": Rule(int, 1),
    "batch": Rule(int, 1),
    "lr": Rule(float, 0, 10),  # Adam's step: past a few units the weights leave float range
    "ema": Rule(float, 0, 1, high_open=True),
    "lr_step": Rule(int, 1),
    "lr_gamma": Rule(float, 0, 1, low_open=True),  # a drop: past 1 it would grow the rate at every step
    "seed": Rule(int, 0),
    "workers": Rule(int, 0),
    "threshold": Rule(float, 0, 1),
    "threshold_smoothing": Rule(float, 0, 0.5, high_open=True),
    "top_k": Rule(int, 1),
    "nms_kernel": Rule(int, 1, odd=True),
    "match_px": Rule(float, 0, 10_000, low_open=True),
    "save_every_steps": Rule(int, 0),
}


def choices_of() -> dict[str, tuple[str, ...]]:
    """The settings that name one of a few things, with those things (the models from the registry)."""
    from pinpoint.models.registry import MODELS

    return {"model": tuple(MODELS), "loss": ("focal", "mse"), "schedule": ("cosine", "step"), "amp": ("auto", "off", "bf16", "fp16")}


def option_name(name: str) -> str:
    """The command-line flag of a setting: top_k -> --top-k."""
    return "--" + name.replace("_", "-")


# Settings removed because they were off by default and did not help on any dataset measured, each
# with the value at which it did nothing. A saved run that used one at another value cannot be
# resumed as it began (TrainConfig.from_dict says which); the measurements are in docs/research-log.md.
REMOVED: dict[str, Any] = {
    "paste": 0,  # copy-paste of targets between crops
    "hard_negatives": 0.0,  # crops centred on the model's own false alarms (removed twice: issues 25 and 35)
    "dim": 0.0,  # fading targets to a share of their contrast
    "scale_jitter": 0.0,  # zoomed crops
    "teacher": "",  # distillation from a trained model's heatmaps
    "teacher_weight": 1.0,
    "weight_decay": 0.0,
    "keep": "last",  # best.pt holding the best validation epoch instead of the final one
    "threshold_images": "all",  # thresholds cut on the validation images alone
    "tune_threshold": True,  # a fixed threshold instead of one chosen on the data
}
