"""Several datasets in one run: the dataset file, each dataset's share of an epoch, and a run over images and video."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from conftest import make_spot_dataset
from pinpoint.cli import main
from pinpoint.data.mixture import MixtureSampler, epoch_shares, read_dataset_file
from pinpoint.errors import InputError
from test_videos import dot_video


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_dataset_file_resolves_paths_from_its_own_folder(tmp_path: Path) -> None:
    (tmp_path / "sets").mkdir()
    spec_file = write(tmp_path / "sets" / "train.toml", """
[[dataset]]
path = "../nuaa"
split = "splits/train.txt"
weight = 2

[[dataset]]
name = "drones"
path = "/data/drone-ir"
every = 5
""")
    first, second = read_dataset_file(spec_file)
    assert first.name == "nuaa" and first.path == (tmp_path / "nuaa").resolve() and first.weight == 2.0
    assert first.split == (tmp_path / "nuaa").resolve() / "splits" / "train.txt" and first.every is None
    assert second.name == "drones" and second.path == Path("/data/drone-ir") and second.every == 5 and second.split is None


@pytest.mark.parametrize("text, says", [
    ("[[dataset]]\nweight = 1\n", "dataset 1: needs a path"),
    ('[[dataset]]\npath = "a"\nweigth = 2\n', "dataset 1: unknown key 'weigth'"),
    ('[[dataset]]\npath = "a"\nweight = 0\n', "dataset 1: weight must be a number > 0"),
    ('[[dataset]]\npath = "a"\nevery = 0\n', "dataset 1: every must be a whole number >= 1"),
    ('[[dataset]]\npath = "x/a"\n[[dataset]]\npath = "y/a"\n', "two datasets are named 'a'"),
    ('dataset = "a"\n', "one or more [[dataset]] tables"),
    ("[[dataset]\n", "not a valid TOML dataset file"),
])
def test_a_bad_dataset_file_is_one_line_naming_it(text: str, says: str, tmp_path: Path) -> None:
    path = write(tmp_path / "sets.toml", text)
    with pytest.raises(InputError) as info:
        read_dataset_file(path)
    assert str(info.value).startswith(f"{path}: ") and says in str(info.value) and "\n" not in str(info.value)


def test_epoch_shares_follow_the_weights_not_the_sizes() -> None:
    assert epoch_shares([10_000, 213], [1, 1], 1000) == [500, 500]
    assert epoch_shares([10_000, 213, 50], [2, 1, 1], 1001) == [501, 250, 250]
    assert sum(epoch_shares([5, 7, 9], [1, 1, 1], 100)) == 100
    assert epoch_shares([100, 100], [1000, 1], 10)[1] == 1  # every dataset is seen every epoch


def test_the_mixture_sampler_draws_by_weight_and_splits_over_processes() -> None:
    sizes, weights = [1000, 20], [1, 1]
    sampler = MixtureSampler(sizes, weights, 200, world_size=1, rank=0, seed=3, batch_per_process=4)
    sampler.set_epoch(1)
    drawn = list(sampler)
    assert len(drawn) == len(sampler) == 200
    from_small = [i for i in drawn if i >= 1000]
    assert len(from_small) == 100 and Counter(from_small).most_common(1)[0][1] == 5  # 20 images, 5 laps each
    assert len(set(i for i in drawn if i < 1000)) == 100  # the large one: a permutation, no repeats
    again = MixtureSampler(sizes, weights, 200, 1, 0, 3, 4)
    again.set_epoch(1)
    assert list(again) == drawn  # a function of (seed, epoch) alone
    again.set_epoch(2)
    assert list(again) != drawn
    ranks = []
    for rank in range(2):
        shard = MixtureSampler(sizes, weights, 200, world_size=2, rank=rank, seed=3, batch_per_process=2)
        shard.set_epoch(1)
        ranks.append(list(shard))
    assert sorted(ranks[0] + ranks[1]) == sorted(drawn) and len(ranks[0]) == 100
    resumed = MixtureSampler(sizes, weights, 200, 1, 0, 3, 4)
    resumed.set_epoch(1, first_batch=10)
    assert list(resumed) == drawn[40:] and len(resumed) == 160


def test_training_on_images_and_video_reports_each_dataset(tmp_path: Path, capsys) -> None:
    make_spot_dataset(tmp_path / "spots", 12)
    for name in ("a", "b", "c"):
        dot_video(tmp_path / "clips", name, frames=12)
    sets = write(tmp_path / "sets.toml", """
[[dataset]]
path = "spots"
weight = 1

[[dataset]]
name = "clips"
path = "clips"
every = 3
weight = 1
""")
    out = tmp_path / "run"
    assert main(["train", "--data", str(sets), "--epochs", "2", "--batch", "4", "--crop-size", "32", "--epoch-size", "24",
                 "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "spots: 11 training / 1 validation, weight 1" in printed
    assert "clips: 8 training / 4 validation, weight 1" in printed  # one of three videos held out, every 3rd frame
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {"val_f1_spots", "val_f1_clips"} <= set(rows[0])
    assert all(0 <= float(row["val_f1_clips"]) <= 1 for row in rows)
    assert main(["train", "--data", str(sets), "--split", "x.txt", "--out", str(tmp_path / "r2")]) == 2
    assert "--split and --val-split go into the dataset file" in capsys.readouterr().err
