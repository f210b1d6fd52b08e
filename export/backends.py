"""Running one exported model version on several backends, the way Polygraphy
compares ``--onnxrt`` with ``--trt``: same seeded inputs, every graph, every
output, an error table.

Backends:
  onnxruntime        ONNX Runtime, CPU execution provider (the reference)
  onnxruntime-cuda   ONNX Runtime, CUDA execution provider (TF32 off)
  tensorrt           the version's TensorRT engines (``seedlock export trt``)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from seedlock.core.manifest import Manifest
from seedlock.core.repository import ModelVersion
from seedlock.core.rng import SeedStream
from seedlock.export import parity
from seedlock.export.errors import ExportError
from seedlock.export.tensorrt_engine import TOLERANCE, EngineOptions, profile_shapes

BACKENDS = ("onnxruntime", "onnxruntime-cuda", "tensorrt")
INPUT_SEED = 4242

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def parse_backends(text: str) -> list[str]:
    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown:
        raise ExportError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    if len(names) < 2 or len(set(names)) != len(names):
        raise ExportError("--backends needs at least two different backends, e.g. onnxruntime,tensorrt")
    return names


def _ort_runner(path: Path, provider: str) -> Runner:
    from seedlock.core.sessions import provider_session

    try:
        session = provider_session(path, provider)
    except RuntimeError as exc:
        raise ExportError(str(exc)) from None
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(names, feeds)))


def _tensorrt_runner(mv: ModelVersion, role: str) -> Runner:
    record = mv.manifest.engine(role)
    if record is None:
        raise ExportError(f"{mv.folder} has no TensorRT engine for graph {role!r}; run `seedlock export trt` first")
    from seedlock.core.tensorrt_runtime import EngineSession, tensorrt_unavailable  # lazy: GPU hosts only

    reason = tensorrt_unavailable()
    if reason:
        raise ExportError(f"the tensorrt backend cannot run here: {reason}")
    session = EngineSession(mv.folder / record.file)
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(names, feeds)))


def runner(backend: str, mv: ModelVersion, role: str) -> Runner:
    path = mv.folder / mv.manifest.graph(role).file
    if backend == "onnxruntime":
        return _ort_runner(path, "CPUExecutionProvider")
    if backend == "onnxruntime-cuda":
        return _ort_runner(path, "CUDAExecutionProvider")
    return _tensorrt_runner(mv, role)


def input_cases(manifest: Manifest, role: str) -> dict[str, dict[str, np.ndarray]]:
    """Seeded inputs at the engine profile's opt and max shapes (the default
    profile when the version has no engine). Float inputs are standard normal;
    integer inputs are zeros, a valid index for every table a graph looks up."""
    record = manifest.engine(role)
    profile = record.profile if record else profile_shapes(manifest, role, EngineOptions())
    stream = SeedStream(INPUT_SEED)
    dtypes = {t.name: t.dtype for t in manifest.graph(role).inputs}
    cases: dict[str, dict[str, np.ndarray]] = {}
    seen: set[tuple] = set()
    for which in ("opt", "max"):
        shapes = tuple(tuple(s[which]) for s in profile.values())
        if shapes in seen:  # min/opt/max batch may coincide
            continue
        seen.add(shapes)
        feeds = {}
        for (name, _), shape in zip(profile.items(), shapes):
            if dtypes[name].startswith("float"):
                feeds[name] = stream.normal(shape).astype(dtypes[name])
            else:
                feeds[name] = np.zeros(shape, dtype=dtypes[name])
        cases[f"{which} " + "x".join(str(d) for d in shapes[0])] = feeds
    return cases


def compare_backends(mv: ModelVersion, backends: list[str], log: Callable[[str], None] = print) -> list[parity.ParityRow]:
    """Run every graph of ``mv`` on each backend and compare each with the first.
    Tolerance is relative to the reference output's peak magnitude: 1e-4 (fp32),
    1e-2 when a compared engine is fp16."""
    precisions = {r["precision"] for r in mv.manifest.engines.values()} if "tensorrt" in backends else set()
    rtol = TOLERANCE["fp16" if "fp16" in precisions else "fp32"]
    rows: list[parity.ParityRow] = []
    for role in sorted(mv.manifest.graphs):
        runners = {b: runner(b, mv, role) for b in backends}
        reference, *others = backends
        for case, feeds in input_cases(mv.manifest, role).items():
            expected = runners[reference](feeds)
            for other in others:
                got = runners[other](feeds)
                for out, ref in expected.items():
                    label = f"{role}/{out} {case}" if len(others) == 1 else f"{other}: {role}/{out} {case}"
                    rows.append(parity.compare_relative(label, ref, got[out], rtol))
    log(parity.format_table(rows, reference=backends[0], candidate=", ".join(backends[1:])))
    return rows
