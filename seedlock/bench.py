"""``seedlock bench``: latency and throughput measurements, JSON out.

Speed targets are met here, never in timed tests. Every bench warms up,
repeats, and reports medians (and p90/p99) rather than single runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from seedlock.core.errors import UserError

# Benches of other layers: "module:function", the function taking the bench subparsers.
BENCH_MODULES: tuple[str, ...] = (
    "seedlock.serve.bench:register",
    "seedlock.serve.captioning_bench:register",
    "seedlock.serve.composition_bench:register",
    "seedlock.train.similarity_cli:register_bench",
    "seedlock.backends_bench:register",
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def time_samples(fn: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    """Wall times in milliseconds of ``runs`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def summarize(samples: list[float], items_per_call: int = 1, rate: str = "items_per_s") -> dict[str, float]:
    """Median, p90 and min of millisecond samples, and ``rate``: items per second at the median."""
    median = statistics.median(samples)
    return {
        "runs": len(samples),
        "median_ms": median,
        "p90_ms": percentile(samples, 0.9),
        "min_ms": min(samples),
        rate: items_per_call * 1e3 / median,
    }


def time_calls(fn: Callable[[], Any], runs: int, warmup: int) -> dict[str, float]:
    """Latency stats in milliseconds over ``runs`` calls after ``warmup`` calls."""
    samples = time_samples(fn, runs, warmup)
    return {
        "runs": runs,
        "median_ms": statistics.median(samples),
        "p90_ms": percentile(samples, 0.9),
        "min_ms": min(samples),
        "mean_ms": statistics.fmean(samples),
    }


def write_report(report: dict, path: str | None) -> None:
    text = json.dumps(report, indent=2, sort_keys=True)
    if path:
        Path(path).write_text(text + "\n")
        print(f"wrote {path}")
    else:
        print(text)


def _bench_infer(args: argparse.Namespace) -> int:
    """torch eager vs ONNX Runtime for a segmentation checkpoint."""
    import numpy as np
    import torch

    from seedlock.core.rng import SeedStream
    from seedlock.export.onnx_export import serialize, to_onnx
    from seedlock.train.checkpoint import load_checkpoint

    if not Path(args.checkpoint).is_file():
        raise UserError(f"checkpoint {args.checkpoint} does not exist")
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model.eval()
    div = int(ckpt.preprocess["divisor"])
    if args.size % div:
        raise UserError(f"--size must be a multiple of {div} for this model")
    x = SeedStream(0).normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    dyn = ({0: torch.export.Dim("batch", min=1, max=4096), 2: div * torch.export.Dim("h", max=8192 // div), 3: div * torch.export.Dim("w", max=8192 // div)},)
    proto = to_onnx(model, (torch.from_numpy(x),), ["image"], ["logits"], dyn)
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    session = ort.InferenceSession(serialize(proto), sess_options=so, providers=["CPUExecutionProvider"])
    xt = torch.from_numpy(x)

    def run_torch():
        with torch.inference_mode():
            model(xt)

    def run_ort():
        session.run(["logits"], {"image": x})

    torch_stats = time_calls(run_torch, args.runs, args.warmup)
    ort_stats = time_calls(run_ort, args.runs, args.warmup)
    report = {
        "bench": "infer",
        "model": str(args.checkpoint),
        "model_config": ckpt.model_config,
        "input_shape": list(x.shape),
        "threads": threads,
        "torch_eager": torch_stats,
        "onnxruntime_cpu": ort_stats,
        "speedup_ort_over_torch_median": torch_stats["median_ms"] / ort_stats["median_ms"],
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
    }
    print(f"{'backend':<18} {'median ms':>10} {'p90 ms':>10} {'runs':>5}")
    for name, stats in (("torch eager", torch_stats), ("onnxruntime cpu", ort_stats)):
        print(f"{name:<18} {stats['median_ms']:>10.2f} {stats['p90_ms']:>10.2f} {stats['runs']:>5}")
    print(f"ONNX Runtime / torch eager speed-up (median): {report['speedup_ort_over_torch_median']:.2f}x")
    write_report(report, args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="measure latency and throughput, JSON out",
                            description="Benchmarks. Each warms up, repeats, and reports medians; --json writes the report.")
    benches = parser.add_subparsers(dest="bench_command", metavar="BENCH", required=True)

    infer = benches.add_parser("infer", help="torch eager vs ONNX Runtime latency for a segmentation checkpoint",
                               description="Export the checkpoint in memory and time torch eager against ONNX Runtime (CPU) "
                               "on the same seeded input, with the same thread budget.")
    infer.add_argument("checkpoint", help="checkpoint.pt from `seedlock train segment`")
    infer.add_argument("--size", type=int, default=256, help="input height and width (default: %(default)s)")
    infer.add_argument("--batch", type=int, default=1, help="batch size (default: %(default)s)")
    infer.add_argument("--runs", type=int, default=30, help="timed runs per backend (default: %(default)s)")
    infer.add_argument("--warmup", type=int, default=5, help="untimed warm-up runs (default: %(default)s)")
    infer.add_argument("--threads", type=int, default=0, help="intra-op threads for both backends (default: all cores)")
    infer.add_argument("--json", default=None, help="write the report here (default: print it)")
    infer.set_defaults(func=_bench_infer)

    import importlib

    for entry in BENCH_MODULES:
        module, function = entry.split(":")
        getattr(importlib.import_module(module), function)(benches)
