"""``SegmentationClient``: send an image, get a class mask back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from seedlock.clients.base import BaseClient
from seedlock.core.imaging import encode_png
from seedlock.protos.seedlock.v1 import segmentation_pb2, segmentation_pb2_grpc


@dataclass
class SegmentResult:
    """A segmentation answer. ``mask`` is (height, width) uint8 class indices,
    decoded from ``mask_png`` (the server's bytes, unchanged)."""

    mask: np.ndarray
    mask_png: bytes
    class_names: list[str]
    class_pixel_counts: list[int]
    model_name: str
    model_version: int
    model_digest: str
    timing: dict[str, float] = field(default_factory=dict)
    request_id: str = ""

    @property
    def counts(self) -> dict[str, int]:
        """Pixels per class name."""
        return dict(zip(self.class_names, self.class_pixel_counts))


def _image_bytes(image: bytes | str | Path | np.ndarray) -> bytes:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, np.ndarray):
        return encode_png(image)  # RGB (H, W, 3) or grey (H, W) uint8
    return Path(image).read_bytes()


def decode_mask(png: bytes) -> np.ndarray:
    mask = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2:
        raise ValueError("the server's mask is not a single-channel PNG")
    return mask


class SegmentationClient(BaseClient):
    """Client for ``seedlock.v1.Segmentation``.

    >>> with SegmentationClient("localhost:8001") as client:
    ...     result = client.segment("photo.jpg")
    ...     result.mask.shape, result.counts
    """

    def __init__(self, *args, model: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self._stub = segmentation_pb2_grpc.SegmentationStub(self.channel)

    def segment_raw(
        self,
        image: bytes | str | Path | np.ndarray,
        model: str | None = None,
        version: int = 0,
        request_id: str = "",
        timeout: float | None = None,
    ) -> segmentation_pb2.SegmentResponse:
        """The response message as it came (for byte-level comparisons)."""
        request = segmentation_pb2.SegmentRequest(
            model_name=self.model if model is None else model,
            model_version=version,
            image=_image_bytes(image),
            request_id=request_id,
        )
        return self._call(self._stub.Segment, request, timeout, "Segmentation.Segment")

    def segment(
        self,
        image: bytes | str | Path | np.ndarray,
        model: str | None = None,
        version: int = 0,
        request_id: str = "",
        timeout: float | None = None,
    ) -> SegmentResult:
        """Segment PNG/JPEG bytes, an image file path, or an RGB uint8 array.
        ``model`` empty: the server's only segmentation model; ``version`` 0: the latest."""
        r = self.segment_raw(image, model, version, request_id, timeout)
        return SegmentResult(
            mask=decode_mask(r.mask_png),
            mask_png=r.mask_png,
            class_names=list(r.class_names),
            class_pixel_counts=[int(c) for c in r.class_pixel_counts],
            model_name=r.model_name,
            model_version=int(r.model_version),
            model_digest=r.model_digest,
            timing={
                "decode_ms": r.timing.decode_ms,
                "preprocess_ms": r.timing.preprocess_ms,
                "infer_ms": r.timing.infer_ms,
                "postprocess_ms": r.timing.postprocess_ms,
                "total_ms": r.timing.total_ms,
            },
            request_id=r.request_id,
        )
