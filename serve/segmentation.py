"""The segmentation task service: encoded image in, class-index mask out.

decode -> :meth:`SegmentationSpec.preprocess` -> ONNX Runtime ->
:meth:`SegmentationSpec.postprocess` -> PNG: the chain of
:mod:`seedlock.core.segmentation` that the export check, the demo and the
training-side predictor use too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import grpc
import numpy as np

from seedlock.core.imaging import decode_image, encode_png
from seedlock.core.segmentation import SegmentationSpec, class_counts
from seedlock.protos.seedlock.v1 import common_pb2, segmentation_pb2, segmentation_pb2_grpc
from seedlock.serve.errors import check_deadline, rpc
from seedlock.serve.repository import Registry, TaskModels
from seedlock.serve.runtime import ModelRuntime

TASK = "segmentation"
SERVICE_NAME = segmentation_pb2.DESCRIPTOR.services_by_name["Segmentation"].full_name


@dataclass
class SegmentOutcome:
    mask: np.ndarray  # (H, W) uint8 class indices, the image's size
    mask_png: bytes
    counts: np.ndarray  # (num_classes,) int64
    timing: dict[str, float]  # milliseconds


def segment_image(
    runtime: ModelRuntime,
    spec: SegmentationSpec,
    data: bytes,
    before_infer: Callable[[], None] | None = None,
) -> SegmentOutcome:
    """Run the whole pipeline on encoded image bytes. ``before_infer`` may
    raise to stop before the model runs (an expired deadline)."""
    t0 = time.perf_counter()
    image = decode_image(data)
    t1 = time.perf_counter()
    x, boxes = spec.preprocess(image)
    t2 = time.perf_counter()
    if before_infer is not None:
        before_infer()
    (logits,) = runtime.run({spec.input_name: x}, [spec.output_name])
    t3 = time.perf_counter()
    (mask,) = spec.postprocess(logits, boxes)
    png = encode_png(mask)
    counts = class_counts(mask, spec.num_classes)
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
        self.models = TaskModels(registry, TASK, "segmentation", lambda rt: SegmentationSpec.from_manifest(rt.manifest))

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


def add_to_server(registry: Registry, server: grpc.Server) -> None:
    segmentation_pb2_grpc.add_SegmentationServicer_to_server(SegmentationServicer(registry), server)
