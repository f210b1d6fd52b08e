"""``seedlock bench scheduler``: the server's own cost, measured with the
client KServe users have (tritonclient, default options), per model.

For each model with a batchable ``model`` graph, side by side in one run:

1. in-process ONNX Runtime, the model's own session settings: the batch-1
   p50, and the throughput curve over batch sizes 1 .. max_batch_size with
   as many concurrent loops as the server runs instances (the floor is its
   best point: the same sessions on the same thread budget);
2. a null servicer (another process) that answers ``ModelInfer`` with the
   tensors it received, running no model: what gRPC and the client cost;
3. the same null servicer holding each request for the in-process p50 on a
   worker thread (its "paced" run): what an idle server's wake-ups cost on
   this host when a request takes the model's time;
4. ``seedlock serve`` (another process) with the same thread budget.

Each server run also records the CPU milliseconds per request spent by the
server and by the client (one machine: the client's CPU is not the model's).

At each concurrency it reports p50/p99 and requests/s, and the targets:
``p50(seedlock) - p50(in-process) - p50(null)`` over the in-process p50 at
concurrency 1 (<= 5 %), throughput at the highest concurrency over the floor
(>= 0.95) and over the in-process batch-1 loop (>= 1). Beside the first, the
part not explained by the paced null servicer:
``p50(seedlock) - p50(paced null)`` over the in-process p50. The host's load
average is recorded before and after: this machine is shared and noisy.

``python -m seedlock.bench_scheduler null [HOLD_MS]`` runs the null servicer alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from seedlock.bench import load_average, percentile
from seedlock.bench_segment import _levels, _Server, measure_cpu
from seedlock.core.errors import UserError

TARGET_C1_OVERHEAD = 0.05
TARGET_FLOOR_RATIO = 0.95


def _request_row(manifest: Any, folder: Path) -> dict[str, np.ndarray]:
    """One row shaped as the model's task service sends it (the proofs' template)."""
    from seedlock.serve.proofs import proof_templates

    templates = proof_templates(manifest, folder)
    if not templates:
        raise UserError(f"model {manifest.name!r} stores no reference input to shape a request from; re-export it")
    return templates[-1]


def _timed_calls(runtime: Any, feeds: dict[str, np.ndarray], outputs: list[str], calls: int, loops: int) -> tuple[list[float], float]:
    """``calls`` session runs on each of ``loops`` threads at once: every
    call's milliseconds, and the wall time of the whole."""
    def loop(_: int) -> list[float]:
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter()
            runtime.run(feeds, outputs)
            samples.append((time.perf_counter() - t0) * 1e3)
        return samples

    t0 = time.perf_counter()
    with ThreadPoolExecutor(loops) as pool:
        per_loop = list(pool.map(loop, range(loops)))
    return [x for samples in per_loop for x in samples], time.perf_counter() - t0


def _in_process(runtime: Any, row: dict[str, np.ndarray], limit: int, runs: int, warmup: int, loops: int) -> dict[str, Any]:
    """Batch-1 latency alone, and rows/s over batch sizes with ``loops``
    threads calling the session at once (as the server's instances do)."""
    outputs = [t.name for t in runtime.manifest.graph("model").outputs]
    curve = []
    for batch in range(1, max(1, limit) + 1):
        feeds = {n: np.concatenate([a] * batch) for n, a in row.items()}
        _timed_calls(runtime, feeds, outputs, warmup, 1)
        samples, wall = _timed_calls(runtime, feeds, outputs, max(5, runs // (batch * loops)), loops)
        curve.append({"batch": batch, "p50_ms": statistics.median(samples), "p99_ms": percentile(samples, 0.99),
                      "rows_per_s": batch * len(samples) / wall})  # fmt: skip
    single, _ = _timed_calls(runtime, row, outputs, runs, 1)
    best = max(curve, key=lambda p: p["rows_per_s"])
    return {"loops": loops, "curve": curve, "batch1_p50_ms": statistics.median(single),
            "batch1_rows_per_s": curve[0]["rows_per_s"], "floor_rows_per_s": best["rows_per_s"], "floor_batch": best["batch"]}  # fmt: skip


def _triton_caller(address: str, model: str, row: dict[str, np.ndarray]) -> Callable[[], Callable[[], Any]]:
    try:
        import tritonclient.grpc as tc
    except ImportError:
        raise UserError("this bench drives the server with tritonclient: pip install 'tritonclient[grpc]'") from None
    from seedlock.core.dtypes import numpy_to_v2

    def make() -> Callable[[], Any]:
        client = tc.InferenceServerClient(address)  # default options, as a user's
        inputs = []
        for name, array in row.items():
            inp = tc.InferInput(name, list(array.shape), numpy_to_v2(array.dtype))
            inp.set_data_from_numpy(array)
            inputs.append(inp)
        return lambda: client.infer(model, inputs)

    return make


def _bench_model(args: argparse.Namespace, name: str) -> dict[str, Any]:
    from seedlock.core.model_config import read, scheduling
    from seedlock.core.repository import load_version
    from seedlock.core.sessions import SessionConfig
    from seedlock.serve.runtime import load_runtime

    mv = load_version(args.repository, name)
    limit = scheduling(read(mv.folder.parent), mv.manifest).max_batch_size
    row = _request_row(mv.manifest, mv.folder)
    runtime = load_runtime(mv.manifest, mv.folder, SessionConfig())
    threads = args.threads or mv.manifest.intra_op_threads
    shape = {n: list(a.shape) for n, a in row.items()}
    print(f"{name}: input {shape}, max_batch_size {limit}, {mv.manifest.intra_op_threads} intra-op thread(s) per session, "
          f"server --threads {threads}", flush=True)  # fmt: skip
    instances = max(1, threads // mv.manifest.intra_op_threads)
    inproc = _in_process(runtime, row, limit, args.requests, args.warmup, instances)
    runtime = None
    hold = inproc["batch1_p50_ms"]
    null, paced = {}, {}
    for extra, out in (([], null), ([f"{hold:.3f}"], paced)):
        null_server = _Server([sys.executable, "-m", "seedlock.bench_scheduler", "null", *extra])
        try:
            caller = _triton_caller(null_server.address, name, row)
            out.update({c: measure_cpu(caller, c, args.requests, args.warmup, null_server.cpu_seconds) for c in args.concurrency})
        finally:
            null_server.close()
    cmd = [sys.executable, "-m", "seedlock", "serve", "--repository", str(args.repository), "--models", name,
           "--port", "0", "--threads", str(threads), "--grace", "5", "--max-queue", "256"]  # fmt: skip
    server = _Server(cmd)
    try:
        caller = _triton_caller(server.address, name, row)
        served = {c: measure_cpu(caller, c, args.requests, args.warmup, server.cpu_seconds) for c in args.concurrency}
    finally:
        server.close()
    c1, top = args.concurrency[0], args.concurrency[-1]
    base = inproc["batch1_p50_ms"]
    overhead = (served[c1]["p50_ms"] - base - null[c1]["p50_ms"]) / base
    beyond_paced = (served[c1]["p50_ms"] - paced[c1]["p50_ms"]) / base
    floor_ratio = served[top]["requests_per_s"] / inproc["floor_rows_per_s"]
    batch1_ratio = served[top]["requests_per_s"] / inproc["batch1_rows_per_s"]
    return {
        "model": name, "digest": mv.manifest.digest, "input": shape, "max_batch_size": limit,
        "intra_op_threads": mv.manifest.intra_op_threads, "server_threads": threads, "instances": instances,
        "in_process": inproc,
        "null_servicer": {str(c): m for c, m in null.items()},
        "null_servicer_paced": {"hold_ms": hold, **{str(c): m for c, m in paced.items()}},
        "seedlock": {str(c): m for c, m in served.items()},
        "targets": {
            "c1_own_cost": {"value": overhead, "target_max": TARGET_C1_OVERHEAD, "met": overhead <= TARGET_C1_OVERHEAD,
                            "definition": f"(p50 seedlock - p50 in-process batch 1 - p50 null servicer) / p50 in-process, concurrency {c1}"},
            "c1_cost_beyond_paced_null": {"value": beyond_paced, "informative": True,
                                          "definition": f"(p50 seedlock - p50 null servicer holding each request {hold:.2f} ms) / p50 in-process, concurrency {c1}"},
            "throughput_vs_floor": {"value": floor_ratio, "target_min": TARGET_FLOOR_RATIO, "met": floor_ratio >= TARGET_FLOOR_RATIO,
                                    "definition": f"seedlock requests/s at concurrency {top} / best in-process rows/s at any batch <= max_batch_size, {instances} loop(s) at once"},
            "throughput_vs_batch1": {"value": batch1_ratio, "target_min": 1.0, "met": batch1_ratio >= 1.0,
                                     "definition": f"seedlock requests/s at concurrency {top} / in-process batch-1 loop"},
        },
    }  # fmt: skip


def _plot(results: list[dict[str, Any]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results):
        curve = r["in_process"]["curve"]
        ax.plot([p["batch"] for p in curve], [p["rows_per_s"] for p in curve], "o-", label="in-process, batch b")
        # The plain null servicer (no model) is far above the others: it is in the JSON, not here.
        for label, key in (("seedlock, concurrency c", "seedlock"), ("null servicer holding the model's time, concurrency c", "null_servicer_paced")):
            pts = sorted((int(c), m["requests_per_s"]) for c, m in r[key].items() if c != "hold_ms")
            ax.plot([c for c, _ in pts], [v for _, v in pts], "s--", label=label)
        ax.set_title(r["model"])
        ax.set_xlabel("batch size b / concurrency c")
        ax.set_ylabel("rows (requests) per second")
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def _bench(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    load_before = load_average()
    results = [_bench_model(args, name) for name in args.models]
    report = {
        "bench": "scheduler", "client": "tritonclient.grpc, default options, one client per thread",
        "concurrency": args.concurrency, "requests_per_level": args.requests, "models": results,
        "load_average_before": load_before, "load_average_after": load_average(),
        "environment": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                        "onnxruntime": ort.__version__, "machine": platform.machine()},
    }  # fmt: skip
    print(f"{'model':<18} {'path':<16} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'server CPU':>10} {'client CPU':>10}"
          "  (CPU: ms per request)")
    for r in results:
        print(f"{r['model']:<18} {'in-process b=1':<16} {1:>4} {r['in_process']['batch1_p50_ms']:>8.2f} {'':>8} "
              f"{r['in_process']['batch1_rows_per_s']:>8.1f}   (floor {r['in_process']['floor_rows_per_s']:.1f} rows/s at batch "
              f"{r['in_process']['floor_batch']}, {r['in_process']['loops']} loop(s))")  # fmt: skip
        for key in ("null_servicer", "null_servicer_paced", "seedlock"):
            for c, m in r[key].items():
                if c != "hold_ms":
                    label = key.replace("_servicer", "").replace("_", " ")
                    print(f"{r['model']:<18} {label:<16} {c:>4} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} {m['requests_per_s']:>8.1f} "
                          f"{m['server_cpu_ms_per_request']:>10.2f} {m['cpu_ms_per_request']:>10.2f}")
        for key, t in r["targets"].items():
            if t.get("informative"):
                print(f"  {key}: {t['value']:.3f} (informative)")
                continue
            bound = f"<= {t['target_max']}" if "target_max" in t else f">= {t['target_min']}"
            print(f"  {key}: {t['value']:.3f} (target {bound}) {'met' if t['met'] else 'NOT met'}")
    print(f"load average before {load_before}, after {report['load_average_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        _plot(results, args.plot)
    return 0


def register_bench(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "scheduler", help="the server's own cost per model over KServe v2, vs in-process ONNX Runtime and a null servicer",
        description="Drive `seedlock serve` with tritonclient (default options) at several concurrencies, beside the "
        "in-process ONNX Runtime curve over batch sizes and a null servicer that runs no model; check the targets.",
    )
    parser.add_argument("--repository", required=True, help="model repository")
    parser.add_argument("--models", required=True, type=lambda v: [m for m in v.split(",") if m],
                        help="comma-separated models with a batchable 'model' graph (segmenter, fingerprint-gan)")
    parser.add_argument("--concurrency", type=_levels, default=[1, 4, 16], help="levels, comma separated (default: 1,4,16)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per level (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests per client first (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0,
                        help="the server's --threads (default: the model's intra-op threads: the same thread count as in-process)")
    parser.add_argument("--json", default=None, help="write the report here")
    parser.add_argument("--plot", default=None, help="write a PNG of the throughput curves here")
    parser.set_defaults(func=_bench)


# -- the null servicer -------------------------------------------------------------
async def _serve_null(hold_ms: float = 0.0) -> None:
    """Answer ModelInfer with the request's own tensors; with ``hold_ms``, hold
    each request that long on a worker thread first, as a model would."""
    import grpc

    from seedlock.protos.inference import grpc_service_pb2 as pb
    from seedlock.protos.inference import grpc_service_pb2_grpc as pb_grpc

    pool = ThreadPoolExecutor(1)

    def hold() -> None:  # busy, like a model, so the core does not sleep
        end = time.perf_counter() + hold_ms / 1e3
        while time.perf_counter() < end:
            pass

    class Null(pb_grpc.GRPCInferenceServiceServicer):
        async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
            if hold_ms:
                await asyncio.get_running_loop().run_in_executor(pool, hold)
            response = pb.ModelInferResponse(model_name=request.model_name, model_version="1", id=request.id)
            for tensor in request.inputs:
                response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
            response.raw_output_contents.extend(request.raw_input_contents)
            return response

    limit = 64 * 1024 * 1024
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Null(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"null servicer: listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    if sys.argv[1:2] != ["null"] or len(sys.argv) > 3:
        raise SystemExit("usage: python -m seedlock.bench_scheduler null [HOLD_MS]")
    try:
        asyncio.run(_serve_null(float(sys.argv[2]) if len(sys.argv) == 3 else 0.0))
    except KeyboardInterrupt:
        pass
