from seedlock.protos.seedlock.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Event(_message.Message):
    __slots__ = ("pitch", "duration")
    PITCH_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    pitch: int
    duration: float
    def __init__(self, pitch: _Optional[int] = ..., duration: _Optional[float] = ...) -> None: ...

class EventList(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class ComposeRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "primer_file", "primer_events", "genre", "length", "strategy", "temperature", "top_k", "seed", "request_id")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRIMER_FILE_FIELD_NUMBER: _ClassVar[int]
    PRIMER_EVENTS_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    primer_file: bytes
    primer_events: EventList
    genre: str
    length: int
    strategy: str
    temperature: float
    top_k: int
    seed: int
    request_id: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., primer_file: _Optional[bytes] = ..., primer_events: _Optional[_Union[EventList, _Mapping]] = ..., genre: _Optional[str] = ..., length: _Optional[int] = ..., strategy: _Optional[str] = ..., temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., seed: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class ComposeResponse(_message.Message):
    __slots__ = ("musicxml", "midi", "events", "seed", "genre", "strategy", "temperature", "top_k", "primer_length", "model_name", "model_version", "model_digest", "timing", "request_id")
    MUSICXML_FIELD_NUMBER: _ClassVar[int]
    MIDI_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    PRIMER_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    musicxml: bytes
    midi: bytes
    events: _containers.RepeatedCompositeFieldContainer[Event]
    seed: int
    genre: str
    strategy: str
    temperature: float
    top_k: int
    primer_length: int
    model_name: str
    model_version: int
    model_digest: str
    timing: _common_pb2.Timing
    request_id: str
    def __init__(self, musicxml: _Optional[bytes] = ..., midi: _Optional[bytes] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., seed: _Optional[int] = ..., genre: _Optional[str] = ..., strategy: _Optional[str] = ..., temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., primer_length: _Optional[int] = ..., model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., model_digest: _Optional[str] = ..., timing: _Optional[_Union[_common_pb2.Timing, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ComposeStreamResponse(_message.Message):
    __slots__ = ("event", "result", "index")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    event: Event
    result: ComposeResponse
    index: int
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., result: _Optional[_Union[ComposeResponse, _Mapping]] = ..., index: _Optional[int] = ...) -> None: ...
