"""`pinpoint bench`: how fast a model runs here, in PyTorch eager and in onnxruntime, measured in one run.

For each input size it reports parameters, FLOPs counted by torch.utils.flop_counter (2 per
multiply-add of the convolutions and matmuls; elementwise ops, pooling and resizing are not
counted), latency p50/p95 at batch 1 and throughput at every batch size, for each backend
with the thread count it used, and the ratio onnxruntime / eager in images per second.

What is timed: the network forward on a prepared float32 batch (B, 1, H, W), from a numpy
array in to the raw output tensor out; with `decode`, also the peak decoding of the whole batch
(NMS, top-k, threshold, sub-pixel refinement), i.e. everything of Detector.predict_batch but
reading and standardising the image. With `tta`, the forward is the average over the model's
turned and mirrored views (Detector.run), one network pass per view. The backends take turns in
several rounds, so a neighbour process loading the CPU slows both alike instead of biasing the ratio.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pinpoint.config import PRETRAINED
from pinpoint.errors import InputError
from pinpoint.models.registry import count_parameters, create_model
from pinpoint.backends import TorchBackend
from pinpoint.predict import MIRRORS, Detector, inference_settings

BACKENDS = ("torch", "onnxruntime")


@dataclass
class Timing:
    """One (size, batch, backend) measurement."""

    size: tuple[int, int]  # (H, W) of the network input, padded to the stride
    batch: int
    backend: str
    threads: int
    calls: int  # timed calls
    p50_ms: float  # per call (a call is one batch)
    p95_ms: float
    images_per_s: float  # batch * calls / total time of the calls


def parse_size(text: str) -> tuple[int, int]:
    """'256' -> (256, 256); '360x480' -> (360, 480) as (H, W)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise InputError(f"--size {text}: expected N or HxW with positive integers, e.g. 256 or 360x480")
    return parts[0], parts[1]


def count_flops(model: nn.Module, size: tuple[int, int]) -> int:
    """FLOPs of one forward on one (1, 1, H, W) image, as FlopCounterMode counts them."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 1, *size))
    return int(counter.get_total_flops())


def load_for_bench(weights: str | None, model_name: str | None) -> tuple[nn.Module, dict[str, Any], str]:
    """The model, its inference settings and its name, from a checkpoint (by default the pretrained
    model) or a fresh model by name."""
    if weights or not model_name:
        if str(weights).lower().endswith(".onnx"):
            raise InputError(f"{weights}: bench takes a checkpoint (.pt) or --model NAME; it makes the ONNX itself")
        detector = Detector.load(weights, device="cpu")
        return detector.model, detector.settings, detector.name
    try:
        model = create_model(model_name)
    except ValueError as exc:
        raise InputError(f"--model {model_name}: {exc}") from None
    # Random weights run exactly as fast as trained ones; threshold and top_k only matter with decode.
    return model.eval(), inference_settings(model, img_size=0, threshold=0.3, top_k=100), model_name


def benchmark(weights: str | None = None, model_name: str | None = None, sizes: Sequence[tuple[int, int]] = ((256, 256),),
              batches: Sequence[int] = (1, 8), threads: int | Sequence[int] | None = None, seconds: float = 2.0, rounds: int = 3,
              backends: Sequence[str] = BACKENDS, decode: bool = False, seed: int = 0, tta: bool = False) -> dict[str, Any]:
    """Measure and return everything the report shows, as a JSON-ready dict.

    `threads`: one intra-op thread count or several, each measured in full (both backends use it);
    None = torch's default. `seconds` is the timing budget of each (size, batch, backend, threads),
    split over `rounds` turns.
    """
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise InputError(f"--backend {', '.join(sorted(unknown))}: choose from {', '.join(BACKENDS)}")
    model, settings, name = load_for_bench(weights, model_name)
    settings = {**settings, "tta": tta and settings["output"] == "heatmap"}
    previous_threads = torch.get_num_threads()
    counts = [int(n) for n in ([threads] if isinstance(threads, int) else threads or [previous_threads])]
    stride = int(settings["stride"]) if settings["output"] == "heatmap" else 1
    padded_sizes = [(-(-h // stride) * stride, -(-w // stride) * stride) for h, w in sizes]
    per_size = [{"size": list(size), "input": list(padded), "gflops": count_flops(model, padded) / 1e9}
                for size, padded in zip(sizes, padded_sizes)]
    rng = np.random.default_rng(seed)
    timings: list[Timing] = []
    load_before = _load_average()
    try:
        for count in counts:
            torch.set_num_threads(count)
            runners = _make_runners(model, settings, name, backends, count, decode)
            for padded in padded_sizes:
                for batch in batches:
                    inputs = rng.standard_normal((batch, 1, *padded)).astype(np.float32)
                    timings += _time_turns(runners, inputs, count, seconds, rounds)
    finally:
        torch.set_num_threads(previous_threads)
    load_after = _load_average()
    return {
        "model": name,
        "weights": str(weights) if weights else None if model_name else PRETRAINED,
        "parameters": count_parameters(model),
        "measured": ("forward + decode" if decode else "forward only (decode excluded)")
                    + (f", averaged over {len(settings.get('tta_views', MIRRORS))} views" if settings["tta"] else ""),
        "threads": counts,
        "sizes": per_size,
        "timings": [asdict(t) for t in timings],
        "ratios": _ratios(timings),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "load_average_before": load_before, "load_average_after": load_after,
                    "torch": torch.__version__, "onnxruntime": _ort_version()},
    }


def _make_runners(model: nn.Module, settings: dict[str, Any], name: str, backends: Sequence[str], threads: int,
                  decode: bool) -> dict[str, Callable[[np.ndarray], Any]]:
    """name -> function(batch) doing the timed work for that backend."""
    engines: dict[str, Any] = {}
    if "torch" in backends:
        engines["torch"] = TorchBackend(model, torch.device("cpu"))
    if "onnxruntime" in backends:
        from pinpoint.backends import OnnxBackend
        from pinpoint.export import onnx_bytes

        # In memory, not through a file: the same graph `pinpoint export` writes (BatchNorm folded, opset 17).
        engines["onnxruntime"] = OnnxBackend(onnx_bytes(model, settings, name), threads=threads)
    runners = {}
    for key, engine in engines.items():
        detector = Detector(model, settings, "cpu", name, backend=engine)  # its run() is the engine, or the view average
        runners[key] = (lambda batch, d=detector: d.decode_output(d.run(batch), batch.shape[2:], d.threshold, heatmaps=False,
                                                                  greys=batch[:, 0])) if decode else detector.run
    return runners


def _time_turns(runners: dict[str, Callable[[np.ndarray], Any]], inputs: np.ndarray, threads: int,
                seconds: float, rounds: int) -> list[Timing]:
    """Time each runner on `inputs`, the runners taking turns for `rounds` rounds."""
    calls_per_round = {}
    for key, run in runners.items():
        for _ in range(2):  # warm-up: first calls allocate and (onnxruntime) plan the shapes
            run(inputs)
        started = time.perf_counter()
        run(inputs)
        one_call = time.perf_counter() - started
        calls_per_round[key] = max(3, int(seconds / max(rounds, 1) / max(one_call, 1e-6)))
    durations: dict[str, list[float]] = {key: [] for key in runners}
    for _ in range(max(rounds, 1)):
        for key, run in runners.items():
            # PyTorch's OpenMP workers busy-wait after their last op and take the cores onnxruntime's
            # own threads need (measured: seed model at 256x256, batch 1, 2 threads, 220 instead of
            # 347 img/s). With one torch thread there are no such workers, so each backend gets the
            # machine to itself during its turn, as it would in a process of its own.
            torch.set_num_threads(threads if key == "torch" else 1)
            for _ in range(calls_per_round[key]):
                started = time.perf_counter()
                run(inputs)
                durations[key].append(time.perf_counter() - started)
    batch = inputs.shape[0]
    size = (int(inputs.shape[2]), int(inputs.shape[3]))
    return [Timing(size, batch, key, threads, len(times), float(np.percentile(times, 50)) * 1e3,
                   float(np.percentile(times, 95)) * 1e3, batch * len(times) / float(np.sum(times)))
            for key, times in durations.items()]


def _ratios(timings: list[Timing]) -> list[dict[str, Any]]:
    """onnxruntime / eager in images per second, for every (size, batch, threads) measured with both;
    threads "best" compares each backend at its own fastest thread count."""
    by_key = {(t.size, t.batch, t.threads, t.backend): t for t in timings}
    ratios = []
    for (size, batch, threads, backend), eager in by_key.items():
        ort = by_key.get((size, batch, threads, "onnxruntime"))
        if backend == "torch" and ort is not None:
            ratios.append({"size": list(size), "batch": batch, "threads": threads,
                           "onnxruntime_over_torch": ort.images_per_s / eager.images_per_s})
    if len({t.threads for t in timings}) > 1:
        for size, batch in dict.fromkeys((t.size, t.batch) for t in timings):
            best = {key: max((t.images_per_s for t in timings if (t.size, t.batch, t.backend) == (size, batch, key)), default=0.0)
                    for key in BACKENDS}
            if best["torch"] > 0 and best["onnxruntime"] > 0:
                ratios.append({"size": list(size), "batch": batch, "threads": "best",
                               "onnxruntime_over_torch": best["onnxruntime"] / best["torch"]})
    return ratios


def format_report(result: dict[str, Any]) -> str:
    """The human-readable table of a benchmark() result."""
    threads = ", ".join(str(n) for n in result["threads"])
    lines = [f"model {result['model']}: {result['parameters']:,} parameters; timed: {result['measured']}; "
             f"threads: {threads} (torch intra-op = onnxruntime intra-op in each row)"]
    machine = result["machine"]
    lines.append(f"machine: {machine['cpus']} CPUs ({machine['processor']}), load average {machine['load_average_before']} before, "
                 f"{machine['load_average_after']} after; torch {machine['torch']}, onnxruntime {machine['onnxruntime']}")
    for entry in result["sizes"]:
        padded = "" if entry["input"] == entry["size"] else f" (padded to {entry['input'][0]}x{entry['input'][1]})"
        lines.append(f"  {entry['size'][0]}x{entry['size'][1]}{padded}: {entry['gflops']:.3f} GFLOPs per image")
    lines.append("")
    lines.append(f"{'size':>9} {'batch':>5} {'backend':>12} {'threads':>7} {'p50 ms':>9} {'p95 ms':>9} {'images/s':>9} {'calls':>6}")
    for t in result["timings"]:
        lines.append(f"{t['size'][0]:>4}x{t['size'][1]:<4} {t['batch']:>5} {t['backend']:>12} {t['threads']:>7} "
                     f"{t['p50_ms']:>9.2f} {t['p95_ms']:>9.2f} {t['images_per_s']:>9.1f} {t['calls']:>6}")
    if result["ratios"]:
        lines.append("")
        lines.append("onnxruntime / torch eager (images/s, same run):")
        lines += [f"  {r['size'][0]}x{r['size'][1]} batch {r['batch']}, threads {r['threads']}: {r['onnxruntime_over_torch']:.2f}x"
                  for r in result["ratios"]]
    return "\n".join(lines)


def _load_average() -> list[float] | None:
    # Other processes share the CPU here; the load average says how much, next to the figures.
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _ort_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__
