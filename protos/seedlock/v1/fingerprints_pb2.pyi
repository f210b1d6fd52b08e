from seedlock.protos.seedlock.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "count", "quality", "seed", "request_id")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    count: int
    quality: str
    seed: int
    request_id: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., count: _Optional[int] = ..., quality: _Optional[str] = ..., seed: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("images_png", "seed", "quality", "model_name", "model_version", "model_digest", "timing", "request_id", "width", "height")
    IMAGES_PNG_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    images_png: _containers.RepeatedScalarFieldContainer[bytes]
    seed: int
    quality: str
    model_name: str
    model_version: int
    model_digest: str
    timing: _common_pb2.Timing
    request_id: str
    width: int
    height: int
    def __init__(self, images_png: _Optional[_Iterable[bytes]] = ..., seed: _Optional[int] = ..., quality: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., model_digest: _Optional[str] = ..., timing: _Optional[_Union[_common_pb2.Timing, _Mapping]] = ..., request_id: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("set_a", "set_b", "binarize_threshold", "request_id")
    SET_A_FIELD_NUMBER: _ClassVar[int]
    SET_B_FIELD_NUMBER: _ClassVar[int]
    BINARIZE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    set_a: _containers.RepeatedScalarFieldContainer[bytes]
    set_b: _containers.RepeatedScalarFieldContainer[bytes]
    binarize_threshold: int
    request_id: str
    def __init__(self, set_a: _Optional[_Iterable[bytes]] = ..., set_b: _Optional[_Iterable[bytes]] = ..., binarize_threshold: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class MeanStd(_message.Message):
    __slots__ = ("mean", "std")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    mean: float
    std: float
    def __init__(self, mean: _Optional[float] = ..., std: _Optional[float] = ...) -> None: ...

class SetSummary(_message.Message):
    __slots__ = ("count", "mean_of_means", "std_of_means", "mean_of_stds", "std_of_stds")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_OF_MEANS_FIELD_NUMBER: _ClassVar[int]
    STD_OF_MEANS_FIELD_NUMBER: _ClassVar[int]
    MEAN_OF_STDS_FIELD_NUMBER: _ClassVar[int]
    STD_OF_STDS_FIELD_NUMBER: _ClassVar[int]
    count: int
    mean_of_means: float
    std_of_means: float
    mean_of_stds: float
    std_of_stds: float
    def __init__(self, count: _Optional[int] = ..., mean_of_means: _Optional[float] = ..., std_of_means: _Optional[float] = ..., mean_of_stds: _Optional[float] = ..., std_of_stds: _Optional[float] = ...) -> None: ...

class CompareResponse(_message.Message):
    __slots__ = ("set_a", "set_b", "centroid_distance", "hamming", "hamming_fraction", "pearson", "iou", "pairs", "width", "height", "binarize_threshold", "binarization", "histogram_bins", "timing", "request_id")
    SET_A_FIELD_NUMBER: _ClassVar[int]
    SET_B_FIELD_NUMBER: _ClassVar[int]
    CENTROID_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    HAMMING_FIELD_NUMBER: _ClassVar[int]
    HAMMING_FRACTION_FIELD_NUMBER: _ClassVar[int]
    PEARSON_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BINARIZE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    BINARIZATION_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_BINS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    set_a: SetSummary
    set_b: SetSummary
    centroid_distance: float
    hamming: MeanStd
    hamming_fraction: float
    pearson: MeanStd
    iou: MeanStd
    pairs: int
    width: int
    height: int
    binarize_threshold: int
    binarization: str
    histogram_bins: int
    timing: _common_pb2.Timing
    request_id: str
    def __init__(self, set_a: _Optional[_Union[SetSummary, _Mapping]] = ..., set_b: _Optional[_Union[SetSummary, _Mapping]] = ..., centroid_distance: _Optional[float] = ..., hamming: _Optional[_Union[MeanStd, _Mapping]] = ..., hamming_fraction: _Optional[float] = ..., pearson: _Optional[_Union[MeanStd, _Mapping]] = ..., iou: _Optional[_Union[MeanStd, _Mapping]] = ..., pairs: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., binarize_threshold: _Optional[int] = ..., binarization: _Optional[str] = ..., histogram_bins: _Optional[int] = ..., timing: _Optional[_Union[_common_pb2.Timing, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...
