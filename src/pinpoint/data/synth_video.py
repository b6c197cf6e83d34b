"""Synthetic infrared videos whose tracks are known exactly: for the tracking tests and the demo.

A video is a synth.py scene (sky, clouds, sometimes ground) panning slowly past the camera, with
1 to 3 targets moving on smooth paths (a steady velocity that slowly turns), in drone-ir's layout:

    DIR/videos/synth_video_00.mkv   grey, lossless (FFV1), so faint targets survive the encoding
    DIR/labels/synth_video_00.csv   frame,x,y,w,h,class: one row per target in view per frame
    DIR/splits/{train,val}.txt      video names

What a tracker has to cope with is put in on purpose: in most videos with two or more
targets, two paths cross halfway through (ids must survive it); some targets are faint (3 to 5
noise sigmas) and flicker; the scene drifts; and now and then a bright speck of clutter lives for a
single frame (a false alarm that no track should keep). Every target's true centre is known to a
hundredth of a pixel, as in synth.py, and `synthesize_videos` returns each video's tracks.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pinpoint.data.synth import (FWHM_PER_SIGMA, MIN_SIGMA, Target, _add_ground, _clouds, _log_uniform, _sensor_noise,
                                 _sky, refuse_foreign_files, render_target)
from pinpoint.errors import InputError
from pinpoint.files import atomic_path, write_text
from pinpoint.outputs import prepare_output_folder

VIDEO_PREFIX = "synth_video_"
FOURCC, SUFFIX = "FFV1", ".mkv"  # lossless: MJPEG or MPEG-4 would smear a 3-sigma target into the noise
FPS = 30.0
MAX_PAN = 0.3  # px per frame: how fast the scene drifts past
FLICKER_RATE = 0.04  # one-frame clutter specks per frame
FAINT_FRACTION = 0.3


@dataclass(frozen=True)
class Track:
    """One target's true path: its centre in each frame it is in view (pixel-index convention)."""

    track: int
    frames: np.ndarray  # (T,) int
    xy: np.ndarray  # (T, 2) float64


def synthesize_videos(out_dir: str | os.PathLike, n: int = 4, frames: int = 90, seed: int = 0, height: int = 256,
                      width: int = 320, val_fraction: float = 0.25) -> dict[str, list[Track]]:
    """Write `n` videos of `frames` frames with their label CSVs and splits; return each video's tracks.

    Video `i` depends only on (seed, i), so the same arguments give the same videos.
    """
    if n < 1 or frames < 2 or height < 32 or width < 32:
        raise InputError(f"synth --video: needs n >= 1, frames >= 2 and frames of at least 32 x 32 "
                         f"(got n {n}, frames {frames}, {width} x {height})")
    out = prepare_output_folder(out_dir, "--out")
    names = [f"{VIDEO_PREFIX}{i:02d}" for i in range(n)]
    refuse_foreign_files(out, names, (("videos", SUFFIX), ("labels", ".csv")))
    (out / "videos").mkdir(exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    truth = {}
    for index, name in enumerate(names):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        truth[name] = _write_video(rng, out / "videos" / f"{name}{SUFFIX}", out / "labels" / f"{name}.csv",
                                   frames, height, width)
    n_val = max(1, round(n * val_fraction)) if n > 1 else 0
    write_text(out / "splits" / "train.txt", "".join(f"{name}\n" for name in names[n_val:]))
    write_text(out / "splits" / "val.txt", "".join(f"{name}\n" for name in names[:n_val]))
    return truth


def _write_video(rng: np.random.Generator, video: Path, labels: Path, frames: int, height: int, width: int) -> list[Track]:
    noise_sigma = _log_uniform(rng, 1.0, 4.0) / 255.0
    margin = int(math.ceil(MAX_PAN * frames)) + 2
    scene = _sky(rng, height + 2 * margin, width + 2 * margin)
    if rng.random() < 0.7:
        scene += _clouds(rng, height + 2 * margin, width + 2 * margin)
    if rng.random() < 0.4:
        _add_ground(rng, scene)
    pan = rng.uniform(-MAX_PAN, MAX_PAN, 2)
    paths = _paths(rng, frames, height, width, noise_sigma)
    rows, tracks = [], []
    for number, (_, xy) in enumerate(paths):
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= width - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= height - 1)
        tracks.append(Track(number, np.flatnonzero(inside), xy[inside]))
    with atomic_path(video) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC), FPS, (width, height), False)
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {FOURCC} video here")
        for frame in range(frames):
            dx, dy = margin + pan * frame
            shift = np.float32([[1, 0, -dx], [0, 1, -dy]])
            canvas = cv2.warpAffine(scene, shift, (width, height), flags=cv2.INTER_LINEAR)
            for looks, xy in paths:
                peak = looks.peak * (1 + 0.15 * rng.standard_normal()) if looks.peak < 6 * noise_sigma else looks.peak
                render_target(canvas, Target(xy[frame, 0], xy[frame, 1], looks.sigma_major, looks.sigma_minor,
                                             looks.angle, 1.0, max(peak, 0.0)))
            if rng.random() < FLICKER_RATE:  # a speck of clutter that lives for this frame only
                speck = Target(rng.uniform(0, width - 1), rng.uniform(0, height - 1), 0.8, 0.8, 0.0, 1.0,
                               rng.uniform(6, 20) * noise_sigma)
                render_target(canvas, speck)
            canvas += _sensor_noise(rng, height, width, noise_sigma)
            writer.write(np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8))
        writer.release()
    for track in tracks:
        fwhm = paths[track.track][0].sigma_major * FWHM_PER_SIGMA
        rows += [(int(f), x, y, fwhm) for f, (x, y) in zip(track.frames, track.xy)]
    rows.sort(key=lambda row: row[0])
    write_text(labels, "frame,x,y,w,h,class\n" + "".join(f"{f},{x:.3f},{y:.3f},{2 * w:.2f},{2 * w:.2f},target\n"
                                                          for f, x, y, w in rows))
    return tracks


def _paths(rng: np.random.Generator, frames: int, height: int, width: int,
           noise_sigma: float) -> list[tuple[Target, np.ndarray]]:
    """1 to 3 targets: each its looks (size, brightness) and its centre in every frame (F, 2)."""
    count = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    time = np.arange(frames, dtype=np.float64)
    paths = []
    for number in range(count):
        fwhm = _log_uniform(rng, 1.2, 5.0)
        sigma = max(fwhm / FWHM_PER_SIGMA, MIN_SIGMA)
        snr = rng.uniform(3.0, 5.0) if rng.random() < FAINT_FRACTION else _log_uniform(rng, 6.0, 30.0)
        looks = Target(0.0, 0.0, sigma, sigma, 0.0, 1.0, snr * noise_sigma)
        speed = rng.uniform(0.4, 2.0)
        heading = rng.uniform(0, 2 * math.pi) + rng.uniform(-0.01, 0.01) * time  # a path that slowly turns
        steps = speed * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        if number == 1 and rng.random() < 0.7:  # this path crosses the first one halfway through
            anchor = paths[0][1][frames // 2]
        else:
            anchor = rng.uniform([0.15 * width, 0.15 * height], [0.85 * width, 0.85 * height])
        xy = np.cumsum(steps, axis=0)
        xy += anchor - xy[frames // 2]
        paths.append((looks, xy))
    return paths
