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

A primer file is checked where it arrives (size, format, an MXL's zip
directory: :func:`~seedlock.core.primer_files.check_primer_file`), then
admitted to a bounded queue of its own and read by a worker process
(:mod:`seedlock.serve.primer_workers`) within the request's deadline; only
then does the request queue for the model. A big primer never holds a lock or
an instance that another Compose needs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence

import grpc
import numpy as np

from seedlock.core import music_events as me
from seedlock.core import music_sampling as ms
from seedlock.core import primer_files as pf
from seedlock.core.composition import ENCODER, STEP, CompositionSpec, GraphComposer
from seedlock.core.manifest import Manifest
from seedlock.protos.seedlock.v1 import common_pb2, composition_pb2, composition_pb2_grpc
from seedlock.serve import primer_workers as pw
from seedlock.serve.errors import ServeError, check_deadline, deadline_exceeded, echo, invalid, rpc, unavailable
from seedlock.serve.repository import Registry, TaskModels
from seedlock.serve.runtime import ModelRuntime
from seedlock.serve.scheduler import Batching, ModelScheduler, deadline_from

SERVICE_NAME = composition_pb2.DESCRIPTOR.services_by_name["Composition"].full_name
MAX_PRIMER_EVENTS = me.MAX_PRIMER_EVENTS
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
# run one at a time rather than trusted under the server's threads. The server
# takes this lock only to write answers (at most MAX_LENGTH events: a bounded
# wait, though seconds for the longest); primer files, whose cost the client
# chooses, are read in worker processes (primer_workers), never under it.
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


def decode_primer_file(data: bytes, limits: pf.PrimerLimits = pf.PRIMER_LIMITS) -> np.ndarray:
    """A primer file read in this process, within ``limits`` (direct callers
    such as the bench; the server reads them in worker processes)."""
    with _MUSIC21:
        return pf.read_primer(data, limits)


def events_to_messages(events: np.ndarray) -> list[composition_pb2.Event]:
    return [composition_pb2.Event(pitch=-1 if p is None else p, duration=d) for p, d in me.to_values(events)]


def events_from_messages(items: Sequence[composition_pb2.Event]) -> np.ndarray:
    """Tokens of request events; ValueError naming the first bad one."""
    values: list[tuple[int | None, float]] = []
    for i, e in enumerate(items):
        me.check_primer_event(i, e.pitch, e.duration)
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
    primer: np.ndarray | None  # None: the genre's stored primer (or primer_file, once read)
    decode_ms: float = 0.0
    primer_file: bytes | None = None  # checked, not yet read (see read_primer_file)


def sampling_params(request: composition_pb2.ComposeRequest, default: ms.SamplingParams) -> ms.SamplingParams:
    name = request.strategy.strip().lower()
    strategy = STRATEGY_ALIASES.get(name, name) if name else default.strategy
    if strategy not in ms.STRATEGIES:
        raise invalid(f"unknown sampling strategy {echo(request.strategy)}; use one of {', '.join(ms.STRATEGIES)}")
    temperature = request.temperature if request.HasField("temperature") else default.temperature
    top_k = request.top_k if request.HasField("top_k") else default.top_k
    try:  # the ranges the client library and CLI check too
        ms.check_params(temperature=temperature, top_k=request.top_k if request.HasField("top_k") else None)
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
        raise invalid(f"unknown genre {echo(genre)}; this model knows: {', '.join(spec.genres)}")
    try:
        ms.check_params(length=request.length, length_limit=spec.length_limit)
    except ms.SamplingError as exc:
        raise invalid(str(exc)) from None
    params = sampling_params(request, spec.default_sampling)
    seed = request.seed if request.HasField("seed") else int.from_bytes(os.urandom(8), "little")
    t0 = time.perf_counter()
    which = request.WhichOneof("primer")
    primer: np.ndarray | None = None
    primer_file: bytes | None = None
    if which == "primer_file":
        if not request.primer_file:
            raise invalid(pf.EMPTY_PRIMER)
        try:  # size, format and an MXL's directory now; the file itself is read after admission
            pf.check_primer_file(request.primer_file)
        except me.MusicDecodeError as exc:
            raise invalid(f"primer_file: {exc}") from None
        primer_file = request.primer_file
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
    return ComposeJob(genre, int(request.length), params, int(seed), primer, (time.perf_counter() - t0) * 1e3, primer_file)


def read_primer_file(job: ComposeJob) -> ComposeJob:
    """``job`` with its primer file read in this process (direct callers; the
    servicer reads it in a worker process)."""
    if job.primer_file is None:
        return job
    t0 = time.perf_counter()
    try:
        primer = decode_primer_file(job.primer_file)
    except me.MusicDecodeError as exc:
        raise invalid(f"primer_file: {exc}") from None
    return replace(job, primer=primer, primer_file=None, decode_ms=job.decode_ms + (time.perf_counter() - t0) * 1e3)


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
    if job.primer_file is not None:
        raise ValueError("the job's primer file has not been read (read_primer_file)")
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
    job = read_primer_file(parse_request(request, spec))
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
class PrimerQueue(ModelScheduler):
    """The bounded, deadline-aware queue primer files wait in for a worker
    process (RESOURCE_EXHAUSTED when full, as a model's queue); stopping the
    server stops the workers."""

    KEY = "Composition.primers"

    def __init__(self, workers: pw.PrimerWorkers, max_queue: int) -> None:
        super().__init__("primer reading", None, Batching(), workers.size, max_queue)
        self.workers = workers

    async def drain(self, timeout: float | None) -> bool:
        try:
            return await super().drain(timeout)
        finally:
            self.workers.close()

    async def read(self, data: bytes, deadline: float | None) -> np.ndarray:
        """The primer's events; a status error that says what went wrong."""
        try:
            return await self.call(lambda stop: self.workers.read(data, deadline, stop), deadline)
        except (me.MusicDecodeError, pw.PrimerReadTimeout) as exc:
            raise invalid(f"primer_file: {exc}") from None
        except pw.PrimerWorkerDied as exc:
            raise invalid(f"primer_file: could not be read ({exc}); send a shorter or simpler excerpt") from None
        except pw.PrimerDeadline as exc:
            raise deadline_exceeded(str(exc)) from None
        except pw.PrimerCancelled as exc:
            raise ServeError(grpc.StatusCode.CANCELLED, str(exc)) from None
        except pw.PrimerWorkerUnavailable as exc:
            raise unavailable(f"{exc}; retry shortly") from None


class CompositionServicer(composition_pb2_grpc.CompositionServicer):
    """``seedlock.v1.Composition``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.models = TaskModels(registry, CompositionSpec.TASK, "composition", OrtComposer.from_runtime)
        # Primer files get a queue and worker processes of their own (started
        # on the first file), drained with the models' queues.
        self.primers = PrimerQueue(pw.PrimerWorkers(), registry.max_queue)
        self.primers.start()
        registry.extra_schedulers[PrimerQueue.KEY] = self.primers

    async def _parse(self, request: composition_pb2.ComposeRequest, spec: CompositionSpec, deadline: float | None) -> ComposeJob:
        """The request's fields checked, then its primer file (if any) read."""
        job = await self.registry.offload(parse_request, request, spec)
        if job.primer_file is None:
            return job
        t0 = time.perf_counter()
        primer = await self.primers.read(job.primer_file, deadline)
        return replace(job, primer=primer, primer_file=None, decode_ms=job.decode_ms + (time.perf_counter() - t0) * 1e3)

    def _resolve(self, request: composition_pb2.ComposeRequest) -> tuple[ModelRuntime, CompositionSpec, OrtComposer]:
        runtime, composer = self.models.resolve(request.model_name, request.model_version)
        return runtime, composer.spec, composer

    @rpc
    async def Compose(self, request: composition_pb2.ComposeRequest, context: grpc.aio.ServicerContext) -> composition_pb2.ComposeResponse:
        t_start = time.perf_counter()
        deadline = deadline_from(context.time_remaining())
        runtime, spec, composer = self._resolve(request)
        job = await self._parse(request, spec, deadline)

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
        job = await self._parse(request, spec, deadline)
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
    "SERVICE_NAME", "OrtComposer", "ComposeJob", "ComposeOutcome", "parse_request", "read_primer_file",
    "compose_request", "PrimerQueue", "musicxml_bytes", "midi_bytes", "events_to_messages", "events_from_messages",
    "add_to_server",
]
