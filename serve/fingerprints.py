"""The fingerprint task: seed-locked fake fingerprints (Generate) and the four
similarity measures between two sets of images (Compare).

Generate: ``z = spec.latents(seed, count)`` -> the ``model`` graph, the whole
batch in one call -> ``spec.postprocess(image, g)`` -> one grey PNG per image,
with the :class:`~seedlock.core.fingerprints.FingerprintSpec` the exporter
wrote and ``export verify`` reads (the same functions training's sample grids
use). The model's scheduler may run a request's rows with other requests'
rows in one call, only where the load-time proof showed every row's bytes
are the same alone and batched (seedlock.serve.proofs).

Compare needs no model. It is served whenever the server runs, addressed by
no model name, and queued on a scheduler of its own (the server's queue
bound, one call per instance), plus limits on images per
set and on total work, so one request cannot hold the cores for minutes.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import grpc
import numpy as np

from seedlock.core.fingerprints import FingerprintSpec, to_gray
from seedlock.core.imaging import DEFAULT_LIMITS, ImageError, ImageLimits, check_image, decode_image, encode_png
from seedlock.core.manifest import ManifestError
from seedlock.core.repository import load_version
from seedlock.core.sessions import SessionConfig
from seedlock.core.similarity import BINARIZE_THRESHOLD, compare_sets
from seedlock.protos.seedlock.v1 import common_pb2, fingerprints_pb2, fingerprints_pb2_grpc
from seedlock.serve.errors import check_deadline, invalid, rpc
from seedlock.serve.repository import Registry, TaskModels
from seedlock.serve.runtime import ModelRuntime, load_runtime
from seedlock.serve.scheduler import deadline_from

SERVICE_NAME = fingerprints_pb2.DESCRIPTOR.services_by_name["Fingerprints"].full_name

# Compare limits. 1024 per set covers the thesis's 1000-image sets; the work
# bound (pairs x pixels) admits 1000 x 1000 pairs of 64x64 images (~4e9 pixel
# comparisons, a few seconds on two cores) and refuses requests far past that.
MAX_SET_IMAGES = 1024
MAX_COMPARE_WORK = 1 << 32
MAX_COMPARE_PIXELS = 1 << 27  # grey pixels held for both sets together (128 MiB)
MAX_SEED = (1 << 64) - 1
_FRESH_SEED_BITS = 63  # fits a signed int64 too, for callers that store it as one


@dataclass
class GenerateOutcome:
    images: np.ndarray  # uint8 (count, S, S)
    pngs: list[bytes]
    seed: int
    quality: str
    timing: dict[str, float] = field(default_factory=dict)  # milliseconds


@dataclass
class FingerprintModel:
    """A loaded fingerprint-generation model version: its runtime and spec."""

    runtime: ModelRuntime
    spec: FingerprintSpec

    @classmethod
    def from_runtime(cls, runtime: ModelRuntime) -> "FingerprintModel":
        return cls(runtime, FingerprintSpec.from_manifest(runtime.manifest))

    def check(self, count: int, seed: int, quality: str = "") -> tuple[int, str]:
        """Validate a request; ``ValueError`` before the model runs. Returns the
        generator index and the quality name used."""
        self.spec.check_count(count)
        if not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be 0 to 2**64 - 1, got {seed}")
        return self.spec.quality_index(quality)

    def finish(self, out: np.ndarray, count: int, seed: int, index: int, used: str, timing: dict[str, float]) -> GenerateOutcome:
        """Generator output -> grey images and their PNGs."""
        t0 = time.perf_counter()
        if len(out) != count:  # a broken graph is the server's fault (INTERNAL), not the caller's
            raise RuntimeError(f"model returned {len(out)} images for a request of {count}")
        try:
            images = self.spec.postprocess(out, index)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
        pngs = [encode_png(im) for im in images]
        timing = {"decode_ms": 0.0, **timing, "postprocess_ms": (time.perf_counter() - t0) * 1e3}
        timing["total_ms"] = timing["preprocess_ms"] + timing["infer_ms"] + timing["postprocess_ms"]
        return GenerateOutcome(images, pngs, seed, used, timing)

    def generate(self, count: int, seed: int, quality: str = "") -> GenerateOutcome:
        """``count`` images for ``seed``, in-process (what the service runs,
        minus the scheduler). Bad parameters raise ``ValueError``."""
        index, used = self.check(count, seed, quality)
        t0 = time.perf_counter()
        z = self.spec.latents(seed, count)
        t1 = time.perf_counter()
        (out,) = self.runtime.run({self.spec.input_name: z}, [self.spec.output_name])
        timing = {"preprocess_ms": (t1 - t0) * 1e3, "infer_ms": (time.perf_counter() - t1) * 1e3}
        return self.finish(out, count, seed, index, used, timing)


def load_generator(repository: str | Path, name: str, version: int | None = None, config: SessionConfig | None = None) -> FingerprintModel:
    """Verify and load one fingerprint model version as the server does (same
    session settings), for in-process use: tests, demos, checks."""
    mv = load_version(repository, name, version)
    if mv.manifest.task != FingerprintSpec.TASK:
        raise ManifestError(f"model {name!r} is a {mv.manifest.task!r} model, not a {FingerprintSpec.TASK} model")
    FingerprintSpec.from_manifest(mv.manifest)  # a clear ManifestError before any session is built
    return FingerprintModel.from_runtime(load_runtime(mv.manifest, mv.folder, config or SessionConfig()))


# --------------------------------------------------------------------------- Compare


def decode_sets(
    set_a: Sequence[bytes], set_b: Sequence[bytes], limits: ImageLimits = DEFAULT_LIMITS
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Encoded images -> two uint8 grey stacks of one size. Every limit is
    checked before any image is decoded: counts, then each header against
    ``limits``, one size for all, and the work. Raises ``ValueError`` /
    :class:`ImageError` naming the image."""
    for label, images in (("set_a", set_a), ("set_b", set_b)):
        if not images:
            raise ValueError(f"{label} is empty: send at least one image in each set")
        if len(images) > MAX_SET_IMAGES:
            raise ValueError(f"{label} has {len(images)} images; the limit is {MAX_SET_IMAGES} per set")
    t0 = time.perf_counter()
    first = (0, 0)  # set_a image 0's (height, width): every image must have it
    for label, images in (("set_a", set_a), ("set_b", set_b)):
        for i, data in enumerate(images):
            try:
                header = check_image(data, limits)
            except ImageError as exc:
                raise ImageError(f"{label} image {i}: {exc}") from None
            shape = (header.height, header.width)
            if label == "set_a" and i == 0:
                first = shape
                _check_work(len(set_a), len(set_b), first)
            elif shape != first:
                raise ValueError(
                    f"{label} image {i} is {shape[1]}x{shape[0]} but set_a image 0 is {first[1]}x{first[0]}; "
                    "every image of both sets must have one size (the measures compare pixel by pixel)"
                )
    stacks: list[np.ndarray] = []
    for label, images in (("set_a", set_a), ("set_b", set_b)):
        stack = np.empty((len(images), *first), dtype=np.uint8)  # preallocated: no list of arrays plus a copy
        for i, data in enumerate(images):
            try:  # decode_image checks that the data has the header's size
                stack[i] = to_gray(decode_image(data, limits))
            except (ImageError, ValueError) as exc:
                raise ImageError(f"{label} image {i}: {exc}") from None
        stacks.append(stack)
    decode_ms = (time.perf_counter() - t0) * 1e3
    return stacks[0], stacks[1], {"decode_ms": decode_ms}


def _check_work(n_a: int, n_b: int, shape: tuple[int, int]) -> None:
    h, w = shape
    pixels = h * w
    if (n_a + n_b) * pixels > MAX_COMPARE_PIXELS:
        raise ValueError(
            f"{n_a} + {n_b} images of {w}x{h} are {(n_a + n_b) * pixels} pixels; the limit is {MAX_COMPARE_PIXELS}: "
            "send fewer or smaller images"
        )
    if n_a * n_b * pixels > MAX_COMPARE_WORK:
        raise ValueError(
            f"{n_a} x {n_b} pairs of {w}x{h} images is too much work for one request "
            f"(pairs x pixels = {n_a * n_b * pixels} > {MAX_COMPARE_WORK}); send fewer or smaller images"
        )


def check_threshold(threshold: int) -> None:
    if not 1 <= threshold <= 255:
        raise ValueError(f"binarize_threshold must be 1 to 255 (ink = grey < threshold), got {threshold}")


def compare_response(result: dict[str, Any], threshold: int, timing: dict[str, float], request_id: str = "") -> fingerprints_pb2.CompareResponse:
    """A :func:`~seedlock.core.similarity.compare_sets` result as the wire message."""

    def summary(s: dict[str, float], count: int) -> fingerprints_pb2.SetSummary:
        return fingerprints_pb2.SetSummary(count=count, **s)

    ms = result["mean_std"]
    h, w = result["image_shape"]
    return fingerprints_pb2.CompareResponse(
        set_a=summary(ms["a"], result["n_a"]),
        set_b=summary(ms["b"], result["n_b"]),
        centroid_distance=ms["centroid_distance"],
        hamming=fingerprints_pb2.MeanStd(mean=result["hamming"]["mean"], std=result["hamming"]["std"]),
        hamming_fraction=result["hamming"]["mean_fraction"],
        pearson=fingerprints_pb2.MeanStd(**result["pearson"]),
        iou=fingerprints_pb2.MeanStd(**result["iou"]),
        pairs=result["pairs"],
        width=w,
        height=h,
        binarize_threshold=threshold,
        binarization=result["binarization"],
        histogram_bins=result["histogram_bins"],
        timing=common_pb2.Timing(**timing),
        request_id=request_id,
    )


class FingerprintsServicer(fingerprints_pb2_grpc.FingerprintsServicer):
    """``seedlock.v1.Fingerprints``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.models = TaskModels(registry, FingerprintSpec.TASK, "fingerprint", FingerprintModel.from_runtime)
        # Compare belongs to no model, so it gets a scheduler of its own.
        self.compare = registry.add_scheduler("Compare", "Fingerprints.Compare")

    @rpc
    async def Generate(self, request: fingerprints_pb2.GenerateRequest, context: grpc.aio.ServicerContext) -> fingerprints_pb2.GenerateResponse:
        deadline = deadline_from(context.time_remaining())
        runtime, model = self.models.resolve(request.model_name, request.model_version)
        seed = int(request.seed) if request.HasField("seed") else secrets.randbits(_FRESH_SEED_BITS)
        try:  # parameters first: a bad request never queues
            index, used = model.check(request.count, seed, request.quality)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        scheduler = self.registry.scheduler(runtime)
        spec = model.spec
        t0 = time.perf_counter()
        z = await self.registry.offload(spec.latents, seed, request.count)
        t1 = time.perf_counter()
        # Rows past the model's batch limit go as several calls; each row's
        # latents come from the request's own seed, so the split changes no image.
        limit = scheduler.batching.max_batch_size or len(z)
        parts = await asyncio.gather(*(
            scheduler.infer({spec.input_name: z[i:i + limit]}, [spec.output_name], deadline) for i in range(0, len(z), limit)
        ))
        out = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        timing = {"preprocess_ms": (t1 - t0) * 1e3, "infer_ms": (time.perf_counter() - t1) * 1e3}
        result = await self.registry.offload(model.finish, out, request.count, seed, index, used, timing)
        size = spec.image_size
        return fingerprints_pb2.GenerateResponse(
            images_png=result.pngs,
            seed=result.seed,
            quality=result.quality,
            model_name=runtime.name,
            model_version=runtime.version,
            model_digest=runtime.digest,
            timing=common_pb2.Timing(**result.timing),
            request_id=request.request_id,
            width=size,
            height=size,
        )

    @rpc
    async def Compare(self, request: fingerprints_pb2.CompareRequest, context: grpc.aio.ServicerContext) -> fingerprints_pb2.CompareResponse:
        deadline = deadline_from(context.time_remaining())
        threshold = int(request.binarize_threshold) if request.HasField("binarize_threshold") else BINARIZE_THRESHOLD
        try:
            check_threshold(threshold)
            for label, images in (("set_a", request.set_a), ("set_b", request.set_b)):
                if not images:
                    raise ValueError(f"{label} is empty: send at least one image in each set")
                if len(images) > MAX_SET_IMAGES:
                    raise ValueError(f"{label} has {len(images)} images; the limit is {MAX_SET_IMAGES} per set")
        except ValueError as exc:
            raise invalid(str(exc)) from None

        limits = self.registry.image_limits

        def job(stop: threading.Event) -> tuple[dict[str, Any], dict[str, float]]:
            t0 = time.perf_counter()
            try:
                a, b, timing = decode_sets(request.set_a, request.set_b, limits)
            except ValueError as exc:  # ImageError included: both name the image at fault
                raise invalid(str(exc)) from None
            check_deadline(deadline, stop)
            t1 = time.perf_counter()
            result = compare_sets(a, b, threshold=threshold)
            t2 = time.perf_counter()
            timing.update(preprocess_ms=0.0, infer_ms=(t2 - t1) * 1e3, postprocess_ms=0.0, total_ms=(t2 - t0) * 1e3)
            return result, timing

        result, timing = await self.compare.call(job, deadline)
        return compare_response(result, threshold, timing, request.request_id)


def add_to_server(registry: Registry, server: grpc.aio.Server) -> None:
    fingerprints_pb2_grpc.add_FingerprintsServicer_to_server(FingerprintsServicer(registry), server)
