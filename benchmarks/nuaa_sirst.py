"""The benchmark table: every method trained on one split and scored on another, one row each.

    python benchmarks/nuaa_sirst.py                       # NUAA-SIRST 50/50, every row (about 3 hours on 2 cores)
    python benchmarks/nuaa_sirst.py --only seed-heatmap   # one row (the others kept from the JSON)
    python benchmarks/nuaa_sirst.py --only default default-tta   # the default and its 8-view average
    python benchmarks/nuaa_sirst.py --data DIR --train-split A.txt --test-split B.txt --name mydata
    python benchmarks/nuaa_sirst.py --replot              # the table and PR pictures again from the JSON

Rows have short recipe names; a row's full settings (every TrainConfig field it trains with, and
the decoding it is scored with) are stored with its figures in the JSON. Rows ending in -seedK are
the same recipe with another seed; the table's summary gives each recipe's mean over its seeds.
Validation is carved from the training split (never the test split). Writes
benchmarks/results/<name>.md (the table), <name>.json (all figures) and pr_<name>_all.png (the PR
overview); pr_<name>_<row>.png for each row run, on demand (not kept in the repository).
The history of how these recipes were chosen, with every row tried, is docs/research-log.md.
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

from pinpoint.config import TrainConfig
from pinpoint.detect import make_detector
from pinpoint.evaluate import evaluate_dataset
from pinpoint.files import write_text
from pinpoint.models.registry import count_parameters, create_model
from pinpoint.train import add_tta_threshold, train
from pinpoint.viz import plot_pr

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "NUAA-SIRST"

# The seed recipe, spelled out in full so that later changes of TrainConfig's defaults leave it alone.
SEED_RECIPE = dict(img_size=256, sigma=10.0, loss="mse", flip=True, rot90=False, intensity_jitter=0.0,
                   epochs=30, batch=16, lr=1e-3, schedule="step", lr_step=10, lr_gamma=0.1, nms_kernel=3, ema=0.0, snap=False,
                   threshold_smoothing=0.0, blob_sigma=0.0)
PAIR_RECIPE = dict(model="pinnet-s2d-gated-x2")  # the accurate option: the default's network twice, averaged


def five_seeds(name: str, row: dict) -> dict[str, dict]:
    """A row and its runs with seeds 1 to 4 (named NAME-seedK): the same recipe, another seed."""
    def seeded(k: int) -> dict:
        if "run" in row:  # scores the seed-k run of the row it scores
            return {**row, "run": f"{row['run']}-seed{k}", "note": f"{name}, seed {k}"}
        return {**row, "train": dict(row["train"], seed=k), "note": f"{name}, seed {k}"}
    return {name: row, **{f"{name}-seed{k}": seeded(k) for k in range(1, 5)}}


# name -> how the row is made. "train": TrainConfig settings other than the defaults; "run": score
# another row's trained run instead of training again; "decode": detect settings it is scored with.
METHODS: dict[str, dict] = {
    "tophat": {"classical": "tophat", "note": "training-free: white top-hat 9x9, threshold mean + 6 std"},
    "local-contrast": {"classical": "local-contrast", "note": "training-free: multiscale patch contrast (MPCM-style), scales 3-9"},
    "seed-regression": {"train": dict(SEED_RECIPE, model="regression"),
                        "note": "seed model: a tiny CNN regressing one point per image, MSE"},
    "seed-heatmap": {"train": dict(SEED_RECIPE, model="heatmap"),
                     "note": "seed model: CenterNet-style heatmap, 256x256 resize, gaussian sigma 10 (radius 30), MSE, step lr"},
    **five_seeds("default", {"train": {}, "note": "the default: `pinpoint train` with no options (pinnet-s2d-gated)"}),
    **five_seeds("default-tta", {"run": "default", "decode": {"tta": True},
                                 "note": "the default's runs, each image's 8 turned and mirrored views averaged (`--tta`)"}),
    **five_seeds("pair", {"train": PAIR_RECIPE, "note": "the accurate option: two of the default's networks averaged (pinnet-s2d-gated-x2)"}),
    **five_seeds("pair-tta", {"run": "pair", "decode": {"tta": True}, "note": "the pair's runs with `--tta`: 16 passes per image"}),
}
RECIPES = ("tophat", "local-contrast", "seed-regression", "seed-heatmap", "default", "default-tta", "pair", "pair-tta")
IGNORED = ("data", "split", "val_split", "out", "overwrite", "progress", "init")  # where a run is, not what it learns


def settings_of(name: str) -> dict:
    """What a row is: its training settings in full (every TrainConfig field, the defaults included)
    and the decoding it is scored with; a classical method's name."""
    recipe = METHODS[name]
    if "classical" in recipe:
        return {"classical": recipe["classical"]}
    trained = METHODS[recipe["run"]]["train"] if "run" in recipe else recipe["train"]
    config = {k: v for k, v in TrainConfig(**trained).to_dict().items() if k not in IGNORED}
    return {"train": json.loads(json.dumps(config)), "decode": recipe.get("decode", {}),
            **({"run": recipe["run"]} if "run" in recipe else {})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--train-split", help="default: DATA/splits/50_50/train.txt")
    parser.add_argument("--test-split", help="default: DATA/splits/50_50/test.txt")
    parser.add_argument("--name", default="nuaa_sirst", help="name of the result files")
    parser.add_argument("--only", nargs="+", choices=list(METHODS), metavar="ROW",
                        help=f"run these rows, keep the others from the last JSON: {', '.join(RECIPES)}, each also -seed1 to -seed4")
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
        row: dict = {"note": recipe["note"], "settings": settings_of(name)}
        if "classical" in recipe:
            detector_args = (None, recipe["classical"])
            row.update(params=0, gflops=math.nan, train_minutes=0.0)
        else:
            run = Path(args.work) / args.name / recipe.get("run", name)
            trained = row["settings"]["train"]
            if "run" in recipe:  # another row's run, scored another way
                if not (run / "best.pt").is_file():
                    print(f"{name}: run the row {recipe['run']} first", file=sys.stderr)
                    return 2
                row["train_minutes"] = logged_minutes(run / "log.csv")
                if recipe.get("decode", {}).get("tta"):
                    add_tta_threshold(run)  # cut only for runs trained with --tta since issue 39
            elif args.reuse and (run / "best.pt").is_file():
                row["train_minutes"] = logged_minutes(run / "log.csv")
            else:  # a row run again replaces its own run folder
                started = time.time()
                train(TrainConfig(data=str(data), split=str(train_split), out=str(run), progress=False, overwrite=True, **trained))
                row["train_minutes"] = (time.time() - started) / 60
            model = create_model(trained["model"], **trained["model_args"])
            row.update(params=count_parameters(model), gflops=count_gflops(model))
            detector_args = (str(run / "best.pt"), None)
        decode = recipe.get("decode", {})
        detector = make_detector(*detector_args, device="cpu", **decode)
        results = evaluate_dataset(data, test_split, weights=detector_args[0], method=detector_args[1], distances=(3.0, 5.0),
                                   device="cpu", **decode)
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


# The rows drawn together in pr_<name>_all.png: one run of each recipe that trains.
OVERVIEW = ("tophat", "local-contrast", "seed-regression", "seed-heatmap", "default", "pair")


def draw_pr(rows: dict, names: list[str], results_dir: Path, run_name: str) -> None:
    """PR pictures at 3 px: one per row in `names` (pr_RUN_ROW.png) and the overview (pr_RUN_all.png)."""
    for name in names:
        if "pr_curve_3px" in rows[name]:
            plot_pr({name: pr_of(rows[name])}, results_dir / f"pr_{run_name}_{name}.png", title=f"{name} on {run_name} (3 px)")
    curves = {name: pr_of(rows[name]) for name in OVERVIEW if name in rows and "pr_curve_3px" in rows[name]}
    plot_pr(curves, results_dir / f"pr_{run_name}_all.png", title=f"{run_name}, 3 px")


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


COLUMNS = ("| method | Pd@3 | prec@3 | F1@3 | FA/img@3 | Fa@3 (1e-6) | loc err px | AP@3 | Pd@5 | F1@5 | AP@5 "
           "| params | GFLOPs@256 | CPU ms/img | train min | notes |")


def table(rows: dict, args, data: Path, train_split: Path, test_split: Path) -> str:
    """The Markdown table: each recipe's mean over its seeds first, then every row."""
    command = "python benchmarks/nuaa_sirst.py"
    if args.name != "nuaa_sirst":  # another split or dataset: the arguments that made this table
        shown = lambda path: os.path.relpath(path, ROOT)
        command += f" --data {shown(data)} --train-split {shown(train_split)} --test-split {shown(test_split)} --name {args.name}"
    lines = [f"# Benchmark: {args.name}", "",
             f"Data `{data.name}`, trained on `{train_split.name}` of `{train_split.parent.name}` (validation carved from it), "
             f"scored on `{test_split.name}`; one-to-one matching within 3 px (and 5 px). "
             f"Reproduce: `{command}`. Each row's full settings are in `{args.name}.json`.", "",
             "## Each recipe, mean over its seeds", "", COLUMNS, "|---" * 16 + "|"]
    for recipe in RECIPES:
        runs = [row for name, row in rows.items() if name == recipe or name.startswith(f"{recipe}-seed")]
        if runs:
            lines.append(table_row(f"{recipe} ({len(runs)} seeds)" if len(runs) > 1 else recipe, mean_row(runs)))
    lines += ["", "## Every row", "", COLUMNS, "|---" * 16 + "|"]
    order = [name for name in METHODS if name in rows] + [name for name in rows if name not in METHODS]
    lines += [table_row(f"**{name}**" if name == "default" else name, rows[name]) for name in order]
    return "\n".join(lines) + "\n"


def mean_row(runs: list[dict]) -> dict:
    """The average of several rows' figures, each column apart (the note is the first row's)."""
    mean = lambda values: float(np.mean([v for v in values if v is not None])) if any(v is not None for v in values) else None
    scores = {d: {k: mean([run["scores"][d][k] for run in runs]) for k in runs[0]["scores"][d]
                  if isinstance(runs[0]["scores"][d][k], (int, float)) or runs[0]["scores"][d][k] is None}
              for d in runs[0]["scores"]}
    return {"note": runs[0]["note"], "scores": scores, "params": runs[0]["params"], "gflops": runs[0]["gflops"],
            "ms_per_image": mean([run["ms_per_image"] for run in runs]), "train_minutes": mean([run["train_minutes"] for run in runs])}


def table_row(shown: str, row: dict) -> str:
    def f(value, digits):
        return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"

    s3, s5 = row["scores"]["3px"], row["scores"]["5px"]
    return " | ".join([f"| {shown}", f(s3["Pd"], 4), f(s3["precision"], 4), f(s3["F1"], 4), f(s3["false_alarms_per_image"], 3),
                       f(s3["Fa_e6"], 2), f(s3["loc_error_px"], 3), f(s3["AP"], 4), f(s5["Pd"], 4), f(s5["F1"], 4), f(s5["AP"], 4),
                       f"{row['params']:,}", f(row["gflops"], 3), f(row["ms_per_image"], 1), f(row["train_minutes"], 1),
                       row["note"] + " |"])


if __name__ == "__main__":
    sys.exit(main())
