"""The captioning task: encoded image in, captions with log-probabilities out.

decode -> :meth:`CaptioningSpec.prepare_image` (letterbox, normalize) -> encoder
graph -> greedy or beam search over the decoder-step graph (batched across the
beams) -> words: the chain of :mod:`seedlock.core.captioning` and the numpy
decoder of :mod:`seedlock.core.caption_decoding` that training's evaluation,
the export check and ``export verify`` use too, so the same image and parameters give
the same captions in-process, through the server and from the torch reference.

Every request is decoded on its own (one image, its beams as the batch) on one
instance of the model's scheduler: a beam search is a pipeline of graph calls,
so no other request's rows ever share its calls and its answer cannot depend
on what else the server was doing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import grpc
import numpy as np

from seedlock.core.caption_decoding import Caption, CaptionGraphs, check_params
from seedlock.core.captioning import CaptioningSpec
from seedlock.core.imaging import DEFAULT_LIMITS, ImageLimits, check_image, decode_image
from seedlock.core.manifest import ManifestError
from seedlock.core.repository import load_version
from seedlock.core.sessions import SessionConfig
from seedlock.protos.seedlock.v1 import captioning_pb2, captioning_pb2_grpc, common_pb2
from seedlock.serve.errors import check_deadline, invalid, rpc
from seedlock.serve.repository import Registry, TaskModels
from seedlock.serve.runtime import ModelRuntime, load_runtime
from seedlock.serve.scheduler import deadline_from

SERVICE_NAME = captioning_pb2.DESCRIPTOR.services_by_name["Captioning"].full_name
DEFAULT_BEAM = 3
DEFAULT_MAX_LENGTH = 20
DEFAULT_CAPTIONS = 1


@dataclass
class CaptionOutcome:
    """Captions best first, their words, and where the time went."""

    captions: list[Caption]
    texts: list[str]
    timing: dict[str, float]  # milliseconds
    beam: int = 1
    max_length: int = DEFAULT_MAX_LENGTH

    @property
    def decoding(self) -> str:
        return "greedy" if self.beam == 1 else "beam"


@dataclass
class CaptionModel:
    """A loaded captioning model version: its runtime, graphs and spec."""

    runtime: ModelRuntime
    graphs: CaptionGraphs
    spec: CaptioningSpec

    @classmethod
    def from_runtime(cls, runtime: ModelRuntime) -> "CaptionModel":
        spec = CaptioningSpec.from_manifest(runtime.manifest)
        return cls(runtime, spec.graphs(runtime.sessions), spec)

    def caption_bytes(
        self,
        data: bytes,
        beam: int = DEFAULT_BEAM,
        max_length: int = DEFAULT_MAX_LENGTH,
        n: int = DEFAULT_CAPTIONS,
        before_step: Callable[[], None] | None = None,
        limits: ImageLimits = DEFAULT_LIMITS,
    ) -> CaptionOutcome:
        """Caption encoded image bytes. Bad parameters raise ``ValueError``,
        undecodable bytes or an image over ``limits``
        :class:`~seedlock.core.imaging.ImageError` (both checked before the
        model runs). ``before_step`` runs before every graph call and may
        raise to stop (an expired deadline)."""
        dec = self.spec.decoder
        check_params(beam, max_length, n, dec.max_beam, dec.max_length)
        t0 = time.perf_counter()
        image = decode_image(data, limits)
        t1 = time.perf_counter()
        x = self.spec.prepare_image(image)
        t2 = time.perf_counter()
        graphs = self.graphs
        if before_step is not None:
            graphs = CaptionGraphs(_guarded(graphs.encoder, before_step), _guarded(graphs.decoder_step, before_step), dec)
        captions = graphs.caption(x, beam=beam, max_length=max_length, n=n)[0]
        t3 = time.perf_counter()
        texts = [self.spec.text(c) for c in captions]
        t4 = time.perf_counter()
        ms = 1e3
        timing = {
            "decode_ms": (t1 - t0) * ms,
            "preprocess_ms": (t2 - t1) * ms,
            "infer_ms": (t3 - t2) * ms,
            "postprocess_ms": (t4 - t3) * ms,
            "total_ms": (t4 - t0) * ms,
        }
        return CaptionOutcome(captions, texts, timing, beam, max_length)


def _guarded(run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], before: Callable[[], None]):
    def guarded(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        before()
        return run(feeds)

    return guarded


def load_captioner(repository: str | Path, name: str, version: int | None = None, config: SessionConfig | None = None) -> CaptionModel:
    """Verify and load one captioning model version as the server does
    (same session settings), for in-process use: benches, demos, checks."""
    mv = load_version(repository, name, version)
    if mv.manifest.task != CaptioningSpec.TASK:
        raise ManifestError(f"model {name!r} is a {mv.manifest.task!r} model, not a captioning model")
    CaptioningSpec.from_manifest(mv.manifest)  # a clear ManifestError before any session is built
    return CaptionModel.from_runtime(load_runtime(mv.manifest, mv.folder, config or SessionConfig()))


def _param(request: captioning_pb2.CaptionRequest, field: str, default: int) -> int:
    return int(getattr(request, field)) if request.HasField(field) else default


class CaptioningServicer(captioning_pb2_grpc.CaptioningServicer):
    """``seedlock.v1.Captioning``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.models = TaskModels(registry, CaptioningSpec.TASK, "captioning", CaptionModel.from_runtime)

    @rpc
    async def Caption(self, request: captioning_pb2.CaptionRequest, context: grpc.aio.ServicerContext) -> captioning_pb2.CaptionResponse:
        deadline = deadline_from(context.time_remaining())
        runtime, captioner = self.models.resolve(request.model_name, request.model_version)
        beam = _param(request, "beam_size", DEFAULT_BEAM)
        max_length = _param(request, "max_length", DEFAULT_MAX_LENGTH)
        n = _param(request, "num_captions", DEFAULT_CAPTIONS)
        dec = captioner.spec.decoder
        try:  # parameters first: a bad request never queues
            check_params(beam, max_length, n, dec.max_beam, dec.max_length)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        limits = self.registry.image_limits
        check_image(request.image, limits)  # empty, unknown format or over the limits: refused before queueing
        # A beam search is a pipeline of graph calls: one instance runs it whole.
        job = partial(self._job, captioner, request.image, beam, max_length, n, deadline, limits)
        out = await self.registry.scheduler(runtime).call(job, deadline)
        return captioning_pb2.CaptionResponse(
            captions=[
                captioning_pb2.Caption(text=text, tokens=list(c.tokens), log_prob=c.log_prob, finished=c.finished)
                for c, text in zip(out.captions, out.texts)
            ],
            model_name=runtime.name,
            model_version=runtime.version,
            model_digest=runtime.digest,
            decoding=out.decoding,
            timing=common_pb2.Timing(**out.timing),
            request_id=request.request_id,
            beam_size=beam,
            max_length=max_length,
        )

    @staticmethod
    def _job(captioner: CaptionModel, image: bytes, beam: int, max_length: int, n: int, deadline: float | None,
             limits: ImageLimits, stop: threading.Event) -> CaptionOutcome:  # fmt: skip
        return captioner.caption_bytes(image, beam, max_length, n, before_step=lambda: check_deadline(deadline, stop), limits=limits)


def add_to_server(registry: Registry, server: grpc.aio.Server) -> None:
    captioning_pb2_grpc.add_CaptioningServicer_to_server(CaptioningServicer(registry), server)
