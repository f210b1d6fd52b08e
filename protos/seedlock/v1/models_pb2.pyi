from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelVersionInfo(_message.Message):
    __slots__ = ("version", "ready", "task", "digest", "providers", "reason", "labels", "max_batch_size", "batching", "batching_reason", "preferred_batch_sizes", "bit_exact_with_export", "bit_exact_detail", "intra_op_threads", "instances", "max_queue_size")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    BATCHING_REASON_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_BATCH_SIZES_FIELD_NUMBER: _ClassVar[int]
    BIT_EXACT_WITH_EXPORT_FIELD_NUMBER: _ClassVar[int]
    BIT_EXACT_DETAIL_FIELD_NUMBER: _ClassVar[int]
    INTRA_OP_THREADS_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_SIZE_FIELD_NUMBER: _ClassVar[int]
    version: int
    ready: bool
    task: str
    digest: str
    providers: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    max_batch_size: int
    batching: str
    batching_reason: str
    preferred_batch_sizes: _containers.RepeatedScalarFieldContainer[int]
    bit_exact_with_export: bool
    bit_exact_detail: str
    intra_op_threads: int
    instances: int
    max_queue_size: int
    def __init__(self, version: _Optional[int] = ..., ready: _Optional[bool] = ..., task: _Optional[str] = ..., digest: _Optional[str] = ..., providers: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., max_batch_size: _Optional[int] = ..., batching: _Optional[str] = ..., batching_reason: _Optional[str] = ..., preferred_batch_sizes: _Optional[_Iterable[int]] = ..., bit_exact_with_export: _Optional[bool] = ..., bit_exact_detail: _Optional[str] = ..., intra_op_threads: _Optional[int] = ..., instances: _Optional[int] = ..., max_queue_size: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "versions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersionInfo]
    def __init__(self, name: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ModelVersionInfo, _Mapping]]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "server_version", "providers")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    server_version: str
    providers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., server_version: _Optional[str] = ..., providers: _Optional[_Iterable[str]] = ...) -> None: ...
