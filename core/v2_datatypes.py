"""KServe v2 (Open Inference Protocol) datatypes, the tables the server and
its clients must agree on: v2 datatype <-> numpy dtype, and which
``InferTensorContents`` field carries each datatype's typed contents."""

from __future__ import annotations

import numpy as np

# v2 datatype -> numpy dtype (little-endian, as the protocol's raw bytes are).
V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype("bool"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
NUMPY_TO_V2: dict[np.dtype, str] = {dt.newbyteorder("="): name for name, dt in V2_TO_NUMPY.items()}
# v2 datatype -> InferTensorContents field; FP16 has none (raw only).
TYPED_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def numpy_to_v2(dtype: np.dtype) -> str | None:
    """The v2 datatype of a numpy dtype (any byte order), or None if it has none."""
    return NUMPY_TO_V2.get(np.dtype(dtype).newbyteorder("="))
