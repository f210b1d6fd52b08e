"""Seed-lock proofs run on every model version at load (DESIGN.md, Determinism).

* :func:`prove_batching` — is a row's output byte-identical alone and inside
  batches of every size the scheduler can form (2 .. max_batch_size), at every
  position, with random companions? If not, is it when every call is padded to
  ``max_batch_size`` rows? The answer sets the scheduler's mode: "dynamic",
  "padded" or "off" (one request per call).
* :func:`bit_exact_with_export` — does the manifest's reference input give the
  bytes ONNX Runtime gave on the export host? Where it does not (another ISA
  or runtime build), answers are still stable on this host, just not the
  export host's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from seedlock.core.manifest import GraphSpec, Manifest
from seedlock.serve.scheduler import RunGraph, row_shapes

log = logging.getLogger("seedlock.serve")


@dataclass(frozen=True)
class BatchingProof:
    mode: str  # "dynamic" | "padded" | "off"
    reason: str
    shapes: frozenset = frozenset()  # the row shapes proved (scheduler.row_shapes)


def _load(folder: Path, name: str) -> np.ndarray:
    return np.load(folder / name, allow_pickle=False)


def reference_inputs(manifest: Manifest, folder: Path, role: str = "model") -> dict[str, np.ndarray] | None:
    entry = manifest.reference.get("graphs", {}).get(role)
    if not entry:
        return None
    try:
        return {tensor: _load(folder, f) for tensor, f in entry["inputs"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def proof_templates(manifest: Manifest, folder: Path) -> list[dict[str, np.ndarray]]:
    """Input rows to prove batching with: the reference input, and, for an
    image model whose H and W are free, one row at the size its task service
    sends (``preprocess.size``), since kernels may split work by shape."""
    ref = reference_inputs(manifest, folder)
    if not ref:
        return []
    templates = [{n: a[:1] for n, a in ref.items()}]
    size = manifest.preprocess.get("size")
    graph = manifest.graphs.get("model")
    if isinstance(size, int) and graph is not None and len(ref) == 1:
        (name, array), spec = next(iter(ref.items())), graph.inputs[0]
        if array.ndim == 4 and spec.shape[2:] == [-1, -1] and array.shape[2:] != (size, size):
            rng = np.random.default_rng(1)
            templates.append({name: _companion(np.resize(array[:1], (1, array.shape[1], size, size)), rng)})
    return templates


def _companion(template: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random row shaped and scaled like ``template``."""
    if template.dtype.kind == "f":
        mean, std = float(template.mean()), float(template.std()) or 1.0
        return (rng.standard_normal(template.shape) * std + mean).astype(template.dtype)
    if template.dtype.kind in "iu":
        lo, hi = int(template.min()), int(template.max())
        return rng.integers(lo, hi + 1, template.shape).astype(template.dtype)
    if template.dtype.kind == "b":
        return rng.integers(0, 2, template.shape).astype(bool)
    return template.copy()


def _rows_equal(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes() for x, y in zip(a, b))


def prove_batching(run: RunGraph, graph: GraphSpec, templates: list[dict[str, np.ndarray]], limit: int) -> BatchingProof:
    """:func:`prove_at` for every template row; the weakest outcome wins."""
    if not templates:
        return BatchingProof("off", "the manifest stores no reference input to prove batching with: one request per call")
    proofs = [prove_at(run, graph, t, limit) for t in templates]
    shapes = frozenset(row_shapes(t) for t in templates)
    described = ", ".join("x".join(map(str, next(iter(t.values())).shape[1:])) for t in templates)
    others = f"; inputs {described} batch, other shapes run one request per call"
    for p in proofs:
        if p.mode == "off":
            return p
    for p in proofs:
        if p.mode == "padded":
            return BatchingProof("padded", p.reason + others, shapes)
    return BatchingProof("dynamic", proofs[0].reason + others, shapes)


def prove_at(run: RunGraph, graph: GraphSpec, inputs: dict[str, np.ndarray] | None, limit: int, seed: int = 0) -> BatchingProof:
    """See the module docstring. ``run(feeds, outputs)`` is the graph call;
    ``inputs`` one row (the template companions are drawn like)."""
    if limit <= 1:
        return BatchingProof("off", f"max_batch_size is {limit}: one request per call")
    if not inputs:
        return BatchingProof("off", "the manifest stores no reference input to prove batching with: one request per call")
    outputs = [t.name for t in graph.outputs]
    rng = np.random.default_rng(seed)
    rows = [{n: a[:1] for n, a in inputs.items()}]
    rows += [{n: _companion(a[:1], rng) for n, a in inputs.items()} for _ in range(limit - 1)]

    def batch(order: list[int], pad_to: int = 0) -> list[list[np.ndarray]]:
        feeds = {n: np.concatenate([rows[i][n] for i in order]) for n in inputs}
        if pad_to > len(order):
            feeds = {n: np.concatenate([a, np.zeros((pad_to - len(order), *a.shape[1:]), a.dtype)]) for n, a in feeds.items()}
        out = [np.asarray(o) for o in run(feeds, outputs)]
        return [[o[p:p + 1] for o in out] for p in range(len(order))]

    alone = [batch([i])[0] for i in range(limit)]
    failure = ""
    for size in range(2, limit + 1):
        order = [int(i) for i in rng.permutation(limit)[:size]]
        for position, (i, got) in enumerate(zip(order, batch(order))):
            if not _rows_equal(got, alone[i]):
                failure = f"a row's output differs alone and at position {position} of a batch of {size}"
                break
        if failure:
            break
    if not failure:
        return BatchingProof("dynamic", f"proved: {limit} rows byte-identical alone and in batches of 2..{limit} at every position")
    # Fixed shape: every call is padded to `limit` rows, so only the companions vary.
    padded = [batch([i], pad_to=limit)[0] for i in range(limit)]
    for _ in range(2):
        order = [int(i) for i in rng.permutation(limit)]
        for position, (i, got) in enumerate(zip(order, batch(order))):
            if not _rows_equal(got, padded[i]):
                return BatchingProof("off", f"{failure}, and padded to {limit} rows a row still differs at position {position}: "
                                     "one request per call")
    return BatchingProof("padded", f"{failure}; every call padded to {limit} rows: proved byte-identical at every position")


def bit_exact_with_export(sessions: Mapping[str, Any], manifest: Manifest, folder: Path) -> tuple[bool, str]:
    """Run the stored reference inputs of every graph and compare with the
    runtime outputs the export host stored (``reference.runtime``)."""
    stored = manifest.reference.get("runtime", {})
    if not stored:
        return False, "the manifest stores no runtime reference (exported by an older seedlock)"
    for role, entry in sorted(stored.items()):
        inputs = reference_inputs(manifest, folder, role)
        if inputs is None or role not in sessions:
            return False, f"graph {role!r}: no reference input"
        names = sorted(entry)
        try:
            got = sessions[role].run(names, inputs)
            want = [_load(folder, entry[n]) for n in names]
        except Exception as exc:  # noqa: BLE001 - a failed proof is reported, not fatal
            return False, f"graph {role!r}: {type(exc).__name__}: {exc}"
        for name, g, w in zip(names, got, want):
            g = np.asarray(g)
            if g.dtype != w.dtype or g.shape != w.shape or g.tobytes() != w.tobytes():
                diff = int(np.count_nonzero(g != w)) if g.shape == w.shape else -1
                return False, (f"graph {role!r} output {name!r}: {diff} of {w.size} values differ from the export host's; "
                               "answers are stable on this host, not identical to the export host's")  # fmt: skip
    return True, f"reference outputs of {', '.join(sorted(stored))} byte-identical to the export host's"
