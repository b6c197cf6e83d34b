"""`pinpoint bench`: sizes, counted FLOPs, the shape of the report; timings themselves are not asserted (shared CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pinpoint.bench import benchmark, count_flops, format_report, parse_size
from pinpoint.cli import main
from pinpoint.errors import InputError
from pinpoint.models.registry import count_parameters, create_model


def test_parse_size() -> None:
    assert parse_size("256") == (256, 256)
    assert parse_size("360x480") == (360, 480)
    assert parse_size("360X480") == (360, 480)
    for bad in ["", "0", "12x", "axb", "1x2x3", "-4"]:
        with pytest.raises(InputError, match="--size"):
            parse_size(bad)


def test_flops_of_a_hand_sized_network() -> None:
    # conv 3x3, 1 -> 4 channels on 8 x 10: 4 * 9 multiply-adds per pixel, 2 FLOPs each
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
    assert count_flops(conv, (8, 10)) == 2 * 4 * 9 * 8 * 10
    # plus a 1x1 conv 4 -> 2: another 2 * 4 * 2 per pixel; ReLU is not counted
    net = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(4, 2, 1))
    assert count_flops(net, (8, 10)) == 2 * (4 * 9 + 4 * 2) * 8 * 10


def test_benchmark_reports_both_backends_with_threads_and_ratios() -> None:
    result = benchmark(model_name="heatmap", sizes=[(20, 30), (16, 16)], batches=[1, 2], threads=1, seconds=0.02, rounds=2)
    assert result["parameters"] == count_parameters(create_model("heatmap"))
    assert result["threads"] == [1] and result["measured"].startswith("forward only")
    # 20 x 30 is padded to the stride (8) like Detector does: 24 x 32
    assert result["sizes"][0]["input"] == [24, 32] and result["sizes"][1]["input"] == [16, 16]
    assert result["sizes"][0]["gflops"] == pytest.approx(count_flops(create_model("heatmap").eval(), (24, 32)) / 1e9)
    rows = {(tuple(t["size"]), t["batch"], t["backend"]) for t in result["timings"]}
    assert rows == {(s, b, k) for s in [(24, 32), (16, 16)] for b in [1, 2] for k in ["torch", "onnxruntime"]}
    for t in result["timings"]:
        assert t["threads"] == 1 and t["calls"] >= 6 and 0 < t["p50_ms"] <= t["p95_ms"] and t["images_per_s"] > 0
    assert len(result["ratios"]) == 4 and all(r["onnxruntime_over_torch"] > 0 for r in result["ratios"])
    table = format_report(result)
    assert "onnxruntime / torch eager" in table and "padded to 24x32" in table and "threads: 1 " in table
    # the ratio is exactly the quotient of the two rows it compares
    rows = {(tuple(t["size"]), t["batch"], t["backend"]): t["images_per_s"] for t in result["timings"]}
    first = result["ratios"][0]
    key = (tuple(first["size"]), first["batch"])
    assert first["onnxruntime_over_torch"] == pytest.approx(rows[(*key, "onnxruntime")] / rows[(*key, "torch")])


def test_benchmark_over_several_thread_counts_adds_a_best_against_best_ratio() -> None:
    result = benchmark(model_name="heatmap", sizes=[(16, 16)], batches=[1], threads=[1, 2], seconds=0.02, rounds=1)
    assert [(t["threads"], t["backend"]) for t in result["timings"]] == [(1, "torch"), (1, "onnxruntime"), (2, "torch"), (2, "onnxruntime")]
    best = [r for r in result["ratios"] if r["threads"] == "best"]
    assert len(best) == 1 and len(result["ratios"]) == 3
    fastest = {k: max(t["images_per_s"] for t in result["timings"] if t["backend"] == k) for k in ("torch", "onnxruntime")}
    assert best[0]["onnxruntime_over_torch"] == pytest.approx(fastest["onnxruntime"] / fastest["torch"])


def test_benchmark_with_decode_and_one_backend() -> None:
    result = benchmark(model_name="heatmap", sizes=[(16, 24)], batches=[2], threads=1, seconds=0.02, rounds=1,
                       backends=["onnxruntime"], decode=True)
    assert result["measured"] == "forward + decode"
    assert [t["backend"] for t in result["timings"]] == ["onnxruntime"] and result["ratios"] == []


def test_benchmark_with_tta_times_one_pass_per_view(monkeypatch) -> None:
    import pinpoint.bench as bench_module

    passes = []

    class CountingBackend(bench_module.TorchBackend):
        def __call__(self, batch):
            passes.append(batch.shape)
            return super().__call__(batch)

    monkeypatch.setattr(bench_module, "TorchBackend", CountingBackend)
    result = benchmark(model_name="pinnet-s2d", sizes=[(32, 48)], batches=[1], threads=1, seconds=0.02, rounds=1,
                       backends=["torch"], tta=True)
    assert result["measured"] == "forward only (decode excluded), averaged over 8 views"
    timed_calls = result["timings"][0]["calls"] + 3  # two warm-up calls and one to size the rounds
    assert len(passes) == 8 * timed_calls
    assert set(passes) == {(1, 1, 32, 48), (1, 1, 48, 32)}  # quarter turns swap the sides


def test_bench_rejects_what_it_cannot_measure(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--model nope"):
        benchmark(model_name="nope")
    with pytest.raises(InputError, match="makes the ONNX itself"):
        benchmark(weights=str(tmp_path / "m.onnx"))
    with pytest.raises(InputError, match="--backend"):
        benchmark(model_name="heatmap", backends=["tensorrt"])


def test_cli_bench_prints_a_table_and_writes_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", "regression", "--size", "32", "24x40", "--batch", "1", "3", "--threads", "1",
                 "--seconds", "0.02", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "regression" in printed and "p50 ms" in printed and "images/s" in printed
    result = json.loads(out.read_text())
    assert result["model"] == "regression" and len(result["timings"]) == 2 * 2 * 2
    assert result["sizes"][1]["input"] == [24, 40]  # stride 1: no padding
    assert main(["bench", "--model", "heatmap", "--size", "0"]) == 2


def test_each_backend_times_with_the_cores_to_itself() -> None:
    """torch runs with the thread count under test; onnxruntime's turn holds torch at one thread,
    so PyTorch's spinning OpenMP workers do not take its cores."""
    from pinpoint.bench import _time_turns

    seen: dict[str, set[int]] = {"torch": set(), "onnxruntime": set()}
    runners = {key: (lambda batch, k=key: seen[k].add(torch.get_num_threads())) for key in seen}
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # as benchmark() sets it before the warm-up calls
    try:
        timings = _time_turns(runners, np.zeros((1, 1, 8, 8), np.float32), threads=2, seconds=0.01, rounds=2)
    finally:
        torch.set_num_threads(before)
    assert {t.backend for t in timings} == {"torch", "onnxruntime"} and all(t.threads == 2 for t in timings)
    assert seen["torch"] == {2} and 1 in seen["onnxruntime"]
    result = benchmark(model_name="heatmap", sizes=[(16, 16)], batches=[1], threads=[2], seconds=0.02, rounds=1)
    assert result["threads"] == [2] and torch.get_num_threads() == before
