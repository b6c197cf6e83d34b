"""Every registered model (and each with an offset head): the output its detector expects, for any input
that is a multiple of its stride, and in ONNX."""

from __future__ import annotations

import pytest
import torch

from pinpoint.export import check_onnx, onnx_bytes
from pinpoint.models.registry import MODELS, create_model
from pinpoint.predict import inference_settings


CASES = [(name, {}) for name in sorted(MODELS)] + [(name, {"offsets": True}) for name in ("pinnet", "pinnet-s2d")]


@pytest.mark.parametrize("name, args", CASES)
def test_output_shape_and_range(name: str, args: dict) -> None:
    model = create_model(name, **args).eval()
    height, width = 3 * max(model.stride, 16), 5 * max(model.stride, 16)
    with torch.no_grad():
        out = model(torch.randn(2, 1, height, width))
    expected = (2, 3 if args else 1, height, width) if model.output == "heatmap" else (2, 2)
    assert out.shape == expected
    scores = out[:, :1] if model.output == "heatmap" else out
    assert scores.min() >= 0 and scores.max() <= 1
    if args:  # offsets are pixels, signed and unbounded; the head starts near zero, not squashed to (0, 1)
        assert out[:, 1:].min() < 0


@pytest.mark.parametrize("name, args", CASES)
def test_onnx_export_matches_pytorch(name: str, args: dict) -> None:
    model = create_model(name, **args).eval()
    data = onnx_bytes(model, inference_settings(model, img_size=0 if model.output == "heatmap" else 64, threshold=0.5, top_k=10))
    assert check_onnx(data, model) < 1e-4

