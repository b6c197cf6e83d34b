"""Masks -> point labels and COCO keypoints <-> point labels, checked on hand-built cases and the shared data."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pinpoint.convert import coco_to_labels, labels_to_coco, mask_to_points, masks_to_labels
from pinpoint.data.labels import read_labels, write_labels
from pinpoint.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / "shared/data/NUAA-SIRST"


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


# --- mask_to_points ---------------------------------------------------------------------------


def test_diagonal_neighbours_join_and_regions_come_in_raster_order():
    mask = np.zeros((6, 8), np.uint8)
    mask[1, 1] = mask[2, 2] = 255  # touch only at a corner: one target under 8-connectivity
    mask[0, 6] = 255  # first pixel in raster order, so it is listed first
    mask[4:6, 5:8] = 255  # a 2 x 3 block
    mask[3, 7] = 255  # ... with one pixel on top: 7 pixels in all
    points = mask_to_points(mask)
    # Third region by hand: columns 5, 6, 7 on rows 4 and 5, plus (row 3, column 7).
    expected = np.array([[6.0, 0.0], [1.5, 1.5], [(5 + 6 + 7 + 5 + 6 + 7 + 7) / 7, (4 * 3 + 5 * 3 + 3) / 7]])
    np.testing.assert_allclose(points, expected, atol=1e-12)


def test_threshold_keeps_only_values_above_it():
    mask = np.zeros((5, 5), np.uint8)
    mask[1, 1] = 100
    mask[3, 3] = 255
    assert len(mask_to_points(mask)) == 2
    np.testing.assert_array_equal(mask_to_points(mask, threshold=128), [[3.0, 3.0]])
    assert len(mask_to_points(mask, threshold=255)) == 0


def test_empty_mask_gives_no_points():
    points = mask_to_points(np.zeros((4, 4), np.uint16))
    assert points.shape == (0, 2)


def test_colour_and_16_bit_masks():
    colour = np.zeros((4, 6, 3), np.uint8)
    colour[2, 5, 2] = 255  # red only, in OpenCV's BGR order
    np.testing.assert_array_equal(mask_to_points(colour), [[5.0, 2.0]])
    deep = np.zeros((4, 6), np.uint16)
    deep[0, 0:2] = 65535
    np.testing.assert_array_equal(mask_to_points(deep, threshold=1000), [[0.5, 0.0]])


# --- masks_to_labels --------------------------------------------------------------------------


def test_masks_to_labels_normalises_by_the_mask_size_and_strips_a_suffix(tmp_path):
    mask = np.zeros((4, 10), np.uint8)  # H = 4, W = 10
    mask[1, 2:4] = 255  # centroid (x 2.5, y 1)
    write_png(tmp_path / "masks/shot_7_pixels0.png", mask)
    write_png(tmp_path / "masks/empty_pixels0.png", np.zeros((3, 3), np.uint8))
    assert masks_to_labels(tmp_path / "masks", tmp_path / "labels", suffix="_pixels0") == 2
    assert (tmp_path / "labels/shot_7.txt").read_text() == "1\n0.250000 0.250000\n"
    assert (tmp_path / "labels/empty.txt").read_text() == "0\n"


def test_masks_to_labels_names_the_bad_file(tmp_path):
    write_png(tmp_path / "masks/good.png", np.zeros((3, 3), np.uint8))
    (tmp_path / "masks/broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"broken\.png: cannot decode"):
        masks_to_labels(tmp_path / "masks", tmp_path / "labels")
    (tmp_path / "masks/broken.png").unlink()
    with pytest.raises(InputError, match=r"good\.png: mask name does not end with the suffix '_mask'"):
        masks_to_labels(tmp_path / "masks", tmp_path / "labels", suffix="_mask")


@pytest.mark.skipif(not (SHARED / "masks").is_dir(), reason="shared NUAA-SIRST data not present")
def test_masks_reproduce_the_shared_nuaa_sirst_labels(tmp_path):
    written = masks_to_labels(SHARED / "masks", tmp_path)
    expected_files = sorted((SHARED / "labels").glob("*.txt"))
    assert written == len(expected_files) == len(list((SHARED / "masks").iterdir()))
    for expected_path in expected_files:
        expected, ours = read_labels(expected_path), read_labels(tmp_path / expected_path.name)
        assert len(ours) == len(expected), expected_path.name
        np.testing.assert_allclose(ours.xy, expected.xy, atol=1e-6, rtol=0, err_msg=expected_path.name)


# --- COCO keypoints ---------------------------------------------------------------------------


def make_dataset(root: Path) -> None:
    """Three images of different sizes: two targets, none, and one on the far corner pixel."""
    write_png(root / "images/a.png", np.zeros((10, 20), np.uint8))
    write_png(root / "images/b.png", np.zeros((7, 7), np.uint8))
    write_png(root / "images/c.png", np.zeros((5, 8), np.uint16))
    write_labels(root / "labels/a.txt", np.array([[0.25, 0.5], [0.123457, 0.987654]]))
    write_labels(root / "labels/b.txt", np.zeros((0, 2)))
    write_labels(root / "labels/c.txt", np.array([[7 / 8, 4 / 5]]))


def test_coco_round_trip_is_lossless_including_empty_images(tmp_path):
    make_dataset(tmp_path / "data")
    coco = labels_to_coco(tmp_path / "data", tmp_path / "coco.json")
    assert json.loads((tmp_path / "coco.json").read_text()) == coco
    assert [image["file_name"] for image in coco["images"]] == ["a.png", "b.png", "c.png"]
    assert len(coco["annotations"]) == 3
    assert coco_to_labels(tmp_path / "coco.json", tmp_path / "back") == 3
    for name in ("a.txt", "b.txt", "c.txt"):
        assert (tmp_path / "back" / name).read_text() == (tmp_path / "data/labels" / name).read_text()


def test_coco_keypoints_put_the_pixel_centre_at_half(tmp_path):
    write_png(tmp_path / "data/images/a.png", np.zeros((10, 20), np.uint8))  # H 10, W 20
    write_labels(tmp_path / "data/labels/a.txt", np.array([[0.25, 0.5], [0.0, 0.0]]))
    coco = labels_to_coco(tmp_path / "data", tmp_path / "coco.json", category="drone")
    assert coco["images"] == [{"id": 1, "file_name": "a.png", "width": 20, "height": 10}]
    assert coco["categories"][0]["name"] == "drone" and coco["categories"][0]["keypoints"] == ["center"]
    first, corner = coco["annotations"]
    assert first["keypoints"] == [5.5, 5.5, 2]  # pixel (row 5, column 5) covers [5, 6) x [5, 6)
    assert first["bbox"] == [5.0, 5.0, 1, 1] and first["num_keypoints"] == 1 and first["iscrowd"] == 0
    assert corner["keypoints"] == [0.5, 0.5, 2]


def test_coco_from_annotation_tools(tmp_path):
    """Several keypoints per annotation, v = 0 skipped, sizes from the image files, other categories ignored."""
    write_png(tmp_path / "data/images/frame.png", np.zeros((10, 20), np.uint8))
    coco = {
        "images": [{"id": 7, "file_name": "sub/frame.png"}],
        "categories": [{"id": 1, "name": "target"}, {"id": 2, "name": "bird"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "keypoints": [10.5, 2.5, 2, 0, 0, 0, 0.5, 9.5, 1]},
            {"id": 2, "image_id": 7, "category_id": 2, "keypoints": [3.5, 3.5, 2]},
        ],
    }
    (tmp_path / "tool.json").write_text(json.dumps(coco))
    assert coco_to_labels(tmp_path / "tool.json", tmp_path / "data/labels", category="target") == 1
    labels = read_labels(tmp_path / "data/labels/frame.txt")
    np.testing.assert_allclose(labels.xy, [[10 / 20, 2 / 10], [0.0, 0.9]], atol=1e-12)
    assert coco_to_labels(tmp_path / "tool.json", tmp_path / "data/labels") == 1
    assert len(read_labels(tmp_path / "data/labels/frame.txt")) == 3


def test_coco_predictions_keep_their_scores(tmp_path):
    make_dataset(tmp_path / "data")
    write_labels(tmp_path / "data/labels/a.txt", np.array([[0.25, 0.5]]), np.array([0.875]))
    labels_to_coco(tmp_path / "data", tmp_path / "coco.json")
    coco_to_labels(tmp_path / "coco.json", tmp_path / "back")
    assert (tmp_path / "back/a.txt").read_text() == "1\n0.250000 0.500000 0.875000\n"


def test_coco_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [}')
    with pytest.raises(InputError, match=r"bad\.json:1: not valid JSON"):
        coco_to_labels(bad, tmp_path / "out")
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "x.png", "width": 4, "height": 4}],
                               "annotations": [{"id": 3, "image_id": 2, "keypoints": [1, 1, 2]}]}))
    with pytest.raises(InputError, match=r"bad\.json: annotation id 3 refers to image id 2"):
        coco_to_labels(bad, tmp_path / "out")
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "x.png", "width": 4, "height": 4}],
                               "annotations": [{"id": 3, "image_id": 1, "keypoints": [9.5, 1, 2]}]}))
    with pytest.raises(InputError, match=r"outside its 4 x 4 image"):
        coco_to_labels(bad, tmp_path / "out")
