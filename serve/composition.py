"""The composition task: a primer melody (or a genre) in, a seeded continuation out.

primer (MIDI / MusicXML bytes, an event list, or the genre's stored primer)
-> :func:`~seedlock.core.music_sampling.prepare_primer` -> encoder graph ->
one decoder-step graph call per event, sampled by the shared numpy sampler of
:mod:`seedlock.core.music_sampling` from ``SeedStream(seed)`` -> MusicXML,
MIDI and the event list.

:class:`~seedlock.core.composition.GraphComposer` is the one generation
path and :class:`~seedlock.core.composition.CompositionSpec` the one reading
of the manifest: the export check, ``export verify``, the server, the bench
and the demo all use them, so "same seed, same melody" is one code path plus
the model graphs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence

import grpc
import numpy as np

from seedlock.core import music_events as me
from seedlock.core import music_sampling as ms
from seedlock.core.composition import ENCODER, STEP, CompositionSpec, GraphComposer
from seedlock.core.manifest import Manifest
from seedlock.protos.seedlock.v1 import common_pb2, composition_pb2, composition_pb2_grpc
from seedlock.serve.errors import check_deadline, invalid, rpc
from seedlock.serve.repository import Registry, TaskModels
from seedlock.serve.runtime import ModelRuntime
from seedlock.serve.scheduler import deadline_from

SERVICE_NAME = composition_pb2.DESCRIPTOR.services_by_name["Composition"].full_name
# An event list primer longer than this is refused: the encoder reads only its
# last `window` events, so a longer one is a mistake, not music.
MAX_PRIMER_EVENTS = 65536
STRATEGY_ALIASES = {"sample": "temperature", "sampling": "temperature", "topk": "top_k", "top-k": "top_k"}

log = logging.getLogger("seedlock.serve")


# -- generation ----------------------------------------------------------------------
class OrtComposer(GraphComposer):
    """:class:`~seedlock.core.composition.GraphComposer` on a served model
    version's sessions (built with the server's settings), with its manifest."""

    def __init__(self, encoder: Any, step: Any, spec: CompositionSpec, manifest: Manifest) -> None:
        super().__init__(encoder, step, spec)
        self.manifest = manifest

    @classmethod
    def from_runtime(cls, runtime: ModelRuntime) -> "OrtComposer":
        spec = CompositionSpec.from_manifest(runtime.manifest)
        return cls(runtime.sessions[ENCODER], runtime.sessions[STEP], spec, runtime.manifest)

    @classmethod
    def from_folder(cls, folder: str | Path, providers: Sequence[str] | None = None, threads: int = 1) -> "OrtComposer":
        """Load a model version folder (digests verified) with the server's session settings."""
        from seedlock.core.manifest import verify_files
        from seedlock.core.sessions import CPU, SessionConfig
        from seedlock.serve.runtime import load_runtime

        manifest = Manifest.load(folder)
        verify_files(manifest, folder)
        config = SessionConfig(providers=tuple(providers or (CPU,)), intra_op_threads=threads)
        return cls.from_runtime(load_runtime(manifest, Path(folder), config))


# -- files ------------------------------------------------------------------------
# music21 keeps module-level state (environment, id counters); its codecs are
# run one at a time rather than trusted under the server's threads.
_MUSIC21 = threading.Lock()
_ENCODING_DATE = re.compile(rb"\s*<encoding-date>[^<]*</encoding-date>")


def musicxml_bytes(events: np.ndarray, title: str) -> bytes:
    """MusicXML that depends only on the events and title: music21 stamps the
    date and a random part id, which would break byte-identical answers."""
    from music21 import instrument
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    with _MUSIC21:
        score = me.events_to_score(events, title)
        piano = instrument.Piano()
        piano.partId, piano.instrumentId = "P1", "P1-I1"
        score.parts[0].insert(0, piano)
        data = GeneralObjectExporter(score).parse()
    return _ENCODING_DATE.sub(b"", data, count=1)


def midi_bytes(events: np.ndarray) -> bytes:
    with _MUSIC21:
        return me.to_midi_bytes(events)


def decode_primer_file(data: bytes) -> np.ndarray:
    with _MUSIC21:
        return me.events_from_bytes(data)


def events_to_messages(events: np.ndarray) -> list[composition_pb2.Event]:
    return [composition_pb2.Event(pitch=-1 if p is None else p, duration=d) for p, d in me.to_values(events)]


def events_from_messages(items: Sequence[composition_pb2.Event]) -> np.ndarray:
    """Tokens of request events; ValueError naming the first bad one."""
    values: list[tuple[int | None, float]] = []
    for i, e in enumerate(items):
        if not (e.pitch == -1 or 0 <= e.pitch <= 127):
            raise ValueError(f"primer event {i}: pitch {e.pitch} is not a MIDI note number (0..127) or -1 for a rest")
        if not (math.isfinite(e.duration) and e.duration > 0):
            raise ValueError(f"primer event {i}: duration {e.duration!r} must be a positive number of quarter notes")
        values.append((None if e.pitch == -1 else int(e.pitch), float(e.duration)))
    return me.from_values(values)


# -- requests ---------------------------------------------------------------------
@dataclass(frozen=True)
class ComposeJob:
    """A request after validation: everything generation needs."""

    genre: str
    length: int
    params: ms.SamplingParams
    seed: int
    primer: np.ndarray | None  # None: the genre's stored primer
    decode_ms: float = 0.0


def sampling_params(request: composition_pb2.ComposeRequest, default: ms.SamplingParams) -> ms.SamplingParams:
    name = request.strategy.strip().lower()
    strategy = STRATEGY_ALIASES.get(name, name) if name else default.strategy
    if strategy not in ms.STRATEGIES:
        raise invalid(f"unknown sampling strategy {request.strategy!r}; use one of {', '.join(ms.STRATEGIES)}")
    temperature = request.temperature if request.HasField("temperature") else default.temperature
    top_k = request.top_k if request.HasField("top_k") else default.top_k
    if not (math.isfinite(temperature) and 0.0 < temperature <= ms.MAX_TEMPERATURE):
        raise invalid(f"temperature must be in (0, {ms.MAX_TEMPERATURE:g}], got {temperature!r}"
                      + ("; for the most likely event use strategy greedy" if temperature <= 0 else ""))
    if request.HasField("top_k") and top_k < 1:
        raise invalid(f"top_k must be >= 1, got {top_k}")
    try:
        return ms.SamplingParams(strategy, float(temperature), int(top_k)).validate()
    except ms.SamplingError as exc:
        raise invalid(str(exc)) from None


def parse_request(request: composition_pb2.ComposeRequest, spec: CompositionSpec) -> ComposeJob:
    """Validate every field; INVALID_ARGUMENT with a message that says what to change."""
    genre = request.genre.strip()
    if not genre:
        if len(spec.genres) != 1:
            raise invalid(f"genre is required: this model knows {', '.join(spec.genres)}")
        genre = spec.genres[0]
    elif genre not in spec.genres:
        raise invalid(f"unknown genre {genre!r}; this model knows: {', '.join(spec.genres)}")
    if not 1 <= request.length <= spec.length_limit:
        raise invalid(f"length must be 1 to {spec.length_limit} events, got {request.length}")
    params = sampling_params(request, spec.default_sampling)
    seed = request.seed if request.HasField("seed") else int.from_bytes(os.urandom(8), "little")
    t0 = time.perf_counter()
    which = request.WhichOneof("primer")
    primer: np.ndarray | None = None
    if which == "primer_file":
        if not request.primer_file:
            raise invalid("primer_file is empty; send MIDI or MusicXML bytes, or leave the primer unset")
        try:
            primer = decode_primer_file(request.primer_file)
        except me.MusicDecodeError as exc:
            raise invalid(f"primer_file: {exc}") from None
    elif which == "primer_events":
        items = request.primer_events.events
        if not items:
            raise invalid("primer_events holds no events; send at least one, or leave the primer unset")
        if len(items) > MAX_PRIMER_EVENTS:
            raise invalid(f"primer_events holds {len(items)} events; at most {MAX_PRIMER_EVENTS} (the model reads the last {spec.window})")
        try:
            primer = events_from_messages(items)
        except ValueError as exc:
            raise invalid(str(exc)) from None
    return ComposeJob(genre, int(request.length), params, int(seed), primer, (time.perf_counter() - t0) * 1e3)


@dataclass
class ComposeOutcome:
    events: np.ndarray  # (length, 2) int64 tokens
    musicxml: bytes
    midi: bytes
    primer_length: int
    timing: dict[str, float]  # milliseconds


def run_job(
    composer: OrtComposer, job: ComposeJob, on_event: Callable[[int, np.ndarray], None] | None = None
) -> tuple[np.ndarray, int, float]:
    """Generate; returns (events, primer length, milliseconds)."""
    t0 = time.perf_counter()
    primer = composer.primer_for(job.genre) if job.primer is None else job.primer
    try:
        events = composer.compose(job.genre, job.length, job.params, job.seed, primer=primer, on_event=on_event)
    except (ms.SamplingError, ValueError) as exc:  # checked already; kept for direct callers
        raise invalid(str(exc)) from None
    return events, len(primer), (time.perf_counter() - t0) * 1e3


def finish(events: np.ndarray, job: ComposeJob, primer_length: int, infer_ms: float, t_start: float) -> ComposeOutcome:
    t0 = time.perf_counter()
    title = f"seedlock composition: {job.genre}, seed {job.seed}"
    xml, mid = musicxml_bytes(events, title), midi_bytes(events)
    t1 = time.perf_counter()
    timing = {"decode_ms": job.decode_ms, "preprocess_ms": 0.0, "infer_ms": infer_ms,
              "postprocess_ms": (t1 - t0) * 1e3, "total_ms": (t1 - t_start) * 1e3}
    return ComposeOutcome(events, xml, mid, primer_length, timing)


def compose_request(
    composer: OrtComposer, spec: CompositionSpec, request: composition_pb2.ComposeRequest,
    on_event: Callable[[int, np.ndarray], None] | None = None,
) -> tuple[ComposeJob, ComposeOutcome]:
    """The whole pipeline in-process (what the servicer runs, minus admission)."""
    t_start = time.perf_counter()
    job = parse_request(request, spec)
    events, n_primer, infer_ms = run_job(composer, job, on_event)
    return job, finish(events, job, n_primer, infer_ms, t_start)


def response_message(
    runtime: ModelRuntime, job: ComposeJob, out: ComposeOutcome, request_id: str
) -> composition_pb2.ComposeResponse:
    return composition_pb2.ComposeResponse(
        musicxml=out.musicxml,
        midi=out.midi,
        events=events_to_messages(out.events),
        seed=job.seed,
        genre=job.genre,
        strategy=job.params.strategy,
        temperature=job.params.temperature,
        top_k=job.params.top_k,
        primer_length=out.primer_length,
        model_name=runtime.name,
        model_version=runtime.version,
        model_digest=runtime.digest,
        timing=common_pb2.Timing(**out.timing),
        request_id=request_id,
    )


# -- service ----------------------------------------------------------------------
class CompositionServicer(composition_pb2_grpc.CompositionServicer):
    """``seedlock.v1.Composition``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.models = TaskModels(registry, CompositionSpec.TASK, "composition", OrtComposer.from_runtime)

    def _resolve(self, request: composition_pb2.ComposeRequest) -> tuple[ModelRuntime, CompositionSpec, OrtComposer]:
        runtime, composer = self.models.resolve(request.model_name, request.model_version)
        return runtime, composer.spec, composer

    @rpc
    async def Compose(self, request: composition_pb2.ComposeRequest, context: grpc.aio.ServicerContext) -> composition_pb2.ComposeResponse:
        t_start = time.perf_counter()
        deadline = deadline_from(context.time_remaining())
        runtime, spec, composer = self._resolve(request)
        job = await self.registry.offload(parse_request, request, spec)

        def generate(stop: threading.Event) -> tuple[np.ndarray, int, float]:
            def on_event(i: int, _event: np.ndarray) -> None:
                if i % 16 == 15:  # long melodies: stop when the caller has given up
                    check_deadline(deadline, stop)

            return run_job(composer, job, on_event)

        events, n_primer, infer_ms = await self.registry.scheduler(runtime).call(generate, deadline)
        out = await self.registry.offload(finish, events, job, n_primer, infer_ms, t_start)
        return response_message(runtime, job, out, request.request_id)

    @rpc
    async def ComposeStream(
        self, request: composition_pb2.ComposeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[composition_pb2.ComposeStreamResponse]:
        t_start = time.perf_counter()
        deadline = deadline_from(context.time_remaining())
        runtime, spec, composer = self._resolve(request)
        job = await self.registry.offload(parse_request, request, spec)
        # The shared sampler reports events through a callback on the instance
        # thread; they cross to this coroutine through an asyncio queue.
        loop = asyncio.get_running_loop()
        events_q: asyncio.Queue = asyncio.Queue()

        def generate(stop: threading.Event) -> tuple[np.ndarray, int, float]:
            def on_event(i: int, event: np.ndarray) -> None:
                check_deadline(deadline, stop)
                loop.call_soon_threadsafe(events_q.put_nowait, (i, event.copy()))

            return run_job(composer, job, on_event)

        task = asyncio.ensure_future(self.registry.scheduler(runtime).call(generate, deadline))
        task.add_done_callback(lambda _t: events_q.put_nowait(None))
        try:
            while (item := await events_q.get()) is not None:
                i, event = item
                (msg,) = events_to_messages(event[None])
                yield composition_pb2.ComposeStreamResponse(event=msg, index=i)
            events, n_primer, infer_ms = await task
        finally:
            if not task.done():  # the caller left early: cancelling sets the job's stop flag
                task.cancel()
        out = await self.registry.offload(finish, events, job, n_primer, infer_ms, t_start)
        yield composition_pb2.ComposeStreamResponse(result=response_message(runtime, job, out, request.request_id), index=len(events))


def add_to_server(registry: Registry, server: grpc.aio.Server) -> None:
    composition_pb2_grpc.add_CompositionServicer_to_server(CompositionServicer(registry), server)


__all__ = [
    "SERVICE_NAME", "OrtComposer", "ComposeJob", "ComposeOutcome", "parse_request",
    "compose_request", "musicxml_bytes", "midi_bytes", "events_to_messages", "events_from_messages",
    "add_to_server",
]
