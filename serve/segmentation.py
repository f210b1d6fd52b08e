"""The segmentation task: encoded image in, class-index mask out.

decode -> letterbox(size) -> normalize(mean, std) -> ONNX Runtime -> argmax over
classes (first maximum wins) -> map back to the image's size -> PNG, with the
functions of :mod:`seedlock.core.imaging` that export checks use too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import grpc
import numpy as np

from seedlock.core.imaging import decode_image, encode_png, letterbox, normalize, unletterbox_mask
from seedlock.core.manifest import Manifest, ManifestError
from seedlock.protos.seedlock.v1 import common_pb2, segmentation_pb2, segmentation_pb2_grpc
from seedlock.serve.errors import check_deadline, rpc
from seedlock.serve.repository import Registry, TaskModels
from seedlock.serve.runtime import ModelRuntime

TASK = "segmentation"
SERVICE_NAME = segmentation_pb2.DESCRIPTOR.services_by_name["Segmentation"].full_name


@dataclass(frozen=True)
class SegmenterSpec:
    """What the service needs from a segmentation manifest, checked once at load."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    labels: tuple[str, ...]
    input_name: str
    output_name: str

    @classmethod
    def from_manifest(cls, m: Manifest) -> "SegmenterSpec":
        where = f"segmentation model {m.name!r} v{m.version}"
        graph = m.graphs.get("model")
        if graph is None or len(graph.inputs) != 1 or not graph.outputs:
            raise ManifestError(f"{where}: needs a 'model' graph with one input and a logits output")
        inp, out = graph.inputs[0], graph.outputs[0]
        if inp.dtype != "float32" or len(inp.shape) != 4 or inp.shape[1] not in (3, -1):
            raise ManifestError(f"{where}: input {inp.name!r} must be float32 (N, 3, H, W), is {inp.dtype} {inp.shape}")
        if len(out.shape) != 4:
            raise ManifestError(f"{where}: output {out.name!r} must be (N, classes, H, W), is {out.shape}")
        pre, post = m.preprocess, m.postprocess
        try:
            size = int(pre["size"])
            mean = tuple(float(v) for v in pre["mean"])
            std = tuple(float(v) for v in pre["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: preprocess needs size, mean and std ({exc!r})") from None
        if size <= 0 or len(mean) != 3 or len(std) != 3 or 0.0 in std:
            raise ManifestError(f"{where}: bad preprocess size/mean/std {pre}")
        if pre.get("resize", "letterbox") != "letterbox":
            raise ManifestError(f"{where}: resize {pre.get('resize')!r} is not supported (letterbox only)")
        divisor = int(pre.get("divisor", 1) or 1)
        if size % divisor:
            raise ManifestError(f"{where}: size {size} is not a multiple of the model's divisor {divisor}")
        if int(post.get("argmax_axis", 1)) != 1:
            raise ManifestError(f"{where}: argmax_axis must be 1 (the class axis of NCHW logits)")
        labels = tuple(str(label) for label in m.labels)
        if not 1 <= len(labels) <= 256:
            raise ManifestError(f"{where}: needs 1 to 256 labels for an 8-bit mask, has {len(labels)}")
        if out.shape[1] not in (-1, len(labels)):
            raise ManifestError(f"{where}: logits have {out.shape[1]} classes but there are {len(labels)} labels")
        return cls(size, mean, std, labels, inp.name, out.name)  # type: ignore[arg-type]


@dataclass
class SegmentOutcome:
    mask: np.ndarray  # (H, W) uint8 class indices, the image's size
    mask_png: bytes
    counts: np.ndarray  # (num_classes,) int64
    timing: dict[str, float]  # milliseconds


def segment_image(
    runtime: ModelRuntime,
    spec: SegmenterSpec,
    data: bytes,
    before_infer: Callable[[], None] | None = None,
) -> SegmentOutcome:
    """Run the whole pipeline on encoded image bytes. ``before_infer`` may
    raise to stop before the model runs (an expired deadline)."""
    t0 = time.perf_counter()
    image = decode_image(data)
    t1 = time.perf_counter()
    square, box = letterbox(image, spec.size)
    x = normalize(square, list(spec.mean), list(spec.std))
    t2 = time.perf_counter()
    if before_infer is not None:
        before_infer()
    (logits,) = runtime.run({spec.input_name: x}, [spec.output_name])
    t3 = time.perf_counter()
    num_classes = len(spec.labels)
    if logits.ndim != 4 or logits.shape[1] != num_classes:
        raise RuntimeError(f"model returned logits of shape {logits.shape}; expected (1, {num_classes}, H, W)")
    small = np.argmax(logits[0], axis=0).astype(np.uint8)  # ties: the first class wins
    mask = unletterbox_mask(small, box)
    png = encode_png(mask)
    counts = np.bincount(mask.ravel(), minlength=num_classes)
    t4 = time.perf_counter()
    ms = 1e3
    timing = {
        "decode_ms": (t1 - t0) * ms,
        "preprocess_ms": (t2 - t1) * ms,
        "infer_ms": (t3 - t2) * ms,
        "postprocess_ms": (t4 - t3) * ms,
        "total_ms": (t4 - t0) * ms,
    }
    return SegmentOutcome(mask, png, counts, timing)


class SegmentationServicer(segmentation_pb2_grpc.SegmentationServicer):
    """``seedlock.v1.Segmentation``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.models = TaskModels(registry, TASK, "segmentation", lambda rt: SegmenterSpec.from_manifest(rt.manifest))

    @rpc
    def Segment(self, request: segmentation_pb2.SegmentRequest, context: grpc.ServicerContext) -> segmentation_pb2.SegmentResponse:
        runtime, spec = self.models.resolve(request.model_name, request.model_version)
        check_deadline(context)
        with self.registry.slot(runtime.name, context.time_remaining()):
            out = segment_image(runtime, spec, request.image, before_infer=lambda: check_deadline(context))
        h, w = out.mask.shape
        return segmentation_pb2.SegmentResponse(
            mask_png=out.mask_png,
            class_names=spec.labels,
            class_pixel_counts=out.counts.tolist(),
            model_name=runtime.name,
            model_version=runtime.version,
            model_digest=runtime.digest,
            timing=common_pb2.Timing(**out.timing),
            width=w,
            height=h,
            request_id=request.request_id,
        )


def validate(manifest: Manifest) -> None:
    SegmenterSpec.from_manifest(manifest)


def add_to_server(registry: Registry, server: grpc.Server) -> None:
    segmentation_pb2_grpc.add_SegmentationServicer_to_server(SegmentationServicer(registry), server)
