"""Parity checks between backends (torch eager vs ONNX Runtime, and later
TensorRT), printed as a table the way Polygraphy does."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class ParityRow:
    case: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs) and self.max_abs <= self.tolerance)

    def as_dict(self) -> dict:
        return {**asdict(self), "shape": list(self.shape), "ok": self.ok}


def compare(case: str, reference: np.ndarray, candidate: np.ndarray, tolerance: float) -> ParityRow:
    if reference.shape != candidate.shape:
        return ParityRow(case, tuple(candidate.shape), float("inf"), float("inf"), tolerance)
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    scale = np.maximum(np.abs(reference.astype(np.float64)), 1e-6)
    return ParityRow(case, tuple(reference.shape), float(diff.max(initial=0.0)), float((diff / scale).max(initial=0.0)), tolerance)


def compare_relative(case: str, reference: np.ndarray, candidate: np.ndarray, rtol: float) -> ParityRow:
    """Like :func:`compare`, with the tolerance relative to the reference's peak
    magnitude (``rtol * max|reference|``): the bound for backends whose
    arithmetic differs (GPU kernels, fp16), where per-element relative error
    is meaningless near zero."""
    peak = float(np.abs(reference.astype(np.float64)).max(initial=0.0))
    return compare(case, reference, candidate, rtol * max(peak, 1e-6))


def run_cases(
    cases: dict[str, np.ndarray],
    reference: Callable[[np.ndarray], np.ndarray],
    candidate: Callable[[np.ndarray], np.ndarray],
    tolerance: float,
) -> list[ParityRow]:
    return [compare(name, reference(x), candidate(x), tolerance) for name, x in cases.items()]


def format_table(rows: list[ParityRow], reference: str = "torch", candidate: str = "onnxruntime") -> str:
    width = max([22] + [len(r.case) for r in rows])
    header = f"{'case':<{width}} {'shape':<20} {'max |abs| err':>14} {'max rel err':>12} {'tol':>8}  result"
    lines = [f"parity: {candidate} vs {reference}", header, "-" * len(header)]
    for r in rows:
        shape = "x".join(str(d) for d in r.shape)
        lines.append(
            f"{r.case:<{width}} {shape:<20} {r.max_abs:>14.3e} {r.max_rel:>12.3e} {r.tolerance:>8.1e}  {'PASS' if r.ok else 'FAIL'}"
        )
    return "\n".join(lines)


def require(rows: list[ParityRow], log: Callable[[str], None]) -> None:
    """Print the torch vs ONNX Runtime table; raise ``ExportError`` (before
    anything is written) when a row is over its tolerance."""
    from seedlock.export.errors import ExportError

    log(format_table(rows))
    failed = [r for r in rows if not r.ok]
    if failed:
        worst = max(failed, key=lambda r: r.max_abs)
        raise ExportError(
            f"ONNX Runtime differs from torch by {worst.max_abs:.3e} > {worst.tolerance:.0e} ({worst.case}); nothing was written"
        )
