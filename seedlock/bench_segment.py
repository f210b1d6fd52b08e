"""The segmenter's benches: ``seedlock bench serve`` (what the server costs on
top of ONNX Runtime) and ``seedlock bench infer`` (torch eager vs ONNX Runtime).

``bench serve``:

For one segmentation model and a seeded synthetic image it measures, at each
concurrency (threads sharing one session, as the server's do):

1. in-process ONNX Runtime on the preprocessed tensor (the floor);
2. the whole segment pipeline in-process (decode .. PNG), no gRPC;
3. ``seedlock serve`` in a subprocess, end to end through
   :class:`~seedlock.clients.SegmentationClient`;

with one intra-op thread budget: p50/p99 latency, requests/s, and CPU ms per
request (robust when other work shares the machine). It checks the targets
(server p50 at concurrency 1 within 1.15x the in-process ONNX Runtime p50;
server throughput at the highest concurrency at least 0.9x the best in-process
ONNX Runtime throughput) and reports the same ratios against the in-process
pipeline, which isolate what gRPC and the server add.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from seedlock.bench import percentile, time_calls, write_report
from seedlock.core.errors import UserError

TARGET_C1_P50_RATIO = 1.15
TARGET_THROUGHPUT_RATIO = 0.9


def measure(make_call: Callable[[], Callable[[], Any]], concurrency: int, requests: int, warmup: int) -> dict[str, float]:
    """Run ``requests`` calls spread over ``concurrency`` threads (each with
    its own callable from ``make_call``, after ``warmup`` untimed calls);
    latency percentiles in ms and completed requests per second."""
    per_thread = max(1, requests // concurrency)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    calls = [make_call() for _ in range(concurrency)]
    start = threading.Barrier(concurrency + 1)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        call = calls[i]
        try:
            for _ in range(warmup):
                call()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        start.wait()
        if errors:
            return
        out = latencies[i]
        try:
            for _ in range(per_thread):
                t0 = time.perf_counter()
                call()
                out.append((time.perf_counter() - t0) * 1e3)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    flat = [x for lat in latencies for x in lat]
    return {
        "concurrency": concurrency,
        "requests": len(flat),
        "p50_ms": statistics.median(flat),
        "p99_ms": percentile(flat, 0.99),
        "mean_ms": statistics.fmean(flat),
        "requests_per_s": len(flat) / wall,
        "wall_s": wall,
    }


def measure_cpu(
    make_call: Callable[[], Callable[[], Any]],
    concurrency: int,
    requests: int,
    warmup: int,
    other_cpu: Callable[[], float] | None = None,
) -> dict[str, float]:
    """:func:`measure`, plus CPU milliseconds per call spent in this process
    (and in ``other_cpu``'s, e.g. the server's). CPU time is far less
    disturbed than wall time when other work shares the machine."""
    calls = concurrency * max(1, requests // concurrency) + concurrency * warmup
    own0, other0 = time.process_time(), other_cpu() if other_cpu else 0.0
    stats = measure(make_call, concurrency, requests, warmup)
    stats["cpu_ms_per_request"] = (time.process_time() - own0) * 1e3 / calls
    if other_cpu:
        stats["server_cpu_ms_per_request"] = (other_cpu() - other0) * 1e3 / calls
    return stats


def _process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _synthetic_png(size: int, seed: int = 0) -> bytes:
    import numpy as np

    from seedlock.core.imaging import encode_png
    from seedlock.core.rng import SeedStream

    # Smooth seeded shapes plus mild sensor-like noise. The noise is kept low
    # because a test model of one convolution passes it straight into its mask,
    # where a trained model's mask is smooth; a noisy mask makes PNG encoding
    # several times slower than it is with real models.
    s = SeedStream(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    img = np.zeros((size, size, 3))
    for c in range(3):
        fy, fx, ph = s.uniform((3,), 1.0, 9.0)
        img[..., c] = 127.5 + 100 * np.sin(fy * yy * 3.1 + ph) * np.cos(fx * xx * 3.1)
    img += s.normal((size, size, 3), 0.0, 3.0)
    return encode_png(np.clip(img, 0, 255).astype(np.uint8))


def serve_command(args: argparse.Namespace, threads: int, workers: int) -> list[str]:
    """``seedlock serve`` of ``args.model`` from ``args.repository`` on a free port."""
    cmd = [
        sys.executable, "-m", "seedlock", "serve", "--repository", str(args.repository), "--models", args.model,
        "--host", "127.0.0.1", "--port", "0", "--threads", str(threads), "--workers", str(workers),
        "--max-queue", str(max(128, workers)), "--grace", "5",
    ]
    if getattr(args, "providers", None):
        cmd += ["--providers", args.providers]
    if getattr(args, "instances", None):
        cmd += ["--instances", str(args.instances)]
    return cmd


class _Server:
    """A server command (``seedlock serve``, or any that prints "listening on
    ADDRESS") in a subprocess on a free port."""

    def __init__(self, cmd: list[str]) -> None:
        # stderr to a file: a pipe nobody reads would block a server that logs a lot.
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.address = self._wait_for_address(timeout=120.0)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def _wait_for_address(self, timeout: float) -> str:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if sel.select(timeout=0.5):
                line = self.proc.stdout.readline()
                if "listening on" in line:
                    return line.rsplit(" ", 1)[-1].strip()
        err = self.stderr() if self.proc.poll() is not None else ""
        self.close()
        raise UserError(f"the server did not start: {err.strip().splitlines()[-1] if err.strip() else 'timed out'}")

    def cpu_seconds(self) -> float:
        try:
            return _process_cpu_seconds(self.proc.pid)
        except (OSError, ValueError, IndexError):  # not Linux: no CPU figures
            return float("nan")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _levels(text: str) -> list[int]:
    try:
        levels = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--concurrency wants numbers like 1,4,16, got {text!r}") from None
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError("--concurrency levels must be 1 or more")
    return levels


def _bench_serve(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from seedlock.clients.segmentation import SegmentationClient
    from seedlock.core.imaging import decode_image
    from seedlock.core.manifest import ManifestError
    from seedlock.core.repository import load_version
    from seedlock.core.segmentation import SegmentationSpec
    from seedlock.core.sessions import SessionConfig, default_threads, resolve_providers
    from seedlock.serve.runtime import load_runtime
    from seedlock.serve.segmentation import segment_image

    threads = args.threads or default_threads()
    try:
        mv = load_version(args.repository, args.model)
        spec = SegmentationSpec.from_manifest(mv.manifest)
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    providers = resolve_providers(args.providers)
    config = SessionConfig(providers=tuple(providers), intra_op_threads=threads, explicit_providers=bool(args.providers))
    runtime = load_runtime(mv.manifest, mv.folder, config)
    png = _synthetic_png(args.size)
    x, _ = spec.preprocess(decode_image(png))
    levels = args.concurrency
    n, warm = args.requests, args.warmup

    print(f"model {mv.manifest.name} v{mv.manifest.version} ({mv.manifest.digest[:12]}…), image {args.size}x{args.size} "
          f"-> input {spec.size}x{spec.size}, {threads} intra-op thread(s), {', '.join(runtime.providers)}", flush=True)
    floor = {}
    for c in levels:
        floor[c] = measure_cpu(lambda: (lambda: runtime.run({spec.input_name: x}, [spec.output_name])), c, n, warm)
    pipeline = {c: measure_cpu(lambda: (lambda: segment_image(runtime, spec, png)), c, n, warm) for c in levels}
    runtime = None  # free its sessions before the server loads its own

    served = {}
    workers = max(16, max(levels))
    server = _Server(serve_command(args, threads, workers))
    try:
        clients: list[SegmentationClient] = []
        timings: list[Any] = []

        def make_client() -> Callable[[], Any]:
            client = SegmentationClient(server.address, timeout=60.0, model=args.model)
            clients.append(client)
            return lambda: timings.append(client.segment_raw(png).timing)

        for c in levels:
            timings.clear()
            served[c] = measure_cpu(make_client, c, n, warm, other_cpu=server.cpu_seconds)
            # Where the server says the time went (its own clock, medians).
            served[c]["server_timing_ms"] = {
                f: statistics.median(getattr(t, f) for t in timings)
                for f in ("decode_ms", "preprocess_ms", "infer_ms", "postprocess_ms", "total_ms")
            }
        for client in clients:
            client.close()
    finally:
        server.close()

    c1 = 1 if 1 in levels else levels[0]
    top = 16 if 16 in levels else levels[-1]
    best_floor = max(floor.values(), key=lambda m: m["requests_per_s"])
    best_pipeline = max(pipeline.values(), key=lambda m: m["requests_per_s"])
    p50_ratio = served[c1]["p50_ms"] / floor[c1]["p50_ms"]
    rps_ratio = served[top]["requests_per_s"] / best_floor["requests_per_s"]
    # The same ratios against the whole task done in-process (decode .. PNG):
    # what gRPC, the client and the server's own code add.
    p50_vs_pipeline = served[c1]["p50_ms"] / pipeline[c1]["p50_ms"]
    rps_vs_pipeline = served[top]["requests_per_s"] / best_pipeline["requests_per_s"]
    report = {
        "bench": "serve",
        "model": mv.manifest.name,
        "version": mv.manifest.version,
        "digest": mv.manifest.digest,
        "image_size": [args.size, args.size],
        "model_input_size": spec.size,
        "threads": threads,
        "instances": args.instances or "server default",
        "providers": providers,
        "requests_per_level": n,
        "warmup_per_thread": warm,
        "in_process_onnxruntime": {str(c): m for c, m in floor.items()},
        "in_process_pipeline": {str(c): m for c, m in pipeline.items()},
        "server_end_to_end": {str(c): m for c, m in served.items()},
        "targets": {
            "c1_p50_ratio": {
                "value": p50_ratio, "target_max": TARGET_C1_P50_RATIO, "met": p50_ratio <= TARGET_C1_P50_RATIO,
                "definition": f"server p50 at concurrency {c1} / in-process ONNX Runtime p50 at concurrency {c1}",
            },
            "throughput_ratio": {
                "value": rps_ratio, "target_min": TARGET_THROUGHPUT_RATIO, "met": rps_ratio >= TARGET_THROUGHPUT_RATIO,
                "definition": f"server requests/s at concurrency {top} / best in-process ONNX Runtime requests/s "
                f"(concurrency {best_floor['concurrency']}), same intra-op thread budget",
            },
        },
        "serving_overhead": {
            "c1_p50_ratio_vs_pipeline": p50_vs_pipeline,
            "throughput_ratio_vs_pipeline": rps_vs_pipeline,
            "definition": "the same ratios with the whole segment pipeline run in-process (no gRPC) as the reference",
        },
        "environment": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "machine": platform.machine(),
        },
    }
    print(f"{'path':<26} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'cpu ms/req':>11}")
    rows = [("in-process onnxruntime", m) for m in floor.values()] + [("in-process pipeline", m) for m in pipeline.values()]
    rows += [("server via client", m) for m in served.values()]
    for label, m in rows:
        cpu = m["cpu_ms_per_request"] + m.get("server_cpu_ms_per_request", 0.0)
        print(f"{label:<26} {m['concurrency']:>4} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} {m['requests_per_s']:>8.1f} {cpu:>11.2f}")
    st = served[c1]["server_timing_ms"]
    print(f"server-side median at concurrency {c1}: decode {st['decode_ms']:.2f} + preprocess {st['preprocess_ms']:.2f} + "
          f"infer {st['infer_ms']:.2f} + postprocess {st['postprocess_ms']:.2f} = {st['total_ms']:.2f} ms")
    for key, t in report["targets"].items():
        bound = f"<= {t['target_max']}" if "target_max" in t else f">= {t['target_min']}"
        print(f"{key}: {t['value']:.3f} (target {bound}) {'met' if t['met'] else 'NOT met'}")
    print(f"against the in-process pipeline: c1 p50 ratio {p50_vs_pipeline:.3f}, throughput ratio {rps_vs_pipeline:.3f}")
    text = json.dumps(report, indent=2, sort_keys=True)
    if args.json:
        Path(args.json).write_text(text + "\n")
        print(f"wrote {args.json}")
    return 0


def register_bench(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve", help="server end to end vs in-process ONNX Runtime (latency, throughput)",
        description="Time a segmentation model in-process (the floor) and through `seedlock serve` + the Python client "
        "at several concurrencies, with one thread budget; print a table, check the targets, write JSON.",
    )
    parser.add_argument("--repository", required=True, help="model repository")
    parser.add_argument("--model", required=True, help="segmentation model name")
    parser.add_argument("--size", type=int, default=256, help="image height and width sent (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per concurrency level (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests per thread first (default: %(default)s)")
    parser.add_argument("--concurrency", type=_levels, default=[1, 4, 16], help="levels, comma separated (default: 1,4,16)")
    parser.add_argument("--threads", type=int, default=0,
                        help="the server's thread budget (`seedlock serve --threads`; default: all cores); sessions use the model's own count")
    parser.add_argument("--providers", default=None, help="execution providers, as for `seedlock serve`")
    parser.add_argument("--instances", type=int, default=None, help="as for `seedlock serve` (default: its default)")
    parser.add_argument("--json", default=None, help="write the report here")
    parser.set_defaults(func=_bench_serve)

    infer = sub.add_parser("infer", help="torch eager vs ONNX Runtime latency for a segmentation checkpoint",
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

    from seedlock.core.sessions import SessionConfig, create_session

    session = create_session(serialize(proto), SessionConfig(intra_op_threads=threads))
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
