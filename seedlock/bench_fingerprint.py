"""``seedlock bench similarity``: the four similarity measures over N x N pairs
(the fingerprint task's bench; default 1000 x 1000 of 64x64, median of runs)."""

from __future__ import annotations

import argparse
import os
import platform
from typing import Any

import numpy as np

from seedlock.bench import summarize, time_samples, write_report
from seedlock.core.argtypes import non_negative_int, positive_int

QUALITIES = ("Q1", "Q2", "Q3", "Q5")


def bench_similarity_command(args: argparse.Namespace) -> int:
    """Median wall time of :func:`~seedlock.core.similarity.compare_sets`."""
    from seedlock.core.rng import SeedStream
    from seedlock.core.similarity import compare_sets

    if args.source == "embedded":
        from seedlock.train.data.fingerprints import HOLDOUT_OFFSET, make_fingerprints

        per_q = (args.n + len(QUALITIES) - 1) // len(QUALITIES)
        a = np.concatenate([make_fingerprints(0, q, per_q, args.size, HOLDOUT_OFFSET) for q in QUALITIES])[: args.n]
        b = np.concatenate([make_fingerprints(1, q, per_q, args.size, HOLDOUT_OFFSET) for q in QUALITIES])[: args.n]
    else:  # the cost does not depend on content; noise is instant to make
        a = (SeedStream(1).uniform((args.n, args.size, args.size)) * 256).astype(np.uint8)
        b = (SeedStream(2).uniform((args.n, args.size, args.size)) * 256).astype(np.uint8)
    result: dict[str, Any] = {}
    samples = time_samples(lambda: result.update(compare_sets(a, b)), args.runs, args.warmup)
    stats = summarize(samples, args.n * args.n, rate="pairs_per_s")
    report = {
        "bench": "similarity",
        "n_a": args.n,
        "n_b": args.n,
        "pairs": args.n * args.n,
        "image_size": args.size,
        "source": args.source,
        "warmup": args.warmup,
        **stats,
        "load_average": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "threads_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
        "versions": {"numpy": np.__version__, "python": platform.python_version()},
        "result_check": {"hamming_mean": result["hamming"]["mean"], "iou_mean": result["iou"]["mean"], "pearson_mean": result["pearson"]["mean"]},
    }
    print(f"similarity, {args.n} x {args.n} pairs of {args.size}x{args.size} ({args.source}): "
          f"median {stats['median_ms'] / 1e3:.3f} s over {args.runs} runs ({stats['pairs_per_s']:.3g} pairs/s)")  # fmt: skip
    write_report(report, args.json)
    return 0


def register_bench(bench_subparsers: Any) -> None:
    """Add ``similarity`` to ``seedlock bench``'s benchmarks."""
    p = bench_subparsers.add_parser(
        "similarity",
        help="time the four similarity measures over N x N pairs (default 1000 x 1000 of 64x64)",
        description="Time seedlock.core.similarity.compare_sets (all four measures, all pairs) after warm-up; "
        "reports the median of --runs runs as JSON.",
    )
    p.add_argument("--n", type=positive_int, default=1000, help="images per set (default: %(default)s)")
    p.add_argument("--size", type=positive_int, default=64, help="image side (default: %(default)s)")
    p.add_argument("--runs", type=positive_int, default=5, help="timed runs (default: %(default)s)")
    p.add_argument("--warmup", type=non_negative_int, default=1, help="untimed runs first (default: %(default)s)")
    p.add_argument("--source", choices=("noise", "embedded"), default="noise",
                   help="random noise images (instant) or embedded fingerprints (a few seconds to make) (default: %(default)s)")  # fmt: skip
    p.add_argument("--json", default=None, metavar="FILE", help="write the report here (default: print it)")
    p.set_defaults(func=bench_similarity_command)
