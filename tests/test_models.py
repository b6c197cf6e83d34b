"""Every registered model: the output its detector expects, for any input that is a multiple of its stride, and in ONNX."""

from __future__ import annotations

import pytest
import torch

from pinpoint.export import check_onnx, onnx_bytes
from pinpoint.models.pinnet import Up
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


def onnx_gap(model: torch.nn.Module) -> float:
    """Largest difference between the exported ONNX graph's output and PyTorch's (check_onnx)."""
    model.eval()
    data = onnx_bytes(model, inference_settings(model, img_size=0 if model.output == "heatmap" else 64, threshold=0.5, top_k=10))
    return check_onnx(data, model)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_export_matches_pytorch(name: str) -> None:
    assert onnx_gap(create_model(name)) < 1e-4


@pytest.mark.parametrize("name, removed", [("pinnet-s2d", {"local_contrast": 17}), ("pinnet-s2d-x3", {"nested": True}),
                                           ("pinnet-s2d-gated-x2", {"contrast_attention": True})])
def test_a_removed_model_argument_is_named(name: str, removed: dict) -> None:
    # checkpoints of the levers measured and removed (docs/research-log.md) say which argument is gone
    key, value = next(iter(removed.items()))
    with pytest.raises(ValueError, match=f"^model argument {key} = {value!r} is not one {name} takes"):
        create_model(name, **removed)
    create_model(name, widths=(8, 16, 32, 48), deep_blocks=2)  # the arguments that stay still pass through


def test_global_attention_starts_as_the_plain_decoder_and_scales_whole_skip_channels() -> None:
    torch.manual_seed(0)
    plain, gated = Up(6, 4), Up(6, 4, global_attention=True)
    gated.load_state_dict(plain.state_dict(), strict=False)
    plain.eval(), gated.eval()
    deep, skip = torch.randn(1, 6, 5, 5), torch.randn(1, 4, 10, 10)
    with torch.no_grad():
        assert torch.equal(plain(deep, skip), gated(deep, skip))  # the gate starts at exactly 1
        gated.scene[-1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, -50.0]))  # channel 3: gate ~0
        gated.refine = torch.nn.Identity()
        gated.reduce = torch.nn.Sequential(torch.nn.Conv2d(6, 4, 1, bias=False))
        gated.reduce[0].weight.zero_()  # the output is then relu(the gated skip)
        out = gated(deep, skip)
    assert torch.allclose(out[0, :3], torch.relu(skip[0, :3]))
    assert float(out[0, 3].abs().max()) < 1e-12
    assert onnx_gap(create_model("pinnet-s2d", global_attention=True)) < 1e-4
    assert not any("scene" in key for key in create_model("pinnet-s2d").state_dict())  # old checkpoints still load
    # the default model is that network under a name of its own
    torch.manual_seed(1)
    named = create_model("pinnet-s2d-gated").state_dict()
    torch.manual_seed(1)
    spelled = create_model("pinnet-s2d", global_attention=True).state_dict()
    assert list(named) == list(spelled) and all(torch.equal(named[k], spelled[k]) for k in named)
    assert sum("scene" in key for key in named) == 3 * 4  # three decoder stages, two convs with weight and bias


def test_ensemble_trains_its_members_apart_and_averages_them_for_inference() -> None:
    model = create_model("pinnet-s2d-x3")
    x = torch.randn(2, 1, 32, 48)
    model.eval()
    with torch.no_grad():
        alone = [member(x) for member in model.members]
        averaged = model(x)
        model.train()
        side_by_side = model(x)  # train mode: one channel per member, for one loss each
    assert len(alone) == 3 and not torch.equal(alone[0], alone[1])  # members start apart
    assert averaged.shape == (2, 1, 32, 48) and side_by_side.shape == (2, 3, 32, 48)
    torch.testing.assert_close(averaged, torch.stack(alone).mean(dim=0))


def test_the_accurate_option_is_the_default_network_twice() -> None:
    torch.manual_seed(2)
    named = create_model("pinnet-s2d-gated-x2").state_dict()
    torch.manual_seed(2)  # the benchmark trained it under the ensemble's older name
    spelled = create_model("pinnet-s2d-x3", members=2, global_attention=True).state_dict()
    assert list(named) == list(spelled) and all(torch.equal(named[k], spelled[k]) for k in named)
    one = sum(p.numel() for p in create_model("pinnet-s2d-gated").parameters())
    assert sum(p.numel() for p in create_model("pinnet-s2d-gated-x2").parameters()) == 2 * one


@pytest.mark.parametrize("kind", ["focal", "mse"])
def test_each_member_is_trained_against_the_target_on_its_own(kind: str) -> None:
    from pinpoint.codecs.heatmap import encode
    from pinpoint.train import training_loss

    target = torch.from_numpy(encode([[10.3, 7.6], [20.0, 25.0]], (32, 32), 2.0))[None, None].repeat(2, 1, 1, 1)
    pred = torch.rand(2, 3, 32, 32) * 0.98 + 0.01
    weights = torch.ones(2, 1, 32, 32)  # the weight map: every pixel counts
    together = training_loss("heatmap", pred, target, weights, kind, across_processes=False)
    apart = sum(training_loss("heatmap", pred[:, k:k + 1], target, weights, kind, across_processes=False) for k in range(3))
    expected = apart if kind == "focal" else apart / 3  # focal: per target, summed over members; mse: per pixel, mean
    torch.testing.assert_close(together, expected)
