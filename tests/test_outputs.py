"""pinpoint.outputs: the one check every verb's outputs pass before any work, and the writers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinpoint.errors import InputError
from pinpoint.outputs import MOT_BOX, Output, Protected, check_outputs, write_csv, write_mot
from pinpoint.sources import protected_folders


def test_a_new_file_beside_one_named_input_is_fine_but_not_over_a_users_file(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    (tmp_path / "other.mp4").write_bytes(b"the user's")
    protected = protected_folders([clip], clip)
    check_outputs([Output("--save-video", tmp_path / "tracked.mp4")], [clip], protected)  # `track --source clip.mp4`
    with pytest.raises(InputError, match="other.mp4: --save-video would write among the inputs"):
        check_outputs([Output("--save-video", tmp_path / "other.mp4")], [clip], protected)
    assert (tmp_path / "other.mp4").read_bytes() == b"the user's"


def test_a_folder_read_whole_takes_no_new_file_of_its_kind(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(b"")
    protected = protected_folders([folder / "a.mp4"], folder)
    with pytest.raises(InputError, match="among the images and videos read"):
        check_outputs([Output("--save-video", folder / "new.mp4")], [folder], protected)
    check_outputs([Output("--save-csv", folder / "points.csv")], [folder], protected)  # not a video: never listed as one


def test_dataset_labels_are_protected_for_files_and_folders(tmp_path: Path) -> None:
    image = tmp_path / "data" / "images" / "a.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"")
    protected = protected_folders([image])
    assert [p.folder for p in protected] == [image.parent, tmp_path / "data" / "labels"]
    for output in (Output("--save-txt", tmp_path / "data" / "labels", folder=True, suffix=".txt"),
                   Output("--save-csv", tmp_path / "data" / "labels" / "new.csv")):
        with pytest.raises(InputError, match="ground-truth labels"):
            check_outputs([output], [], protected)


def test_nothing_is_made_when_any_output_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="a file where --save-csv needs a folder"):
        check_outputs([Output("--save-txt", tmp_path / "a" / "b", folder=True, suffix=".txt"),
                       Output("--save-csv", blocker / "out.csv")])
    assert not (tmp_path / "a").exists()


def test_suffixes_compare_in_any_case(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    protected = [Protected(labels, (".csv",), "the ground-truth labels")]
    with pytest.raises(InputError, match="ground-truth labels"):
        check_outputs([Output("--save-csv", labels / "A.CSV")], [], protected)


def test_write_csv_and_mot_to_files_and_standard_output(tmp_path: Path, capsys) -> None:
    write_csv(tmp_path / "t.csv", ["frame", "name"], [[0, "a,b"], [1, 'say "hi"']])
    assert (tmp_path / "t.csv").read_text() == 'frame,name\n0,"a,b"\n1,"say ""hi"""\n'
    write_mot("-", [(0, 3, 20.0, 30.0, 0.5), (1, 3, 21.0, 30.5, None)])
    lines = [line.split(",") for line in capsys.readouterr().out.splitlines()]
    assert lines[0][:2] == ["1", "3"] and float(lines[0][2]) + MOT_BOX / 2 == 20.0 and lines[0][6] == "0.5"
    assert lines[1][0] == "2" and lines[1][6] == "-1"  # a point predicted over a gap has no score
