"""Leave one dataset out: how a pretraining recipe does on a source it never saw.

    python benchmarks/leave_one_out.py --only all                    # the recipe on every source (~60 min on 2 cores)
    python benchmarks/leave_one_out.py --only without-hit-uav        # one source left out (the others kept from the JSON)
    python benchmarks/leave_one_out.py                               # every row: all, then each source left out (~5 hours)
    python benchmarks/leave_one_out.py --recipe benchmarks/recipes/clutter-no-synth.toml --only all   # another recipe
    python benchmarks/leave_one_out.py --only shipped                # the model in the package, scored as it is
    python benchmarks/leave_one_out.py --replot                      # the table again from the JSON
    python benchmarks/leave_one_out.py --false-alarms all            # pictures of a row's false alarms on the clutter splits

A recipe is a dataset file (benchmarks/recipes/*.toml) trained for --epochs epochs of --epoch-size
crops (20 x 4,500 by default: the original three sources keep the 1,000 crops an epoch each that
the pretrained recipe gave them). Row `all` trains on every dataset of the file; `without-NAME` on
all but NAME, with the epoch cut by NAME's share so that each remaining source sees as many crops
as in `all`. Rows are scored in onnxruntime, as deployed, on the test splits of pretrained.py:
NUAA-SIRST 50/50 test (3 px), MDvsFA test (3 px), drone-ir val videos (5 px, every labelled frame),
HIT-UAV test (every labelled box ignored: false alarms on the rest of the frame) and RoadScene test
(no target: every point a false alarm). `all` is scored on all five, `shipped` on the clutter
splits (its other figures are benchmarks/pretrained.py's), a `without-NAME` row on NAME's test and
on the two clutter splits (drone-ir's 15,000 frames take 7
minutes a row). The row that decides between recipes is the left-out one: the honest measure of a
scene the model never saw.

Writes benchmarks/results/leave_one_out.json (every figure and setting) and .md (the table), and
puts the table into docs/model-card.md between its leave-one-out markers. Runs go to
benchmarks/work/leave_one_out/RECIPE/ROW/ (not in the repository).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from nuaa_sirst import save_row, write_results
import pretrained
from pretrained import DATA, MODEL_CARD, TESTS, fmt, logged_minutes, score
from pinpoint.checkpoints import PRETRAINED_ONNX
from pinpoint.config import TrainConfig
from pinpoint.data.mixture import DatasetSpec, read_dataset_file
from pinpoint.export import export_onnx
from pinpoint.files import write_bytes, write_text
from pinpoint.predict import Detector
from pinpoint.train import train

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = ROOT / "benchmarks" / "recipes" / "clutter.toml"
RESULTS = ROOT / "benchmarks" / "results" / "leave_one_out.json"
TABLE_START, TABLE_END = "<!-- leave-one-out: benchmarks/leave_one_out.py -->", "<!-- end of leave-one-out -->"
CLUTTER = ("hit-uav", "roadscene")  # scored for every row: cheap, and what the recipe is for


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(DEFAULT_RECIPE), help="dataset file of the recipe (its name: the file's stem)")
    parser.add_argument("--only", nargs="+", metavar="ROW", help="all, without-NAME or shipped; the other rows kept from the JSON")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--epoch-size", type=int, default=4500, help="crops an epoch of row `all`")
    parser.add_argument("--skip", nargs="+", default=[], choices=list(TESTS), metavar="TEST",
                        help="test splits not to score (drone-ir's 15,000 frames take 7 minutes)")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "work" / "leave_one_out"), help="folder for the runs")
    parser.add_argument("--reuse", action="store_true", help="score a row's finished run again instead of training it")
    parser.add_argument("--replot", action="store_true", help="run nothing: write the table again from the JSON")
    parser.add_argument("--false-alarms", metavar="ROW", help="run nothing: draw the finished row's false alarms on the "
                                                              "clutter test splits into docs/images")
    args = parser.parse_args()
    rows = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if args.replot:
        write_results(RESULTS, rows, render)
        update_model_card(render(rows))
        return 0
    recipe = Path(args.recipe).resolve()
    if args.false_alarms:
        draw_false_alarms(Path(args.work) / recipe.stem / args.false_alarms / "best.pt")
        return 0
    specs = read_dataset_file(recipe)
    names = ["all"] + [f"without-{spec.name}" for spec in specs]
    for name in args.only or names:
        if name not in names + ["shipped"]:
            parser.error(f"--only {name}: rows of {recipe.name} are {', '.join(names)} (and shipped)")
    missing = [folder for folder, *_ in TESTS.values() if not (DATA / folder).is_dir()]
    if missing:
        print(f"no dataset at {DATA / missing[0]} (see the data README)", file=sys.stderr)
        return 2
    for name in args.only or names:
        key = "shipped" if name == "shipped" else f"{recipe.stem}/{name}"
        print(f"== {key}", flush=True)
        if name == "shipped":
            row = score_row(Detector.load(PRETRAINED_ONNX, device="cpu", threads=torch.get_num_threads()), list(CLUTTER))
            row.update(note="the model in the package, as shipped; its other figures are pretrained.py's")
        else:
            row = run_row(recipe, specs, name, args, Path(args.work) / recipe.stem / name)
        rows = save_row(RESULTS, key, row, render)
        update_model_card(render(rows))
    print(f"table: {RESULTS.with_suffix('.md')} and {MODEL_CARD}")
    return 0


def run_row(recipe: Path, specs: list[DatasetSpec], name: str, args: argparse.Namespace, run: Path) -> dict:
    """Train (or reuse) one row's run and score it: `all` on every test, a left-out row on its own and the clutter ones."""
    left_out = name.removeprefix("without-") if name != "all" else None
    kept = [spec for spec in specs if spec.name != left_out]
    epoch_size = round(args.epoch_size * sum(s.weight for s in kept) / sum(s.weight for s in specs))
    data = recipe if left_out is None else write_recipe(kept, run.parent / f"{name}.toml")
    settings = dict(data=str(data), epochs=args.epochs, epoch_size=epoch_size)
    if args.reuse and (run / "best.pt").is_file():
        minutes = logged_minutes(run)
    else:
        started = time.time()
        train(TrainConfig(out=str(run), overwrite=True, progress=False, **settings))
        minutes = (time.time() - started) / 60
    onnx = run / "best.onnx"
    onnx.unlink(missing_ok=True)
    detector = Detector.load(export_onnx(run / "best.pt", onnx), device="cpu", threads=torch.get_num_threads())
    tests = [t for t in TESTS if (left_out is None or t == left_out or t in CLUTTER) and t not in args.skip]
    row = score_row(detector, tests)
    row.update(note=f"{recipe.name}" + (f" without {left_out}" if left_out else ", every source"), left_out=left_out,
               recipe=recipe.read_text(), settings=settings | {"data": str(data.relative_to(ROOT)) if data.is_relative_to(ROOT) else str(data)},
               train_minutes=minutes)
    return row


def draw_false_alarms(weights: Path, per_picture: int = 32) -> None:
    """docs/images/clutter-false-alarms-{roadscene,hit-uav}.png: the first `per_picture` false alarms
    (in split order) of a run on each clutter test split, 48 x 48 px around each, contrast stretched,
    its score in the corner: what the model still takes for a target."""
    import cv2
    import numpy as np

    from pinpoint.data.dataset import load_samples
    from pinpoint.metrics import outside_ignored

    detector = Detector.load(weights, device="cpu")
    for test in CLUTTER:
        folder, split, *_ = TESTS[test]
        tiles = []
        for sample in load_samples(DATA / folder, DATA / folder / split):
            points = outside_ignored(detector.predict(sample.image), sample.ignore)
            padded = np.pad(sample.image, 24, mode="edge")
            for (x, y), score_value in zip(points.xy, points.score):
                tile = padded[int(round(y)):int(round(y)) + 48, int(round(x)):int(round(x)) + 48]
                tile = (255 * (tile - tile.min()) / (np.ptp(tile) + 1e-6)).astype(np.uint8)
                tile = cv2.resize(tile, (96, 96), interpolation=cv2.INTER_NEAREST)
                cv2.putText(tile, f"{score_value:.2f}", (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, 255, 1)
                tiles.append(tile)
        tiles = tiles[:per_picture]
        tiles += [np.zeros((96, 96), np.uint8)] * (-len(tiles) % 8)
        picture = np.vstack([np.hstack(tiles[i:i + 8]) for i in range(0, len(tiles), 8)])
        out = ROOT / "docs" / "images" / f"clutter-false-alarms-{test}.png"
        write_bytes(out, cv2.imencode(".png", picture)[1].tobytes())
        print(f"{out}: {min(len(tiles), per_picture)} false alarms")


def score_row(detector: Detector, tests: list[str]) -> dict:
    return {"scores": {test: score(detector, test) for test in tests}}


def write_recipe(specs: list[DatasetSpec], path: Path) -> Path:
    """A dataset file of `specs` (absolute paths), for a row that leaves one source out."""
    def quoted(values) -> str:
        return "[" + ", ".join(json.dumps(v) for v in values) + "]"

    tables = []
    for spec in specs:
        lines = ["[[dataset]]", f"name = {json.dumps(spec.name)}", f"path = {json.dumps(str(spec.path))}", f"weight = {spec.weight!r}"]
        for key in ("split", "val_split"):
            if getattr(spec, key) is not None:
                lines.append(f"{key} = {json.dumps(str(getattr(spec, key)))}")
        if spec.every is not None:
            lines.append(f"every = {spec.every}")
        if spec.synth_targets is not None:
            lines.append(f"synth_targets = {spec.synth_targets!r}")
        for role in ("targets", "background"):
            if getattr(spec.classes, role):
                lines.append(f"{role} = {quoted(getattr(spec.classes, role))}")
        if spec.classes.ignore is not None:
            lines.append(f"ignore = {quoted(spec.classes.ignore)}")
        tables.append("\n".join(lines))
    write_text(path, "\n\n".join(tables) + "\n")
    return path


def render(rows: dict) -> str:
    """The Markdown table: F1 on the test splits with targets, false alarms per megapixel on all."""
    lines = ["Reproduce: `python benchmarks/leave_one_out.py` (rows: `--only all`, `--only without-NAME`, `--recipe FILE`). "
             "F1 at each split's distance; FA/MP: false alarms per megapixel of target-free area (HIT-UAV: outside "
             "every labelled box). **Bold**: the source the row never trained on.", "",
             "| row | " + " | ".join(TESTS) + " | train min |", "|---" * (len(TESTS) + 2) + "|"]
    for key, row in rows.items():
        cells = []
        for test in TESTS:
            s = row["scores"].get(test, {}).get("all")
            if s is None:
                cells.append("")
                continue
            text = (f"F1 {fmt(s['F1'], 3)}, " if s["targets"] else "") + f"{fmt(s['FA_per_MP'], 2)} FA/MP"
            cells.append(f"**{text}**" if row.get("left_out") == test else text)
        minutes = row.get("train_minutes")
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {fmt(minutes, 0) if minutes else ''} |")
    return "\n".join(lines) + "\n"


def update_model_card(table: str) -> None:
    """Put the table into docs/model-card.md between its leave-one-out markers."""
    pretrained.update_model_card(table, (TABLE_START, TABLE_END), "benchmarks/results/leave_one_out.md")


if __name__ == "__main__":
    sys.exit(main())
