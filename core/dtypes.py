"""The one datatype table: a tensor's dtype as the manifest spells it (numpy's
name), as KServe v2 spells it, as Triton's ``config.pbtxt`` spells it, and
which ``InferTensorContents`` field carries its typed contents. The server,
the clients and the repository writer all read it from here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DType:
    manifest: str  # numpy's name, as manifest.json spells it
    v2: str  # KServe v2 / Open Inference Protocol datatype
    triton: str  # Triton model_config.proto DataType
    typed_field: str | None  # InferTensorContents field; None: raw contents only

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(self.manifest).newbyteorder("<") if self.manifest != "bool" else np.dtype("bool")


TABLE: tuple[DType, ...] = (
    DType("bool", "BOOL", "TYPE_BOOL", "bool_contents"),
    DType("uint8", "UINT8", "TYPE_UINT8", "uint_contents"),
    DType("uint16", "UINT16", "TYPE_UINT16", "uint_contents"),
    DType("uint32", "UINT32", "TYPE_UINT32", "uint_contents"),
    DType("uint64", "UINT64", "TYPE_UINT64", "uint64_contents"),
    DType("int8", "INT8", "TYPE_INT8", "int_contents"),
    DType("int16", "INT16", "TYPE_INT16", "int_contents"),
    DType("int32", "INT32", "TYPE_INT32", "int_contents"),
    DType("int64", "INT64", "TYPE_INT64", "int64_contents"),
    DType("float16", "FP16", "TYPE_FP16", None),
    DType("float32", "FP32", "TYPE_FP32", "fp32_contents"),
    DType("float64", "FP64", "TYPE_FP64", "fp64_contents"),
)

BY_MANIFEST: dict[str, DType] = {d.manifest: d for d in TABLE}
BY_V2: dict[str, DType] = {d.v2: d for d in TABLE}
# v2 datatype -> numpy dtype (little-endian, as the protocol's raw bytes are).
V2_TO_NUMPY: dict[str, np.dtype] = {d.v2: d.numpy for d in TABLE}
TYPED_FIELD: dict[str, str] = {d.v2: d.typed_field for d in TABLE if d.typed_field}
_NUMPY_TO_V2: dict[np.dtype, str] = {d.numpy.newbyteorder("="): d.v2 for d in TABLE}


def numpy_to_v2(dtype: np.dtype) -> str | None:
    """The v2 datatype of a numpy dtype (any byte order), or None if it has none."""
    return _NUMPY_TO_V2.get(np.dtype(dtype).newbyteorder("="))


def manifest_to_v2(dtype: str) -> str:
    return BY_MANIFEST[dtype].v2


def manifest_to_triton(dtype: str) -> str:
    return BY_MANIFEST[dtype].triton
