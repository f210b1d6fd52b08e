"""``seedlock bench backends`` and ``seedlock bench plugin``: GPU measurements, JSON out.

backends: every graph of a model at batch 1 and a large batch on ONNX Runtime
CPU, ONNX Runtime CUDA EP, and TensorRT fp32 / fp16 engines built for the run
(in a scratch copy of the model version). Times are host to host: numpy in,
numpy out, copies included, the way the server calls them. A backend this host
cannot run is reported with its reason instead of numbers.

plugin: the fused bi-activation plugin kernel against the same op as TensorRT
builds it from the decomposed ONNX function (Elu, Neg, Elu, Neg, Concat), timed
on device-resident tensors, with the bytes each must move and the time the
GPU's peak memory bandwidth allows for them.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from seedlock.bench import percentile, summarize, time_samples, write_report
from seedlock.core.argtypes import positive_int_list
from seedlock.core.errors import UserError

BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "tensorrt-fp32", "tensorrt-fp16")


def _feeds(manifest: Any, role: str, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    from seedlock.core.rng import SeedStream
    from seedlock.export.tensorrt_engine import EngineOptions, profile_shapes

    shapes = profile_shapes(manifest, role, EngineOptions(min_batch=1, opt_batch=batch, max_batch=batch))
    dtypes = {t.name: t.dtype for t in manifest.graph(role).inputs}
    stream = SeedStream(seed)
    return {
        name: stream.normal(tuple(s["opt"])).astype(dtypes[name]) if dtypes[name].startswith("float")
        else np.zeros(tuple(s["opt"]), dtype=dtypes[name])
        for name, s in shapes.items()
    }  # fmt: skip


def _ort_runners(folder: Path, manifest: Any, provider: str, threads: int) -> dict[str, Callable]:
    from seedlock.core.sessions import provider_session

    runners = {}
    for role, spec in manifest.graphs.items():
        session = provider_session(folder / spec.file, provider, threads)
        runners[role] = lambda feeds, s=session: s.run(None, feeds)
    return runners


def _trt_runners(folder: Path, model: str, fp16: bool, max_batch: int, workspace: int) -> dict[str, Callable]:
    from seedlock.core.repository import load_version
    from seedlock.core.tensorrt_runtime import EngineSession
    from seedlock.export.errors import ExportError
    from seedlock.export.tensorrt_engine import EngineOptions, export_engines

    scratch = Path(tempfile.mkdtemp(prefix="seedlock-bench-"))
    try:
        copy = scratch / model / folder.name
        shutil.copytree(folder, copy)
        options = EngineOptions(fp16=fp16, workspace_mib=workspace, min_batch=1, opt_batch=max_batch, max_batch=max_batch)
        try:
            export_engines(scratch / model, options, log=lambda line: print(f"  {line}", flush=True))
        except ExportError as exc:
            raise RuntimeError(str(exc)) from None
        manifest = load_version(scratch, model).manifest
        sessions = {role: EngineSession(copy / manifest.engine(role).file) for role in manifest.graphs}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # sessions hold the deserialized engines
    return {role: (lambda feeds, s=s: s.run(None, feeds)) for role, s in sessions.items()}


def _bench_backends(args: argparse.Namespace) -> int:
    from seedlock.core.manifest import ManifestError
    from seedlock.core.repository import load_version
    from seedlock.core.sessions import default_threads

    try:
        mv = load_version(args.repository, args.model, args.version)
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    threads = args.threads or default_threads()
    batches = sorted(set(args.batches))
    report: dict[str, Any] = {
        "bench": "backends", "model": mv.manifest.name, "version": mv.manifest.version,
        "batches": batches, "intra_op_threads_cpu": threads, "backends": {},
    }  # fmt: skip
    for backend in args.backends:
        print(f"{backend}: preparing", flush=True)
        try:
            if backend.startswith("onnxruntime"):
                provider = "CPUExecutionProvider" if backend.endswith("cpu") else "CUDAExecutionProvider"
                runners = _ort_runners(mv.folder, mv.manifest, provider, threads)
            else:
                runners = _trt_runners(mv.folder, mv.manifest.name, backend.endswith("fp16"), max(batches), args.workspace)
        except Exception as exc:  # noqa: BLE001 - reported, the other backends still run
            reason = str(exc) if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {exc}"
            report["backends"][backend] = {"available": False, "reason": reason}
            print(f"{backend}: unavailable ({exc})", flush=True)
            continue
        result: dict[str, Any] = {"available": True, "graphs": {}}
        for role, run in sorted(runners.items()):
            for batch in batches:
                feeds = _feeds(mv.manifest, role, batch)
                stats = summarize(time_samples(lambda run=run, feeds=feeds: run(feeds), args.runs, args.warmup), batch)
                result["graphs"].setdefault(role, {})[str(batch)] = stats
                print(f"{backend}: {role} batch {batch}: median {stats['median_ms']:.3f} ms, "
                      f"{stats['items_per_s']:.1f} items/s", flush=True)
        report["backends"][backend] = result
    write_report(report, args.out)
    return 0


def bi_activation_model(shape: tuple[int, ...], dtype: str, alpha: float = 1.0) -> "Any":
    """One BiActivation node (elu base) with its model-local function, in fp32 or fp16."""
    import onnx
    from onnx import TensorProto, helper

    from seedlock.export.bi_activation_onnx import DOMAIN, ONNX_OPSET, OP_TYPE, OPSET_VERSION, function_proto

    elem = TensorProto.FLOAT16 if dtype == "fp16" else TensorProto.FLOAT
    out_shape = (shape[0], 2 * shape[1], *shape[2:])
    node = helper.make_node(OP_TYPE, ["x"], ["y"], domain=DOMAIN, base="elu", alpha=float(alpha))
    graph = helper.make_graph([node], "bi_activation", [helper.make_tensor_value_info("x", elem, list(shape))],
                              [helper.make_tensor_value_info("y", elem, list(out_shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                                    helper.make_opsetid(DOMAIN, OPSET_VERSION)])
    model.functions.append(function_proto())
    onnx.checker.check_model(model, full_check=True)
    return model


def _bench_plugin(args: argparse.Namespace) -> int:
    import onnx
    import onnx.inliner

    from seedlock.core import cuda
    from seedlock.core.tensorrt_runtime import EngineSession, tensorrt_unavailable
    from seedlock.export.errors import ExportError
    from seedlock.export.tensorrt_engine import EngineOptions, build_engine, engine_layers, prepare_onnx

    reason = tensorrt_unavailable()
    if reason:
        raise UserError(f"bench plugin needs TensorRT and an NVIDIA GPU: {reason}")
    shape = tuple(args.shape)
    if len(shape) < 2:
        raise UserError("--shape needs at least N,C")
    numel = int(np.prod(shape))
    peak = cuda.peak_bandwidth_gbs()
    report: dict[str, Any] = {
        "bench": "plugin", "shape": list(shape), "gpu": cuda.device_name(), "peak_bandwidth_gb_s": peak, "results": {},
    }  # fmt: skip
    options = EngineOptions(min_batch=shape[0], opt_batch=shape[0], max_batch=shape[0])
    profile = {"x": {"min": list(shape), "opt": list(shape), "max": list(shape)}}
    for dtype in args.dtypes:
        itemsize = 2 if dtype == "fp16" else 4
        moved = 3 * numel * itemsize  # read x once, write both halves once
        model = bi_activation_model(shape, dtype)
        variants = {"plugin": prepare_onnx(model)[0], "decomposed": onnx.inliner.inline_local_functions(model)}
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float16 if dtype == "fp16" else np.float32)
        for variant, graph in variants.items():
            nodes = 1 if variant == "plugin" else 0
            try:
                plan = build_engine(graph.SerializeToString(), profile, options, plugin_nodes=nodes)
            except ExportError as exc:
                raise UserError(str(exc)) from None
            layers = engine_layers(plan)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "bi.plan"
                path.write_bytes(plan)
                session = EngineSession(path)
            samples = session.time_device({"x": x}, runs=args.runs, warmup=args.warmup)
            median = statistics.median(samples)
            entry = {
                "median_ms": median, "p90_ms": percentile(samples, 0.9), "min_ms": min(samples),
                "engine_layers": len(layers), "layer_types": sorted({str(lay.get("LayerType", "?")) for lay in layers}),
                "bytes_floor": moved, "effective_gb_s": moved / median / 1e6,
            }  # fmt: skip
            if peak:
                entry["floor_ms"] = moved / (peak * 1e6)
                entry["times_floor"] = median / entry["floor_ms"]
            report["results"].setdefault(dtype, {})[variant] = entry
            print(f"{dtype} {variant}: median {median:.4f} ms over {args.runs} runs, {len(layers)} engine layer(s), "
                  f"{entry['effective_gb_s']:.0f} GB/s effective" + (f", {entry['times_floor']:.2f}x the bandwidth floor" if peak else ""),
                  flush=True)
    write_report(report, args.out)
    return 0


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backends",
        help="each graph of a model on ORT CPU, ORT CUDA, TensorRT fp32/fp16 at several batch sizes",
        description="Latency and throughput of every graph of a model on ONNX Runtime CPU and CUDA and on TensorRT "
        "fp32/fp16 engines (built for the run in a scratch copy). Backends this host cannot run are reported with "
        "the reason. JSON out.",
    )
    p.add_argument("--repository", required=True, help="model repository folder")
    p.add_argument("--model", required=True, help="model name in the repository")
    p.add_argument("--version", type=int, default=None, help="model version (default: the highest)")
    p.add_argument("--backends", type=lambda s: [b for b in s.split(",") if b], default=list(BACKENDS),
                   help=f"comma-separated subset of {','.join(BACKENDS)} (default: all)")
    p.add_argument("--batches", type=positive_int_list, default=[1, 64], help="batch sizes (default: 1,64)")
    p.add_argument("--runs", type=int, default=50, help="timed runs per point (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime CPU intra-op threads (default: all cores)")
    p.add_argument("--workspace", type=int, default=1024, help="TensorRT builder workspace, MiB (default: %(default)s)")
    p.add_argument("--json", dest="out", default=None, help="write the JSON report here (default: stdout)")
    p.set_defaults(func=_bench_backends)

    q = sub.add_parser(
        "plugin",
        help="bi-activation: fused TensorRT plugin vs the decomposed ONNX function, against the bandwidth floor",
        description="Time the bi-activation plugin engine and the engine TensorRT builds from the decomposed ONNX "
        "function on device-resident tensors, and compare with the bytes the op must move at the GPU's peak "
        "memory bandwidth. Needs TensorRT and an NVIDIA GPU. JSON out.",
    )
    q.add_argument("--shape", type=positive_int_list, default=[32, 64, 128, 128], help="input N,C,H,W (default: 32,64,128,128)")
    q.add_argument("--dtypes", type=lambda s: [d for d in s.split(",") if d], default=["fp32", "fp16"],
                   help="fp32, fp16 or both (default: fp32,fp16)")
    q.add_argument("--runs", type=int, default=200, help="timed runs (default: %(default)s)")
    q.add_argument("--warmup", type=int, default=20, help="untimed runs first (default: %(default)s)")
    q.add_argument("--json", dest="out", default=None, help="write the JSON report here (default: stdout)")
    q.set_defaults(func=_bench_plugin)
