"""The thesis's composition measures (section 3.7, Tables 20-23), defined precisely.

All functions take token arrays of :mod:`seedlock.core.music_events` shaped
``(W, T)`` (W windows of T events) or logits ``(W, T, V)``.

Values compared (one number per event):

- pitch: the MIDI number; a rest takes the pitch of the previous note of the
  same sequence (the contour stays where the melody was), a leading rest the
  first note's; a sequence of rests only is all 0.
- duration: the length in quarter notes.

Measures, each per attribute (pitch, duration):

- **top-1 error**: fraction of positions where the argmax of the
  teacher-forced next-event logits differs from the true token.
- **total error**: ``sum_t |g_t - y_t|`` over a window's T events, averaged
  over windows (semitones for pitch, quarter lengths for duration).
- **cosine similarity**: ``g.y / (|g||y|)`` of the raw (uncentred) value
  vectors of a window, averaged over windows (1.0 when both are all zero,
  0.0 when only one is).
- **Pearson correlation**: the correlation of g and y within a window,
  averaged over windows; a window where either sequence is constant counts
  as 0 (no linear relation can be measured).
- **numerical analysis**: mean and standard deviation of all generated values
  pooled, next to the same for the true values.
"""

from __future__ import annotations

import numpy as np

from seedlock.core import music_events as me

_MIDI = np.array([0.0] + [float(me.PITCH_LOW + i) for i in range(me.NUM_PITCHES - 1)])
_QL = np.array(me.DURATIONS, dtype=np.float64)


def pitch_values(tokens: np.ndarray) -> np.ndarray:
    """MIDI numbers (float64) of pitch tokens ``(W, T)``, rests carried from the neighbouring note."""
    tok = np.atleast_2d(np.asarray(tokens, dtype=np.int64))
    out = _MIDI[tok].copy()
    for row_tok, row in zip(tok, out):
        notes = np.flatnonzero(row_tok != me.REST)
        if len(notes) == 0:
            row[:] = 0.0
            continue
        last = row[notes[0]]
        for t in range(len(row)):
            if row_tok[t] == me.REST:
                row[t] = last
            else:
                last = row[t]
    return out


def duration_values(tokens: np.ndarray) -> np.ndarray:
    """Quarter lengths (float64) of duration tokens."""
    return _QL[np.atleast_2d(np.asarray(tokens, dtype=np.int64))]


def top1_error(logits: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of positions whose argmax logit is not the target token."""
    pred = np.asarray(logits).argmax(axis=-1)
    return float(np.mean(pred != np.asarray(targets)))


def total_error(generated: np.ndarray, true: np.ndarray) -> float:
    """Mean over windows of the summed absolute difference along the sequence."""
    g, y = np.atleast_2d(generated).astype(np.float64), np.atleast_2d(true).astype(np.float64)
    return float(np.abs(g - y).sum(axis=1).mean())


def cosine_similarity(generated: np.ndarray, true: np.ndarray) -> float:
    g, y = np.atleast_2d(generated).astype(np.float64), np.atleast_2d(true).astype(np.float64)
    ng, ny = np.linalg.norm(g, axis=1), np.linalg.norm(y, axis=1)
    dot = (g * y).sum(axis=1)
    both_zero = (ng == 0) & (ny == 0)
    denom = np.where(ng * ny > 0, ng * ny, 1.0)
    cos = np.where(ng * ny > 0, dot / denom, np.where(both_zero, 1.0, 0.0))
    return float(cos.mean())


def pearson(generated: np.ndarray, true: np.ndarray) -> float:
    g, y = np.atleast_2d(generated).astype(np.float64), np.atleast_2d(true).astype(np.float64)
    gc, yc = g - g.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    sg, sy = np.sqrt((gc**2).sum(axis=1)), np.sqrt((yc**2).sum(axis=1))
    ok = (sg > 1e-12) & (sy > 1e-12)
    r = np.where(ok, (gc * yc).sum(axis=1) / np.where(ok, sg * sy, 1.0), 0.0)
    return float(r.mean())


def describe(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64).ravel()
    return {"mean": float(v.mean()) if v.size else 0.0, "std": float(v.std()) if v.size else 0.0}


def compare_sequences(generated: np.ndarray, true: np.ndarray) -> dict[str, dict[str, float]]:
    """All value measures for event arrays ``(W, T, 2)``: {'pitch': {...}, 'duration': {...}}."""
    g, y = np.asarray(generated), np.asarray(true)
    if g.shape != y.shape or g.ndim != 3 or g.shape[-1] != 2:
        raise ValueError(f"expected two (W, T, 2) event arrays of one shape, got {g.shape} and {y.shape}")
    out: dict[str, dict[str, float]] = {}
    for name, col, conv in (("pitch", 0, pitch_values), ("duration", 1, duration_values)):
        gv, yv = conv(g[..., col]), conv(y[..., col])
        gs, ys = describe(gv), describe(yv)
        out[name] = {
            "total_error": total_error(gv, yv),
            "cosine": cosine_similarity(gv, yv),
            "pearson": pearson(gv, yv),
            "generated_mean": gs["mean"],
            "generated_std": gs["std"],
            "true_mean": ys["mean"],
            "true_std": ys["std"],
        }
    return out
