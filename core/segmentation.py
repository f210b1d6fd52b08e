"""Segmentation pre/post-processing as one pair of functions, used by the
export checks, the demo, the server and the training-side predictor alike.

    image (H, W, 3) uint8 --letterbox(size)--> normalize(mean, std) --> model
    logits (1, K, S, S) --argmax (first max wins)--> mask (S, S) --unletterbox--> (H, W)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from seedlock.core.imaging import Letterbox, letterbox, normalize, unletterbox_mask


def preprocess(image: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, Letterbox]:
    """RGB uint8 image of any size -> (float32 1x3xSxS model input, how to undo the letterbox)."""
    square, box = letterbox(image, int(params["size"]))
    return normalize(square, params["mean"], params["std"]), box


def postprocess(logits: np.ndarray, box: Letterbox) -> np.ndarray:
    """(1, K, S, S) logits -> uint8 (H, W) class mask at the original size."""
    if logits.ndim != 4 or logits.shape[0] != 1:
        raise ValueError(f"expected logits of shape (1, K, S, S), got {logits.shape}")
    mask = np.argmax(logits[0], axis=0).astype(np.uint8)
    return unletterbox_mask(mask, box)


def segment(image: np.ndarray, params: dict[str, Any], run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Mask for one image, given ``run(x) -> logits`` (an ONNX Runtime session, a torch model…)."""
    x, box = preprocess(image, params)
    return postprocess(run(x), box)


def class_counts(mask: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(mask.ravel(), minlength=num_classes)[:num_classes].astype(int).tolist()
