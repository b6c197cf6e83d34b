"""Every registered model: the output its detector expects, for any input that is a multiple of its stride, and in ONNX."""

from __future__ import annotations

import pytest
import torch

from pinpoint.export import check_onnx, onnx_bytes
from pinpoint.models.registry import MODELS, create_model
from pinpoint.predict import inference_settings


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape_and_range(name: str) -> None:
    model = create_model(name).eval()
    height, width = 3 * max(model.stride, 16), 5 * max(model.stride, 16)
    with torch.no_grad():
        out = model(torch.randn(2, 1, height, width))
    expected = (2, 1, height, width) if model.output == "heatmap" else (2, 2)
    assert out.shape == expected
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_export_matches_pytorch(name: str) -> None:
    model = create_model(name).eval()
    data = onnx_bytes(model, inference_settings(model, img_size=0 if model.output == "heatmap" else 64, threshold=0.5, top_k=10))
    assert check_onnx(data, model) < 1e-4

