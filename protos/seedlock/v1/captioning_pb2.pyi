from seedlock.protos.seedlock.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CaptionRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "image", "beam_size", "max_length", "num_captions", "request_id")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    BEAM_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    NUM_CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    image: bytes
    beam_size: int
    max_length: int
    num_captions: int
    request_id: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., image: _Optional[bytes] = ..., beam_size: _Optional[int] = ..., max_length: _Optional[int] = ..., num_captions: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class Caption(_message.Message):
    __slots__ = ("text", "tokens", "log_prob", "finished")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    LOG_PROB_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    text: str
    tokens: _containers.RepeatedScalarFieldContainer[int]
    log_prob: float
    finished: bool
    def __init__(self, text: _Optional[str] = ..., tokens: _Optional[_Iterable[int]] = ..., log_prob: _Optional[float] = ..., finished: _Optional[bool] = ...) -> None: ...

class CaptionResponse(_message.Message):
    __slots__ = ("captions", "model_name", "model_version", "model_digest", "decoding", "timing", "request_id", "beam_size", "max_length")
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    DECODING_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BEAM_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    captions: _containers.RepeatedCompositeFieldContainer[Caption]
    model_name: str
    model_version: int
    model_digest: str
    decoding: str
    timing: _common_pb2.Timing
    request_id: str
    beam_size: int
    max_length: int
    def __init__(self, captions: _Optional[_Iterable[_Union[Caption, _Mapping]]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., model_digest: _Optional[str] = ..., decoding: _Optional[str] = ..., timing: _Optional[_Union[_common_pb2.Timing, _Mapping]] = ..., request_id: _Optional[str] = ..., beam_size: _Optional[int] = ..., max_length: _Optional[int] = ...) -> None: ...
