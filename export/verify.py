"""``seedlock export verify``: re-check an exported model on demand.

1. Digests: every file matches the sha256 recorded in its manifest.
2. Parity: the runtime the model is pinned to (ONNX Runtime; OpenVINO for a
   bf16/int8 version), with the server's session settings, on every stored
   reference input reproduces the torch output recorded at export time (within
   the export tolerance), and the task's pipeline (captions, a melody)
   reproduces the stored answer exactly; with ``checkpoint``, torch is re-run
   on the reference inputs too. The same for every task.

Or, with ``--backends``, backend against backend on seeded inputs
(:mod:`seedlock.export.backends`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from seedlock.core import tasks
from seedlock.core.manifest import ManifestError
from seedlock.core.repository import ModelVersion, load_version
from seedlock.export import parity
from seedlock.export.errors import ExportError


def split_model_path(path: str | Path) -> tuple[Path, str]:
    """``DIR/NAME`` -> (repository DIR, model NAME)."""
    p = Path(path)
    return p.parent, p.name


def _load(model_path: str | Path, version: int | None) -> ModelVersion:
    repository, name = split_model_path(model_path)
    try:
        mv = load_version(repository, name, version)
    except ManifestError as exc:
        raise ExportError(f"digest check failed: {exc}") from exc
    return mv


def verify_backends(
    model_path: str | Path, backends: str, version: int | None = None, log: Callable[[str], None] = print
) -> list[parity.ParityRow]:
    """Digests, then every graph on each backend against the first one."""
    from seedlock.export.backends import compare_backends, parse_backends

    names = parse_backends(backends)
    mv = _load(model_path, version)
    log(f"digests: {len(mv.manifest.files)} files match manifest.json of {mv.manifest.name} v{mv.manifest.version}")
    rows = compare_backends(mv, names, log=log)
    if not all(r.ok for r in rows):
        raise ExportError(f"backends disagree beyond the tolerance ({sum(not r.ok for r in rows)} of {len(rows)} outputs)")
    return rows


def reference_rows(mv: ModelVersion, sessions: Mapping[str, Any] | None = None) -> list[parity.ParityRow]:
    """The runtime the model is pinned to (sessions built as the server builds
    them) against the manifest's stored reference: every referenced graph's outputs within the
    tolerance, then the task's whole-pipeline answer exactly."""
    from seedlock.core.sessions import graph_session

    ref = mv.manifest.reference
    tolerance = float(ref.get("tolerance", 1e-4))
    sessions = dict(sessions or {})
    rows: list[parity.ParityRow] = []
    for role, entry in sorted(ref.get("graphs", {}).items()):
        if role not in sessions:
            sessions[role] = graph_session(mv.manifest, mv.path(role))
        feeds = {t: np.load(mv.folder / f, allow_pickle=False) for t, f in entry["inputs"].items()}
        want = {t: np.load(mv.folder / f, allow_pickle=False) for t, f in entry["outputs"].items()}
        got = sessions[role].run(list(want), feeds)
        rows += [parity.compare(f"{role}/{t} stored reference", want[t], g, tolerance) for t, g in zip(want, got)]
    if ref.get("task"):
        for role in mv.manifest.graphs:
            if role not in sessions:
                sessions[role] = graph_session(mv.manifest, mv.path(role))
        spec = tasks.get(mv.manifest.task).spec_class().from_manifest(mv.manifest)
        for case, expected, actual in spec.check_reference(sessions, mv.folder, ref["task"]):
            rows.append(parity.compare(case, np.asarray(expected), np.asarray(actual), 0.0))
    return rows


def runtime_label(manifest: Any) -> str:
    """What runs the version's graphs: "onnxruntime", or e.g. "openvino bf16"."""
    return "onnxruntime" if manifest.runtime == "onnxruntime" else f"{manifest.runtime} {manifest.precision}"


# Seed of the fresh inputs `verify --checkpoint` adds to the stored ones.
FRESH_SEED = 4243


def fresh_cases(feeds: Mapping[str, np.ndarray], seed: int = FRESH_SEED) -> dict[str, dict[str, np.ndarray]]:
    """The stored reference inputs, and new ones torch was never checked on at
    export: float inputs redrawn (seeded standard normals) at batch 1 and 3;
    integer inputs (tokens, events, genres: values the graph must be able to
    look up) are the stored rows, repeated to batch 3."""
    from seedlock.core.rng import SeedStream

    stream = SeedStream(seed)
    cases = {"stored": dict(feeds)}
    for label, batch in (("fresh b1", 1), ("fresh b3", 3)):
        case = {}
        for name, x in feeds.items():
            rows = np.resize(x, (batch, *x.shape[1:])) if x.ndim else x  # repeats the stored rows
            case[name] = stream.normal(rows.shape).astype(x.dtype) if x.dtype.kind == "f" else np.ascontiguousarray(rows)
        cases[label] = case
    return cases


def torch_rows(mv: ModelVersion, checkpoint: str | Path) -> list[parity.ParityRow]:
    """torch (re-run from the checkpoint) against ONNX Runtime, every referenced
    graph, on the stored reference inputs and on fresh ones (:func:`fresh_cases`)."""
    from seedlock.core.sessions import graph_session
    from seedlock.export.common import as_checkpoint

    task = tasks.get(mv.manifest.task)
    ckpt = as_checkpoint(checkpoint, task.name)
    graphs = task.module("export").torch_graphs(ckpt)
    ref = mv.manifest.reference
    tolerance = float(ref.get("tolerance", 1e-4))
    rows: list[parity.ParityRow] = []
    for role, entry in sorted(ref.get("graphs", {}).items()):
        session = graph_session(mv.manifest, mv.path(role))
        stored = {t: np.load(mv.folder / f, allow_pickle=False) for t, f in entry["inputs"].items()}
        names = list(entry["outputs"])
        for label, feeds in fresh_cases(stored).items():
            want = graphs[role](feeds)
            got = session.run(names, feeds)
            rows += [parity.compare(f"{role}/{t} {label}: torch vs {runtime_label(mv.manifest)}", want[t], g, tolerance)
                     for t, g in zip(names, got)]  # fmt: skip
    return rows


def verify_model(
    model_path: str | Path,
    version: int | None = None,
    checkpoint: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> list[parity.ParityRow]:
    """Digests, then the stored reference (and torch, with ``checkpoint``), for a model of any task."""
    mv = _load(model_path, version)
    log(f"digests: {len(mv.manifest.files)} files match manifest.json of {mv.manifest.name} v{mv.manifest.version}")
    # One graph of a multi-graph model, written as a Triton model of its own (seedlock.export.repository).
    part_of = mv.manifest.config.get("part_of") if isinstance(mv.manifest.config, dict) else None
    if tasks.find(mv.manifest.task) is None and not isinstance(part_of, dict):
        raise ExportError(f"{mv.folder} is a {mv.manifest.task!r} model; this seedlock verifies {', '.join(tasks.names())}")
    if isinstance(part_of, dict) and checkpoint is not None:
        raise ExportError(f"{mv.folder} is graph {part_of.get('graph')!r} of model {part_of.get('model')!r}; "
                          "verify that model against its checkpoint")  # fmt: skip
    try:
        rows = reference_rows(mv)
        if checkpoint is not None:
            rows += torch_rows(mv, checkpoint)
    except (ManifestError, KeyError, OSError, ValueError) as exc:  # a malformed reference or spec: name it, no traceback
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ExportError(f"{mv.folder}: cannot check the stored reference ({text})") from None
    if not rows:
        raise ExportError(f"{mv.folder} has no stored reference and no --checkpoint was given: nothing to compare")
    log(parity.format_table(rows, reference="stored reference" if checkpoint is None else "stored reference / torch",
                            candidate=runtime_label(mv.manifest)))  # fmt: skip
    if not all(r.ok for r in rows):
        raise ExportError("parity check failed")
    return rows
