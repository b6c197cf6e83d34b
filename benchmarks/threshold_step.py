"""The end of training: cutting the detection thresholds, in time and memory, on issue 39's run.

The run: `pinpoint train --data sets.toml --init pretrained --epochs 6 --epoch-size 2000` over
NUAA-SIRST, MDvsFA and drone-ir train plus the 618 target-free frames of RoadScene and HIT-UAV
train (every label `0`: a folder of links to the images beside label files of their own, made in
benchmarks/work/, never in the project).

    python benchmarks/threshold_step.py --stage prepare   # the dataset file and the background set
    python benchmarks/threshold_step.py --stage train     # the run (~10 min on 2 cores), its training time
    python benchmarks/threshold_step.py --stage measure   # the step as train does it now: seconds, memory, thresholds
    python benchmarks/threshold_step.py --stage measure-tta   # the same for a run trained with --tta (both cuts)
    python benchmarks/threshold_step.py --stage old       # the step as it was (one batch per image size; ~15 min, ~15 GB)
    python benchmarks/threshold_step.py --stage points    # every image's candidate points, cached (~10 min)
    python benchmarks/threshold_step.py --stage caps      # thresholds cut on a share of the images, against all of them
    python benchmarks/threshold_step.py --stage tests     # the test splits at the two cuts: all images, 1,000 per dataset
    python benchmarks/threshold_step.py --stage report    # the figures side by side

Memory is the resident set's peak during the step (VmHWM, reset before it) less the resident set
before it: the model and the data are already in memory then. Each stage adds to
benchmarks/results/threshold_step.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pinpoint.checkpoints import load_checkpoint  # noqa: E402
from pinpoint.config import TrainConfig  # noqa: E402
from pinpoint.metrics import best_threshold  # noqa: E402
from pinpoint.points import Points  # noqa: E402
from pinpoint.predict import Detector  # noqa: E402
from pinpoint.train import (CUT_FLOOR, ground_truth, load_dataset, store_thresholds, threshold_samples,  # noqa: E402
                            training_datasets)

DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "benchmarks" / "work" / "threshold_step"
RUN = WORK / "run"
RESULTS = ROOT / "benchmarks" / "results" / "threshold_step.json"
BUDGETS = (500, 1000, 2000, 4000)  # images in all, for the caps stage
SEEDS = 5
DATASETS = f"""# issue 39's run: three datasets with targets, and target-free backgrounds
[[dataset]]
name = "nuaa-sirst"
path = "{DATA / 'NUAA-SIRST'}"
split = "splits/50_50/train.txt"

[[dataset]]
name = "mdvsfa"
path = "{DATA / 'MDvsFA'}"
split = "splits/train.txt"

[[dataset]]
name = "drone-ir"
path = "{DATA / 'drone-ir'}"
split = "splits/train.txt"

[[dataset]]
name = "backgrounds"
path = "{WORK / 'backgrounds'}"
"""


def prepare() -> None:
    """RoadScene and HIT-UAV train as one target-free dataset: links to their images, a `0` label each."""
    images, labels = WORK / "backgrounds" / "images", WORK / "backgrounds" / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(exist_ok=True)
    count = 0
    for name in ("RoadScene", "HIT-UAV"):
        for stem in (DATA / name / "splits" / "train.txt").read_text().split():
            source = next((DATA / name / "images").glob(f"{stem}.*"))
            link = images / f"{name}_{source.name}"
            if not link.is_symlink():
                link.symlink_to(source)
            (labels / f"{name}_{stem}.txt").write_text("0\n")
            count += 1
    (WORK / "sets.toml").write_text(DATASETS)
    print(f"{count} target-free images in {WORK / 'backgrounds'}; dataset file {WORK / 'sets.toml'}")


def train_run() -> None:
    command = [sys.executable, "-m", "pinpoint", "train", "--data", str(WORK / "sets.toml"), "--init", "pretrained",
               "--epochs", "6", "--epoch-size", "2000", "--out", str(RUN), "--overwrite", "--no-progress"]
    started = time.time()
    subprocess.run(command, check=True, cwd=ROOT)
    total = time.time() - started
    log = [line.split(",") for line in (RUN / "log.csv").read_text().splitlines()]
    seconds = sum(float(row[log[0].index("seconds")]) for row in log[1:])
    save({"train": {"epochs_seconds": seconds, "command_seconds": total}})
    print(f"training epochs {seconds:.0f} s; the whole command {total:.0f} s")


def run_config() -> TrainConfig:
    config = load_checkpoint(RUN / "last.pt")["config"]
    return TrainConfig.from_dict(config, str(RUN / "last.pt"))


def load_data(cfg: TrainConfig) -> list:
    return [load_dataset(spec, cfg, None) for spec in training_datasets(cfg)]


def memory() -> tuple[float, float]:
    """(resident now, resident peak since the last reset), in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM starts again from VmRSS


def measured(cut) -> dict:
    """Run `cut()` (-> thresholds) timing it and reading the memory it adds to what is resident before it."""
    reset_peak()
    before, _ = memory()
    started = time.time()
    chosen = cut()
    seconds = time.time() - started
    _, peak = memory()
    return {"seconds": seconds, "resident_before_mb": before, "added_mb": peak - before, "thresholds": chosen}


def cuts(found: dict[str, list], truth: list, cfg: TrainConfig) -> dict[str, float]:
    return {key: best_threshold(points, truth, cfg.match_px, cfg.threshold_smoothing).threshold for key, points in found.items()}


def measure(tta: bool) -> None:
    """The step as train runs it now: train.store_thresholds on a copy of the run's best.pt."""
    cfg = dataclasses.replace(run_config(), tta=tta, progress=False)
    samples = threshold_samples(load_data(cfg), cfg.seed)
    copy = WORK / "best-copy.pt"
    shutil.copyfile(RUN / "best.pt", copy)
    result = {"images": len(samples), **measured(lambda: store_thresholds(copy, samples, cfg, torch.device("cpu")))}
    copy.unlink()
    save({"now_tta" if tta else "now": result})
    print(json.dumps(result, indent=1))


def old() -> None:
    """The step as it was before issue 39: each threshold from one predict_batch over every image,
    which stacks the images of one size into a single batch."""
    cfg = run_config()
    samples = threshold_samples(load_data(cfg), cfg.seed)
    detector = Detector.load(RUN / "best.pt", device="cpu")

    def cut() -> dict[str, float]:
        found = {}
        for key, averaged in (("threshold", False), ("tta_threshold", True)):
            detector.settings["tta"] = averaged
            found[key] = detector.predict_batch([sample.image for sample in samples], conf=CUT_FLOOR)
        return cuts(found, ground_truth(samples), cfg)

    result = {"images": len(samples), **measured(cut)}
    save({"old": result})
    print(json.dumps(result, indent=1))


def points() -> None:
    """Every training and validation image's candidate points (down to CUT_FLOOR), cached in WORK for
    the caps stage: one pass over all of them (17,050 images on this run)."""
    cfg = run_config()
    detector = Detector.load(RUN / "best.pt", device="cpu")
    cache = {}
    for k, d in enumerate(load_data(cfg)):
        for sample in d.train + d.val:
            found = detector.predict(sample.image, conf=CUT_FLOOR)
            cache[f"{k}/{sample.stem}"] = (found.xy, found.score, sample.xy, sample.image.shape)
    with open(WORK / "points.pkl", "wb") as f:
        pickle.dump(cache, f)
    print(f"{len(cache)} images' points in {WORK / 'points.pkl'}")


def caps() -> None:
    """The plain threshold on the cached points of every image, against the images threshold_samples
    draws (THRESHOLD_IMAGES in all, each dataset the same share) at other budgets and seeds, and
    against the scheme before issue 39 (at most 1,000 images of each dataset)."""
    cfg = run_config()
    with open(WORK / "points.pkl", "rb") as f:
        cache = pickle.load(f)
    datasets: dict[str, list[str]] = {}
    for key in cache:
        datasets.setdefault(key.split("/", 1)[0], []).append(key)

    def cut(keys: list[str]) -> float:
        found = [Points(cache[k][0], cache[k][1], cache[k][3]) for k in keys]
        truth = [Points(cache[k][2], np.ones(len(cache[k][2])), cache[k][3]) for k in keys]
        return best_threshold(found, truth, cfg.match_px, cfg.threshold_smoothing).threshold

    every = [k for keys in datasets.values() for k in keys]
    rows = {"all": {"images": len(every), "threshold": cut(every)}}
    before = []
    for keys in datasets.values():
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(keys), 1000, replace=False)) if len(keys) > 1000 else range(len(keys))
        before += [keys[i] for i in keep]
    rows["1000 per dataset (before issue 39)"] = {"images": len(before), "threshold": cut(before)}
    for budget in BUDGETS:
        thresholds = []
        for seed in range(SEEDS):
            keys = [key for keys in datasets.values() for key in share(keys, budget / len(every), seed)]
            thresholds.append(cut(keys))
        rows[f"{budget} in all, each dataset the same share"] = {
            "images": budget, "thresholds_over_seeds": thresholds,
            "largest_difference_from_all": max(abs(t - rows["all"]["threshold"]) for t in thresholds)}
    save({"caps": rows})
    print(json.dumps(rows, indent=1))


def share(keys: list[str], fraction: float, seed: int) -> list[str]:
    """A seeded `fraction` of `keys` (at least one), as threshold_samples draws a dataset's images."""
    count = max(1, round(len(keys) * fraction))
    return [keys[i] for i in np.sort(np.random.default_rng(seed).choice(len(keys), count, replace=False))]


TESTS = (("NUAA-SIRST 50/50 test", DATA / "NUAA-SIRST", "splits/50_50/test.txt", 3.0),
         ("MDvsFA test", DATA / "MDvsFA", "splits/test.txt", 3.0),
         ("drone-ir val, every frame", DATA / "drone-ir", "splits/val.txt", 5.0))


def tests() -> None:
    """The run's model on the test splits at the cut every training image gives and at the cut of
    at most 1,000 images a dataset (before issue 39): which of the two serves new images better."""
    from pinpoint.evaluate import dataset_samples
    from pinpoint.metrics import Evaluator

    results = json.loads(RESULTS.read_text())
    cuts = {"all images": results["caps"]["all"]["threshold"],
            "1000 per dataset": results["caps"]["1000 per dataset (before issue 39)"]["threshold"]}
    detector = Detector.load(RUN / "best.pt", device="cpu")
    rows = {}
    for name, folder, split, distance in TESTS:
        evaluators = {what: Evaluator((distance,), cut) for what, cut in cuts.items()}
        for sample in dataset_samples(folder, folder / split):
            found = detector.predict(sample.image, conf=CUT_FLOOR)
            for evaluator in evaluators.values():
                evaluator.add(found, sample.truth, sample.boxes)
        rows[name] = {what: {"threshold": cuts[what], **{k: e.result()[distance].to_dict()[k] for k in ("F1", "Pd", "precision")}}
                      for what, e in evaluators.items()}
        print(name, json.dumps(rows[name]), flush=True)
    save({"tests": rows})


def report() -> None:
    results = json.loads(RESULTS.read_text())
    training = results["train"]["epochs_seconds"]
    print(f"training: {training:.0f} s (6 epochs of 2,000 samples)")
    for key, what in (("old", "before issue 39 (both cuts, one batch per image size)"),
                      ("now", "now (the plain cut, streamed)"), ("now_tta", "now with --tta (both cuts, one pass per view)")):
        if key in results:
            r = results[key]
            shown = ", ".join(f"{k} {v:.3f}" for k, v in r["thresholds"].items())
            print(f"{what}: {r['images']} images, {r['seconds']:.0f} s = {100 * r['seconds'] / training:.1f}% of training, "
                  f"+{r['added_mb']:.0f} MB over {r['resident_before_mb']:.0f} MB resident; {shown}")
    for what, r in results.get("caps", {}).items():
        if "threshold" in r:
            print(f"{what}: {r['images']} images, threshold {r['threshold']:.3f}")
        else:
            print(f"{what}: thresholds {', '.join(f'{t:.3f}' for t in r['thresholds_over_seeds'])} over {SEEDS} seeds, "
                  f"at most {r['largest_difference_from_all']:.3f} from all")


def save(entry: dict) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results.update(entry)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True,
                        choices=["prepare", "train", "measure", "measure-tta", "old", "points", "caps", "tests", "report"])
    stage = parser.parse_args().stage
    {"prepare": prepare, "train": train_run, "measure": lambda: measure(False), "measure-tta": lambda: measure(True),
     "old": old, "points": points, "caps": caps, "tests": tests, "report": report}[stage]()


if __name__ == "__main__":
    main()
