"""The synthetic dataset: layout, determinism, and labels that sit exactly on the rendered targets."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from pinpoint.data.labels import read_labels
from pinpoint.data.synth import (
    MIN_SEPARATION,
    MIN_SIGMA,
    TARGET_COUNT_PROBABILITIES,
    Target,
    draw_targets,
    make_image,
    render_target,
    synthesize,
)
from pinpoint.errors import InputError

SMALL = dict(min_size=48, max_size=96)  # small frames keep the file tests fast


def _centroid(canvas: np.ndarray) -> tuple[float, float]:
    rows, cols = np.mgrid[: canvas.shape[0], : canvas.shape[1]]
    total = canvas.sum()
    return float((canvas * cols).sum() / total), float((canvas * rows).sum() / total)


def _all_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_splits_and_labels(tmp_path: Path) -> None:
    out = synthesize(tmp_path / "ds", n=20, seed=3, **SMALL)
    assert out == tmp_path / "ds"
    stems = [f"synth_{k:04d}" for k in range(20)]
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{s}.png" for s in stems]
    assert sorted(p.name for p in (out / "labels").iterdir()) == [f"{s}.txt" for s in stems]

    members = {name: (out / "splits" / f"{name}.txt").read_text().split() for name in ("train", "val", "test")}
    assert [len(members[name]) for name in ("train", "val", "test")] == [12, 4, 4]
    assert sorted(sum(members.values(), [])) == stems  # every stem in exactly one split

    for stem in stems:
        image = cv2.imread(str(out / "images" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert image.dtype == np.uint8 and image.ndim == 2
        labels = read_labels(out / "labels" / f"{stem}.txt")
        assert 0 <= len(labels) <= 4
        height, width = image.shape
        # A centre lies on a pixel centre at most: x <= (W - 1) / W.
        assert np.all(labels.xy[:, 0] <= (width - 1) / width + 1e-6)
        assert np.all(labels.xy[:, 1] <= (height - 1) / height + 1e-6)


def test_split_counts_follow_fractions(tmp_path: Path) -> None:
    synthesize(tmp_path, n=7, seed=0, splits=(0.5, 0.5, 0.0), **SMALL)
    counts = [len((tmp_path / "splits" / f"{name}.txt").read_text().split()) for name in ("train", "val", "test")]
    assert counts == [4, 3, 0]  # 3.5 each: the tie goes to the first split
    assert (tmp_path / "splits" / "test.txt").read_text() == ""


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    first = _all_files(synthesize(tmp_path / "a", n=6, seed=11, **SMALL))
    again = _all_files(synthesize(tmp_path / "b", n=6, seed=11, **SMALL))
    other = _all_files(synthesize(tmp_path / "c", n=6, seed=12, **SMALL))
    assert first == again
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first if name.startswith("images"))


def test_image_depends_on_seed_and_index_only(tmp_path: Path) -> None:
    few = _all_files(synthesize(tmp_path / "few", n=3, seed=5, **SMALL))
    more = _all_files(synthesize(tmp_path / "more", n=5, seed=5, **SMALL))
    for name in few:
        if not name.startswith("splits"):
            assert few[name] == more[name]


def test_sizes_vary_within_bounds(tmp_path: Path) -> None:
    synthesize(tmp_path, n=12, seed=2, min_size=40, max_size=90)
    shapes = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape for p in sorted((tmp_path / "images").iterdir())]
    assert all(40 <= side <= 90 for shape in shapes for side in shape)
    assert len(set(shapes)) >= 10
    assert len({h for h, _ in shapes}) >= 6 and len({w for _, w in shapes}) >= 6  # drawn independently


def test_rerun_overwrites_but_foreign_files_are_refused(tmp_path: Path) -> None:
    synthesize(tmp_path, n=3, seed=0, **SMALL)
    synthesize(tmp_path, n=3, seed=0, **SMALL)  # same names: replaced in place
    (tmp_path / "images" / "holiday.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"images: already holds 1 file"):
        synthesize(tmp_path, n=3, seed=0, **SMALL)


@pytest.mark.parametrize(
    "kwargs",
    [dict(n=0), dict(n=2, seed=-1), dict(n=2, min_size=100, max_size=50), dict(n=2, min_size=8, max_size=8),
     dict(n=2, splits=(0.6, 0.3, 0.3)), dict(n=2, splits=(1.2, -0.2, 0.0))],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        synthesize(tmp_path, **kwargs)


@pytest.mark.parametrize(
    "target",
    [
        Target(20.0, 20.0, 2.0, 2.0, 0.0, 1.0, 0.5),  # on a pixel centre
        Target(20.37, 19.81, MIN_SIGMA, MIN_SIGMA, 0.0, 1.0, 0.5),  # about 1 px across: the hard case
        Target(20.5, 20.5, 0.6, 0.6, 0.0, 1.0, 0.3),  # on a pixel corner
        Target(20.13, 20.71, 3.0, 1.6, 0.7, 1.0, 0.8),  # elongated and rotated
        Target(19.62, 20.29, 4.2, 4.2, 0.0, 1.8, 0.2),  # 10 px across, flat-topped
    ],
)
def test_rendered_centroid_and_peak_match_the_label(target: Target) -> None:
    canvas = np.zeros((41, 41), dtype=np.float64)
    render_target(canvas, target)
    cx, cy = _centroid(canvas)
    assert math.hypot(cx - target.x, cy - target.y) < 0.05
    row, col = np.unravel_index(np.argmax(canvas), canvas.shape)
    assert math.hypot(col - target.x, row - target.y) <= math.sqrt(0.5) + 1e-9  # the pixel nearest the centre
    assert canvas.max() == pytest.approx(target.peak, rel=1e-9)


def test_target_on_the_border_keeps_its_peak_and_stays_inside() -> None:
    canvas = np.zeros((30, 40), dtype=np.float64)
    render_target(canvas, Target(0.2, 29.0, 1.5, 1.5, 0.0, 1.0, 0.4))
    assert canvas.max() == pytest.approx(0.4, rel=1e-9)
    assert np.unravel_index(np.argmax(canvas), canvas.shape) == (29, 0)


def test_draw_targets_counts_separation_and_positions() -> None:
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(400):
        targets = draw_targets(rng, 80, 120, noise_sigma=0.01)
        counts.append(len(targets))
        for k, a in enumerate(targets):
            assert 0.0 <= a.x <= 119.0 and 0.0 <= a.y <= 79.0
            assert MIN_SIGMA <= a.sigma_minor <= a.sigma_major <= 10.0 / 2.35
            assert 0.03 - 1e-12 <= a.peak <= 0.4 + 1e-12  # 3 to 40 noise sigmas
            for b in targets[k + 1 :]:
                assert math.hypot(a.x - b.x, a.y - b.y) >= MIN_SEPARATION
    histogram = np.bincount(counts, minlength=5)
    assert len(histogram) == 5  # never more than 4
    assert histogram.min() > 0  # 0, 1, 2, 3 and 4 all occur
    assert abs(histogram[0] / 400 - TARGET_COUNT_PROBABILITIES[0]) < 0.05
    peaks = [t.peak for _ in range(100) for t in draw_targets(rng, 80, 120, noise_sigma=0.01)]
    assert min(peaks) < 0.05 and max(peaks) > 0.2  # both faint and bright targets


def test_each_label_is_the_brightest_point_of_its_target_among_neighbours() -> None:
    # All targets of a frame rendered together on a flat, noise-free canvas: neighbours must not move a peak.
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(150):
        targets = draw_targets(rng, 64, 96, noise_sigma=0.01)
        canvas = np.zeros((64, 96), dtype=np.float64)
        for target in targets:
            render_target(canvas, target)
        rows, cols = np.mgrid[:64, :96]
        for target in targets:
            near = np.hypot(cols - target.x, rows - target.y) <= 3.0
            row, col = np.unravel_index(np.argmax(np.where(near, canvas, -1.0)), canvas.shape)
            assert math.hypot(col - target.x, row - target.y) <= 1.0
            checked += 1
    assert checked > 200


def test_make_image_is_a_usable_frame_with_visible_targets() -> None:
    rng = np.random.default_rng(4)
    brighter = total = 0
    for _ in range(40):
        image, xy = make_image(rng, 90, 110)
        assert image.dtype == np.uint8 and image.shape == (90, 110)
        assert xy.dtype == np.float64 and xy.shape[1] == 2 and len(xy) <= 4
        assert int(image.max()) - int(image.min()) >= 15  # not a flat or crushed frame
        assert np.mean((image == 0) | (image == 255)) < 0.25  # saturation stays the exception
        values = image.astype(np.float64)
        rows, cols = np.mgrid[:90, :110]
        for x, y in xy:
            ring = (np.hypot(cols - x, rows - y) >= 6) & (np.hypot(cols - x, rows - y) <= 10)
            brighter += values[int(round(y)), int(round(x))] > np.median(values[ring])
            total += 1
    assert total > 40
    assert brighter / total > 0.85  # faint targets near edges may lose, most must stand out


# --- synthetic videos ------------------------------------------------------------------------


def test_synthetic_videos_read_back_with_their_tracks(tmp_path: Path) -> None:
    from pinpoint.data.synth_video import synthesize_videos
    from pinpoint.data.videos import load_video_frames, read_video_labels

    truth = synthesize_videos(tmp_path / "a", n=6, frames=24, seed=3)
    assert (tmp_path / "a" / "splits" / "val.txt").read_text().split() == ["synth_video_00", "synth_video_01"]
    crossings = 0
    for name, tracks in truth.items():
        labels = read_video_labels(tmp_path / "a" / "labels" / f"{name}.csv")
        for track in tracks:  # every row of the CSV is a point of a returned track, to the CSV's 3 decimals
            for frame, xy in zip(track.frames, track.xy):
                assert np.abs(labels.points[int(frame)] - xy).sum(axis=1).min() < 2e-3
        assert sum(len(p) for p in labels.points.values()) == sum(len(t.frames) for t in tracks)
        samples = load_video_frames(tmp_path / "a", [name], every=1)
        contrast = []
        for sample in samples:  # each target is brighter than the ring around it
            for x, y in sample.xy:
                r, c = int(round(y)), int(round(x))
                if 8 <= r < 256 - 8 and 8 <= c < 320 - 8:
                    patch = sample.image[r - 7:r + 8, c - 7:c + 8]
                    ring = np.hypot(*np.mgrid[-7:8, -7:8]) >= 5
                    contrast.append(patch[6:9, 6:9].mean() - patch[ring].mean())
        assert np.median(contrast) > 0
        if len(tracks) > 1:
            middle = 12
            crossings += any(np.hypot(*(t.xy[t.frames == middle][0] - tracks[0].xy[tracks[0].frames == middle][0])) < 1
                             for t in tracks[1:] if middle in t.frames and middle in tracks[0].frames)
    assert crossings >= 1  # some paths cross, where a tracker must keep the ids apart
    again = synthesize_videos(tmp_path / "b", n=6, frames=24, seed=3)
    assert all(np.array_equal(t.xy, u.xy) for name in truth for t, u in zip(truth[name], again[name]))
    for name in truth:
        assert (tmp_path / "a" / "labels" / f"{name}.csv").read_text() == (tmp_path / "b" / "labels" / f"{name}.csv").read_text()
        first = load_video_frames(tmp_path / "a", [name], every=5)
        second = load_video_frames(tmp_path / "b", [name], every=5)
        assert all(np.array_equal(f.image, s.image) for f, s in zip(first, second))  # lossless and seeded


def test_synthetic_videos_refuse_a_folder_holding_other_videos(tmp_path: Path) -> None:
    from pinpoint.data.synth_video import synthesize_videos
    from pinpoint.errors import InputError

    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "mine.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="mine.mp4"):
        synthesize_videos(tmp_path, n=1, frames=4)
