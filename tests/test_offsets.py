"""The centre-offset codec and head: exact fields in, peaks moved onto centres out, through mirrors, training and ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pinpoint.codecs.heatmap import decode, encode
from pinpoint.codecs.offsets import apply_offsets, encode_offsets, merge_close
from pinpoint.predict import Detector


def _trained_pixels(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(field[2])
    return np.stack([cols, rows], axis=1).astype(np.float64), field[:2, rows, cols].T


@pytest.mark.parametrize("centre", [(10.3, 12.7), (0.2, 5.0), (31.0, 31.0)])
def test_every_trained_pixel_points_at_the_centre(centre: tuple[float, float]) -> None:
    field = encode_offsets(np.array([centre]), (32, 40), 4.0)
    assert field.shape == (3, 32, 40) and field.dtype == np.float32
    pixels, offsets = _trained_pixels(field)
    np.testing.assert_allclose(pixels + offsets, np.broadcast_to(centre, pixels.shape), atol=1e-5)
    rows, cols = np.mgrid[:32, :40]
    within = np.hypot(cols - centre[0], rows - centre[1]) <= 4.0
    np.testing.assert_array_equal(field[2] == 1, within)  # the disk, clipped by the border, and nothing else
    assert not field[:2][:, ~within].any()


def test_close_targets_each_keep_their_own_pixels() -> None:
    centres = np.array([[10.0, 10.0], [15.0, 11.0]])
    pixels, offsets = _trained_pixels(encode_offsets(centres, (24, 24), 6.0))
    pointed = pixels + offsets
    nearest = np.argmin(np.hypot(*(pixels[:, None] - centres[None]).transpose(2, 0, 1)), axis=1)
    np.testing.assert_allclose(pointed, centres[nearest], atol=1e-5)
    assert set(nearest) == {0, 1}


def test_no_points_trains_no_pixel() -> None:
    assert not encode_offsets(np.zeros((0, 2)), (8, 8), 3.0).any()


def test_merge_keeps_the_highest_of_points_closer_than_the_distance() -> None:
    xy = np.array([[10.0, 10.0], [12.0, 10.0], [13.0, 10.0], [20.0, 20.0]])
    kept = merge_close(xy, np.array([0.9, 0.8, 0.7, 0.6]), 3.0)
    np.testing.assert_array_equal(kept, [0, 2, 3])  # 12 is 2 px from 10; 13 is exactly 3 px away and stays


def test_a_peak_off_centre_is_moved_onto_the_centre_within_005_px() -> None:
    """An extended target whose heatmap peaks on its hot end, 5 px from the labelled centre."""
    centre = np.array([[20.4, 30.7]])
    heatmap = torch.from_numpy(encode(np.array([[25.0, 31.0]]), (64, 64), 2.0))[None, None]
    offsets = torch.from_numpy(encode_offsets(centre, (64, 64), 8.0)[:2])[None]
    (xy, scores), = decode(heatmap, threshold=0.5, nms_kernel=7, offsets=offsets)
    assert len(xy) == 1 and scores[0] == pytest.approx(1.0)
    assert np.hypot(*(xy[0] - centre[0])) < 0.05
    (plain, _), = decode(heatmap, threshold=0.5, nms_kernel=7)
    assert np.hypot(*(plain[0] - centre[0])) > 4  # what the offsets correct


def test_two_peaks_of_one_target_become_one_point() -> None:
    """Both ends of a long target peak (farther apart than the NMS window); both point at one centre."""
    centre = np.array([[30.0, 30.0]])
    heatmap = torch.from_numpy(np.maximum(0.9 * encode(np.array([[24.0, 30.0]]), (64, 64), 1.0),
                                          0.6 * encode(np.array([[36.0, 30.0]]), (64, 64), 1.0)))[None, None]
    offsets = torch.from_numpy(encode_offsets(centre, (64, 64), 8.0)[:2])[None]
    assert len(decode(heatmap, threshold=0.5, nms_kernel=7)[0][0]) == 2
    (xy, scores), = decode(heatmap, threshold=0.5, nms_kernel=7, offsets=offsets)
    np.testing.assert_allclose(xy, centre, atol=1e-5)
    np.testing.assert_allclose(scores, [0.9], atol=1e-6)


def test_apply_offsets_reads_each_peak_at_its_own_pixel() -> None:
    field = np.zeros((2, 4, 5), np.float32)
    field[:, 1, 3] = (0.5, -1.0)
    field[:, 2, 0] = (2.0, 0.25)
    np.testing.assert_allclose(apply_offsets(field, np.array([[3.0, 1.0], [0.0, 2.0], [4.0, 3.0]])),
                               [[3.5, 0.0], [2.0, 2.25], [4.0, 3.0]])


class HotEndModel:
    """A mirror-equivariant stand-in for a trained net: a target is the bright pixel of the image,
    its heatmap peaks 4 px to the right of it (a hot end), and its offset field points back at it."""

    name = "hot-end"
    threads = 1

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        outs = []
        for image in batch[:, 0]:
            row, col = np.unravel_index(np.argmax(image), image.shape)
            heat = encode(np.array([[col + 4.0, row]]), image.shape, 1.5)
            outs.append(np.concatenate([heat[None], encode_offsets(np.array([[col, row]], float), image.shape, 8.0)[:2]]))
        return torch.from_numpy(np.stack(outs))


@pytest.mark.parametrize("tta", [False, True])
def test_mirror_averaging_turns_mirrored_offsets_back(tta: bool) -> None:
    settings = {"output": "heatmap", "stride": 16, "img_size": 0, "threshold": 0.2, "top_k": 10, "nms_kernel": 7,
                "subpixel": True, "tta": tta, "offsets": True}
    detector = Detector(None, settings, backend=HotEndModel())
    image = np.full((48, 64), 0.1, np.float32)
    image[20, 30] = 1.0
    points = detector.predict(image)
    # with mirrors, the averaged heatmap peaks 4 px either side of the target, and both peaks
    # land on it only if each mirrored offset field was turned back with its image
    np.testing.assert_allclose(points.xy, [[30.0, 20.0]], atol=1e-5)
