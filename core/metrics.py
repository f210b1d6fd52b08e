"""Segmentation metrics from a confusion matrix (numpy only).

Training, export checks and benchmarks report the same numbers, so they are
computed here once.

Conventions
-----------
* The confusion matrix is ``cm[truth, prediction]`` (rows: ground truth,
  columns: prediction), ``int64``. Pixels whose *target* is ``ignore_index``
  (255, the VOC "void" border) are dropped before counting.
* Per class ``c`` with ``tp, fp, fn`` from the matrix::

      iou       = tp / (tp + fp + fn)
      precision = tp / (tp + fp)
      recall    = tp / (tp + fn)
      f1        = 2 tp / (2 tp + fp + fn)      (= Dice / DSC for a class mask)

* A class absent from both prediction and target (``tp + fp + fn == 0``) has
  no score at all: every metric is NaN internally and ``None`` (JSON null) in
  the returned dict, and it is left out of every mean. A class present on one
  side only scores 0 where its denominator is empty (never predicted ->
  precision 0; predicted but absent from the truth -> recall 0), because that
  is a real mistake, not a lack of evidence.
* Background is class 0. Following the thesis (4.4: "background images
  excluded during the evaluation") the headline ``mean_*`` values average
  classes ``1..C-1``; ``mean_*_with_background`` average all classes.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

IGNORE_INDEX = 255
BACKGROUND = 0
METRICS = ("iou", "precision", "recall", "f1")


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> np.ndarray:
    """``cm[truth, pred]`` counts for integer arrays of the same shape.

    Target pixels equal to ``ignore_index`` are skipped. Any other value
    outside ``[0, num_classes)`` in either array is an error (it means the
    model and the data disagree on the class count).
    """
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    p = pred.reshape(-1).astype(np.int64)
    t = target.reshape(-1).astype(np.int64)
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    for name, arr in (("target", t), ("pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            bad = int(arr.max() if arr.max() >= num_classes else arr.min())
            raise ValueError(f"{name} holds class {bad}, outside [0, {num_classes})")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class iou/precision/recall/f1 as float64 arrays (NaN: class absent from both)."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp  # predicted c, truth something else
    fn = cm.sum(axis=1) - tp  # truth c, predicted something else
    absent = (tp + fp + fn) == 0

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        out = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        out[absent] = np.nan
        return out

    return {
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def _mean(values: np.ndarray) -> float | None:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else None


def _plain(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values]


def scores_from_confusion(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """All metrics of one confusion matrix as a JSON-ready dict.

    Keys: ``num_classes``, ``pixels``, ``pixel_accuracy``, ``per_class``
    (``{metric: [value or None per class]}``), ``mean_<metric>`` (classes
    1..C-1, background excluded) and ``mean_<metric>_with_background`` (all
    classes), ``class_names`` when given. Means are ``None`` when no class
    has a score. Values are plain Python floats, so ``json.dumps(...,
    allow_nan=False)`` accepts the dict.
    """
    cm = np.asarray(cm, dtype=np.int64)
    n = cm.shape[0]
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix must be square, got {cm.shape}")
    if class_names is not None and len(class_names) != n:
        raise ValueError(f"{len(class_names)} class names for {n} classes")
    scores = per_class_scores(cm)
    total = int(cm.sum())
    out: dict[str, Any] = {
        "num_classes": n,
        "pixels": total,
        "pixel_accuracy": float(np.trace(cm) / total) if total else None,
        "per_class": {k: _plain(v) for k, v in scores.items()},
    }
    for k, v in scores.items():
        out[f"mean_{k}"] = _mean(v[BACKGROUND + 1 :])
        out[f"mean_{k}_with_background"] = _mean(v)
    if class_names is not None:
        out["class_names"] = [str(c) for c in class_names]
    return out


def segmentation_scores(
    pred: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    ignore_index: int | None = IGNORE_INDEX,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Convenience: :func:`confusion_matrix` then :func:`scores_from_confusion`."""
    return scores_from_confusion(confusion_matrix(pred, target, num_classes, ignore_index), class_names)
