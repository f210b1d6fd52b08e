"""``seedlock bench backends`` and ``seedlock bench plugin``: CPU and GPU measurements, JSON out.

backends: every graph of a model at each batch size on ONNX Runtime CPU (fp32,
the reference), ONNX Runtime CPU on the graph quantized to int8 (static QDQ,
calibrated as `export --precision int8` calibrates), OpenVINO fp32 / bf16 / int8 on the CPU, ONNX
Runtime CUDA EP, and TensorRT fp32 / fp16 engines built for the run (in a
scratch copy of the model version). Times are host to host: numpy in, numpy
out, copies included, the way the server calls them. The backends of one
(graph, batch) point are timed side by side, in interleaved rounds, so their
ratios hold under a shared host's drifting load. Each point also carries its
agreement with the ONNX Runtime CPU fp32 answer on the same inputs, the
graph's multiply-accumulate GFLOP at that shape, and, on the CPU, the floor
those FLOPs allow at the GEMM peak measured in the same run
(:mod:`seedlock.cpu_peaks`, before and after the timings; the better of the
two). The share of the CPUs other processes took during each timed block is
recorded, and a warning says where it was large enough to slow the figures.
A backend this host cannot run is reported with its reason instead of numbers.

plugin: the fused bi-activation plugin kernel against the same op as TensorRT
builds it from the decomposed ONNX function (Elu, Neg, Elu, Neg, Concat), timed
on device-resident tensors, with the bytes each must move and the time the
GPU's peak memory bandwidth allows for them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from seedlock.bench import load_average, percentile, summarize, write_report
from seedlock.core.argtypes import positive_int, positive_int_list
from seedlock.core.errors import UserError

REFERENCE = "onnxruntime-cpu"
CPU_BACKENDS = ("onnxruntime-cpu", "onnxruntime-int8", "openvino-fp32", "openvino-bf16", "openvino-int8")
GPU_BACKENDS = ("onnxruntime-cuda", "tensorrt-fp32", "tensorrt-fp16")
BACKENDS = CPU_BACKENDS + GPU_BACKENDS
# the precision whose CPU GEMM peak bounds each CPU backend's time
CPU_PRECISION = {
    "onnxruntime-cpu": "fp32", "onnxruntime-int8": "int8",
    "openvino-fp32": "fp32", "openvino-bf16": "bf16", "openvino-int8": "int8",
}  # fmt: skip
STEADY_TOLERANCE = 0.15  # GEMM peaks moving more than this during a run: warn that the host was not quiet
BUSY_SHARE = 0.05  # other processes taking more of the CPUs than this during a timed block: warn
CALIBRATION_FEEDS = 8  # batch-1 inputs the int8 graphs are calibrated on
CALIBRATION_SEED = 1000  # their seeds: 1000, 1001, ...; the timed inputs use seed 0

Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


def _sized(manifest: Any, size: int | None) -> Any:
    """``manifest`` with its image size (the H and W of 4-D inputs) set to ``size``."""
    if size is None:
        return manifest
    return dataclasses.replace(manifest, preprocess={**manifest.preprocess, "size": int(size)})


def input_shapes(manifest: Any, role: str, batch: int, size: int | None = None) -> dict[str, tuple[int, ...]]:
    """The shape each input of graph ``role`` is benched at: the ``opt`` shapes of
    :func:`seedlock.export.tensorrt_engine.profile_shapes` with ``opt_batch=batch``
    (written out here so that the CPU benches need no ``onnx`` package): batch on
    axis 0, H and W of 4-D inputs at ``size`` (default: ``preprocess.size``), token
    sequences at half ``postprocess.max_length``."""
    manifest = _sized(manifest, size)
    image = manifest.preprocess.get("size")
    max_length = manifest.postprocess.get("max_length")
    shapes = {}
    for t in manifest.graph(role).inputs:
        dims = []
        for axis, d in enumerate(t.shape):
            if d != -1:
                dims.append(int(d))
            elif axis == 0:
                dims.append(int(batch))
            elif len(t.shape) == 4 and axis in (2, 3) and image:
                dims.append(int(image))
            elif len(t.shape) == 2 and axis == 1 and max_length:
                dims.append(max(1, int(max_length) // 2))
            else:
                raise UserError(f"graph {role!r} input {t.name!r} axis {axis} is dynamic and the manifest does not say "
                                "its size (no preprocess.size or postprocess.max_length); give --size for images")
        shapes[t.name] = tuple(dims)
    return shapes


def _feeds(manifest: Any, role: str, batch: int, seed: int = 0, size: int | None = None) -> dict[str, np.ndarray]:
    from seedlock.core.rng import SeedStream

    dtypes = {t.name: t.dtype for t in manifest.graph(role).inputs}
    stream = SeedStream(seed)
    return {
        name: stream.normal(shape).astype(dtypes[name]) if dtypes[name].startswith("float")
        else np.zeros(shape, dtype=dtypes[name])
        for name, shape in input_shapes(manifest, role, batch, size).items()
    }  # fmt: skip


def _output_names(manifest: Any, role: str) -> list[str]:
    return [t.name for t in manifest.graph(role).outputs]


def _runner(session: Any, names: list[str]) -> Runner:
    """``session.run`` for ``names`` in that order (ORT, OpenVINO and TensorRT sessions alike)."""
    return lambda feeds: session.run(names, feeds)


def _ort_runners(folder: Path, manifest: Any, provider: str, threads: int) -> dict[str, Runner]:
    from seedlock.core.sessions import provider_session

    runners = {}
    for role, spec in manifest.graphs.items():
        session = provider_session(folder / spec.file, provider, threads)
        runners[role] = _runner(session, _output_names(manifest, role))
    return runners


def _export_calibration(folder: Path, manifest: Any) -> dict[str, list[dict[str, np.ndarray]]]:
    """The calibration set `seedlock export --precision int8` uses (the model's
    own training split, rebuilt from its config), so the int8 rows time the
    graphs an int8 export would serve; {} where it cannot be rebuilt here (no
    training stack, data gone), and seeded inputs stand in."""
    try:
        from seedlock.export.precision import CALIBRATION_SAMPLES, GATES
        from seedlock.export.precision import CALIBRATION_SEED as EXPORT_SEED

        feeds, source = GATES[manifest.task].calibrate(manifest, folder, CALIBRATION_SAMPLES, EXPORT_SEED)
    except Exception as exc:  # noqa: BLE001 - any failure falls back to seeded inputs, said in the log
        print(f"  int8 calibration: the export's set is not available here ({type(exc).__name__}: {exc}); "
              f"{CALIBRATION_FEEDS} seeded inputs instead", flush=True)
        return {}
    print(f"  int8 calibration: as `export --precision int8`, on {source}", flush=True)
    return feeds


def _int8_graphs(folder: Path, manifest: Any, size: int | None, scratch: Path) -> dict[str, Path]:
    """Every graph quantized to QDQ int8 (calibrated as the export calibrates, else
    on seeded batch-1 inputs), written under ``scratch``."""
    try:
        import onnx  # noqa: F401 - the quantizer needs it; say so before it fails deep inside
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken install
        raise RuntimeError(f"int8 quantization needs the onnx package ({type(exc).__name__}: {exc}); "
                           "install it with `pip install onnx`") from None
    from seedlock.export.errors import ExportError
    from seedlock.export.quantize import quantize_int8

    calibration = _export_calibration(folder, manifest)
    paths = {}
    for role, spec in sorted(manifest.graphs.items()):
        feeds = calibration.get(role) or [_feeds(manifest, role, 1, seed=CALIBRATION_SEED + i, size=size) for i in range(CALIBRATION_FEEDS)]
        try:
            model = quantize_int8((folder / spec.file).read_bytes(), feeds)
        except ExportError as exc:
            raise RuntimeError(f"{role}: {exc}") from None
        except ImportError as exc:
            raise RuntimeError(f"int8 quantization needs onnxruntime.quantization and onnx ({exc})") from None
        paths[role] = scratch / f"{role}.int8.onnx"
        paths[role].write_bytes(model)
    return paths


def _int8_ort_runners(paths: dict[str, Path], manifest: Any, threads: int) -> dict[str, Runner]:
    from seedlock.core.sessions import provider_session

    runners = {}
    for role, path in paths.items():
        session = provider_session(path, "CPUExecutionProvider", threads)
        runners[role] = _runner(session, _output_names(manifest, role))
    return runners


def _openvino_runners(paths: dict[str, Path], manifest: Any, precision: str, threads: int) -> dict[str, Runner]:
    from seedlock.core.openvino_runtime import OpenVINOSession, openvino_unavailable

    reason = openvino_unavailable(precision)
    if reason:
        raise RuntimeError(reason)
    runners = {}
    for role, path in paths.items():
        session = OpenVINOSession(path, precision, threads)
        runners[role] = _runner(session, _output_names(manifest, role))
    return runners


def _trt_runners(folder: Path, manifest: Any, fp16: bool, max_batch: int, workspace: int, size: int | None = None) -> dict[str, Runner]:
    from seedlock.core.repository import load_version
    from seedlock.core.tensorrt_runtime import EngineSession
    from seedlock.export.errors import ExportError
    from seedlock.export.tensorrt_engine import EngineOptions, export_engines

    model = manifest.name
    scratch = Path(tempfile.mkdtemp(prefix="seedlock-bench-"))
    try:
        copy = scratch / model / folder.name
        shutil.copytree(folder, copy)
        if size is not None:  # the engines' profile takes H and W from preprocess.size
            path = copy / "manifest.json"
            data = json.loads(path.read_text())
            data.setdefault("preprocess", {})["size"] = int(size)
            path.write_text(json.dumps(data, indent=2))
        options = EngineOptions(fp16=fp16, workspace_mib=workspace, min_batch=1, opt_batch=max_batch, max_batch=max_batch)
        try:
            export_engines(scratch / model, options, log=lambda line: print(f"  {line}", flush=True))
        except ExportError as exc:
            raise RuntimeError(str(exc)) from None
        built = load_version(scratch, model).manifest
        sessions = {role: EngineSession(copy / built.engine(role).file) for role in built.graphs}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # sessions hold the deserialized engines
    return {role: _runner(s, _output_names(manifest, role)) for role, s in sessions.items()}


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, RuntimeError) and str(exc) else f"{type(exc).__name__}: {exc}"


def _time_side_by_side(runners: dict[str, Runner], feeds: dict[str, np.ndarray], runs: int, warmup: int,
                       rounds: int) -> dict[str, tuple[list[float], list[np.ndarray]] | str]:
    """Per backend: (millisecond samples, the outputs of its last untimed call), or why it failed.

    Every backend first makes ``max(1, warmup)`` untimed calls; then ``rounds``
    rounds each time every backend in turn (the order rotating by one each
    round), ``runs`` calls per backend in all."""
    results: dict[str, Any] = {}
    samples: dict[str, list[float]] = {}
    for name, run in runners.items():
        try:
            for _ in range(max(1, warmup)):
                out = run(feeds)
            results[name] = [np.asarray(o) for o in out]
            samples[name] = []
        except Exception as exc:  # noqa: BLE001 - reported; the other backends still run
            results[name] = _reason(exc)
    order = [n for n in runners if n in samples]
    rounds = max(1, min(rounds, runs))
    for r in range(rounds if order else 0):
        count = runs // rounds + (1 if r < runs % rounds else 0)
        shift = r % len(order)
        for name in order[shift:] + order[:shift]:
            if isinstance(results[name], str):
                continue
            run = runners[name]
            try:
                for _ in range(count):
                    t0 = time.perf_counter()
                    run(feeds)
                    samples[name].append((time.perf_counter() - t0) * 1e3)
            except Exception as exc:  # noqa: BLE001 - as above
                results[name] = _reason(exc)
    return {n: (samples[n], results[n]) if not isinstance(results[n], str) else results[n] for n in runners}


def agreement(reference: list[np.ndarray], outputs: list[np.ndarray], names: list[str]) -> dict[str, Any]:
    """How close ``outputs`` are to ``reference``, output by output and overall.

    Per output: the max absolute error, the reference's peak magnitude, their
    ratio (``max_rel_err``) and, for 4-D float outputs with a channel axis
    ([N, C, H, W] class scores), the fraction of positions whose argmax over C
    equals the reference's (``argmax_agreement``). Overall: the worst of each."""
    per: dict[str, dict[str, Any]] = {}
    for name, ref, out in zip(names, reference, outputs):
        ref, out = np.asarray(ref), np.asarray(out)
        if ref.shape != out.shape:
            per[name] = {"reason": f"shape {list(out.shape)}, the reference's is {list(ref.shape)}"}
            continue
        r64, o64 = ref.astype(np.float64), out.astype(np.float64)
        err = float(np.max(np.abs(o64 - r64))) if ref.size else 0.0
        peak = float(np.max(np.abs(r64))) if ref.size else 0.0
        entry: dict[str, Any] = {"max_abs_err": err, "ref_peak": peak,
                                 "max_rel_err": err / peak if peak > 0 else (0.0 if err == 0 else None)}  # fmt: skip
        if ref.dtype.kind == "f" and ref.ndim == 4 and ref.shape[1] > 1 and ref.size:
            entry["argmax_agreement"] = float(np.mean(np.argmax(ref, axis=1) == np.argmax(out, axis=1)))
        per[name] = entry
    rel = [e.get("max_rel_err") for e in per.values()]
    argmax = [e["argmax_agreement"] for e in per.values() if "argmax_agreement" in e]
    return {
        "max_rel_err": None if not rel or any(v is None for v in rel) else max(rel),
        "argmax_agreement": min(argmax) if argmax else None,
        "outputs": per,
    }


def _count_gflop(folder: Path, manifest: Any, role: str, feeds: dict[str, np.ndarray]) -> tuple[float | None, str | None]:
    try:
        from seedlock.graph_flops import count_flops

        counted = count_flops(folder / manifest.graph(role).file, {n: a.shape for n, a in feeds.items()})
    except ImportError as exc:
        return None, f"counting FLOPs needs the onnx package ({type(exc).__name__}: {exc})"
    except Exception as exc:  # noqa: BLE001 - no onnx package, or shapes inference cannot make concrete
        return None, _reason(exc)
    return counted.gflop, None


def _prepare(backend: str, mv: Any, args: argparse.Namespace, threads: int, batches: list[int], scratch: Path,
             int8_paths: Callable[[], dict[str, Path]]) -> dict[str, Runner]:
    folder, manifest = mv.folder, mv.manifest
    if backend in ("onnxruntime-cpu", "onnxruntime-cuda"):
        provider = "CPUExecutionProvider" if backend.endswith("cpu") else "CUDAExecutionProvider"
        return _ort_runners(folder, manifest, provider, threads)
    if backend == "onnxruntime-int8":
        return _int8_ort_runners(int8_paths(), manifest, threads)
    if backend.startswith("openvino-"):
        precision = backend.split("-", 1)[1]
        if precision == "int8":
            from seedlock.core.openvino_runtime import openvino_unavailable

            reason = openvino_unavailable(precision)  # before quantizing for nothing
            if reason:
                raise RuntimeError(reason)
            paths = int8_paths()
        else:
            paths = {role: folder / spec.file for role, spec in manifest.graphs.items()}
        return _openvino_runners(paths, manifest, precision, threads)
    return _trt_runners(folder, manifest, backend.endswith("fp16"), max(batches), args.workspace, args.size)


def _bench_backends(args: argparse.Namespace) -> int:
    from seedlock.core.manifest import ManifestError
    from seedlock.core.repository import load_version
    from seedlock.cpu_peaks import cpu_sample, host_cpu, measure_gemm_peaks, other_load

    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown or not args.backends:
        raise UserError(f"unknown backend(s) {unknown}; choose from {','.join(BACKENDS)}")
    try:
        mv = load_version(args.repository, args.model, args.version)
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    divisor = mv.manifest.preprocess.get("divisor")
    if args.size is not None and divisor and args.size % int(divisor):
        raise UserError(f"--size {args.size} is not a multiple of the model's divisor {divisor}")
    threads = args.threads
    batches = sorted(set(args.batches))
    # every figure is relative to ONNX Runtime CPU fp32 measured beside it
    backends = [REFERENCE] + [b for b in dict.fromkeys(args.backends) if b != REFERENCE]
    report: dict[str, Any] = {
        "bench": "backends", "model": mv.manifest.name, "version": mv.manifest.version,
        "batches": batches, "size": args.size or mv.manifest.preprocess.get("size"),
        "intra_op_threads_cpu": threads, "runs": args.runs, "warmup": args.warmup, "rounds": args.rounds,
        "reference": REFERENCE, "host": host_cpu(), "load_average": {"start": load_average()},
        "backends": {}, "gflop": {}, "other_load": {},
    }  # fmt: skip
    cpu_requested = any(b in CPU_PRECISION for b in backends)

    def gemm_peaks(when: str) -> None:  # before and after the timings: a shared host's load moves
        if cpu_requested:
            print(f"GEMM peaks ({when}): {args.gemm_n}^3 MatMul, {threads} thread(s)", flush=True)
            before = cpu_sample()
            measured = report.setdefault("gemm_peaks", {})[when] = measure_gemm_peaks(threads, n=args.gemm_n)
            measured["other_load"] = other_load(before, cpu_sample())
            found = ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in measured["peak_gflops"].items())
            print(f"GEMM peaks ({when}): {found or 'none measured (see the report)'}; "
                  f"other processes' CPU share {_share(measured['other_load'])}", flush=True)  # fmt: skip

    gemm_peaks("start")

    with tempfile.TemporaryDirectory(prefix="seedlock-bench-int8-") as tmp:
        int8_cache: dict[str, Any] = {}

        def int8_paths() -> dict[str, Path]:  # quantized once, shared by onnxruntime-int8 and openvino-int8
            if "paths" not in int8_cache:
                print("  quantizing every graph to int8 (QDQ, min/max calibration)", flush=True)
                try:
                    int8_cache["paths"] = _int8_graphs(mv.folder, mv.manifest, args.size, Path(tmp))
                except Exception as exc:  # noqa: BLE001 - kept: every int8 backend reports it
                    int8_cache["paths"] = exc
            if isinstance(int8_cache["paths"], Exception):
                raise int8_cache["paths"]
            return int8_cache["paths"]

        prepared: dict[str, dict[str, Runner]] = {}
        for backend in backends:
            print(f"{backend}: preparing", flush=True)
            try:
                prepared[backend] = _prepare(backend, mv, args, threads, batches, Path(tmp), int8_paths)
            except Exception as exc:  # noqa: BLE001 - reported, the other backends still run
                report["backends"][backend] = {"available": False, "reason": _reason(exc)}
                print(f"{backend}: unavailable ({' '.join(_reason(exc).split())})", flush=True)
                continue
            report["backends"][backend] = {"available": True, "graphs": {}}
            if backend in CPU_PRECISION:
                report["backends"][backend]["precision"] = CPU_PRECISION[backend]

        for role in sorted(mv.manifest.graphs):
            names = _output_names(mv.manifest, role)
            for batch in batches:
                feeds = _feeds(mv.manifest, role, batch, size=args.size)
                gflop, why = _count_gflop(mv.folder, mv.manifest, role, feeds)
                report["gflop"].setdefault(role, {})[str(batch)] = gflop
                if why:
                    report.setdefault("gflop_errors", {}).setdefault(role, {})[str(batch)] = why
                shape = " ".join(f"{n} {'x'.join(map(str, a.shape))}" for n, a in feeds.items())
                print(f"{role} batch {batch} ({shape}): timing {len(prepared)} backend(s) side by side", flush=True)
                before = cpu_sample()
                timed = _time_side_by_side({b: r[role] for b, r in prepared.items() if role in r}, feeds,
                                           args.runs, args.warmup, args.rounds)  # fmt: skip
                load = other_load(before, cpu_sample())
                report["other_load"].setdefault(role, {})[str(batch)] = load
                print(f"{role} batch {batch}: other processes' CPU share while timing {_share(load)}", flush=True)
                ref = timed.get(REFERENCE)
                for backend, got in timed.items():
                    graphs = report["backends"][backend]["graphs"]
                    if isinstance(got, str):
                        graphs.setdefault(role, {})[str(batch)] = {"available": False, "reason": got}
                        continue
                    samples, outputs = got
                    stats: dict[str, Any] = {"available": True, **summarize(samples, batch), "gflop": gflop}
                    if not isinstance(ref, str) and ref is not None:
                        stats["speedup_vs_ort_fp32"] = statistics.median(ref[0]) / stats["median_ms"]
                        stats["agreement"] = agreement(ref[1], outputs, names)
                    graphs.setdefault(role, {})[str(batch)] = stats
    gemm_peaks("end")
    report["load_average"]["end"] = load_average()
    if cpu_requested:
        _add_floors(report)
    report["warnings"] = report.get("warnings", []) + _busy_host_warnings(report)
    print()
    for line in summary_table(report):
        print(line)
    for warning in report.get("warnings", []):
        print(f"warning: {warning}")
    print(flush=True)
    write_report(report, args.out)
    return 0


def _share(load: float | None) -> str:
    return "unknown" if load is None else f"{load:.0%}"


def _busy_host_warnings(report: dict[str, Any]) -> list[str]:
    """Where other processes took more than :data:`BUSY_SHARE` of the CPUs during a timed block."""
    busy = [f"{role} batch {batch} ({load:.0%})" for role, points in report["other_load"].items()
            for batch, load in points.items() if load is not None and load > BUSY_SHARE]  # fmt: skip
    busy += [f"GEMM peaks at the {when} ({m['other_load']:.0%})" for when, m in report.get("gemm_peaks", {}).items()
             if isinstance(m, dict) and m.get("other_load") is not None and m["other_load"] > BUSY_SHARE]  # fmt: skip
    if not busy:
        return []
    return [f"other processes took a share of the CPUs while timing {', '.join(busy)}: times and floors there "
            "are slower than this host's own; the side-by-side ratios hold better; rerun on a quiet host"]


def _add_floors(report: dict[str, Any]) -> None:
    """The GEMM peak per precision (the better of the start and end measures) and, on every
    CPU point, ``floor_ms = gflop / peak * 1000`` and ``x_floor = median_ms / floor_ms``."""
    peaks: dict[str, float] = {}
    for measured in (report["gemm_peaks"].get("start", {}), report["gemm_peaks"].get("end", {})):
        for precision, gflops in measured.get("peak_gflops", {}).items():
            peaks[precision] = max(peaks.get(precision, 0.0), gflops)
    report["gemm_peaks"]["peak_gflops"] = peaks
    start = report["gemm_peaks"].get("start", {}).get("peak_gflops", {})
    end = report["gemm_peaks"].get("end", {}).get("peak_gflops", {})
    moved = {p: abs(start[p] - end[p]) / max(start[p], end[p]) for p in start.keys() & end.keys()}
    if moved and max(moved.values()) > STEADY_TOLERANCE:
        report["warnings"] = report.get("warnings", []) + [
            f"the GEMM peaks moved by up to {max(moved.values()):.0%} between the start and the end of the run "
            "(see other_load for other processes' share of the CPUs then): the floors carry that uncertainty; "
            "the side-by-side ratios hold better"
        ]  # fmt: skip
    for backend, entry in report["backends"].items():
        precision = CPU_PRECISION.get(backend)
        for points in entry.get("graphs", {}).values():
            for point in points.values():
                if precision and point.get("available") and point.get("gflop") and peaks.get(precision):
                    point["floor_precision"] = precision
                    point["floor_peak_gflops"] = peaks[precision]
                    point["floor_ms"] = point["gflop"] / peaks[precision] * 1e3
                    point["x_floor"] = point["median_ms"] / point["floor_ms"]


def summary_table(report: dict[str, Any]) -> list[str]:
    """One line per (graph, batch, backend) of a backends report; a reason where it did not run."""

    def num(value: Any, fmt: str) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)

    def one_line(text: str) -> str:
        return " ".join(str(text).split())

    roles = sorted({role for entry in report["backends"].values() for role in entry.get("graphs", {})})
    g = max([5, *map(len, roles)])
    header = (f"{'graph':<{g}} {'batch':>5} {'backend':<17} {'median ms':>10} {'p90 ms':>9} {'rows/s':>9} "
              f"{'x ORT fp32':>10} {'max rel err':>11} {'argmax':>8} {'GFLOP':>8} {'floor ms':>9} {'x floor':>8}")
    lines = [header, "-" * len(header)]
    for role in roles:
        for batch in map(str, report["batches"]):
            for backend, entry in report["backends"].items():
                if not entry.get("available"):
                    continue
                point = entry["graphs"].get(role, {}).get(batch)
                if point is None:
                    continue
                if not point.get("available"):
                    lines.append(f"{role:<{g}} {batch:>5} {backend:<17} unavailable: {one_line(point['reason'])}")
                    continue
                agree = point.get("agreement") or {}
                lines.append(
                    f"{role:<{g}} {batch:>5} {backend:<17} {point['median_ms']:>10.2f} {point['p90_ms']:>9.2f} "
                    f"{point['items_per_s']:>9.1f} {num(point.get('speedup_vs_ort_fp32'), '.2f'):>10} "
                    f"{num(agree.get('max_rel_err'), '.2e'):>11} {num(agree.get('argmax_agreement'), '.5f'):>8} "
                    f"{num(point.get('gflop'), '.3f'):>8} {num(point.get('floor_ms'), '.2f'):>9} "
                    f"{num(point.get('x_floor'), '.2f'):>8}"
                )  # fmt: skip
    for backend, entry in report["backends"].items():
        if not entry.get("available"):
            lines.append(f"{backend}: unavailable: {one_line(entry['reason'])}")
    return lines


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
        help="each graph of a model on ORT CPU fp32/int8, OpenVINO fp32/bf16/int8, ORT CUDA, TensorRT fp32/fp16",
        description="Latency and throughput of every graph of a model at several batch sizes on ONNX Runtime CPU "
        "(fp32, the reference, and the graph quantized to int8), OpenVINO on the CPU (fp32, bf16, int8), ONNX Runtime "
        "CUDA and TensorRT fp32/fp16 engines (built for the run in a scratch copy), timed side by side; each point's "
        "agreement with ONNX Runtime CPU fp32, its GFLOP and, on the CPU, the floor the GEMM peaks measured in the "
        "same run allow. Backends this host cannot run are reported with the reason. JSON out.",
    )
    p.add_argument("--repository", required=True, help="model repository folder")
    p.add_argument("--model", required=True, help="model name in the repository")
    p.add_argument("--version", type=int, default=None, help="model version (default: the highest)")
    p.add_argument("--backends", type=lambda s: [b.strip() for b in s.split(",") if b.strip()], default=list(BACKENDS),
                   help=f"comma-separated subset of {','.join(BACKENDS)} (default: all; {REFERENCE} always runs, "
                   "as the reference)")
    p.add_argument("--batches", type=positive_int_list, default=[1, 64], help="batch sizes (default: 1,64)")
    p.add_argument("--size", type=positive_int, default=None,
                   help="height and width of image inputs whose H/W are dynamic (default: the manifest's preprocess.size)")
    p.add_argument("--runs", type=positive_int, default=50, help="timed runs per point and backend (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default: %(default)s; at least one runs)")
    p.add_argument("--rounds", type=positive_int, default=5,
                   help="interleaved rounds the timed runs are split into, backends alternating (default: %(default)s)")
    p.add_argument("--threads", type=positive_int, default=2,
                   help="CPU intra-op threads for ONNX Runtime, OpenVINO and the GEMM peaks (default: %(default)s)")
    p.add_argument("--gemm-n", type=positive_int, default=1024, help="N of the N^3 GEMM peak measure (default: %(default)s)")
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
