"""A synthetic infrared dataset: cluttered frames with tiny targets whose true centres are known exactly.

Real point labels are clicked by people and carry half a pixel of doubt; here every label is the
centre the target was rendered at, so a detector's localisation error can be measured down to
a few hundredths of a pixel, and the demo and the tests need no download.

A frame is built the way an infrared sensor sees a scene: a smooth sky whose brightness drifts
at several scales, bright clouds, sometimes a ground region under a horizon with a hard
silhouette (hills, a treeline or buildings) and a hot rim along it, then 0 to 4 targets
(gaussian point-spread blobs 1 to 10 px across, a few elongated or flat-topped, from barely above the
noise to bright), then sensor noise (per-pixel gaussian plus fixed column offsets) and
8-bit quantisation. The clouds and edges are there on purpose: they are what makes a detector
fire falsely, so a model trained here learns to ignore them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from pinpoint.data.labels import write_labels
from pinpoint.errors import InputError
from pinpoint.files import is_hidden, write_bytes, write_text

SPLIT_NAMES = ("train", "val", "test")
NAME_PREFIX = "synth_"
MIN_IMAGE_SIDE = 16  # below this there is no room for a target and its surroundings

# How many targets an image holds: index = count. About one image in eight has none, so that a
# detector also learns to stay quiet; most hold one or two, as in real collections.
TARGET_COUNT_PROBABILITIES = (0.12, 0.38, 0.25, 0.15, 0.10)
MIN_TARGET_FWHM = 1.0  # px: a target spread over about one pixel
MAX_TARGET_FWHM = 10.0  # px: past this it is no longer a "small" target
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
MIN_SIGMA = 0.42  # px: narrower gaussians alias so much that their pixel centroid drifts from the centre
MIN_SEPARATION = 6.0  # px between target centres, so that every target stays a separate peak
FAINT_FRACTION = 0.3  # share of targets only 3 to 5 noise sigmas above their background
SUPERSAMPLE = 4  # sub-samples per pixel side when rendering a target (integrates the PSF over the pixel)


@dataclass(frozen=True)
class Target:
    """One rendered target; (x, y) is its exact centre in the pixel-index convention."""

    x: float  # column of the centre (pixel (row i, col j) has its centre at x = j, y = i)
    y: float  # row of the centre
    sigma_major: float  # px, spread along `angle`
    sigma_minor: float  # px, spread across it (equal to sigma_major for a round target)
    angle: float  # radians, direction of the major axis from the +x axis
    shape: float  # 1 = gaussian; larger values flatten the top (exp(-(r^2 / 2)^shape))
    peak: float  # brightness of its brightest pixel above the background, grey units (1 = white)


def synthesize(
    out_dir: str | os.PathLike,
    n: int,
    seed: int = 0,
    min_size: int = 160,
    max_size: int = 320,
    splits: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> Path:
    """Write `n` synthetic frames with their labels and train/val/test split files; return `out_dir`.

    Layout: out_dir/images/synth_0000.png (8-bit grey), out_dir/labels/synth_0000.txt and
    out_dir/splits/{train,val,test}.txt. Image `i` depends only on (seed, i), so a larger `n`
    with the same seed extends a dataset instead of replacing it; the same arguments give
    byte-identical files. Refuses a folder whose images/ or labels/ already hold files this
    call would not overwrite, since a stale image there would silently join the dataset.
    """
    _check_arguments(n, seed, min_size, max_size, splits)
    out_dir = Path(out_dir)
    width_digits = max(4, len(str(n - 1)))
    stems = [f"{NAME_PREFIX}{index:0{width_digits}d}" for index in range(n)]
    refuse_foreign_files(out_dir, stems, (("images", ".png"), ("labels", ".txt")))

    for index, stem in enumerate(stems):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        height = int(rng.integers(min_size, max_size + 1))
        width = int(rng.integers(min_size, max_size + 1))
        image, xy = make_image(rng, height, width)
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise RuntimeError(f"OpenCV could not encode {stem} as PNG")
        write_bytes(out_dir / "images" / f"{stem}.png", png.tobytes())
        write_labels(out_dir / "labels" / f"{stem}.txt", xy / np.array([width, height], dtype=np.float64))

    split_rng = np.random.default_rng(np.random.SeedSequence(seed))
    order = split_rng.permutation(n)
    start = 0
    for name, count in zip(SPLIT_NAMES, _split_counts(n, splits)):
        members = sorted(stems[k] for k in order[start : start + count])
        start += count
        write_text(out_dir / "splits" / f"{name}.txt", "".join(f"{stem}\n" for stem in members))
    return out_dir


def make_image(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One infrared-like frame (uint8, H x W) and its targets' exact centres ((N, 2) float64 pixel x, y)."""
    noise_sigma = _log_uniform(rng, 1.0, 5.0) / 255.0
    scene = _sky(rng, height, width)
    if rng.random() < 0.6:
        scene += _clouds(rng, height, width)
    if rng.random() < 0.5:
        _add_ground(rng, scene)

    targets = draw_targets(rng, height, width, noise_sigma)
    for target in targets:
        render_target(scene, target)

    scene += _vignetting(rng, height, width)
    scene += _sensor_noise(rng, height, width, noise_sigma)
    image = np.clip(np.rint(scene * 255.0), 0, 255).astype(np.uint8)
    xy = np.array([[t.x, t.y] for t in targets], dtype=np.float64).reshape(-1, 2)
    return image, xy


def draw_targets(rng: np.random.Generator, height: int, width: int, noise_sigma: float) -> list[Target]:
    """Draw 0 to 4 targets at sub-pixel positions anywhere in the frame, none closer than MIN_SEPARATION.

    Centres may sit on the outermost pixel centres, so targets cut by the border occur too.
    Brightness is set relative to `noise_sigma`: some targets are faint (3 to 5 sigma), the rest
    spread up to 40 sigma. A target that finds no free place after many tries is left out.
    """
    count = int(rng.choice(len(TARGET_COUNT_PROBABILITIES), p=TARGET_COUNT_PROBABILITIES))
    targets: list[Target] = []
    for _ in range(count):
        look = random_target(rng, noise_sigma)
        fwhm = look.sigma_major * FWHM_PER_SIGMA
        for _attempt in range(100):
            x = rng.uniform(0.0, width - 1.0)
            y = rng.uniform(0.0, height - 1.0)
            if all(_far_enough(x, y, fwhm, other) for other in targets):
                targets.append(replace(look, x=x, y=y))
                break
    return targets


def random_target(rng: np.random.Generator, noise_sigma: float) -> Target:
    """One target's look, drawn from the target model (at x = y = 0: the caller places it): 1 to 10 px
    across (log-uniform), 30% elongated, some flat-topped, FAINT_FRACTION of them 3 to 5 noise sigmas
    bright, the rest 5 to 40. Also what training pastes into real backgrounds (TrainingSet)."""
    fwhm = _log_uniform(rng, MIN_TARGET_FWHM, MAX_TARGET_FWHM)
    sigma_major = max(fwhm / FWHM_PER_SIGMA, MIN_SIGMA)
    sigma_minor = sigma_major
    if rng.random() < 0.3:
        sigma_minor = max(sigma_major / rng.uniform(1.2, 2.0), MIN_SIGMA)
    shape = rng.uniform(1.0, 2.0) if fwhm > 3.0 and rng.random() < 0.3 else 1.0
    angle = rng.uniform(0.0, math.pi)
    snr = rng.uniform(3.0, 5.0) if rng.random() < FAINT_FRACTION else _log_uniform(rng, 5.0, 40.0)
    return Target(0.0, 0.0, sigma_major, sigma_minor, angle, shape, snr * noise_sigma)


def render_target(canvas: np.ndarray, target: Target) -> None:
    """Add `target` to the float `canvas` (H x W) in place.

    The blob is a function of (j - x, i - y), averaged over SUPERSAMPLE^2 points inside each
    pixel, i.e. integrated over the pixel's area as a sensor does. That keeps the blob's
    intensity-weighted centroid on (x, y) to about 0.01 px even for 1 px targets, where sampling
    only at pixel centres would pull it toward the nearest pixel. The result is scaled so that its
    brightest pixel adds exactly `target.peak`.
    """
    height, width = canvas.shape
    radius = int(math.ceil(4.0 * target.sigma_major * (1.0 if target.shape == 1.0 else 1.2))) + 1
    col0, col1 = max(int(math.floor(target.x)) - radius, 0), min(int(math.floor(target.x)) + radius + 2, width)
    row0, row1 = max(int(math.floor(target.y)) - radius, 0), min(int(math.floor(target.y)) + radius + 2, height)
    if col0 >= col1 or row0 >= row1:
        return
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5
    dx = (np.arange(col0, col1)[:, None] + offsets[None, :]).reshape(-1) - target.x
    dy = (np.arange(row0, row1)[:, None] + offsets[None, :]).reshape(-1) - target.y
    cos, sin = math.cos(target.angle), math.sin(target.angle)
    along = dx[None, :] * cos + dy[:, None] * sin
    across = -dx[None, :] * sin + dy[:, None] * cos
    half_r2 = 0.5 * ((along / target.sigma_major) ** 2 + (across / target.sigma_minor) ** 2)
    fine = np.exp(-(half_r2**target.shape))
    rows, cols = row1 - row0, col1 - col0
    blob = fine.reshape(rows, SUPERSAMPLE, cols, SUPERSAMPLE).mean(axis=(1, 3))
    # Scale by the peak of the uncut blob: a target cut by the border keeps its brightness.
    blob *= target.peak / _full_blob_peak(target, offsets)
    canvas[row0:row1, col0:col1] += blob.astype(canvas.dtype)


def _full_blob_peak(target: Target, offsets: np.ndarray) -> float:
    # The brightest pixel of the blob is one of the four around the centre, whether or not the border cuts it.
    best = 0.0
    for row in (math.floor(target.y), math.floor(target.y) + 1):
        for col in (math.floor(target.x), math.floor(target.x) + 1):
            dx = col + offsets[None, :] - target.x
            dy = row + offsets[:, None] - target.y
            along = dx * math.cos(target.angle) + dy * math.sin(target.angle)
            across = -dx * math.sin(target.angle) + dy * math.cos(target.angle)
            half_r2 = 0.5 * ((along / target.sigma_major) ** 2 + (across / target.sigma_minor) ** 2)
            best = max(best, float(np.exp(-(half_r2**target.shape)).mean()))
    return best


def _far_enough(x: float, y: float, fwhm: float, other: Target) -> bool:
    # Large targets need more room than MIN_SEPARATION, or their blobs would merge into one peak.
    other_fwhm = other.sigma_major * FWHM_PER_SIGMA
    needed = max(MIN_SEPARATION, 0.5 * (fwhm + other_fwhm) + 2.0)
    return math.hypot(x - other.x, y - other.y) >= needed


def _sky(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth background: a base level, a vertical drift and low-frequency clutter at several scales."""
    side = max(height, width)
    level = rng.uniform(0.12, 0.65)
    drift = rng.uniform(-0.15, 0.15) * (np.arange(height, dtype=np.float32)[:, None] / height - 0.5)
    clutter = _fractal(rng, height, width, cells=(side / 1.5, side / 4, side / 10, side / 25), falloff=0.6)
    scene = level + drift + _log_uniform(rng, 0.008, 0.08) * clutter
    return np.broadcast_to(scene, (height, width)).astype(np.float32)


def _clouds(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Large soft bright blobs: a thresholded smooth field with a soft edge and some inner texture."""
    side = max(height, width)
    density = _fractal(rng, height, width, cells=(side / 2, side / 5, side / 12, side / 30), falloff=0.55)
    threshold = rng.uniform(-0.3, 1.2)  # higher: smaller, fewer clouds
    softness = rng.uniform(0.1, 0.5)
    cover = 1.0 / (1.0 + np.exp(-(density - threshold) / softness))
    texture = 1.0 + 0.25 * _smooth_noise(rng, height, width, side / 20, side / 20)
    brightness = rng.uniform(0.06, 0.35)
    return (brightness * cover * texture).astype(np.float32)


def _add_ground(rng: np.random.Generator, scene: np.ndarray) -> None:
    """Replace the lower part of `scene` by textured ground under a hard silhouette with a hot rim."""
    height, width = scene.shape
    top = _silhouette(rng, height, width)  # row of the ground's upper edge in each column
    rows = np.arange(height, dtype=np.float32)[:, None]
    depth = rows - top[None, :]
    # Coverage of each pixel by the ground: a one-pixel ramp, so the edge is hard but not jagged.
    cover = np.clip(depth + 0.5, 0.0, 1.0)

    level = float(np.clip(np.median(scene) + rng.uniform(-0.3, 0.25), 0.12, 0.85))
    side = max(height, width)
    texture = _fractal(rng, height, width, cells=(side / 5, side / 14, 5.0), falloff=0.7)
    streaks = _smooth_noise(rng, height, width, rng.uniform(2.0, 6.0), rng.uniform(25.0, 80.0))
    ground = level + _log_uniform(rng, 0.015, 0.09) * texture + _log_uniform(rng, 0.005, 0.04) * streaks
    scene *= 1.0 - cover
    scene += cover * ground
    if rng.random() < 0.6:
        rim_width = rng.uniform(0.6, 2.5)
        rim = rng.uniform(0.06, 0.35) * np.exp(-np.maximum(depth, 0.0) / rim_width) * cover
        scene += rim.astype(np.float32)


def _silhouette(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Top row of the ground per column: a tilted horizon topped by hills, a treeline or buildings."""
    columns = np.arange(width, dtype=np.float64)
    horizon = rng.uniform(0.35, 0.85) * height + rng.uniform(-0.12, 0.12) * (columns - width / 2)
    kind = rng.choice(("hills", "trees", "buildings"))
    if kind == "hills":
        relief = _smooth_noise_1d(rng, width, width / rng.uniform(1.5, 5.0))
        horizon -= rng.uniform(0.03, 0.15) * height * (relief - relief.min())
    elif kind == "trees":
        crowns = np.abs(_smooth_noise_1d(rng, width, rng.uniform(2.0, 6.0)))
        horizon -= rng.uniform(3.0, 14.0) * crowns + rng.uniform(0.0, 8.0) * _smooth_noise_1d(rng, width, width / 3)
    else:
        col = 0
        while col < width:
            span = int(rng.integers(6, 50))
            if rng.random() < 0.7:
                horizon[col : col + span] -= rng.uniform(0.02, 0.25) * height
            col += span + int(rng.integers(0, 15))
    return horizon.astype(np.float32)


def _vignetting(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Darker corners, as the optics of many thermal cameras give."""
    strength = rng.uniform(0.0, 0.08)
    y = (np.arange(height, dtype=np.float32)[:, None] - (height - 1) / 2) / (height / 2)
    x = (np.arange(width, dtype=np.float32)[None, :] - (width - 1) / 2) / (width / 2)
    return (-strength * 0.5 * (x * x + y * y)).astype(np.float32)


def _sensor_noise(rng: np.random.Generator, height: int, width: int, sigma: float) -> np.ndarray:
    """Temporal gaussian noise plus fixed-pattern column offsets (uncalibrated detector columns)."""
    noise = rng.standard_normal((height, width), dtype=np.float32) * sigma
    noise += (rng.standard_normal(width, dtype=np.float32) * sigma * rng.uniform(0.1, 0.6))[None, :]
    if rng.random() < 0.3:
        noise += (rng.standard_normal(height, dtype=np.float32) * sigma * rng.uniform(0.1, 0.4))[:, None]
    return noise


def _fractal(rng: np.random.Generator, height: int, width: int, cells: tuple[float, ...], falloff: float) -> np.ndarray:
    """Sum of smooth noise fields at cell sizes `cells` (largest first), each `falloff` times weaker; unit std."""
    total = np.zeros((height, width), dtype=np.float32)
    for octave, cell in enumerate(cells):
        total += falloff**octave * _smooth_noise(rng, height, width, cell, cell)
    return total / max(float(total.std()), 1e-6)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell_y: float, cell_x: float) -> np.ndarray:
    """A smooth random field whose blobs are about `cell_y` x `cell_x` px; unit std, zero mean.

    The grid has a margin and a random sub-cell phase, so that grid lines fall at different places in every field.
    """
    # Values on a grid half a cell apart, blurred over about a cell before upsampling: cubic
    # interpolation of raw grid values alone leaves visible blocks aligned with the grid.
    step_y, step_x = max(cell_y / 2, 1.0), max(cell_x / 2, 1.0)
    grid_rows, grid_cols = int(math.ceil(height / step_y)) + 8, int(math.ceil(width / step_x)) + 8
    grid = rng.standard_normal((grid_rows, grid_cols), dtype=np.float32)
    grid = cv2.GaussianBlur(grid, (0, 0), sigmaX=1.0, sigmaY=1.0, borderType=cv2.BORDER_REFLECT)
    # Output pixel (x, y) reads the grid at (x / step + offset): only the frame's pixels are interpolated.
    offset_x, offset_y = rng.uniform(3.0, 4.0), rng.uniform(3.0, 4.0)
    to_grid = np.array([[1.0 / step_x, 0.0, offset_x], [0.0, 1.0 / step_y, offset_y]], dtype=np.float64)
    field = cv2.warpAffine(grid, to_grid, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    field = field - field.mean()
    return field / max(float(field.std()), 1e-6)


def _smooth_noise_1d(rng: np.random.Generator, length: int, cell: float) -> np.ndarray:
    """A smooth random profile along one axis, unit std: for horizons and treelines."""
    return _smooth_noise(rng, 1, length, 1.0, cell)[0].astype(np.float64)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    # Sizes, contrasts and noise levels span decades; uniform in the log treats each decade alike.
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _split_counts(n: int, fractions: tuple[float, float, float]) -> list[int]:
    """Image counts per split that add up to `n`, rounding by largest remainder."""
    exact = [n * f for f in fractions]
    counts = [int(math.floor(e)) for e in exact]
    by_remainder = sorted(range(len(exact)), key=lambda k: exact[k] - counts[k], reverse=True)
    for k in by_remainder[: n - sum(counts)]:
        counts[k] += 1
    return counts


def _check_arguments(n: int, seed: int, min_size: int, max_size: int, splits: tuple[float, float, float]) -> None:
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if seed < 0:
        raise ValueError(f"seed must not be negative, got {seed}")
    if not MIN_IMAGE_SIDE <= min_size <= max_size:
        raise ValueError(f"need {MIN_IMAGE_SIDE} <= min_size <= max_size, got min_size={min_size}, max_size={max_size}")
    if len(splits) != len(SPLIT_NAMES) or any(f < 0 for f in splits) or not math.isclose(sum(splits), 1.0, abs_tol=1e-6):
        raise ValueError(f"splits must be {len(SPLIT_NAMES)} non-negative fractions adding up to 1, got {tuple(splits)}")


def refuse_foreign_files(out_dir: Path, stems: list[str], layout: tuple[tuple[str, str], ...]) -> None:
    """InputError when a (folder, suffix) of `layout` under `out_dir` holds a file other than
    STEM+suffix for the `stems` about to be written: it would join the dataset as if made with it."""
    for folder, suffix in layout:
        expected = {f"{stem}{suffix}" for stem in stems}
        path = out_dir / folder
        if not path.is_dir():
            continue
        foreign = sorted(p.name for p in path.iterdir() if not is_hidden(p) and p.name not in expected)
        if foreign:
            raise InputError(
                f"{path}: already holds {len(foreign)} file(s) this dataset would not replace (e.g. {foreign[0]}); "
                "choose an empty folder"
            )
