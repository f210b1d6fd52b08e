"""``CaptioningClient``: send an image, get captions with their log-probabilities back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seedlock.clients.base import BaseClient
from seedlock.core.imaging import encode_png
from seedlock.protos.seedlock.v1 import captioning_pb2, captioning_pb2_grpc

TIMING_FIELDS = ("decode_ms", "preprocess_ms", "infer_ms", "postprocess_ms", "total_ms")


@dataclass(frozen=True)
class CaptionText:
    """One caption: its words, their vocabulary ids, and its total log-probability."""

    text: str
    tokens: tuple[int, ...]
    log_prob: float
    finished: bool = True


@dataclass
class CaptionResult:
    """A captioning answer, best caption first."""

    captions: list[CaptionText]
    model_name: str
    model_version: int
    model_digest: str
    decoding: str  # "greedy" or "beam"
    beam_size: int
    max_length: int
    timing: dict[str, float] = field(default_factory=dict)
    request_id: str = ""

    @property
    def best(self) -> CaptionText:
        return self.captions[0]


def _image_bytes(image: bytes | str | Path | np.ndarray) -> bytes:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, np.ndarray):
        return encode_png(image)  # RGB (H, W, 3) or grey (H, W) uint8
    return Path(image).read_bytes()


def to_result(r: captioning_pb2.CaptionResponse) -> CaptionResult:
    return CaptionResult(
        captions=[CaptionText(c.text, tuple(int(t) for t in c.tokens), float(c.log_prob), bool(c.finished)) for c in r.captions],
        model_name=r.model_name,
        model_version=int(r.model_version),
        model_digest=r.model_digest,
        decoding=r.decoding,
        beam_size=int(r.beam_size),
        max_length=int(r.max_length),
        timing={f: getattr(r.timing, f) for f in TIMING_FIELDS},
        request_id=r.request_id,
    )


class CaptioningClient(BaseClient):
    """Client for ``seedlock.v1.Captioning``.

    >>> with CaptioningClient("localhost:8001") as client:
    ...     result = client.caption("photo.jpg", beam=3, n=3)
    ...     [(c.text, c.log_prob) for c in result.captions]
    """

    def __init__(self, *args, model: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self._stub = captioning_pb2_grpc.CaptioningStub(self.channel)

    def caption_raw(
        self,
        image: bytes | str | Path | np.ndarray,
        beam: int | None = 3,
        max_length: int | None = 20,
        n: int | None = 1,
        model: str | None = None,
        version: int = 0,
        request_id: str = "",
        timeout: float | None = None,
    ) -> captioning_pb2.CaptionResponse:
        """The response message as it came (for byte-level comparisons).
        ``None`` leaves a parameter unset, for the server's default."""
        params = {k: v for k, v in (("beam_size", beam), ("max_length", max_length), ("num_captions", n)) if v is not None}
        request = captioning_pb2.CaptionRequest(
            model_name=self.model if model is None else model,
            model_version=version,
            image=_image_bytes(image),
            request_id=request_id,
            **params,
        )
        return self._call(self._stub.Caption, request, timeout, "Captioning.Caption")

    def caption(
        self,
        image: bytes | str | Path | np.ndarray,
        beam: int | None = 3,
        max_length: int | None = 20,
        n: int | None = 1,
        model: str | None = None,
        version: int = 0,
        request_id: str = "",
        timeout: float | None = None,
    ) -> CaptionResult:
        """Caption PNG/JPEG bytes, an image file path, or an RGB uint8 array:
        ``n`` captions, best first, by greedy decoding (``beam`` 1) or beam
        search. ``model`` empty: the server's only captioning model;
        ``version`` 0: the latest. Bad parameters raise
        :class:`~seedlock.clients.errors.InvalidArgument` with the server's message."""
        return to_result(self.caption_raw(image, beam, max_length, n, model, version, request_id, timeout))
