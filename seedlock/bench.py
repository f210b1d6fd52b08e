"""``seedlock bench``: latency and throughput measurements, JSON out.

Speed targets are met here, never in timed tests. Every bench warms up,
repeats, and reports medians (and p90/p99) rather than single runs. Each
task's bench module (``bench`` in :data:`seedlock.core.tasks.TASKS`) registers
its benches; this module holds the timing and report helpers they share.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from seedlock.core import tasks


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


def load_average() -> list[float]:
    """The host's 1/5/15-minute load averages (empty where there are none):
    every report records them, this machine being shared."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not Unix
        return []


def write_report(report: dict, path: str | None) -> None:
    text = json.dumps(report, indent=2, sort_keys=True)
    if path:
        Path(path).write_text(text + "\n")
        print(f"wrote {path}")
    else:
        print(text)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="measure latency and throughput, JSON out",
                            description="Benchmarks. Each warms up, repeats, and reports medians; --json writes the report.")
    benches = parser.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    for task in tasks.TASKS:
        task.module("bench").register_bench(benches)
    from seedlock import backends_bench, bench_scheduler

    backends_bench.register_bench(benches)
    bench_scheduler.register_bench(benches)
