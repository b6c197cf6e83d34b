"""Training settings: the one place where defaults and their types live.

A run's TrainConfig is saved inside every checkpoint, and the parts inference needs
(preprocessing and decoding) are copied out so that a checkpoint alone is enough to predict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class TrainConfig:
    # data
    data: str = ""  # folder with images/ and labels/
    split: str | None = None  # file of training stems; None = every image in the folder
    val_split: str | None = None  # file of validation stems; None = carve val_fraction out of the training stems
    val_fraction: float = 0.1  # used only when val_split is None
    out: str = "runs/train"  # run folder: checkpoints, log.csv, loss.png
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
    # to tell clutter from targets that on NUAA-SIRST was worth less than the turned crops (benchmarks/README.md, -upright)
    vflip: bool = True
    rot90: bool = True
    scale_jitter: float = 0.0  # crops zoomed by a log-uniform factor in [1 / (1 + j), 1 + j]; 0 = native scale only
    paste: int = 0  # copy-paste: up to this many targets from other training images added to each crop; 0 = off
    # each target in a crop, with probability 1/2, keeps only a share in [1 - dim, 1] of its contrast over
    # its surroundings: the net sees the faint versions of its few hundred targets; 0 = off (on NUAA-SIRST
    # it did not raise F1: benchmarks/README.md, -dim0.6)
    dim: float = 0.0
    intensity_jitter: float = 0.1  # random gain and offset strength (log-normal gain, normal offset), 0 = off
    # target and loss
    sigma: float = 2.0  # gaussian width in model-input pixels (the seed used radius 30, i.e. sigma ~10)
    # > 0: each target's gaussian widens to this many times the radius of its bright blob in the crop
    # (codecs.snap.blob_radii; sigma stays the floor), so an extended target is not a 2 px needle to hit
    blob_sigma: float = 1.0
    loss: str = "focal"  # "focal" (CenterNet), "weighted-mse" or "mse" (the seed's)
    # distillation: a trained heatmap checkpoint (e.g. a pinnet-s2d-x3 run's best.pt) whose heatmaps of the
    # training images the model also learns, beside the labels' gaussians; "" = off (losses.distillation_terms)
    teacher: str = ""
    teacher_weight: float = 1.0  # weight of the distillation term against the label loss
    # optimisation
    epochs: int = 100
    batch: int = 8
    lr: float = 2e-3
    weight_decay: float = 0.0
    ema: float = 0.995  # decay of the moving average of the weights that validation and checkpoints use; 0 = off
    # which epoch best.pt holds: "last" (the final weights; validation still sets snapping)
    # or "best" (the highest validation F1): on a few dozen validation targets the best epoch is mostly the luckiest
    keep: str = "last"
    schedule: str = "cosine"  # "cosine" (to 1% of lr) or "step" (x lr_gamma every lr_step epochs, the seed's)
    lr_step: int = 10
    lr_gamma: float = 0.1
    seed: int = 0
    workers: int = 0  # DataLoader worker processes; 0 loads in the main process
    device: str = "auto"  # auto | cpu | cuda | cuda:i
    # decoding (stored in the checkpoint as the defaults of detect)
    threshold: float = 0.3  # minimal peak score; replaced by the best F1 threshold (threshold_images) when tune_threshold
    tune_threshold: bool = True
    # the threshold maximises F1 (on threshold_images) averaged over +-threshold_smoothing around it
    # (metrics.best_threshold): with a few dozen targets the single best cut is often the edge of a lucky step; 0 = that cut
    threshold_smoothing: float = 0.1
    # the images the stored thresholds are chosen on, once training ends: "all" (the training images with the
    # validation ones: ten times the targets of a 10% validation split, whose single cut can be a lucky step) or
    # "val" (the validation images alone, the rule before; benchmarks/README.md, -trainthr)
    threshold_images: str = "all"
    # make averaging the heatmaps of the image's views that training augmented with (predict.tta_views:
    # with the default flips and quarter turns, all 8) the checkpoint's default in detect and eval: 8x
    # slower. Every checkpoint carries a threshold for it (train.store_thresholds), so --tta works on any
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

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        # runs saved before `keep` existed kept the best validation epoch; a resumed one goes on doing so
        values = {"keep": "best", **values}
        return cls(**{k: v for k, v in values.items() if k in known})
