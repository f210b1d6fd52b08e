"""The four similarity measures of thesis 3.6 between two sets of grey images.

numpy only; shared by the training-side report and the server's Compare.
Inputs are uint8 stacks ``(N, H, W)`` and ``(M, H, W)`` of one size (grey
levels 0-255, fingerprints dark on light). Every pairwise measure is taken
over all ``N x M`` pairs, as in the thesis (a set compared with itself
includes its ``N`` self-pairs).

1. **Mean and standard deviation of each image** (of its grey levels): the
   per-image values (:func:`image_stats`, for the scatter plot of thesis
   Figure 34) and, per set, their averages and spread.
2. **Mean Hamming distance**: the number of pixels at which two binarized
   images differ, averaged over all pairs (reported in pixels, and as a
   fraction of the image's pixels).
3. **Pearson correlation of grey-level histograms**: one 256-bin histogram
   per image; the correlation of the two histograms of every pair, mean ± std.
4. **Intersection over union** of the ink pixels of two binarized images,
   mean ± std over all pairs (two blank images count as IoU 1).

Binarization rule (2 and 4): a pixel is *ink* (1) when its grey level is
below a fixed threshold, 128 by default (``ink = grey < 128``); otherwise it
is background (0). A fixed threshold rather than a per-image one (Otsu) so
that a faint, whitened print stays faint after binarization: that loss of ink
is what distinguishes the thesis's poor-quality prints.

Readings of the thesis's printed figures (``with_readings=True`` in
:func:`pairwise` and :func:`compare_sets`; thesis 3.6 defines its measures
only in words, and its IoU of about 0.5 between two different prints is far
above what ink-only IoU gives). With ``I`` the ink intersection, ``U`` the
ink union, ``H = U - I`` the Hamming distance and ``P`` the pixels of a pair:

* ``iou_background``: IoU of the background pixels, ``(P - U) / (P - I)``
  (1 when both images are all ink);
* ``iou_with_background``: the mean of the ink and background IoUs, the
  two-class mean IoU by which segmentation is scored (the thesis cites a
  segmentation evaluation for its IoU);
* ``iou_pooled``: both classes pooled, ``(P - H) / (P + H)`` (intersections
  of both classes over unions of both classes); a function of ``H`` alone;
* ``hamming_over_union``: ``H / U``, the Hamming distance normalised by the
  ink union (0 for two blank images); equal to ``1 - IoU``.

Vectorized: with binary matrices ``A (N, P)`` and ``B (M, P)``, one matrix
product gives every pair's intersection ``A @ B.T``; Hamming distance is
``|a| + |b| - 2 |a & b|`` and IoU ``|a & b| / (|a| + |b| - |a & b|)``.
Histogram correlations are a product of row-standardized histogram
matrices. Work is done in row blocks so memory stays bounded for large sets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BINARIZE_THRESHOLD = 128
HISTOGRAM_BINS = 256
BINARIZATION_RULE = "ink = grey < {threshold} (fixed threshold on 0-255 grey levels, no per-image adaptation)"
_BLOCK = 1024  # rows of A per block: bounds the (block, M) temporaries


def _check(images: np.ndarray, name: str) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 grey images, got {images.dtype}")
    if images.ndim != 3 or images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise ValueError(f"{name}: expected a non-empty (N, H, W) stack of grey images, got shape {images.shape}")
    return images


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _check(a, "set A"), _check(b, "set B")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"the two sets have different image sizes ({a.shape[2]}x{a.shape[1]} vs {b.shape[2]}x{b.shape[1]}); "
            "resize them to one size first"
        )
    return a, b


def binarize(images: np.ndarray, threshold: int = BINARIZE_THRESHOLD) -> np.ndarray:
    """Boolean ink map, same shape: ``images < threshold``."""
    return np.asarray(images) < threshold


def image_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image mean and (population) standard deviation of grey levels, float64 ``(N,)`` each."""
    x = _check(images, "images").reshape(len(images), -1).astype(np.float64)
    return x.mean(axis=1), x.std(axis=1)


def histograms(images: np.ndarray, bins: int = HISTOGRAM_BINS) -> np.ndarray:
    """Grey-level histograms, int64 ``(N, bins)``; bin of grey ``v`` is ``v * bins // 256``."""
    images = _check(images, "images")
    if not 1 <= bins <= 256:
        raise ValueError(f"bins must be in 1..256, got {bins}")
    n = len(images)
    flat = images.reshape(n, -1).astype(np.int64)
    if bins != 256:
        flat = flat * bins // 256
    idx = flat + bins * np.arange(n, dtype=np.int64)[:, None]  # one offset range per image: one bincount
    return np.bincount(idx.ravel(), minlength=n * bins).reshape(n, bins)


def _standardized(h: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm, so a row product is a Pearson correlation.
    A flat histogram (zero variance) becomes a zero row: its correlations read 0."""
    c = h.astype(np.float64) - h.mean(axis=1, keepdims=True)
    norm = np.sqrt((c * c).sum(axis=1, keepdims=True))
    return np.divide(c, norm, out=np.zeros_like(c), where=norm > 0)


def _binary_matrix(images: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Ink as a float32 0/1 matrix ``(N, P)`` and each row's ink count (float64)."""
    ink = binarize(images, threshold).reshape(len(images), -1)
    # float32 products of 0/1 rows are exact integers while P < 2**24 (any order of summation)
    dtype = np.float32 if ink.shape[1] < (1 << 24) else np.float64
    m = ink.astype(dtype)
    return m, ink.sum(axis=1).astype(np.float64)


READINGS = ("iou_with_background", "iou_background", "iou_pooled", "hamming_over_union")


def readings(inter: np.ndarray, union: np.ndarray, pixels: int) -> dict[str, np.ndarray]:
    """The thesis readings (module docstring) from a pair matrix of ink intersections and unions."""
    hamming = union - inter
    iou = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
    bg_inter, bg_union = pixels - union, pixels - inter
    iou_bg = np.divide(bg_inter, bg_union, out=np.ones_like(inter), where=bg_union > 0)
    return {
        "iou_with_background": (iou + iou_bg) / 2.0,
        "iou_background": iou_bg,
        "iou_pooled": (pixels - hamming) / (pixels + hamming),
        "hamming_over_union": np.divide(hamming, union, out=np.zeros_like(inter), where=union > 0),
    }


def pairwise(
    a: np.ndarray, b: np.ndarray, threshold: int = BINARIZE_THRESHOLD, bins: int = HISTOGRAM_BINS, with_readings: bool = False
) -> dict[str, np.ndarray]:
    """Full ``(N, M)`` matrices of Hamming distance (pixels), IoU and histogram Pearson correlation
    (plus the thesis readings of :data:`READINGS` with ``with_readings``).

    For small sets and for inspection; :func:`compare_sets` reduces the same
    quantities block by block without holding every matrix."""
    a, b = _check_pair(a, b)
    ma, sa = _binary_matrix(a, threshold)
    mb, sb = _binary_matrix(b, threshold)
    inter = (ma @ mb.T).astype(np.float64)
    union = sa[:, None] + sb[None, :] - inter
    hamming = union - inter
    iou = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
    pearson = _standardized(histograms(a, bins)) @ _standardized(histograms(b, bins)).T
    out = {"hamming": hamming, "iou": iou, "pearson": np.clip(pearson, -1.0, 1.0)}
    if with_readings:
        out.update(readings(inter, union, int(a.shape[1] * a.shape[2])))
    return out


class _Moments:
    """Running count, sum and sum of squares (float64) for mean and population std."""

    def __init__(self) -> None:
        self.n, self.s, self.ss = 0, 0.0, 0.0

    def add(self, x: np.ndarray) -> None:
        self.n += x.size
        self.s += float(x.sum())
        self.ss += float((x * x).sum())

    def mean_std(self) -> tuple[float, float]:
        mean = self.s / self.n
        return mean, float(np.sqrt(max(self.ss / self.n - mean * mean, 0.0)))


def _set_summary(means: np.ndarray, stds: np.ndarray) -> dict[str, float]:
    return {
        "mean_of_means": float(means.mean()),
        "std_of_means": float(means.std()),
        "mean_of_stds": float(stds.mean()),
        "std_of_stds": float(stds.std()),
    }


def compare_sets(
    a: np.ndarray,
    b: np.ndarray,
    threshold: int = BINARIZE_THRESHOLD,
    bins: int = HISTOGRAM_BINS,
    block: int = _BLOCK,
    with_readings: bool = False,
) -> dict[str, Any]:
    """The four measures between sets ``a`` and ``b`` over all pairs, as a JSON-ready dict::

        {"n_a", "n_b", "pairs", "image_shape", "pixels", "binarization",
         "mean_std": {"a": {...}, "b": {...}, "centroid_distance"},
         "hamming": {"mean", "std", "mean_fraction"},
         "pearson": {"mean", "std"},
         "iou": {"mean", "std"}}

    With ``with_readings``, also ``"readings": {name: {"mean", "std"}}`` for
    each thesis reading of :data:`READINGS` (module docstring).

    ``centroid_distance`` is the distance between the sets' average
    (mean, std) points, a one-number summary of the Figure 34 scatter.
    """
    a, b = _check_pair(a, b)
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    pixels = int(a.shape[1] * a.shape[2])
    mb, sb = _binary_matrix(b, threshold)
    zb = _standardized(histograms(b, bins))
    ham, iou, pear = _Moments(), _Moments(), _Moments()
    extra = {name: _Moments() for name in READINGS} if with_readings else {}
    for start in range(0, len(a), block):
        chunk = a[start : start + block]
        ma, sa = _binary_matrix(chunk, threshold)
        inter = (ma @ mb.T).astype(np.float64)
        union = sa[:, None] + sb[None, :] - inter
        ham.add(union - inter)
        iou.add(np.divide(inter, union, out=np.ones_like(inter), where=union > 0))
        pear.add(np.clip(_standardized(histograms(chunk, bins)) @ zb.T, -1.0, 1.0))
        if extra:
            for name, values in readings(inter, union, pixels).items():
                extra[name].add(values)
    mean_a, std_a = image_stats(a)
    mean_b, std_b = image_stats(b)
    sum_a, sum_b = _set_summary(mean_a, std_a), _set_summary(mean_b, std_b)
    centroid = float(np.hypot(sum_a["mean_of_means"] - sum_b["mean_of_means"], sum_a["mean_of_stds"] - sum_b["mean_of_stds"]))
    h_mean, h_std = ham.mean_std()
    p_mean, p_std = pear.mean_std()
    i_mean, i_std = iou.mean_std()
    result: dict[str, Any] = {
        "n_a": int(len(a)),
        "n_b": int(len(b)),
        "pairs": int(len(a)) * int(len(b)),
        "image_shape": [int(a.shape[1]), int(a.shape[2])],
        "pixels": pixels,
        "binarization": BINARIZATION_RULE.format(threshold=threshold),
        "histogram_bins": int(bins),
        "mean_std": {"a": sum_a, "b": sum_b, "centroid_distance": centroid},
        "hamming": {"mean": h_mean, "std": h_std, "mean_fraction": h_mean / pixels},
        "pearson": {"mean": p_mean, "std": p_std},
        "iou": {"mean": i_mean, "std": i_std},
    }
    if extra:
        result["readings"] = {name: dict(zip(("mean", "std"), m.mean_std())) for name, m in extra.items()}
    return result


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A plain-text table, one column per comparison (e.g. ``{"I-I": r, "I-II": r}``), rows as in thesis Table 18."""
    names = list(results)
    width = max(12, *(len(n) + 2 for n in names))
    rows = [
        ("Mean Hamming distance (px)", lambda r: f"{r['hamming']['mean']:.2f}"),
        ("  as a fraction of pixels", lambda r: f"{r['hamming']['mean_fraction']:.4f}"),
        ("Pearson corr. of histogram", lambda r: f"{r['pearson']['mean']:.3f} ± {r['pearson']['std']:.3f}"),
        ("Intersection over union", lambda r: f"{r['iou']['mean']:.3f} ± {r['iou']['std']:.3f}"),
        ("Image mean (A / B)", lambda r: f"{r['mean_std']['a']['mean_of_means']:.1f} / {r['mean_std']['b']['mean_of_means']:.1f}"),
        ("Image std (A / B)", lambda r: f"{r['mean_std']['a']['mean_of_stds']:.1f} / {r['mean_std']['b']['mean_of_stds']:.1f}"),
        ("Pairs", lambda r: f"{r['pairs']}"),
    ]
    label_w = max(len(label) for label, _ in rows) + 2
    width = max(width, *(len(fmt(results[n])) + 2 for _, fmt in rows for n in names))
    lines = [" " * label_w + "".join(f"{n:>{width}}" for n in names)]
    for label, fmt in rows:
        lines.append(f"{label:<{label_w}}" + "".join(f"{fmt(results[n]):>{width}}" for n in names))
    return "\n".join(lines)
