"""``seedlock export verify``: re-check an exported model on demand.

1. Digests: every file matches the sha256 recorded in its manifest.
2. Parity: ONNX Runtime on the stored seeded reference input reproduces the
   torch output recorded at export time (within the export tolerance); with
   ``checkpoint``, torch is re-run on fresh inputs too.

Or, with ``--backends``, backend against backend on seeded inputs
(:mod:`seedlock.export.backends`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

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


def verify_model(
    model_path: str | Path,
    version: int | None = None,
    checkpoint: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> list[parity.ParityRow]:
    mv = _load(model_path, version)
    log(f"digests: {len(mv.manifest.files)} files match manifest.json of {mv.manifest.name} v{mv.manifest.version}")
    from seedlock.export.segmenter import cpu_session  # local: keeps torch import lazy

    graph = mv.manifest.graph("model")
    session = cpu_session(mv.path("model").read_bytes())
    in_name, out_name = graph.inputs[0].name, graph.outputs[0].name

    def run_ort(x: np.ndarray) -> np.ndarray:
        return session.run([out_name], {in_name: x})[0]

    ref = mv.manifest.preprocess.get("reference")
    rows: list[parity.ParityRow] = []
    if ref:
        x = np.load(mv.folder / ref["input"], allow_pickle=False)
        y = np.load(mv.folder / ref["output"], allow_pickle=False)
        rows.append(parity.compare("stored reference", y, run_ort(x), float(ref["tolerance"])))
    if checkpoint is not None:
        import torch

        from seedlock.export.segmenter import TOLERANCE, parity_cases
        from seedlock.train.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        model = ckpt.model.eval()

        def run_torch(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()

        rows += parity.run_cases(parity_cases(ckpt), run_torch, run_ort, TOLERANCE)
    if not rows:
        raise ExportError(f"{mv.folder} has no stored reference and no --checkpoint was given: nothing to compare")
    log(parity.format_table(rows))
    if not all(r.ok for r in rows):
        raise ExportError("parity check failed")
    return rows
