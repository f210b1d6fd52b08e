"""``FingerprintsClient``: seed-locked fake fingerprints, and the four similarity
measures between two sets of fingerprint images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from seedlock.clients.base import BaseClient
from seedlock.core.errors import UserError
from seedlock.core.imaging import decode_image, encode_png
from seedlock.protos.seedlock.v1 import fingerprints_pb2, fingerprints_pb2_grpc

TIMING_FIELDS = ("decode_ms", "preprocess_ms", "infer_ms", "postprocess_ms", "total_ms")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

ImageLike = bytes | str | Path | np.ndarray


@dataclass
class GenerateResult:
    """Generated fingerprints as the server encoded them, and how they were made."""

    images_png: list[bytes]
    seed: int
    quality: str
    model_name: str
    model_version: int
    model_digest: str
    width: int
    height: int
    timing: dict[str, float] = field(default_factory=dict)
    request_id: str = ""

    @property
    def images(self) -> np.ndarray:
        """The images decoded: uint8 ``(count, height, width)`` grey levels."""
        return np.stack([decode_image(png)[..., 0] for png in self.images_png])


@dataclass
class CompareResult:
    """The four measures between set A and set B (see :mod:`seedlock.core.similarity`)."""

    similarity: dict[str, Any]  # laid out as seedlock.core.similarity.compare_sets returns it
    binarize_threshold: int
    timing: dict[str, float] = field(default_factory=dict)
    request_id: str = ""


def _image_bytes(image: ImageLike) -> bytes:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, np.ndarray):
        return encode_png(image)  # grey (H, W) or RGB (H, W, 3) uint8
    return Path(image).read_bytes()


def image_files(path: str | Path) -> list[Path]:
    """The image files of a folder (sorted by name), or the one file given.
    Raises :class:`UserError` for a missing path or a folder without images."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path} does not exist")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _image_set(images: str | Path | Iterable[ImageLike]) -> list[bytes]:
    if isinstance(images, (str, Path)):
        return [p.read_bytes() for p in image_files(images)]
    if isinstance(images, np.ndarray) and images.ndim == 3 and images.dtype == np.uint8:
        return [encode_png(im) for im in images]  # a grey stack (N, H, W)
    return [_image_bytes(im) for im in images]


def generate_result(r: fingerprints_pb2.GenerateResponse) -> GenerateResult:
    return GenerateResult(
        images_png=list(r.images_png),
        seed=int(r.seed),
        quality=r.quality,
        model_name=r.model_name,
        model_version=int(r.model_version),
        model_digest=r.model_digest,
        width=int(r.width),
        height=int(r.height),
        timing={f: getattr(r.timing, f) for f in TIMING_FIELDS},
        request_id=r.request_id,
    )


def similarity_dict(r: fingerprints_pb2.CompareResponse) -> dict[str, Any]:
    """The response laid out as :func:`seedlock.core.similarity.compare_sets`
    returns it, so :func:`~seedlock.core.similarity.format_table` prints it."""

    def summary(s: fingerprints_pb2.SetSummary) -> dict[str, float]:
        return {k: getattr(s, k) for k in ("mean_of_means", "std_of_means", "mean_of_stds", "std_of_stds")}

    return {
        "n_a": int(r.set_a.count),
        "n_b": int(r.set_b.count),
        "pairs": int(r.pairs),
        "image_shape": [int(r.height), int(r.width)],
        "pixels": int(r.height) * int(r.width),
        "binarization": r.binarization,
        "histogram_bins": int(r.histogram_bins),
        "mean_std": {"a": summary(r.set_a), "b": summary(r.set_b), "centroid_distance": r.centroid_distance},
        "hamming": {"mean": r.hamming.mean, "std": r.hamming.std, "mean_fraction": r.hamming_fraction},
        "pearson": {"mean": r.pearson.mean, "std": r.pearson.std},
        "iou": {"mean": r.iou.mean, "std": r.iou.std},
    }


class FingerprintsClient(BaseClient):
    """Client for ``seedlock.v1.Fingerprints``.

    >>> with FingerprintsClient("localhost:8001") as client:
    ...     fakes = client.generate(16, seed=3)
    ...     client.compare("real_prints/", fakes.images).similarity["iou"]
    """

    def __init__(self, *args: Any, model: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self._stub = fingerprints_pb2_grpc.FingerprintsStub(self.channel)

    def generate_raw(
        self,
        count: int,
        seed: int | None = None,
        quality: str = "",
        model: str | None = None,
        version: int = 0,
        request_id: str = "",
        timeout: float | None = None,
    ) -> fingerprints_pb2.GenerateResponse:
        """The response message as it came (for byte-level comparisons)."""
        request = fingerprints_pb2.GenerateRequest(
            model_name=self.model if model is None else model,
            model_version=version,
            count=count,
            quality=quality,
            request_id=request_id,
            **({"seed": seed} if seed is not None else {}),
        )
        return self._call(self._stub.Generate, request, timeout, "Fingerprints.Generate")

    def generate(
        self,
        count: int,
        seed: int | None = None,
        quality: str = "",
        model: str | None = None,
        version: int = 0,
        request_id: str = "",
        timeout: float | None = None,
    ) -> GenerateResult:
        """``count`` fingerprints as grey PNGs. The same ``seed`` (and model
        digest, count and quality) gives the same bytes; ``seed`` None lets
        the server choose one, returned in the result. ``quality``: one of a
        per-quality model's qualities, empty for an all-quality model. Bad
        parameters raise :class:`~seedlock.clients.errors.InvalidArgument`."""
        return generate_result(self.generate_raw(count, seed, quality, model, version, request_id, timeout))

    def compare_raw(
        self,
        set_a: Sequence[bytes],
        set_b: Sequence[bytes],
        threshold: int | None = None,
        request_id: str = "",
        timeout: float | None = None,
    ) -> fingerprints_pb2.CompareResponse:
        request = fingerprints_pb2.CompareRequest(
            set_a=list(set_a), set_b=list(set_b), request_id=request_id,
            **({"binarize_threshold": threshold} if threshold is not None else {}),
        )  # fmt: skip
        return self._call(self._stub.Compare, request, timeout, "Fingerprints.Compare")

    def compare(
        self,
        set_a: str | Path | Iterable[ImageLike],
        set_b: str | Path | Iterable[ImageLike],
        threshold: int | None = None,
        request_id: str = "",
        timeout: float | None = None,
    ) -> CompareResult:
        """The four similarity measures between two sets of one image size.
        Each set: a folder (its image files), encoded images, image file
        paths, uint8 arrays, or a grey ``(N, H, W)`` stack. ``threshold``
        None: the server's 128 (``ink = grey < threshold``)."""
        r = self.compare_raw(_image_set(set_a), _image_set(set_b), threshold, request_id, timeout)
        return CompareResult(
            similarity=similarity_dict(r),
            binarize_threshold=int(r.binarize_threshold),
            timing={f: getattr(r.timing, f) for f in TIMING_FIELDS},
            request_id=r.request_id,
        )
