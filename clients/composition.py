"""``CompositionClient``: send a primer (or just a genre), get a seeded melody back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

import grpc
import numpy as np

from seedlock.clients.base import BaseClient
from seedlock.clients.errors import InvalidArgument, from_rpc_error
from seedlock.core import music_events as me
from seedlock.core import music_sampling as ms
from seedlock.core import primer_files as pf
from seedlock.protos.seedlock.v1 import composition_pb2, composition_pb2_grpc

MAX_VERSION = 2**63 - 1  # int64 on the wire

# bytes: a MIDI/MusicXML file's contents; str/Path: such a file; ndarray:
# (N, 2) event tokens; a sequence: (midi or None, quarter_length) pairs.
Primer = Union[bytes, str, Path, np.ndarray, Sequence[tuple[Any, float]], None]


@dataclass
class ComposeResult:
    """A composition answer. ``events`` is the (N, 2) int64 token array of
    :mod:`seedlock.core.music_events`; ``notes`` the same as (midi or None,
    quarter_length) pairs; ``musicxml`` and ``midi`` are the server's bytes."""

    events: np.ndarray
    notes: list[tuple[int | None, float]]
    musicxml: bytes
    midi: bytes
    seed: int
    genre: str
    strategy: str
    temperature: float
    top_k: int
    primer_length: int
    model_name: str
    model_version: int
    model_digest: str
    timing: dict[str, float] = field(default_factory=dict)
    request_id: str = ""


@dataclass(frozen=True)
class StreamedEvent:
    """One event of a streamed composition, as it was generated."""

    index: int
    pitch: int | None  # MIDI number, None for a rest
    duration: float  # quarter notes


def _invalid(message: str) -> InvalidArgument:
    """What the server would answer, raised before anything is sent."""
    return InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT, message, "Composition.Compose")


def _primer_fields(primer: Primer) -> dict[str, Any]:
    """The request's primer, checked as the server checks it (size, format, an
    MXL's directory; event values and count)."""
    if primer is None:
        return {}
    if isinstance(primer, (str, Path)):
        primer = Path(primer).read_bytes()
    if isinstance(primer, (bytes, bytearray, memoryview)):
        data = bytes(primer)
        if not data:
            raise _invalid(pf.EMPTY_PRIMER)
        try:
            pf.check_primer_file(data)
        except me.MusicDecodeError as exc:
            raise _invalid(f"primer_file: {exc}") from None
        return {"primer_file": data}
    try:
        if isinstance(primer, np.ndarray):
            pairs = me.to_values(primer)
        else:
            pairs = [(None if p is None or int(p) < 0 else int(p), float(d)) for p, d in primer]
    except (TypeError, ValueError) as exc:
        raise _invalid(f"primer events must be (midi or None, quarter_length) pairs: {exc}") from None
    if not pairs:
        raise _invalid("primer_events holds no events; send at least one, or leave the primer unset")
    if len(pairs) > me.MAX_PRIMER_EVENTS:
        raise _invalid(f"primer_events holds {len(pairs)} events; at most {me.MAX_PRIMER_EVENTS}")
    events = []
    for i, (p, d) in enumerate(pairs):
        pitch = -1 if p is None else p
        try:
            me.check_primer_event(i, pitch, d)
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        events.append(composition_pb2.Event(pitch=pitch, duration=d))
    return {"primer_events": composition_pb2.EventList(events=events)}


def check_request(length: int, seed: int | None, temperature: float | None, top_k: int | None, version: int) -> None:
    """The ranges the server holds a Compose request to
    (:func:`seedlock.core.music_sampling.check_params`): InvalidArgument with
    the server's message, before anything is sent. A model may set a lower
    length limit, which only the server knows."""
    try:
        ms.check_params(temperature=temperature, top_k=top_k, length=length, seed=seed)
    except ms.SamplingError as exc:
        raise _invalid(str(exc)) from None
    if not isinstance(version, (int, np.integer)) or not 0 <= version <= MAX_VERSION:
        raise _invalid(f"model_version must be in [0, 2**63 - 1] (0: the latest), got {version!r:.40}")


def _notes(events: Sequence[composition_pb2.Event]) -> list[tuple[int | None, float]]:
    return [(None if e.pitch < 0 else int(e.pitch), float(e.duration)) for e in events]


def result_from_message(r: composition_pb2.ComposeResponse) -> ComposeResult:
    notes = _notes(r.events)
    return ComposeResult(
        events=me.from_values(notes),
        notes=notes,
        musicxml=r.musicxml,
        midi=r.midi,
        seed=int(r.seed),
        genre=r.genre,
        strategy=r.strategy,
        temperature=float(r.temperature),
        top_k=int(r.top_k),
        primer_length=int(r.primer_length),
        model_name=r.model_name,
        model_version=int(r.model_version),
        model_digest=r.model_digest,
        timing={k: getattr(r.timing, k) for k in ("decode_ms", "preprocess_ms", "infer_ms", "postprocess_ms", "total_ms")},
        request_id=r.request_id,
    )


class CompositionClient(BaseClient):
    """Client for ``seedlock.v1.Composition``.

    >>> with CompositionClient("localhost:8001") as client:
    ...     song = client.compose(genre="bach", length=96, seed=7)
    ...     Path("song.musicxml").write_bytes(song.musicxml)
    """

    def __init__(self, *args: Any, model: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self._stub = composition_pb2_grpc.CompositionStub(self.channel)

    def request(
        self,
        genre: str = "",
        length: int = 96,
        seed: int | None = None,
        primer: Primer = None,
        strategy: str = "",
        temperature: float | None = None,
        top_k: int | None = None,
        model: str | None = None,
        version: int = 0,
        request_id: str = "",
    ) -> composition_pb2.ComposeRequest:
        """The request message (unset sampling fields take the model's defaults;
        ``seed`` None lets the server draw one). Values out of the server's
        ranges raise InvalidArgument here, with the server's message."""
        check_request(length, seed, temperature, top_k, version)
        fields: dict[str, Any] = {
            "model_name": self.model if model is None else model,
            "model_version": version,
            "genre": genre,
            "length": length,
            "strategy": strategy,
            "request_id": request_id,
            **_primer_fields(primer),
        }
        for name, value in (("temperature", temperature), ("top_k", top_k), ("seed", seed)):
            if value is not None:
                fields[name] = value
        return composition_pb2.ComposeRequest(**fields)

    def compose_raw(self, request: composition_pb2.ComposeRequest, timeout: float | None = None) -> composition_pb2.ComposeResponse:
        """The response message as it came (for byte-level comparisons)."""
        return self._call(self._stub.Compose, request, timeout, "Composition.Compose")

    def compose(self, genre: str = "", length: int = 96, seed: int | None = None, primer: Primer = None,
                strategy: str = "", temperature: float | None = None, top_k: int | None = None,
                model: str | None = None, version: int = 0, request_id: str = "",
                timeout: float | None = None) -> ComposeResult:
        """Compose ``length`` events continuing ``primer`` (the genre's stored
        primer when None). ``strategy``: greedy | temperature | top_k ("" = the
        model's default)."""
        request = self.request(genre, length, seed, primer, strategy, temperature, top_k, model, version, request_id)
        return result_from_message(self.compose_raw(request, timeout))

    def compose_stream_raw(
        self, request: composition_pb2.ComposeRequest, timeout: float | None = None
    ) -> Iterator[composition_pb2.ComposeStreamResponse]:
        """The stream's messages as they come. A call that fails before its
        first message is retried like a unary one (UNAVAILABLE only)."""
        timeout = self.timeout if timeout is None else timeout
        attempts = max(1, self.retry.attempts)
        backoff = self.retry.initial_backoff
        for attempt in range(attempts):
            received = False
            try:
                for message in self._stub.ComposeStream(request, timeout=timeout):
                    received = True
                    yield message
                return
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE and not received and attempt + 1 < attempts:
                    time.sleep(backoff)
                    backoff = min(backoff * self.retry.multiplier, self.retry.max_backoff)
                    continue
                raise from_rpc_error(exc, "Composition.ComposeStream") from None

    def compose_stream(self, genre: str = "", length: int = 96, seed: int | None = None, primer: Primer = None,
                       strategy: str = "", temperature: float | None = None, top_k: int | None = None,
                       model: str | None = None, version: int = 0, request_id: str = "",
                       timeout: float | None = None) -> Iterator[StreamedEvent | ComposeResult]:
        """Like :meth:`compose`, but yields a :class:`StreamedEvent` per event as
        the server generates it, then the :class:`ComposeResult`."""
        request = self.request(genre, length, seed, primer, strategy, temperature, top_k, model, version, request_id)
        for message in self.compose_stream_raw(request, timeout):
            if message.WhichOneof("item") == "event":
                e = message.event
                yield StreamedEvent(int(message.index), None if e.pitch < 0 else int(e.pitch), float(e.duration))
            else:
                yield result_from_message(message.result)
