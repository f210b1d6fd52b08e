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


def element_counts(prob: np.ndarray, target: np.ndarray, threshold: float = 0.5, ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """``[tp, fp, fn, tn]`` (int64) over the (pixel, class) elements of a batch.

    ``prob`` is ``(N, C, H, W)`` class probabilities, ``target`` ``(N, H, W)``
    class indices. The truth of element ``(pixel, c)`` is ``target == c`` (the
    one-hot), its prediction ``prob > threshold`` (strictly, as Keras
    thresholds). Pixels whose target is ``ignore_index`` are skipped.
    """
    prob = np.asarray(prob)
    target = np.asarray(target)
    if prob.ndim != 4 or target.shape != (prob.shape[0], *prob.shape[2:]):
        raise ValueError(f"expected prob (N, C, H, W) and target (N, H, W); got {prob.shape}, {target.shape}")
    c = prob.shape[1]
    t = target.astype(np.int64)
    valid = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
    tv = t[valid]
    if tv.size and (tv.min() < 0 or tv.max() >= c):
        raise ValueError(f"target holds a class outside [0, {c})")
    pred = np.moveaxis(prob, 1, -1)[valid] > threshold  # (pixels, C)
    truth = tv[:, None] == np.arange(c)[None, :]
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    tn = int(pred.size - tp - fp - fn)
    return np.array([tp, fp, fn, tn], dtype=np.int64)


def element_counts_from_confusion(cm: np.ndarray) -> np.ndarray:
    """``[tp, fp, fn, tn]`` over (pixel, class) elements when the prediction is the
    argmax one-hot (exactly one predicted class per pixel), from ``cm[truth, pred]``.

    Every wrong pixel is one false positive and one false negative, so
    precision = recall = pixel accuracy: the pattern of the thesis's Tables 6-16.
    """
    cm = np.asarray(cm, dtype=np.int64)
    n = cm.shape[0]
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix must be square, got {cm.shape}")
    pixels, tp = int(cm.sum()), int(np.trace(cm))
    wrong = pixels - tp
    return np.array([tp, wrong, wrong, pixels * n - tp - 2 * wrong], dtype=np.int64)


def element_scores(counts: np.ndarray) -> dict[str, float | None]:
    """Scores of :func:`element_counts` (summed over batches): ``precision``,
    ``recall`` and ``f1`` of the positives, ``iou_positive``, ``iou_negative``
    and their mean ``iou`` (Keras ``MeanIoU(num_classes=2)``). As in Keras,
    precision with no positive prediction is 0 (a real miss), and ``iou``
    averages the IoUs whose denominator is not empty. Everything is ``None``
    when there are no elements.
    """
    tp, fp, fn, tn = (int(v) for v in np.asarray(counts, dtype=np.int64).reshape(4))
    if tp + fp + fn + tn == 0:
        return dict.fromkeys(("precision", "recall", "f1", "iou_positive", "iou_negative", "iou"))

    def ratio(num: int, den: int) -> float | None:
        return num / den if den > 0 else None

    def no_nan(num: int, den: int) -> float:
        return num / den if den > 0 else 0.0

    pos, neg = ratio(tp, tp + fp + fn), ratio(tn, tn + fp + fn)
    ious = [v for v in (pos, neg) if v is not None]
    return {
        "precision": no_nan(tp, tp + fp),
        "recall": no_nan(tp, tp + fn),
        "f1": no_nan(2 * tp, 2 * tp + fp + fn),
        "iou_positive": pos,
        "iou_negative": neg,
        "iou": sum(ious) / len(ious) if ious else None,
    }
