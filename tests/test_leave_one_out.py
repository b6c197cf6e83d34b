"""The leave-one-out benchmark's own parts: a recipe less one source is the recipe, less that source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pinpoint.data.boxes import ClassChoice
from pinpoint.data.mixture import read_dataset_file

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def leave_one_out(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import leave_one_out

    return leave_one_out


def test_a_recipe_without_one_source_keeps_everything_else(leave_one_out, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name / "images").mkdir(parents=True)
    (tmp_path / "a" / "train.txt").write_text("x\n")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[[dataset]]\nname = "one"\npath = "a"\nsplit = "train.txt"\nweight = 2\nevery = 5\n\n'
                      '[[dataset]]\nname = "two"\npath = "b"\ntargets = ["Person"]\nbackground = ["Car"]\nignore = ["DontCare"]\n'
                      'synth_targets = 0.5\n\n[[dataset]]\nname = "three"\npath = "c"\nweight = 0.5\n')
    specs = read_dataset_file(recipe)
    kept = [spec for spec in specs if spec.name != "three"]
    again = read_dataset_file(leave_one_out.write_recipe(kept, tmp_path / "work" / "without-three.toml"))
    assert [(s.name, s.path, s.split, s.weight, s.every, s.synth_targets, s.classes) for s in again] == \
        [(s.name, s.path, s.split, s.weight, s.every, s.synth_targets, s.classes) for s in kept]
    assert again[1].classes == ClassChoice(("Person",), ("Car",), ("DontCare",))


def test_the_table_marks_the_source_a_row_never_saw(leave_one_out) -> None:
    scores = {"F1": 0.9, "FA_per_MP": 0.25, "targets": 3}
    rows = {"r/without-nuaa-sirst": {"left_out": "nuaa-sirst", "train_minutes": 40.0,
                                      "scores": {"nuaa-sirst": {"all": scores}, "roadscene": {"all": {**scores, "targets": 0}}}}}
    line = leave_one_out.render(rows).splitlines()[-1]
    assert "**F1 0.900, 0.25 FA/MP**" in line and "| 0.25 FA/MP |" in line and line.endswith("| 40 |")


def test_the_script_runs_from_a_clone() -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / "leave_one_out.py"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "without-NAME" in done.stdout
