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

:class:`FingerprintSpec` is the task's manifest contract: the exporter writes
``FingerprintSpec.to_manifest()``, the server and ``export verify`` read it
back with ``FingerprintSpec.from_manifest`` and run steps 1-3 through its
methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from seedlock.core.manifest import Manifest, ManifestError
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


_GRAY_BAND_PIXELS = 1 << 18  # to_gray's working band: ~4 MiB of uint32 temporaries


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
    # A band of rows at a time: the uint32 arithmetic needs ~16 bytes a pixel,
    # which for a whole large image would be many times the image itself.
    h, w = img.shape[:2]
    gray = np.empty((h, w), dtype=np.uint8)
    step = max(1, _GRAY_BAND_PIXELS // max(w, 1))
    for y in range(0, h, step):
        rgb = img[y : y + step, :, :3].astype(np.uint32)
        gray[y : y + step] = (299 * rgb[:, :, 0] + 587 * rgb[:, :, 1] + 114 * rgb[:, :, 2] + 500) // 1000
    return gray


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


# --------------------------------------------------------------------------- the manifest spec

LATENT_RULE = (
    "z = seedlock.core.fingerprints.latents(seed, count, latent_dim) = "
    f"SeedStream(seed, {LATENT_STREAM}).normal((count, latent_dim)).astype(float32); "
    "the same (seed, count) gives the same latents"
)
POSTPROCESS_STEPS = (
    "g = seedlock.core.fingerprints.generator_index(postprocess, quality)  # 0 unless per_quality",
    "gray = seedlock.core.fingerprints.to_uint8(select_generator(image, g))  # uint8 (count, S, S)",
    "one single-channel PNG per image: seedlock.core.imaging.encode_png(gray[i])",
)
ENCODING = "png, 8-bit grey, dark ridges on a light background"


@dataclass(frozen=True)
class FingerprintSpec:
    """What a fingerprint-generation model version promises: latents of
    ``latent_dim`` drawn by :func:`latents`, one ``model`` graph ``latent (N, Z)
    -> image (N, G, S, S)`` in [-1, 1] whose axis 1 is ``generators`` (the
    manifest's labels), the qualities it was trained on, and how many images
    one request may ask for."""

    TASK: ClassVar[str] = "fingerprint-generation"

    latent_dim: int
    image_size: int
    generators: tuple[str, ...]  # (ALL,) or one quality per generator
    qualities: tuple[str, ...]  # what the training data held, in order
    max_count: int = DEFAULT_MAX_COUNT
    input_name: str = "latent"
    output_name: str = "image"

    def __post_init__(self) -> None:
        if self.latent_dim < 1 or self.image_size < 1 or self.max_count < 1:
            raise ValueError(
                f"latent_dim, image_size and max_count must be positive, got {self.latent_dim}, {self.image_size}, {self.max_count}"
            )
        gens = list(self.generators)
        if not gens or len(set(gens)) != len(gens) or (ALL in gens and len(gens) > 1):
            raise ValueError(f"bad generator names {gens}: either [{ALL!r}] or distinct quality names")
        if self.per_quality and not set(gens) <= set(self.qualities):
            raise ValueError(f"generators {gens} are not all among the trained qualities {list(self.qualities)}")

    @property
    def per_quality(self) -> bool:
        return list(self.generators) != [ALL]

    # -- the manifest -------------------------------------------------------
    def to_manifest(self) -> dict[str, Any]:
        return {
            "preprocess": {
                "latent_dim": self.latent_dim,
                "latent_distribution": "normal",
                "latent_stream": LATENT_STREAM,
                "latent_rule": LATENT_RULE,
                "max_count": self.max_count,
            },
            "postprocess": {
                "range": list(OUTPUT_RANGE),
                "image_size": self.image_size,
                "generator_axis": 1,
                "generators": list(self.generators),
                "per_quality": self.per_quality,
                "qualities": list(self.qualities),
                "quality_descriptions": {q: QUALITY_DESCRIPTIONS[q] for q in self.qualities if q in QUALITY_DESCRIPTIONS},
                "to_uint8": TO_UINT8_RULE,
                "steps": list(POSTPROCESS_STEPS),
                "encoding": ENCODING,
            },
            "labels": list(self.generators),
        }

    @classmethod
    def from_manifest(cls, m: Manifest) -> "FingerprintSpec":
        """The spec of a manifest, or a :class:`ManifestError` naming what the
        server could not serve. The prose keys (``latent_rule``, ``steps``, …)
        document the contract for readers; the keys checked here define it."""
        where = f"fingerprint model {m.name!r} v{m.version}"
        graph = m.graphs.get("model")
        if graph is None or len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise ManifestError(f"{where}: needs a 'model' graph with one latent input and one image output")
        inp, out = graph.inputs[0], graph.outputs[0]
        pre, post = m.preprocess, m.postprocess
        try:
            zdim = int(pre["latent_dim"])
            size = int(post["image_size"])
            max_count = int(pre.get("max_count", DEFAULT_MAX_COUNT))
            generators = tuple(str(g) for g in (post.get("generators") or [ALL]))
            qualities = tuple(str(q) for q in (post.get("qualities") or ([] if generators == (ALL,) else generators)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: preprocess needs latent_dim and postprocess image_size ({exc!r})") from None
        if pre.get("latent_distribution", "normal") != "normal":
            raise ManifestError(f"{where}: latent_distribution {pre.get('latent_distribution')!r} is not supported (normal only)")
        if pre.get("latent_stream", LATENT_STREAM) != LATENT_STREAM:
            raise ManifestError(f"{where}: latent_stream {pre.get('latent_stream')!r} is not supported ({LATENT_STREAM} only)")
        if int(post.get("generator_axis", 1)) != 1:
            raise ManifestError(f"{where}: generator_axis must be 1")
        if list(post.get("range", list(OUTPUT_RANGE))) != list(OUTPUT_RANGE):
            raise ManifestError(f"{where}: output range {post.get('range')} is not supported ([-1, 1] only)")
        try:
            spec = cls(zdim, size, generators, qualities, max_count, inp.name, out.name)
        except ValueError as exc:
            raise ManifestError(f"{where}: {exc}") from None
        if "per_quality" in post and bool(post["per_quality"]) != spec.per_quality:
            raise ManifestError(f"{where}: per_quality {post['per_quality']!r} contradicts generators {list(generators)}")
        if m.labels and list(m.labels) != list(generators):
            raise ManifestError(f"{where}: labels {list(m.labels)} must name the generators {list(generators)}")
        if inp.dtype != "float32" or list(inp.shape) != [-1, zdim]:
            raise ManifestError(f"{where}: input {inp.name!r} must be float32 (-1, {zdim}), is {inp.dtype} {inp.shape}")
        want = [len(generators), size, size]
        if out.dtype != "float32" or len(out.shape) != 4 or [d if d != -1 else w for d, w in zip(out.shape[1:], want)] != want:
            raise ManifestError(f"{where}: output {out.name!r} must be float32 (N, {', '.join(map(str, want))}), is {out.dtype} {out.shape}")
        return spec

    # -- request checks -----------------------------------------------------
    def check_count(self, count: int) -> None:
        if not 1 <= count <= self.max_count:
            raise ValueError(f"count must be 1 to {self.max_count} images per request for this model, got {count}")

    def quality_index(self, quality: str) -> tuple[int, str]:
        """The generator slice for ``quality`` and the quality to report.
        Raises ``ValueError`` with a message for the caller."""
        if not self.per_quality:
            if quality and quality != ALL:
                raise ValueError(
                    f"this model is one DCGAN trained on all qualities together and cannot generate {quality!r} alone; "
                    "leave quality empty (or use a per-quality model, trained with --mode each)"
                )
            return 0, ALL
        return generator_index({"generators": list(self.generators)}, quality), quality

    # -- pre/post-processing -------------------------------------------------
    def latents(self, seed: int, count: int) -> np.ndarray:
        """Step 1: the model input for a request (float32 ``(count, latent_dim)``)."""
        return latents(seed, count, self.latent_dim)

    def postprocess(self, image: np.ndarray, index: int) -> np.ndarray:
        """Step 3: the ``model`` graph's output -> uint8 ``(count, S, S)`` of generator ``index``."""
        want = (len(self.generators), self.image_size, self.image_size)
        if image.ndim != 4 or tuple(image.shape[1:]) != want:
            raise ValueError(f"model returned images of shape {image.shape}; expected (N, {', '.join(map(str, want))})")
        return to_uint8(select_generator(image, index))

    def generate(self, seed: int, count: int, quality: str, run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """uint8 ``(count, S, S)`` for a request, given ``run(z) -> image``
        (an ONNX Runtime session, the torch generator bank …)."""
        self.check_count(count)
        index, _ = self.quality_index(quality)
        return self.postprocess(run(self.latents(seed, count)), index)

    def check_reference(self, sessions: Mapping[str, Any], folder: Path, reference: dict[str, Any]) -> list:
        """The seed-lock's first link, exactly: the stored reference latents are
        what :func:`latents` draws today for their (seed, count). The graph's
        outputs are checked at graph level (within the tolerance); the uint8
        rounding after them is not compared exactly because a float32 value on
        a .5 boundary can round either way on another CPU."""
        ref = reference.get("latents")
        if not ref:
            return []
        stored = np.load(Path(folder) / ref["file"], allow_pickle=False)
        seed, count = int(ref["seed"]), int(ref["count"])
        return [(f"latents(seed {seed}, count {count})", stored, self.latents(seed, count))]
