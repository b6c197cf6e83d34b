"""The benchmark table: every method trained on one split and scored on another, one row each.

    python benchmarks/nuaa_sirst.py                       # NUAA-SIRST 50/50, all methods
    python benchmarks/nuaa_sirst.py --only heatmap-seed   # one row (others kept from the JSON)
    python benchmarks/nuaa_sirst.py --data DIR --train-split A.txt --test-split B.txt --name mydata
    python benchmarks/nuaa_sirst.py --replot              # the table and PR pictures again from the JSON

Validation is carved from the training split (never the test split). Writes
benchmarks/results/<name>.md (the table), <name>.json (all figures) and pr_<name>_<method>.png.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pinpoint.checkpoints import load_checkpoint
from pinpoint.config import TrainConfig
from pinpoint.data.synth import synthesize
from pinpoint.detect import make_detector
from pinpoint.evaluate import evaluate_dataset
from pinpoint.files import write_text
from pinpoint.models.registry import count_parameters, create_model
from pinpoint.train import train
from pinpoint.viz import plot_pr

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "NUAA-SIRST"

# The seed recipe, spelled out in full so that later changes of TrainConfig's defaults leave it alone.
SEED_RECIPE = dict(img_size=256, sigma=10.0, loss="mse", flip=True, rot90=False, intensity_jitter=0.0,
                   epochs=30, batch=16, lr=1e-3, schedule="step", lr_step=10, lr_gamma=0.1, nms_kernel=3, ema=0.0, snap=False,
                   threshold_smoothing=0.0, blob_sigma=0.0, keep="best", threshold_images="val")

PINNET_RECIPE = dict(model="pinnet", img_size=0, crop_size=128, crop_on_target=0.7, sigma=2.0, loss="focal", flip=True,
                     rot90=True, intensity_jitter=0.1, epochs=40, batch=16, lr=2e-3, schedule="cosine", nms_kernel=3,
                     ema=0.0, snap=False, threshold_smoothing=0.0, blob_sigma=0.0, keep="best", threshold_images="val")
S2D_RECIPE = dict(PINNET_RECIPE, model="pinnet-s2d", epochs=100, crop_size=192, crop_on_target=0.5)
S2D_EMA_RECIPE = dict(S2D_RECIPE, nms_kernel=7, ema=0.995)  # the base of the later s2d attempts
B8_RECIPE = dict(S2D_EMA_RECIPE, batch=8)  # the base of the attempts after batch 8 was adopted
SNAP_RECIPE = dict(B8_RECIPE, snap=True)
THS_RECIPE = dict(SNAP_RECIPE, threshold_smoothing=0.1)  # the default before blob-wide targets
BEST_EPOCH_RECIPE = dict(THS_RECIPE, blob_sigma=1.0)  # the default before best.pt held the final epoch
LAST_RECIPE = dict(BEST_EPOCH_RECIPE, keep="last")  # the default before the thresholds were cut on every training image
TRAINTHR_RECIPE = dict(LAST_RECIPE, threshold_images="all")  # the default before the decoder gates
DEFAULT_RECIPE = dict(TRAINTHR_RECIPE, model="pinnet-s2d-gated")  # what `pinpoint train` does with no options
X3_RECIPE = dict(TRAINTHR_RECIPE, model="pinnet-s2d-x3", model_args={"global_attention": True})  # three gated members
X2_RECIPE = dict(TRAINTHR_RECIPE, model="pinnet-s2d-gated-x2")  # the default's network twice, averaged

def five_seeds(name: str, recipe: dict, note: str) -> dict[str, dict]:
    """A row and its runs with seeds 1 to 4 (named NAME-seedK): the same recipe, another seed."""
    return {name: {"train": recipe, "note": note},
            **{f"{name}-seed{k}": {"train": dict(recipe, seed=k), "note": f"as {name}, seed {k}"} for k in range(1, 5)}}


# name -> how the row is made. "train" rows are TrainConfig overrides; every attempt stays listed.
METHODS: dict[str, dict] = {
    "tophat": {"classical": "tophat", "note": "white top-hat 9x9, threshold mean + 6 std"},
    "local-contrast": {"classical": "local-contrast", "note": "multiscale patch contrast (MPCM-style), scales 3-9"},
    "regression-seed": {"train": dict(SEED_RECIPE, model="regression"),
                        "note": "seed: tiny CNN, one point per image, MSE"},
    "heatmap-seed": {"train": dict(SEED_RECIPE, model="heatmap"),
                     "note": "seed: 256x256 resize, gaussian sigma 10 (radius 30), MSE, step lr"},
    # PinNet attempts, one lever at a time; every one stays in the table
    "pinnet-e40": {"train": dict(PINNET_RECIPE, epochs=40),
                   "note": "PinNet, native-resolution 128 px crops (70% near targets), flips + quarter turns + intensity jitter, sigma 2, focal loss, cosine lr; 40 epochs"},
    "pinnet-wide-e150": {"train": dict(PINNET_RECIPE, epochs=150, model_args={"widths": (12, 24, 48, 64)}),
                         "note": "as pinnet-e40, widths 12-24-48-64, 150 epochs"},
    "pinnet-c192-e100": {"train": dict(PINNET_RECIPE, epochs=100, crop_size=192, crop_on_target=0.5),
                         "note": "as pinnet-e40, 192 px crops, half of them near targets, 100 epochs"},
    "pinnet-c192-e200": {"train": dict(PINNET_RECIPE, epochs=200, crop_size=192, crop_on_target=0.5),
                         "note": "as pinnet-c192-e100, 200 epochs"},
    "pinnet-c192-e100-val20": {"train": dict(PINNET_RECIPE, epochs=100, crop_size=192, crop_on_target=0.5, val_fraction=0.2),
                               "note": "as pinnet-c192-e100, 20% of the training split held out for validation (43 images instead of 21)"},
    "pinnet-s2d-e100": {"train": S2D_RECIPE,
                        "note": "as pinnet-c192-e100, PinNetS2D: pixel-unshuffle to half resolution, widths 8-16-32-48 from 1/2 to 1/16, pixel-shuffle head"},
    "pinnet-s2d-e100-nms7": {"train": dict(S2D_RECIPE, nms_kernel=7),
                             "note": "as pinnet-s2d-e100, peaks within 3 px of a higher one suppressed (7x7 NMS instead of 3x3)"},
    "pinnet-s2d-e100-nms7-ema": {"train": S2D_EMA_RECIPE,
                                 "note": "as pinnet-s2d-e100-nms7, weights averaged (EMA, decay 0.995) for validation and inference"},
    "pinnet-s2d-e200-nms7-ema": {"train": dict(S2D_EMA_RECIPE, epochs=200),
                                 "note": "as pinnet-s2d-e100-nms7-ema, 200 epochs"},
    "pinnet-s2d-e100-nms7-ema-zoom": {"train": dict(S2D_EMA_RECIPE, scale_jitter=0.3),
                                      "note": "as pinnet-s2d-e100-nms7-ema, crops zoomed by a random factor in [1/1.3, 1.3]"},
    "pinnet-s2d-d4-e100-nms7-ema": {"train": dict(S2D_EMA_RECIPE, model_args={"deep_blocks": 4}),
                                    "note": "as pinnet-s2d-e100-nms7-ema, 4 dilated residual blocks at 1/16 instead of 2"},
    "pinnet-s2d-w24-e100-nms7-ema": {"train": dict(S2D_EMA_RECIPE, model_args={"widths": (8, 24, 32, 48)}),
                                     "note": "as pinnet-s2d-e100-nms7-ema, 24 channels at 1/4 instead of 16"},
    "pinnet-s2d-e100-nms7-seed1": {"train": dict(S2D_RECIPE, nms_kernel=7, seed=1),
                                   "note": "as pinnet-s2d-e100-nms7, another seed (run-to-run spread)"},
    "pinnet-s2d-e100-nms7-ema-seed1": {"train": dict(S2D_EMA_RECIPE, seed=1),
                                       "note": "as pinnet-s2d-e100-nms7-ema, another seed (run-to-run spread)"},
    "pinnet-s2d-e100-nms7-seed2": {"train": dict(S2D_RECIPE, nms_kernel=7, seed=2),
                                   "note": "as pinnet-s2d-e100-nms7, a third seed"},
    "pinnet-s2d-e100-nms7-ema-seed2": {"train": dict(S2D_EMA_RECIPE, seed=2),
                                       "note": "as pinnet-s2d-e100-nms7-ema, a third seed"},
    "pinnet-s2d-e100-nms7-ema-tta": {"train": dict(S2D_EMA_RECIPE, tta=True),
                                     "note": "as pinnet-s2d-e100-nms7-ema, heatmaps averaged over 4 mirror images (validation, threshold and test); reproduce at commit 2e0f7d8: tta now averages all 8 views training augmented with"},
    "pinnet-s2d-e100-nms7-ema-sigma1.5": {"train": dict(S2D_EMA_RECIPE, sigma=1.5),
                                          "note": "as pinnet-s2d-e100-nms7-ema, gaussian sigma 1.5 instead of 2"},
    "pinnet-s2d-e100-nms7-ema-bg70": {"train": dict(S2D_EMA_RECIPE, crop_on_target=0.3),
                                      "note": "as pinnet-s2d-e100-nms7-ema, 70% of the crops random (30% near targets) instead of 50%"},
    "pinnet-s2d-e100-nms7-ema-bg70-seed1": {"train": dict(S2D_EMA_RECIPE, crop_on_target=0.3, seed=1),
                                            "note": "as pinnet-s2d-e100-nms7-ema-bg70, another seed"},
    "pinnet-s2d-e100-nms7-ema-bg70-seed2": {"train": dict(S2D_EMA_RECIPE, crop_on_target=0.3, seed=2),
                                            "note": "as pinnet-s2d-e100-nms7-ema-bg70, a third seed"},
    "pinnet-s2d-e100-nms7-ema-c256": {"train": dict(S2D_EMA_RECIPE, crop_size=256),
                                      "note": "as pinnet-s2d-e100-nms7-ema, 256 px crops instead of 192"},
    "pinnet-s2d-e100-nms7-ema-c256-seed1": {"train": dict(S2D_EMA_RECIPE, crop_size=256, seed=1),
                                            "note": "as pinnet-s2d-e100-nms7-ema-c256, another seed"},
    "pinnet-s2d-e100-nms7-ema-sigma3": {"train": dict(S2D_EMA_RECIPE, sigma=3.0),
                                        "note": "as pinnet-s2d-e100-nms7-ema, gaussian sigma 3 instead of 2"},
    "pinnet-s2d-e100-nms7-ema-sigma3-seed1": {"train": dict(S2D_EMA_RECIPE, sigma=3.0, seed=1),
                                              "note": "as pinnet-s2d-e100-nms7-ema-sigma3, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8": {"train": B8_RECIPE,
                                    "note": "as pinnet-s2d-e100-nms7-ema, batch 8 instead of 16 (twice the steps)"},
    "pinnet-s2d-e100-nms7-ema-b8-seed1": {"train": dict(B8_RECIPE, seed=1),
                                          "note": "as pinnet-s2d-e100-nms7-ema-b8, another seed"},
    "pinnet-s2d-w12-e100-nms7-ema-b8": {"train": dict(B8_RECIPE, model_args={"widths": (12, 24, 48, 72)}),
                                        "note": "as pinnet-s2d-e100-nms7-ema-b8, widths 12-24-48-72 instead of 8-16-32-48 (2.2x the parameters)"},
    "pinnet-s2d-w12-e100-nms7-ema-b8-seed1": {"train": dict(B8_RECIPE, model_args={"widths": (12, 24, 48, 72)}, seed=1),
                                              "note": "as pinnet-s2d-w12-e100-nms7-ema-b8, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap": {"train": SNAP_RECIPE,
                                         "note": "as pinnet-s2d-e100-nms7-ema-b8, each point moved to the intensity centroid of its bright blob (half maximum, 31 px window)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-seed1": {"train": dict(SNAP_RECIPE, seed=1),
                                               "note": "as pinnet-s2d-e100-nms7-ema-b8-snap, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-paste3": {"train": dict(SNAP_RECIPE, paste=3),
                                                "note": "as pinnet-s2d-e100-nms7-ema-b8-snap, up to 3 targets from other training images pasted into each crop"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-paste3-seed1": {"train": dict(SNAP_RECIPE, paste=3, seed=1),
                                                      "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-paste3, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths": {"train": THS_RECIPE,
                                             "note": "as pinnet-s2d-e100-nms7-ema-b8-snap, threshold maximising validation F1 averaged over +-0.1 around it"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-seed1": {"train": dict(THS_RECIPE, seed=1),
                                                   "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-paste1": {"train": dict(THS_RECIPE, paste=1),
                                                    "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths, up to 1 target from another training image pasted into each crop"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-paste1-seed1": {"train": dict(THS_RECIPE, paste=1, seed=1),
                                                          "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-paste1, another seed"},
    "pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths": {"train": dict(THS_RECIPE, model="pinnet-s2d-x3"),
                                                "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths, three PinNetS2D members trained together, heatmaps averaged"},
    "pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths-seed1": {"train": dict(THS_RECIPE, model="pinnet-s2d-x3", seed=1),
                                                      "note": "as pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths, another seed"},
    # "superseded": the row was scored by code since changed (named commit); it is never marked as the default
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1": {"train": BEST_EPOCH_RECIPE, "superseded": "211315e",
                                                  "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths, each target's gaussian as wide as its half-maximum blob's radius (at least sigma 2); scored before blob merging (reproduce at commit 211315e)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-seed1": {"train": dict(BEST_EPOCH_RECIPE, seed=1),
                                                        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1, another seed (scored with the decoding of commit 211315e, before blob merging)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-seed2": {"train": dict(BEST_EPOCH_RECIPE, seed=2),
                                                        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1, a third seed (scored with the decoding of commit 211315e, before blob merging)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-seed2": {"train": dict(THS_RECIPE, seed=2),
                                                  "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths, a third seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1.5": {"train": dict(THS_RECIPE, blob_sigma=1.5),
                                                    "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1, 1.5 times the blob's radius"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1.5-seed1": {"train": dict(THS_RECIPE, blob_sigma=1.5, seed=1),
                                                          "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1.5, another seed"},
    "pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths-blob1": {"train": dict(BEST_EPOCH_RECIPE, model="pinnet-s2d-x3"),
                                                      "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1, three PinNetS2D members trained together, heatmaps averaged (scored with the decoding of commit 211315e, before blob merging)"},
    "pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths-blob1-seed1": {"train": dict(BEST_EPOCH_RECIPE, model="pinnet-s2d-x3", seed=1),
                                                            "note": "as pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths-blob1, another seed (scored with the decoding of commit 211315e, before blob merging)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge": {"train": BEST_EPOCH_RECIPE,
                                                        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1, a point inside another point's blob (or the other way round) and at least half as high is the same target: one point, on its largest blob's centroid"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-seed1": {"train": dict(BEST_EPOCH_RECIPE, seed=1),
                                                              "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-seed2": {"train": dict(BEST_EPOCH_RECIPE, seed=2),
                                                              "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge, a third seed"},
    "pinnet-s2d-e150-nms7-ema-b8-snap-ths-blob1-merge": {"train": dict(BEST_EPOCH_RECIPE, epochs=150),
                                                        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge, 150 epochs (the default misses faint targets even on its training images)"},
    "pinnet-s2d-e150-nms7-ema-b8-snap-ths-blob1-merge-seed1": {"train": dict(BEST_EPOCH_RECIPE, epochs=150, seed=1),
                                                              "note": "as pinnet-s2d-e150-nms7-ema-b8-snap-ths-blob1-merge, another seed"},
    "pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths-blob1-merge": {"train": dict(BEST_EPOCH_RECIPE, model="pinnet-s2d-x3"),
                                                            "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge, three PinNetS2D members trained together, heatmaps averaged"},
    "pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths-blob1-merge-seed1": {"train": dict(BEST_EPOCH_RECIPE, model="pinnet-s2d-x3", seed=1),
                                                                  "note": "as pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths-blob1-merge, another seed"},
    "pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths-blob1-merge-seed2": {"train": dict(BEST_EPOCH_RECIPE, model="pinnet-s2d-x3", seed=2),
                                                                  "note": "as pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths-blob1-merge, a third seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-ij0.3": {"train": dict(BEST_EPOCH_RECIPE, intensity_jitter=0.3),
                                                             "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge, gain and offset jitter 0.3 instead of 0.1 (faint targets are missed: the net sees few contrasts)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-ij0.3-seed1": {"train": dict(BEST_EPOCH_RECIPE, intensity_jitter=0.3, seed=1),
                                                                   "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-ij0.3, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-dim0.6": {"train": dict(BEST_EPOCH_RECIPE, dim=0.6),
                                                              "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge, half the targets in a crop keep 40 to 100% of their contrast (the misses are faint)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-dim0.6-seed1": {"train": dict(BEST_EPOCH_RECIPE, dim=0.6, seed=1),
                                                                    "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-dim0.6, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-c128": {"train": dict(BEST_EPOCH_RECIPE, crop_size=128),
                                                            "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge, 128 px crops (256 px crops had scored below 192)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-c128-seed1": {"train": dict(BEST_EPOCH_RECIPE, crop_size=128, seed=1),
                                                                  "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-c128, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc17": {"train": dict(BEST_EPOCH_RECIPE, model_args={"local_contrast": 17}),
                                                            "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge, the stem also sees the image's local contrast (17 px box; models/pinnet.py local_contrast)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc17-seed1": {"train": dict(BEST_EPOCH_RECIPE, model_args={"local_contrast": 17}, seed=1),
                                                                  "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc17, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc17-seed2": {"train": dict(BEST_EPOCH_RECIPE, model_args={"local_contrast": 17}, seed=2),
                                                                  "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc17, a third seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc33": {"train": dict(BEST_EPOCH_RECIPE, model_args={"local_contrast": 33}),
                                                            "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc17, a 33 px box (a target weighs less in its own box's spread)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc33-seed1": {"train": dict(BEST_EPOCH_RECIPE, model_args={"local_contrast": 33}, seed=1),
                                                                  "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc33, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc9": {"train": dict(BEST_EPOCH_RECIPE, model_args={"local_contrast": 9}),
                                                           "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc17, a 9 px box (33 px had lost precision)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc9-seed1": {"train": dict(BEST_EPOCH_RECIPE, model_args={"local_contrast": 9}, seed=1),
                                                                 "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-lc9, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-wmse": {"train": dict(BEST_EPOCH_RECIPE, loss="weighted-mse"),
                                                             "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge, squared error weighted by 1 + 100 x target instead of the focal loss"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-wmse-seed1": {"train": dict(BEST_EPOCH_RECIPE, loss="weighted-mse", seed=1),
                                                                   "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-wmse, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-nest": {"train": dict(BEST_EPOCH_RECIPE, model_args={"nested": True}),
                                                             "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge, UNet++ dense nested skips instead of the U-Net decoder (models/pinnet.py NestedDecoder)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-nest-seed1": {"train": dict(BEST_EPOCH_RECIPE, model_args={"nested": True}, seed=1),
                                                                   "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-nest, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-catt": {"train": dict(BEST_EPOCH_RECIPE, model_args={"contrast_attention": True}),
                                                             "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge, each decoder stage's upsampled map gated by its skip's local contrast (models/pinnet.py Up)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-catt-seed1": {"train": dict(BEST_EPOCH_RECIPE, model_args={"contrast_attention": True}, seed=1),
                                                                   "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-catt, another seed"},
    # best.pt holds the final epoch's weights instead of the best validation epoch's (keep="last")
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last": {"train": LAST_RECIPE,
                                                             "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge, the final epoch's weights kept instead of the best validation epoch's (validation still sets the threshold)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed1": {"train": dict(LAST_RECIPE, seed=1),
                                                                   "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed2": {"train": dict(LAST_RECIPE, seed=2),
                                                                   "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, a third seed"},
    # "pretrain": first trained on pinpoint's synthetic frames (pretrain_on_synthetic), then on the data from those weights
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-syn": {"train": LAST_RECIPE, "pretrain": dict(n=1000, epochs=20, data_seed=7),
                                                                 "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, started from weights trained 20 epochs on 1000 synthetic frames (pinpoint synth; train min include it)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-syn-seed1": {"train": dict(LAST_RECIPE, seed=1), "pretrain": dict(n=1000, epochs=20, data_seed=7),
                                                                       "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-syn, another seed"},
    # "refit": trained as usual, then again on every training image with the threshold the held-out ones chose (refit_config)
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-refit": {"train": LAST_RECIPE, "refit": True,
                                                                   "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, trained again on all 213 training images with the threshold and snap choice of that run (train min include both)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-refit-seed1": {"train": dict(LAST_RECIPE, seed=1), "refit": True,
                                                                         "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-refit, seed 1"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-refit-seed2": {"train": dict(LAST_RECIPE, seed=2), "refit": True,
                                                                         "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-refit, seed 2"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-refit-seed3": {"train": dict(LAST_RECIPE, seed=3), "refit": True,
                                                                         "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-refit, seed 3"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-lr4e-3-seed1": {"train": dict(LAST_RECIPE, lr=4e-3, seed=1),
                                                                             "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed1, learning rate 4e-3 instead of 2e-3"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-lr4e-3-seed2": {"train": dict(LAST_RECIPE, lr=4e-3, seed=2),
                                                                             "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed2, learning rate 4e-3 instead of 2e-3"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-lr1e-3-seed1": {"train": dict(LAST_RECIPE, lr=1e-3, seed=1),
                                                                             "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed1, learning rate 1e-3 instead of 2e-3"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-lr1e-3-seed2": {"train": dict(LAST_RECIPE, lr=1e-3, seed=2),
                                                                             "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed2, learning rate 1e-3 instead of 2e-3"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-b4-seed1": {"train": dict(LAST_RECIPE, batch=4, seed=1),
                                                                         "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed1, batch 4 instead of 8 (twice the steps)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-b4-seed2": {"train": dict(LAST_RECIPE, batch=4, seed=2),
                                                                         "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed2, batch 4 instead of 8 (twice the steps)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-ema0.998-seed1": {"train": dict(LAST_RECIPE, ema=0.998, seed=1),
                                                                               "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed1, weight average decay 0.998 instead of 0.995 (about 20 epochs averaged instead of 8)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-ema0.998-seed2": {"train": dict(LAST_RECIPE, ema=0.998, seed=2),
                                                                               "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed2, weight average decay 0.998 instead of 0.995 (about 20 epochs averaged instead of 8)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-wd1e-4-seed1": {"train": dict(LAST_RECIPE, weight_decay=1e-4, seed=1),
                                                                             "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed1, weight decay 1e-4 (Adam's L2 term) instead of none"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-wd1e-4-seed2": {"train": dict(LAST_RECIPE, weight_decay=1e-4, seed=2),
                                                                             "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed2, weight decay 1e-4 (Adam's L2 term) instead of none"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-upright-seed1": {"train": dict(LAST_RECIPE, vflip=False, rot90=False, seed=1),
                                                                               "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed1, left-right flips only: no up-down flips or quarter turns, so scenes stay upright"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-upright-seed2": {"train": dict(LAST_RECIPE, vflip=False, rot90=False, seed=2),
                                                                               "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed2, left-right flips only: no up-down flips or quarter turns, so scenes stay upright"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-tta": {"train": dict(LAST_RECIPE, tta=True),
                                                                       "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, heatmaps averaged over the image's 8 turned and mirrored views, cut at the threshold validation chose for averaged heatmaps (8x the inference cost)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-tta-seed1": {"train": dict(LAST_RECIPE, tta=True, seed=1),
                                                                       "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-tta, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-tta-seed2": {"train": dict(LAST_RECIPE, tta=True, seed=2),
                                                                       "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-tta, a third seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-lc17": {"train": dict(LAST_RECIPE, model_args={"local_contrast": 17}),
        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, the stem also sees the image's local contrast (17 px box; -lc17 rows kept the best validation epoch)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-lc17-seed1": {"train": dict(LAST_RECIPE, model_args={"local_contrast": 17}, seed=1),
        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-lc17, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-w12": {"train": dict(LAST_RECIPE, model_args={"widths": (12, 24, 48, 72)}),
        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, widths 12-24-48-72 instead of 8-16-32-48 (the default does not fit its own training images: F1 0.948 on them)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-w12-seed1": {"train": dict(LAST_RECIPE, model_args={"widths": (12, 24, 48, 72)}, seed=1),
        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-w12, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-e300": {"train": dict(LAST_RECIPE, epochs=300),
        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, 300 epochs instead of 100 (the default scores F1 0.948 on its own training images; 1.5x the widths, -w12, 0.939)"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-e300-seed1": {"train": dict(LAST_RECIPE, epochs=300, seed=1),
        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-e300, another seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-e300-seed2": {"train": dict(LAST_RECIPE, epochs=300, seed=2),
        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-e300, a third seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed3": {"train": dict(LAST_RECIPE, seed=3),
        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, a fourth seed"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-seed4": {"train": dict(LAST_RECIPE, seed=4),
        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, a fifth seed"},
    **five_seeds("pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-val20", dict(LAST_RECIPE, val_fraction=0.2),
                 "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, 20% of the training split held out for validation (43 images instead of 21): a steadier threshold, fewer images to learn from"),
    **five_seeds("pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-gatt", dict(LAST_RECIPE, model_args={"global_attention": True}),
                 "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, each decoder skip scaled per channel by a gate read from the deep map's global pool (ACM's top-down modulation)"),
    **five_seeds("pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr", TRAINTHR_RECIPE,
                 "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last, thresholds chosen once training ends on all 213 training images (validation ones included) instead of the 21 validation images"),
    **five_seeds("pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt", DEFAULT_RECIPE,
                 "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr, with the decoder gates of -last-gatt: model pinnet-s2d-gated (run as pinnet-s2d with global_attention, the same network)"),
    "pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt": {"train": X3_RECIPE,
        "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt, three gated members trained together, heatmaps averaged"},
    **five_seeds("pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt-tta", dict(DEFAULT_RECIPE, tta=True),
                 "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt (the same training: tta changes only inference), heatmaps averaged over the image's 8 turned and mirrored views, cut at the threshold chosen for averaged heatmaps on every training image"),
    **five_seeds("pinnet-s2d-x2-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt", X2_RECIPE,
                 "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt, two gated members trained together, heatmaps averaged: model pinnet-s2d-gated-x2 (run as pinnet-s2d-x3 with members 2 and global_attention, the same network)"),
    **five_seeds("pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt-sj0.3", dict(DEFAULT_RECIPE, scale_jitter=0.3),
                 "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt, crops zoomed by a random factor in [1/1.3, 1.3] (test targets of 30 px and more are found less often than training ones)"),
    **five_seeds("pinnet-s2d-x2-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt-tta", dict(X2_RECIPE, tta=True),
                 "as pinnet-s2d-x2-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt (the same training: tta changes only inference), heatmaps averaged over the image's 8 turned and mirrored views, cut at the threshold chosen for averaged heatmaps on every training image"),
    **five_seeds("pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt-val0", dict(DEFAULT_RECIPE, val_fraction=0.0),
                 "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt, trained on all 213 training images, none held out: with the final weights kept and the thresholds cut on every training image, the 21 validation images only chose whether to snap (kept on NUAA-SIRST), so snapping stays on"),
    # distillation: "teacher" names the row whose run's best.pt teaches (trained before; its minutes are added)
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-kd": {"train": THS_RECIPE, "teacher": "pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths",
                                               "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths, also trained towards the heatmaps of pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths (quality focal loss, weight 1); train min include the teacher's"},
    "pinnet-s2d-e100-nms7-ema-b8-snap-ths-kd-seed1": {"train": dict(THS_RECIPE, seed=1), "teacher": "pinnet-s2d-x3-e100-nms7-ema-b8-snap-ths-seed1",
                                                     "note": "as pinnet-s2d-e100-nms7-ema-b8-snap-ths-kd, another seed (teacher: the x3 run of the same seed, so validation images are unseen by both)"},
    "pinnet-c192-e100-tta": {"train": dict(PINNET_RECIPE, epochs=100, crop_size=192, crop_on_target=0.5, tta=True),
                             "note": "as pinnet-c192-e100, heatmaps averaged over 4 mirror images (validation, threshold and test); reproduce at commit 2e0f7d8: tta now averages all 8 views training augmented with"},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--train-split", help="default: DATA/splits/50_50/train.txt")
    parser.add_argument("--test-split", help="default: DATA/splits/50_50/test.txt")
    parser.add_argument("--name", default="nuaa_sirst", help="name of the result files")
    parser.add_argument("--only", nargs="+", choices=sorted(METHODS), metavar="ROW",
                        help="run these rows (the method column's names; a wrong one lists them all), keep the others from the last JSON")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "work"), help="folder for the training runs")
    parser.add_argument("--reuse", action="store_true", help="reuse a finished run's best.pt instead of training again")
    parser.add_argument("--replot", action="store_true",
                        help="run nothing: write the table and the PR pictures again from the last JSON (with --only, those rows' pictures)")
    args = parser.parse_args()

    data = Path(args.data)
    if not (data / "images").is_dir():
        print(f"no dataset at {data} (expected images/ and labels/)", file=sys.stderr)
        return 2
    train_split = Path(args.train_split or data / "splits" / "50_50" / "train.txt")
    test_split = Path(args.test_split or data / "splits" / "50_50" / "test.txt")

    def render(rows: dict) -> str:
        return table(rows, args, data, train_split, test_split)

    results_dir = ROOT / "benchmarks" / "results"
    json_path = results_dir / f"{args.name}.json"
    rows = json.loads(json_path.read_text()) if json_path.is_file() and (args.only or args.replot) else {}
    if args.replot:
        if not rows:
            print(f"--replot: no results in {json_path}", file=sys.stderr)
            return 2
        draw_pr(rows, [name for name in args.only or rows if name in rows], results_dir, args.name)
        write_text(results_dir / f"{args.name}.md", render(rows))
        print(f"table: {results_dir / (args.name + '.md')}")
        return 0
    torch.set_num_threads(max(torch.get_num_threads(), 1))

    for name in args.only or list(METHODS):
        recipe = METHODS[name]
        print(f"== {name}", flush=True)
        row: dict = {"note": recipe["note"]}
        if "classical" in recipe:
            detector_args = (None, recipe["classical"])
            row.update(params=0, gflops=math.nan, train_minutes=0.0)
        else:
            run = Path(args.work) / args.name / name
            teacher = Path(args.work) / args.name / recipe["teacher"] if "teacher" in recipe else None
            if teacher and not (teacher / "best.pt").is_file():
                print(f"{name}: run the teacher row {recipe['teacher']} first", file=sys.stderr)
                return 2
            # a row run again replaces its own run folder (--reuse keeps it instead)
            cfg = TrainConfig(data=str(data), split=str(train_split), out=str(run), progress=False, overwrite=True,
                              teacher=str(teacher / "best.pt") if teacher else "", **recipe["train"])
            if not (args.reuse and (run / "best.pt").is_file()):
                started = time.time()
                if "pretrain" in recipe:  # part of training from scratch, so its minutes count
                    cfg.init = str(pretrain_on_synthetic(first_run(run, recipe), seed=cfg.seed, **recipe["pretrain"]) / "best.pt")
                if recipe.get("refit"):  # so does the run whose held-out images chose the threshold
                    cfg = refit_config(cfg, first_run(run, recipe))
                train(cfg)
                row["train_minutes"] = (time.time() - started) / 60
            else:
                row["train_minutes"] = logged_minutes(run / "log.csv")
                if first_run(run, recipe):
                    row["train_minutes"] += logged_minutes(first_run(run, recipe) / "log.csv")
            if teacher:  # from scratch, the student costs its teacher's training too
                row["train_minutes"] += logged_minutes(teacher / "log.csv")
            model = create_model(cfg.model, **cfg.model_args)
            row.update(params=count_parameters(model), gflops=count_gflops(model))
            detector_args = (str(run / "best.pt"), None)
        detector = make_detector(*detector_args, device="cpu")
        results = evaluate_dataset(data, test_split, weights=detector_args[0], method=detector_args[1], distances=(3.0, 5.0), device="cpu")
        row["ms_per_image"] = time_per_image(detector, data, test_split)
        row["scores"] = {f"{d:g}px": s.to_dict() for d, s in results.items()}
        row["pr_curve_3px"] = compact_curve(results[3.0].pr_curve.to_dict())
        if args.only:
            rows = save_row(json_path, name, row, render)
        else:
            rows[name] = row
            write_results(json_path, rows, render)
        draw_pr(rows, [name], results_dir, args.name)
        print(render({name: row}), flush=True)
    print(f"table: {results_dir / (args.name + '.md')}")
    return 0


def write_results(json_path: Path, rows: dict, render: Callable[[dict], str]) -> None:
    """The JSON of every row and, beside it, the Markdown table that `render(rows)` makes of them."""
    write_text(json_path, json.dumps(rows, indent=2) + "\n")
    write_text(json_path.with_suffix(".md"), render(rows))


def save_row(json_path: Path, name: str, row: dict, render: Callable[[dict], str]) -> dict:
    """Set one row in the results as they are now on disk and return all rows. Rows are trained
    two processes at a time (one thread each); each read the JSON when it started, and writing
    that copy back would drop the rows the other finished since. The folder is locked from read
    to write, so two rows finishing together both land."""
    lock = os.open(json_path.parent, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = json.loads(json_path.read_text()) if json_path.is_file() else {}
        rows[name] = row
        write_results(json_path, rows, render)
        return rows
    finally:
        os.close(lock)  # closing releases the lock


def first_run(run: Path, recipe: dict) -> Path | None:
    """The folder of the training a row does before its own (RUN-pretrain or RUN-heldout), if any."""
    if "pretrain" in recipe:
        return run.parent / f"{run.name}-pretrain"
    if recipe.get("refit"):
        return run.parent / f"{run.name}-heldout"
    return None


def pretrain_on_synthetic(out: Path, n: int, epochs: int, data_seed: int, seed: int) -> Path:
    """Train the default model into `out` on `n` frames of pinpoint's synthetic generator (90% train,
    10% validation, written beside it) for `epochs` epochs; a row starts from its best.pt."""
    frames = synthesize(out.parent / f"{out.name}-synthetic", n, seed=data_seed, splits=(0.9, 0.1, 0.0))
    return train(TrainConfig(data=str(frames), split=str(frames / "splits" / "train.txt"),
                             val_split=str(frames / "splits" / "val.txt"), epochs=epochs, seed=seed,
                             out=str(out), progress=False, overwrite=True))


def refit_config(cfg: TrainConfig, out: Path) -> TrainConfig:
    """Train `cfg` as usual (validation carved out) into `out`, then return the same recipe on
    every training image, with the threshold and snap choice that the held-out images made."""
    first = train(TrainConfig.from_dict({**cfg.to_dict(), "out": str(out)}))
    chosen = load_checkpoint(first / "best.pt")["inference"]
    return TrainConfig.from_dict({**cfg.to_dict(), "val_fraction": 0.0, "tune_threshold": False,
                                  "threshold": chosen["threshold"], "snap": chosen["snap"]})


# The rows drawn together in pr_<name>_all.png (with the default): one per family, so the plot stays legible.
OVERVIEW = ("tophat", "local-contrast", "regression-seed", "heatmap-seed", "pinnet-c192-e100", "pinnet-s2d-e100-nms7-ema-b8")


def draw_pr(rows: dict, names: list[str], results_dir: Path, run_name: str) -> None:
    """PR pictures at 3 px: one per row in `names` (pr_RUN_ROW.png) and the overview (pr_RUN_all.png)."""
    for name in names:
        if "pr_curve_3px" in rows[name]:
            plot_pr({name: pr_of(rows[name])}, results_dir / f"pr_{run_name}_{name}.png", title=f"{name} on {run_name} (3 px)")
    plot_pr(overview_curves(rows), results_dir / f"pr_{run_name}_all.png", title=f"{run_name}, 3 px")


def overview_curves(rows: dict) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """PR curves of the OVERVIEW rows and of the default recipe's row."""
    return {name: pr_of(row) for name, row in rows.items() if "pr_curve_3px" in row
            and (name in OVERVIEW or (name in METHODS and is_default_recipe(METHODS[name])))}


def is_default_recipe(recipe: dict) -> bool:
    """Whether a row trains exactly what `pinpoint train` does with no options."""
    if "train" not in recipe or any(key in recipe for key in ("teacher", "pretrain", "refit", "superseded")):
        return False
    ignored = {"data", "split", "val_split", "out", "progress"}
    trained, default = TrainConfig(**recipe["train"]).to_dict(), TrainConfig().to_dict()
    normalise = lambda d: json.loads(json.dumps({k: v for k, v in d.items() if k not in ignored}))
    return normalise(trained) == normalise(default)


def logged_minutes(log: Path) -> float:
    """Training wall time of a finished run, from the per-epoch seconds in its log (validation included)."""
    import csv

    with open(log) as f:
        return sum(float(row["seconds"]) for row in csv.DictReader(f)) / 60


def compact_curve(curve: dict, points: int = 300) -> dict:
    """The PR curve thinned to about `points` points (first and last kept): enough to draw, small to store."""
    n = len(curve["recall"])
    keep = sorted(set(np.linspace(0, n - 1, min(n, points)).round().astype(int).tolist())) if n else []
    return {k: [curve[k][i] for i in keep] for k in ("recall", "precision", "thresholds")}


def pr_of(row: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """(recall, precision, AP) of a row, for plot_pr."""
    curve = row["pr_curve_3px"]
    ap = row["scores"]["3px"]["AP"]
    return np.asarray(curve["recall"]), np.asarray(curve["precision"]), math.nan if ap is None else ap


def count_gflops(model: torch.nn.Module, size: int = 256) -> float:
    """Multiply-adds x 2 for one 1 x size x size image, counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, size, size))
    return counter.get_total_flops() / 1e9


def time_per_image(detector, data: Path, split: Path, repeats: int = 1) -> float:
    """Median wall time of predict() on the test images (read from disk beforehand), in ms."""
    from pinpoint.data.dataset import load_samples

    images = [s.image for s in load_samples(data, split)]
    detector.predict(images[0])  # warm-up
    times = []
    for _ in range(repeats):
        for image in images:
            started = time.perf_counter()
            detector.predict(image)
            times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def table(rows: dict, args, data: Path, train_split: Path, test_split: Path) -> str:
    def f(value, digits):
        return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"

    command = "python benchmarks/nuaa_sirst.py"
    if args.name != "nuaa_sirst":  # another split or dataset: the arguments that made this table
        shown = lambda path: os.path.relpath(path, ROOT)
        command += f" --data {shown(data)} --train-split {shown(train_split)} --test-split {shown(test_split)} --name {args.name}"
    lines = [f"# Benchmark: {args.name}", "",
             f"Data `{data.name}`, trained on `{train_split.name}` of `{train_split.parent.name}` (validation carved from it), "
             f"scored on `{test_split.name}`; one-to-one matching within 3 px (and 5 px). "
             f"Reproduce: `{command}`. CPU: {torch.get_num_threads()} threads.", "",
             "| method | Pd@3 | prec@3 | F1@3 | FA/img@3 | Fa@3 (1e-6) | loc err px | AP@3 | Pd@5 | F1@5 | AP@5 | params | GFLOPs@256 | CPU ms/img | train min | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        s3, s5 = row["scores"]["3px"], row["scores"]["5px"]
        shown = f"**{name}** (default)" if name in METHODS and is_default_recipe(METHODS[name]) else name
        lines.append(" | ".join([f"| {shown}", f(s3["Pd"], 4), f(s3["precision"], 4), f(s3["F1"], 4), f(s3["false_alarms_per_image"], 3),
                                 f(s3["Fa_e6"], 2), f(s3["loc_error_px"], 3), f(s3["AP"], 4), f(s5["Pd"], 4), f(s5["F1"], 4), f(s5["AP"], 4),
                                 f"{row['params']:,}", f(row["gflops"], 3), f(row["ms_per_image"], 1), f(row["train_minutes"], 1),
                                 row["note"] + " |"]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
