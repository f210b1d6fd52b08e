"""KServe v2 tensors <-> numpy: datatypes, raw and typed contents.

Raw contents are little-endian, row-major bytes; they are viewed in place
(``np.frombuffer``), not copied. Typed contents use the ``InferTensorContents``
field that matches the datatype.
"""

from __future__ import annotations

import numpy as np

from seedlock.serve.errors import invalid

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
# manifest dtype names (numpy spelling) -> v2 datatype
MANIFEST_TO_V2: dict[str, str] = {
    "float32": "FP32",
    "float64": "FP64",
    "float16": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "uint8": "UINT8",
    "bool": "BOOL",
}
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


def v2_datatype(dtype: np.dtype) -> str:
    try:
        return NUMPY_TO_V2[np.dtype(dtype).newbyteorder("=")]
    except KeyError:
        raise invalid(f"dtype {dtype} has no KServe v2 datatype") from None


def _count(shape: list[int], name: str) -> int:
    if any(d < 0 for d in shape):
        raise invalid(f"input {name!r}: shape {shape} has a negative dimension")
    n = 1
    for d in shape:
        n *= d
    return n


def from_raw(name: str, datatype: str, shape: list[int], raw: bytes) -> np.ndarray:
    dtype = V2_TO_NUMPY.get(datatype)
    if dtype is None:
        raise invalid(f"input {name!r}: datatype {datatype!r} is not supported (use one of {', '.join(V2_TO_NUMPY)})")
    n = _count(shape, name)
    if len(raw) != n * dtype.itemsize:
        raise invalid(
            f"input {name!r}: raw contents are {len(raw)} bytes but shape {shape} of {datatype} needs {n * dtype.itemsize}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def from_typed(name: str, datatype: str, shape: list[int], contents) -> np.ndarray:
    field = TYPED_FIELD.get(datatype)
    if field is None:
        if datatype in V2_TO_NUMPY:
            raise invalid(f"input {name!r}: {datatype} travels only as raw_input_contents")
        raise invalid(f"input {name!r}: datatype {datatype!r} is not supported (use one of {', '.join(V2_TO_NUMPY)})")
    values = getattr(contents, field)
    n = _count(shape, name)
    if len(values) != n:
        raise invalid(f"input {name!r}: {len(values)} values in contents.{field} but shape {shape} needs {n}")
    dtype = V2_TO_NUMPY[datatype]
    wide = np.array(values, dtype=np.float64 if dtype.kind == "f" else (np.bool_ if dtype.kind == "b" else np.int64 if dtype.kind == "i" else np.uint64))
    if dtype.kind in "iu" and wide.size:
        info = np.iinfo(dtype)
        if wide.min() < info.min or wide.max() > info.max:
            raise invalid(f"input {name!r}: values out of range for {datatype}")
    return wide.astype(dtype, copy=False).reshape(shape)


def set_typed(contents, datatype: str, array: np.ndarray) -> None:
    field = TYPED_FIELD.get(datatype)
    if field is None:
        raise invalid(f"output datatype {datatype} can only be returned as raw_output_contents")
    getattr(contents, field).extend(array.ravel().tolist())
