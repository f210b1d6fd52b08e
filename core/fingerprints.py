"""Fake-fingerprint generation: what training, export checks and the server share.

numpy only. The server turns a ``Generate(count, quality, seed)`` request into
PNGs with exactly these functions, reading their parameters from the manifest:

1. ``z = latents(seed, count, latent_dim)`` — float32 ``(count, latent_dim)``,
   standard normals from ``SeedStream(seed, LATENT_STREAM)``. The same
   ``(seed, count)`` always gives the same latents; a different ``count``
   gives a different batch (the normals are drawn for the whole batch at once).
2. Run the ``model`` graph: ``image = model(latent=z)``, float32
   ``(count, G, S, S)`` in ``[-1, 1]``. Axis 1 is the *generator axis*: an
   all-quality model has one generator (``G = 1``); a per-quality model (the
   thesis trains one DCGAN per quality) has one per quality, in the order of
   ``postprocess["generators"]``.
3. ``to_uint8(select_generator(image, generator_index(postprocess, quality)))``
   -> uint8 ``(count, S, S)`` grey images (dark ridges on white), one PNG each.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from seedlock.core.rng import SeedStream

# Quality levels of thesis 3.6 (there is no Q4 in the thesis).
QUALITIES = ("Q1", "Q2", "Q3", "Q5")
QUALITY_DESCRIPTIONS = {
    "Q1": "clean: full print, good contrast, no cracks",
    "Q2": "cracks and a whitened outline",
    "Q3": "partial whitening from poor pressure, with cracks",
    "Q5": "only part of the print captured: mostly blank",
}
ALL = "all"  # the generator name of a model trained on all qualities together
LATENT_STREAM = 0  # SeedStream stream id for request latents
DEFAULT_MAX_COUNT = 64  # images per Generate request unless the manifest says otherwise
OUTPUT_RANGE = (-1.0, 1.0)  # generator output (tanh)
TO_UINT8_RULE = "uint8 = floor((clip(x, -1, 1) + 1) * 127.5 + 0.5), computed in float32"


def latents(seed: int, count: int, dim: int) -> np.ndarray:
    """Generator latents for a request: float32 ``(count, dim)`` standard normals,
    ``SeedStream(seed, LATENT_STREAM).normal((count, dim)).astype(float32)``."""
    if count < 0 or dim < 1:
        raise ValueError(f"need count >= 0 and dim >= 1, got count={count}, dim={dim}")
    if count == 0:
        return np.zeros((0, dim), dtype=np.float32)
    return SeedStream(int(seed), LATENT_STREAM).normal((count, dim)).astype(np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] (any shape) -> uint8 grey levels, same shape.

    Float32 arithmetic with round-half-up, written out rather than left to
    ``np.rint`` so every consumer rounds identically (see ``TO_UINT8_RULE``)."""
    x = np.clip(np.asarray(images, dtype=np.float32), np.float32(-1.0), np.float32(1.0))
    y = np.floor((x + np.float32(1.0)) * np.float32(127.5) + np.float32(0.5))
    return np.clip(y, 0, 255).astype(np.uint8)


def from_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 grey images -> float32 in [-1, 1] (training input; inverse of :func:`to_uint8` up to rounding)."""
    return np.asarray(images, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)


def generator_index(postprocess: dict[str, Any], quality: str | None) -> int:
    """Which slice of the generator axis answers a request for ``quality``.

    A per-quality model needs one of its qualities; an all-quality model
    ignores ``quality`` (``None``, ``""`` or ``"all"`` read as "any").
    Raises ``ValueError`` with a message the caller can show to the user."""
    generators = list(postprocess.get("generators") or [ALL])
    if generators == [ALL]:
        return 0
    if not quality or quality == ALL:
        raise ValueError(f"this model has one generator per quality; choose a quality: {', '.join(generators)}")
    if quality not in generators:
        raise ValueError(f"unknown quality {quality!r}; this model generates {', '.join(generators)}")
    return generators.index(quality)


def select_generator(images: np.ndarray, index: int) -> np.ndarray:
    """``(N, G, S, S)`` generator output -> ``(N, S, S)`` slice ``index`` of the generator axis."""
    if images.ndim != 4:
        raise ValueError(f"expected generator output (N, G, S, S), got shape {images.shape}")
    if not 0 <= index < images.shape[1]:
        raise ValueError(f"generator index {index} out of range for {images.shape[1]} generators")
    return np.ascontiguousarray(images[:, index])


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W)``, ``(H, W, 1)`` or RGB ``(H, W, 3)`` -> uint8 ``(H, W)``.

    Integer ITU-R BT.601 weights (299, 587, 114)/1000 with round-half-up, so a
    grey image decoded to RGB comes back unchanged."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.ascontiguousarray(img)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"expected a grey (H, W) or RGB (H, W, 3) image, got shape {img.shape}")
    rgb = img[:, :, :3].astype(np.uint32)
    gray = (299 * rgb[:, :, 0] + 587 * rgb[:, :, 1] + 114 * rgb[:, :, 2] + 500) // 1000
    return gray.astype(np.uint8)


def stack_gray(images: Sequence[np.ndarray]) -> np.ndarray:
    """A list of same-size grey or RGB uint8 images -> uint8 ``(N, H, W)``.

    Raises ``ValueError`` naming the sizes when they differ (the similarity
    measures compare pixel by pixel)."""
    grays = [to_gray(im) for im in images]
    if not grays:
        raise ValueError("no images")
    sizes = sorted({g.shape for g in grays})
    if len(sizes) > 1:
        listed = ", ".join(f"{w}x{h}" for h, w in sizes[:4])
        raise ValueError(f"images must all have one size to be compared; got {listed}")
    return np.stack(grays)


def tile(images: np.ndarray, cols: int | None = None, pad: int = 2, fill: int = 255) -> np.ndarray:
    """uint8 ``(N, H, W)`` -> one grid image (row-major), ``pad`` pixels of ``fill`` between tiles."""
    images = np.asarray(images)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"expected a non-empty (N, H, W) stack, got shape {images.shape}")
    n, h, w = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = (n + cols - 1) // cols
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), fill, dtype=images.dtype)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = im
    return grid
