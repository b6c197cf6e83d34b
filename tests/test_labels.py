"""The label format (and Points, its pixel-frame twin): what round trips, what is tolerated, the one-line error for each bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinpoint.data.labels import Labels, format_labels, parse_labels, read_labels, write_labels
from pinpoint.errors import InputError
from pinpoint.points import Points


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _error_of(path: Path) -> str:
    with pytest.raises(InputError) as info:
        read_labels(path)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(str(path)), message
    return message


# ---------------------------------------------------------------- round trips


def test_round_trip_without_scores(tmp_path: Path) -> None:
    xy = np.array([[0.0, 1.0], [0.123456, 0.654321], [1.0, 0.0], [0.5, 0.25]])
    write_labels(tmp_path / "a.txt", xy)
    labels = read_labels(tmp_path / "a.txt")
    assert labels.scores is None
    assert labels.xy.shape == (4, 2)
    np.testing.assert_allclose(labels.xy, xy, atol=5e-7, rtol=0)


def test_round_trip_with_scores(tmp_path: Path) -> None:
    xy = np.array([[0.1, 0.2], [0.9, 0.8]])
    scores = np.array([0.75, 0.031])
    write_labels(tmp_path / "p.txt", xy, scores)
    labels = read_labels(tmp_path / "p.txt")
    np.testing.assert_allclose(labels.xy, xy, atol=5e-7, rtol=0)
    assert labels.scores is not None
    np.testing.assert_allclose(labels.scores, scores, atol=5e-7, rtol=0)


def test_round_trip_of_an_image_without_targets(tmp_path: Path) -> None:
    write_labels(tmp_path / "empty.txt", np.zeros((0, 2)))
    assert (tmp_path / "empty.txt").read_text() == "0\n"
    labels = read_labels(tmp_path / "empty.txt")
    assert len(labels) == 0
    assert labels.xy.shape == (0, 2)


def test_format_is_count_then_six_decimals() -> None:
    assert format_labels(np.array([[0.5, 0.25]])) == "1\n0.500000 0.250000\n"
    assert format_labels(np.array([[0.5, 0.25]]), np.array([0.9])) == "1\n0.500000 0.250000 0.900000\n"


def test_format_clips_coordinates_into_the_unit_square() -> None:
    assert format_labels(np.array([[-0.01, 1.2]])) == "1\n0.000000 1.000000\n"


def test_format_refuses_non_finite_values() -> None:
    with pytest.raises(ValueError):
        format_labels(np.array([[np.nan, 0.5]]))
    with pytest.raises(ValueError):
        format_labels(np.array([[0.5, 0.5]]), np.array([np.inf]))
    with pytest.raises(ValueError):
        format_labels(np.array([[0.5, 0.5]]), np.array([0.1, 0.2]))


# ---------------------------------------------------------------- tolerated variations


def test_windows_line_endings_and_trailing_blank_lines(tmp_path: Path) -> None:
    path = _write(tmp_path / "crlf.txt", "2\r\n0.25 0.5\r\n0.75 1\r\n\r\n\r\n")
    labels = read_labels(path)
    np.testing.assert_array_equal(labels.xy, [[0.25, 0.5], [0.75, 1.0]])


def test_byte_order_mark(tmp_path: Path) -> None:
    path = _write(tmp_path / "bom.txt", b"\xef\xbb\xbf1\n0.3 0.4\n")
    np.testing.assert_array_equal(read_labels(path).xy, [[0.3, 0.4]])


def test_count_zero_alone_and_commas_between_values() -> None:
    assert len(parse_labels("0")) == 0
    np.testing.assert_array_equal(parse_labels("1\n0.1,0.2\n").xy, [[0.1, 0.2]])


# ---------------------------------------------------------------- each bad input


@pytest.mark.parametrize(
    "content, expected",
    [
        ("1\n0.5 abc\n", ":2:"),  # a value that is not a number
        ("two\n", ":1:"),  # a count that is not a number
        ("3\n0.1 0.1\n0.2 0.2\n", ":1:"),  # count says more lines than there are
        ("1\n0.1 0.1\n0.2 0.2\n", ":1:"),  # count says fewer lines than there are
        ("2\n0.1 0.1\n1.5 0.2\n", ":3:"),  # x past the right edge
        ("1\n0.5 -0.1\n", ":2:"),  # y above the top edge
        ("1\nnan 0.5\n", ":2:"),
        ("1\n0.5 inf\n", ":2:"),
        ("1\n0.5 0.5 nan\n", ":2:"),  # a NaN score
        ("-1\n", ":1:"),  # negative count
        ("2\n0.1 0.2\n0.3 0.4 0.9\n", ":3:"),  # mixed 2 and 3 columns
        ("1\n0.5\n", ":2:"),  # one value on a point line
        ("2\n0.1 0.2\n\n", ":1:"),  # a blank line where a point was promised: the count is off
    ],
)
def test_bad_content_names_file_and_line(tmp_path: Path, content: str, expected: str) -> None:
    path = _write(tmp_path / "bad.txt", content)
    message = _error_of(path)
    assert f"{path}{expected}" in message


def test_out_of_range_message_says_which_coordinate(tmp_path: Path) -> None:
    message = _error_of(_write(tmp_path / "x.txt", "1\n1.5 0.5\n"))
    assert "x = 1.5" in message
    message = _error_of(_write(tmp_path / "y.txt", "1\n0.5 -0.1\n"))
    assert "y = -0.1" in message


def test_count_mismatch_message_gives_both_numbers(tmp_path: Path) -> None:
    message = _error_of(_write(tmp_path / "c.txt", "3\n0.1 0.1\n"))
    assert "3" in message and "1 point line" in message


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\r\n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    message = _error_of(_write(tmp_path / "empty.txt", content))
    assert "empty" in message


def test_non_utf8_bytes(tmp_path: Path) -> None:
    message = _error_of(_write(tmp_path / "latin.txt", b"1\n0.5 0.5\xe9\xff\n"))
    assert "text" in message


def test_binary_file(tmp_path: Path) -> None:
    _error_of(_write(tmp_path / "image.txt", bytes(range(256))))


def test_missing_file(tmp_path: Path) -> None:
    message = _error_of(tmp_path / "nowhere.txt")
    assert "not found" in message


def test_folder_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "dir.txt").mkdir()
    _error_of(tmp_path / "dir.txt")


def test_line_break_characters_inside_a_value_stay_escaped() -> None:
    # \x0b and \x1c split lines for str.splitlines() but not for the parser; shown raw they
    # would break the one-line message, so offending text must go through repr().
    for text in ("1\x0b2\n", "3\x1c\n"):
        with pytest.raises(InputError) as info:
            parse_labels(text, "src.txt")
        message = str(info.value)
        assert len(message.splitlines()) == 1, message
        assert message.startswith("src.txt:1:")


# ---------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789.-+eE naif,\t\r\n\ufeff\x0bx")), max_size=60) | st.text(max_size=40))
def test_any_text_parses_or_raises_input_error(text: str) -> None:
    try:
        labels = parse_labels(text, "gen.txt")
    except InputError as exc:
        message = str(exc)
        assert message.startswith("gen.txt")
        assert len(message.splitlines()) == 1, message
        return
    assert isinstance(labels, Labels)
    assert labels.xy.shape == (len(labels), 2)
    assert np.all((labels.xy >= 0) & (labels.xy <= 1))


_unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    points=st.lists(st.tuples(_unit, _unit, st.floats(min_value=-10, max_value=10, allow_nan=False)), max_size=12),
    with_scores=st.booleans(),
)
def test_generated_valid_file_round_trips(tmp_path: Path, points: list, with_scores: bool) -> None:
    xy = np.array([p[:2] for p in points], dtype=np.float64).reshape(-1, 2)
    scores = np.array([p[2] for p in points]) if with_scores else None
    path = tmp_path / "gen.txt"
    write_labels(path, xy, scores)
    labels = read_labels(path)
    np.testing.assert_allclose(labels.xy, xy, atol=5e-7, rtol=0)
    if with_scores and len(points):
        assert labels.scores is not None
        np.testing.assert_allclose(labels.scores, scores, atol=5e-7, rtol=0)
    else:
        assert labels.scores is None


# ---------------------------------------------------------------- Points: the same labels in pixels


def test_points_from_labels_scale_by_width_and_height() -> None:
    points = Points.from_labels(Labels(np.array([[0.5, 0.25], [0.0, 1.0]])), (40, 100))
    np.testing.assert_array_equal(points.xy, [[50.0, 10.0], [0.0, 40.0]])
    np.testing.assert_array_equal(points.score, [1.0, 1.0])
    assert points.image_size == (40, 100)
    with_scores = Points.from_labels(Labels(np.array([[0.5, 0.5]]), np.array([0.3])), (10, 10))
    np.testing.assert_array_equal(with_scores.score, [0.3])


def test_points_xy_norm() -> None:
    points = Points(np.array([[32.0, 12.0], [16.0, 6.0]]), np.array([0.9, 0.1]), (24, 64))
    np.testing.assert_array_equal(points.xy_norm, [[0.5, 0.5], [0.25, 0.25]])


def test_points_boolean_mask_and_index() -> None:
    points = Points(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), np.array([0.9, 0.2, 0.6]), (10, 20))
    confident = points[points.score > 0.5]
    assert isinstance(confident, Points)
    np.testing.assert_array_equal(confident.xy, [[1.0, 2.0], [5.0, 6.0]])
    np.testing.assert_array_equal(confident.score, [0.9, 0.6])
    assert confident.image_size == (10, 20)
    none = points[points.score > 1.0]
    assert len(none) == 0 and none.xy.shape == (0, 2)
    single = points[1]
    assert single.xy.shape == (1, 2) and single.xy.tolist() == [[3.0, 4.0]] and single.score.tolist() == [0.2]


def test_points_reject_mismatched_scores() -> None:
    with pytest.raises(ValueError):
        Points(np.zeros((3, 2)), np.zeros(2), (5, 5))


def test_points_save_and_read_back(tmp_path: Path) -> None:
    size = (480, 640)
    points = Points(np.array([[12.25, 400.5], [639.0, 0.0], [320.125, 240.875]]), np.array([0.95, 0.5, 0.125]), size)
    points.save(tmp_path / "pred.txt")
    labels = read_labels(tmp_path / "pred.txt")
    again = Points.from_labels(labels, size)
    np.testing.assert_allclose(again.xy, points.xy, atol=5e-7 * 640, rtol=0)
    np.testing.assert_allclose(again.score, points.score, atol=5e-7, rtol=0)


SIRST = Path(__file__).resolve().parents[2] / "shared" / "data" / "NUAA-SIRST"


@pytest.mark.skipif(not (SIRST / "labels").is_dir(), reason="NUAA-SIRST not present beside the project")
def test_every_real_label_file_parses() -> None:
    files = sorted((SIRST / "labels").glob("*.txt"))
    assert len(files) > 100
    counts = [len(read_labels(path)) for path in files]
    assert min(counts) >= 1  # every SIRST image shows at least one target
