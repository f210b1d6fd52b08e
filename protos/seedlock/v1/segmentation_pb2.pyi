from seedlock.protos.seedlock.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SegmentRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "image", "request_id")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    image: bytes
    request_id: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., image: _Optional[bytes] = ..., request_id: _Optional[str] = ...) -> None: ...

class SegmentResponse(_message.Message):
    __slots__ = ("mask_png", "class_names", "class_pixel_counts", "model_name", "model_version", "model_digest", "timing", "width", "height", "request_id")
    MASK_PNG_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    CLASS_PIXEL_COUNTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    mask_png: bytes
    class_names: _containers.RepeatedScalarFieldContainer[str]
    class_pixel_counts: _containers.RepeatedScalarFieldContainer[int]
    model_name: str
    model_version: int
    model_digest: str
    timing: _common_pb2.Timing
    width: int
    height: int
    request_id: str
    def __init__(self, mask_png: _Optional[bytes] = ..., class_names: _Optional[_Iterable[str]] = ..., class_pixel_counts: _Optional[_Iterable[int]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., model_digest: _Optional[str] = ..., timing: _Optional[_Union[_common_pb2.Timing, _Mapping]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...
