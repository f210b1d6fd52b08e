"""KServe v2 tensors <-> numpy: datatypes, raw and typed contents.

Raw contents are little-endian, row-major bytes; they are viewed in place
(``np.frombuffer``), not copied. Typed contents use the ``InferTensorContents``
field that matches the datatype.
"""

from __future__ import annotations

import numpy as np

from seedlock.core.dtypes import TYPED_FIELD, V2_TO_NUMPY, numpy_to_v2
from seedlock.serve.errors import invalid


def v2_datatype(dtype: np.dtype) -> str:
    name = numpy_to_v2(dtype)
    if name is None:
        raise invalid(f"dtype {dtype} has no KServe v2 datatype")
    return name


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
