"""The CPU's GEMM peaks, measured on this host with a given thread count, and what the host is.

:func:`measure_gemm_peaks` times one N x N x N MatMul with a constant weight
(the fully-connected form convolutions lower to) on the engines the CPU
benches run: OpenVINO in fp32, in bf16 (``INFERENCE_PRECISION_HINT`` bf16)
and in int8 (the graph quantized to QDQ by
:func:`seedlock.export.quantize.quantize_int8`), and ONNX Runtime in fp32 and
int8, each with the bench's intra-op thread count and the sessions' own
settings (:class:`~seedlock.core.openvino_runtime.OpenVINOSession`,
:func:`~seedlock.core.sessions.provider_session`). A precision's peak is the
best median GFLOP/s over the engines that ran it: the floor a graph's FLOPs
allow at that precision on this host, under its load at the time.

An engine or precision this host cannot run is reported with its reason.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from seedlock.bench import time_samples

# (engine, precision) pairs measured, in order
ENGINES = (("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"))


@dataclass(frozen=True)
class GemmMeasure:
    """One engine's N x N x N MatMul at one precision (or why it did not run)."""

    engine: str
    precision: str
    n: int
    runs: int = 0
    median_ms: float | None = None
    gflops: float | None = None  # 2 N^3 / median
    best_gflops: float | None = None  # 2 N^3 / fastest run
    reason: str | None = None


def gemm_model(n: int, seed: int = 0) -> bytes:
    """ONNX bytes of ``y = a @ w + b``: a [n, n] float input, w [n, n] and b [n] seeded constants.

    The bias add (n^2 adds against n^3 multiply-accumulates; fused into the
    GEMM by both engines) keeps the MatMul from writing the graph output, a
    layer the int8 quantizer leaves in float."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["m"], name="gemm"), helper.make_node("Add", ["m", "b"], ["y"], name="bias")],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime builds of the last years all read
    return model.SerializeToString()


def measure_gemm_peaks(threads: int, n: int = 1024, runs: int = 20, warmup: int = 5,
                       engines: tuple[tuple[str, str], ...] = ENGINES) -> dict[str, Any]:
    """GEMM GFLOP/s of every (engine, precision) in ``engines`` with ``threads``
    intra-op threads, and the peak per precision (best median over engines).

    Returns ``{"n", "threads", "flop", "measures": [...], "peak_gflops": {precision: GFLOP/s}}``."""
    flop = 2 * n**3
    a = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    measures: list[GemmMeasure] = []
    with tempfile.TemporaryDirectory(prefix="seedlock-gemm-") as tmp:
        graphs: dict[str, Path | str] = {}  # precision -> graph path, or why there is none

        def graph(precision: str) -> Path:
            if precision not in graphs:
                graphs[precision] = _write_graph(Path(tmp), precision, n, a)
            found = graphs[precision]
            if isinstance(found, str):
                raise RuntimeError(found)
            return found

        for engine, precision in engines:
            try:
                run = _runner(engine, precision, graph, threads)
                samples = time_samples(lambda run=run: run({"a": a}), runs, warmup)
            except Exception as exc:  # noqa: BLE001 - reported; the other engines still run
                measures.append(GemmMeasure(engine, precision, n, reason=_reason(exc)))
                continue
            median = statistics.median(samples)
            measures.append(GemmMeasure(engine, precision, n, runs=len(samples), median_ms=median,
                                        gflops=flop / median / 1e6, best_gflops=flop / min(samples) / 1e6))  # fmt: skip
    peaks: dict[str, float] = {}
    for m in measures:
        if m.gflops is not None:
            peaks[m.precision] = max(peaks.get(m.precision, 0.0), m.gflops)
    return {"n": n, "threads": threads, "flop": flop, "measures": [asdict(m) for m in measures], "peak_gflops": peaks}


def _write_graph(folder: Path, precision: str, n: int, a: np.ndarray) -> Path | str:
    """The fp32 MatMul graph (also run in bf16), or its QDQ int8 form; a string says why not."""
    try:
        model = gemm_model(n)
        if precision == "int8":
            from seedlock.export.quantize import quantize_int8

            model = quantize_int8(model, [{"a": a}])
            if b"QuantizeLinear" not in model:
                return "the int8 quantizer left the GEMM in float"
    except ImportError as exc:
        return f"building the GEMM graph needs the onnx package ({type(exc).__name__}: {exc})"
    except Exception as exc:  # noqa: BLE001 - the quantizer failed
        return _reason(exc)
    path = folder / f"gemm-{precision}.onnx"
    path.write_bytes(model)
    return path


def _runner(engine: str, precision: str, graph: Callable[[str], Path], threads: int) -> Callable[[dict], Any]:
    if engine == "openvino":
        from seedlock.core.openvino_runtime import OpenVINOSession, openvino_unavailable

        reason = openvino_unavailable(precision)
        if reason:
            raise RuntimeError(reason)
        session: Any = OpenVINOSession(graph("int8" if precision == "int8" else "fp32"), precision, threads)
    elif engine == "onnxruntime":
        if precision not in ("fp32", "int8"):
            raise RuntimeError(f"ONNX Runtime CPU has no {precision} GEMM seedlock runs")
        from seedlock.core.sessions import provider_session

        session = provider_session(str(graph(precision)), "CPUExecutionProvider", threads)
    else:
        raise RuntimeError(f"unknown engine {engine!r}")
    return lambda feeds: session.run(None, feeds)


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, RuntimeError) and str(exc) else f"{type(exc).__name__}: {exc}"


def host_cpu() -> dict[str, Any]:
    """The CPU model name, the cores this process may use, and OpenVINO's view of the CPU."""
    info: dict[str, Any] = {"model_name": None, "cores_available": None}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["model_name"] = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover - not Linux
        pass
    try:
        info["cores_available"] = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        info["cores_available"] = os.cpu_count()
    try:
        import openvino

        core = openvino.Core()
        info["openvino_version"] = openvino.__version__
        info["openvino_device_name"] = core.get_property("CPU", "FULL_DEVICE_NAME")
        info["openvino_capabilities"] = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception as exc:  # noqa: BLE001 - no package, or a broken install: say so
        info["openvino_capabilities"] = None
        info["openvino_reason"] = f"{type(exc).__name__}: {exc}"
    return info


@dataclass(frozen=True)
class CpuSample:
    """A point in time: wall clock, the system's busy CPU seconds (all processes,
    hypervisor steal included) and this process's own CPU seconds (all threads)."""

    wall: float
    busy: float
    own: float


def cpu_sample() -> CpuSample | None:
    """Now, from ``/proc/stat`` and ``os.times``; None where there is no ``/proc/stat``."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):  # pragma: no cover - not Linux
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    t = os.times()
    return CpuSample(time.perf_counter(), (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK"),
                     t.user + t.system)  # fmt: skip


def other_load(start: CpuSample | None, end: CpuSample | None) -> float | None:
    """The share of the machine's CPUs that other processes (and the hypervisor) took
    between two samples: 0 on a quiet host, 0.5 when one of two cores was busy elsewhere."""
    if start is None or end is None or end.wall <= start.wall:
        return None
    others = (end.busy - start.busy) - (end.own - start.own)
    return round(min(1.0, max(0.0, others / ((end.wall - start.wall) * (os.cpu_count() or 1)))), 3)
