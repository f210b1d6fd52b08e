"""The segmentation task service: encoded image in, class-index mask out.

decode -> :meth:`SegmentationSpec.preprocess` -> ONNX Runtime ->
:meth:`SegmentationSpec.postprocess` -> PNG: the chain of
:mod:`seedlock.core.segmentation` that the export check, the demo and the
training-side predictor use too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc
import numpy as np

from seedlock.core.imaging import DEFAULT_LIMITS, ImageLimits, check_image, decode_image, encode_png
from seedlock.core.segmentation import SegmentationSpec, class_counts
from seedlock.protos.seedlock.v1 import common_pb2, segmentation_pb2, segmentation_pb2_grpc
from seedlock.serve.errors import rpc
from seedlock.serve.repository import Registry, TaskModels
from seedlock.serve.runtime import ModelRuntime
from seedlock.serve.scheduler import deadline_from

TASK = "segmentation"
SERVICE_NAME = segmentation_pb2.DESCRIPTOR.services_by_name["Segmentation"].full_name


@dataclass
class SegmentOutcome:
    mask: np.ndarray  # (H, W) uint8 class indices, the image's size
    mask_png: bytes
    counts: np.ndarray  # (num_classes,) int64
    timing: dict[str, float]  # milliseconds


def prepare(spec: SegmentationSpec, data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, list, dict[str, float]]:
    """Encoded image bytes -> the model input (1, 3, S, S), how to undo its letterbox, timings.
    The image's header is checked against ``limits`` before it is decoded."""
    t0 = time.perf_counter()
    image = decode_image(data, limits)
    t1 = time.perf_counter()
    x, boxes = spec.preprocess(image)
    t2 = time.perf_counter()
    return x, boxes, {"decode_ms": (t1 - t0) * 1e3, "preprocess_ms": (t2 - t1) * 1e3}


def finish(spec: SegmentationSpec, logits: np.ndarray, boxes: list, timing: dict[str, float]) -> SegmentOutcome:
    """Logits -> the mask at the image's size, its PNG and class counts."""
    t0 = time.perf_counter()
    (mask,) = spec.postprocess(logits, boxes)
    png = encode_png(mask)
    counts = class_counts(mask, spec.num_classes)
    timing = {**timing, "postprocess_ms": (time.perf_counter() - t0) * 1e3}
    timing["total_ms"] = sum(timing[k] for k in ("decode_ms", "preprocess_ms", "infer_ms", "postprocess_ms"))
    return SegmentOutcome(mask, png, counts, timing)


def segment_image(runtime: ModelRuntime, spec: SegmentationSpec, data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> SegmentOutcome:
    """The whole pipeline in-process on encoded image bytes (what the service
    runs, minus the scheduler)."""
    x, boxes, timing = prepare(spec, data, limits)
    t0 = time.perf_counter()
    (logits,) = runtime.run({spec.input_name: x}, [spec.output_name])
    timing["infer_ms"] = (time.perf_counter() - t0) * 1e3
    return finish(spec, logits, boxes, timing)


class SegmentationServicer(segmentation_pb2_grpc.SegmentationServicer):
    """``seedlock.v1.Segmentation``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.models = TaskModels(registry, TASK, "segmentation", lambda rt: SegmentationSpec.from_manifest(rt.manifest))

    @rpc
    async def Segment(self, request: segmentation_pb2.SegmentRequest, context: grpc.aio.ServicerContext) -> segmentation_pb2.SegmentResponse:
        deadline = deadline_from(context.time_remaining())
        runtime, spec = self.models.resolve(request.model_name, request.model_version)
        scheduler = self.registry.scheduler(runtime)
        limits = self.registry.image_limits
        check_image(request.image, limits)  # the header, before a decoding thread is taken
        x, boxes, timing = await self.registry.offload(prepare, spec, request.image, limits)
        t0 = time.perf_counter()
        (logits,) = await scheduler.infer({spec.input_name: x}, [spec.output_name], deadline)
        timing["infer_ms"] = (time.perf_counter() - t0) * 1e3  # queueing included: what the caller waited
        out = await self.registry.offload(finish, spec, logits, boxes, timing)
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


def add_to_server(registry: Registry, server: grpc.aio.Server) -> None:
    segmentation_pb2_grpc.add_SegmentationServicer_to_server(SegmentationServicer(registry), server)
