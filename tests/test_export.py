"""ONNX export and the onnxruntime backend: same points as PyTorch, settings carried by the file, batched prediction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import pinpoint
from conftest import random_checkpoint, spot_image
from pinpoint.checkpoints import load_checkpoint
from pinpoint.cli import main
from pinpoint.errors import InputError
from pinpoint.export import METADATA_KEY, check_onnx, export_onnx, onnx_bytes
from pinpoint.models.registry import create_model
from pinpoint.predict import Detector


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """Loading with threads=N sets PyTorch's process-wide thread count; later tests get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return random_checkpoint(tmp_path_factory.mktemp("export") / "best.pt")


@pytest.fixture(scope="module")
def exported(checkpoint: Path) -> Path:
    return export_onnx(checkpoint)


def threshold_in_a_gap(scores: np.ndarray, keep_at_least: int = 3) -> float:
    """A threshold halfway across the widest gap between sorted peak scores, below the top few:
    a tiny numerical difference between backends cannot move a peak across it."""
    scores = np.sort(scores)[::-1][:20]
    gaps = scores[keep_at_least - 1:-1] - scores[keep_at_least:]
    i = int(np.argmax(gaps)) + keep_at_least - 1
    assert gaps.max() > 1e-3, "no clear gap between peak scores"
    return float((scores[i] + scores[i + 1]) / 2)


def test_export_writes_onnx_beside_the_checkpoint_with_its_settings(checkpoint: Path, exported: Path) -> None:
    assert exported == checkpoint.with_suffix(".onnx") and exported.is_file()
    proto = onnx.load(str(exported))
    meta = {p.key: p.value for p in proto.metadata_props}
    settings = json.loads(meta[METADATA_KEY])
    saved = load_checkpoint(checkpoint)["inference"]
    assert settings == {**saved, "model_name": "heatmap"}
    # eval-mode export folds BatchNorm into the convolutions
    ops = {node.op_type for node in proto.graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] and dims[2] and dims[3] and dims[1] == ""  # batch, height, width dynamic; one channel fixed


def test_upsampling_gets_constant_scales_only_when_inputs_are_stride_multiples() -> None:
    model = create_model("heatmap").eval()
    settings = {"output": "heatmap", "stride": 8, "img_size": 0, "threshold": 0.5, "top_k": 10}
    proto = onnx.load_from_string(onnx_bytes(model, settings))
    resizes = [n for n in proto.graph.node if n.op_type == "Resize"]
    constants = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    assert len(resizes) == 3 and all(list(constants[n.input[2]]) == [1, 1, 2, 2] for n in resizes)
    assert not [n for n in proto.graph.node if n.op_type == "Shape"]  # the size arithmetic is gone
    # an img_size that is not a multiple of the stride makes the factors vary: the sizes stay computed
    proto = onnx.load_from_string(onnx_bytes(model, {**settings, "img_size": 60}))
    assert all(len(n.input) == 4 and n.input[3] for n in proto.graph.node if n.op_type == "Resize")


def test_onnx_detector_gives_the_same_points_as_pytorch(checkpoint: Path, exported: Path) -> None:
    torch_detector = Detector.load(checkpoint, "cpu")
    ort_detector = pinpoint.load(exported, threads=2)
    assert ort_detector.backend.name == "onnxruntime" and ort_detector.backend.threads == 2
    assert ort_detector.settings == torch_detector.settings and ort_detector.name == "heatmap"
    rng = np.random.default_rng(7)
    for size in [(64, 64), (45, 61), (80, 52), (33, 100)]:
        image = spot_image(rng, size)
        # all peaks, to place the threshold where no score is close to it
        everything = torch_detector.predict(image, conf=0.0)
        conf = threshold_in_a_gap(everything.score)
        expected, expected_map = torch_detector.predict_with_heatmap(image, conf)
        got, got_map = ort_detector.predict_with_heatmap(image, conf)
        assert len(expected) >= 3 and len(got) == len(expected), size
        np.testing.assert_allclose(got.score, expected.score, atol=1e-4, rtol=0)
        np.testing.assert_allclose(got_map, expected_map, atol=1e-4, rtol=0)
        # integer peaks identical; the sub-pixel step, a function of the scores, within 1e-4 px (measured: ~3e-6)
        np.testing.assert_array_equal(np.round(got.xy), np.round(expected.xy))
        np.testing.assert_allclose(got.xy, expected.xy, atol=1e-4, rtol=0)
        for detector in (torch_detector, ort_detector):
            detector.settings["subpixel"] = False
        try:
            np.testing.assert_array_equal(ort_detector.predict(image, conf).xy, torch_detector.predict(image, conf).xy)
        finally:
            for detector in (torch_detector, ort_detector):
                detector.settings["subpixel"] = True


def test_predict_batch_matches_one_image_at_a_time(checkpoint: Path) -> None:
    detector = Detector.load(checkpoint, "cpu")
    rng = np.random.default_rng(3)
    images = [spot_image(rng, (48, 56)) for _ in range(4)] + [spot_image(rng, (40, 40))]  # two sizes: two network calls
    batched = detector.predict_batch(images, conf=0.3)
    assert len(batched) == 5 and batched[4].image_size == (40, 40)
    for image, points in zip(images, batched):
        alone = detector.predict(image, conf=0.3)
        assert len(points) == len(alone)
        np.testing.assert_allclose(points.score, alone.score, atol=1e-5)
        np.testing.assert_allclose(points.xy, alone.xy, atol=1e-4)


def test_resized_and_regression_models_export_and_match(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    image = spot_image(rng, (50, 70))
    for name, img_size in [("heatmap", 64), ("regression", 64)]:
        weights = random_checkpoint(tmp_path / f"{name}.pt", name, img_size)
        onnx_path = export_onnx(weights, tmp_path / "out" / f"{name}.onnx")
        expected, got = Detector.load(weights, "cpu").predict(image), pinpoint.load(onnx_path).predict(image)
        if name == "regression":
            np.testing.assert_allclose(got.xy, expected.xy, atol=1e-3)  # one point, no threshold
            continue
        conf = threshold_in_a_gap(Detector.load(weights, "cpu").predict(image, 0.0).score)
        expected, got = Detector.load(weights, "cpu").predict(image, conf), pinpoint.load(onnx_path).predict(image, conf)
        assert len(got) == len(expected) >= 3
        np.testing.assert_allclose(got.score, expected.score, atol=1e-4)
        np.testing.assert_allclose(got.xy, expected.xy, atol=1e-3)


def test_export_check_measures_the_difference_on_a_non_square_input(checkpoint: Path) -> None:
    detector = Detector.load(checkpoint, "cpu")
    data = onnx_bytes(detector.model, detector.settings, detector.name)
    assert check_onnx(data, detector.model) < 1e-5
    # a different network behind the same graph is caught
    other = create_model("heatmap").eval()
    assert check_onnx(data, other) > 1e-2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_bad_onnx_files_are_one_line_input_errors(tmp_path: Path, checkpoint: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match=r"^.*junk\.onnx: not a loadable ONNX model") as info:
        pinpoint.load(junk)
    assert "\n" not in str(info.value)
    plain = tmp_path / "plain.onnx"
    model = create_model("heatmap").eval()
    torch.onnx.export(model, (torch.zeros(1, 1, 32, 32),), str(plain), dynamo=False)
    with pytest.raises(InputError, match="without pinpoint settings"):
        pinpoint.load(plain)
    with pytest.raises(InputError, match="already an ONNX model"):
        export_onnx(plain)
    with pytest.raises(InputError, match=r"^--opset 9: choose 11 to 20"):
        export_onnx(checkpoint, tmp_path / "old.onnx", opset=9)
    assert not (tmp_path / "old.onnx").exists()


def test_cli_export_then_detect_with_the_onnx(checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "--weights", str(checkpoint), "--format", "onnx", "--out", str(out), "--opset", "17"]) == 0
    assert "checked against PyTorch" in capsys.readouterr().out
    image = tmp_path / "frame.png"
    import cv2

    cv2.imwrite(str(image), (spot_image(np.random.default_rng(5), (40, 48)) * 255).astype(np.uint8))
    assert main(["detect", "--weights", str(out), "--source", str(image), "--save-txt", str(tmp_path / "txt"),
                 "--threads", "1", "--no-progress"]) == 0
    assert torch.get_num_threads() == 1  # --threads reaches PyTorch too: the decoding runs there
    expected = Detector.load(checkpoint, "cpu").predict(image)
    lines = (tmp_path / "txt" / "frame.txt").read_text().splitlines()
    assert int(lines[0]) == len(expected)
