"""What every non-ONNX-Runtime session (TensorRT engines, OpenVINO) shares to
look like ``onnxruntime.InferenceSession`` to the server: the tensor
description it returns from ``get_inputs``/``get_outputs``, and the error it
raises for a feed the graph cannot take. numpy only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# numpy dtype -> ONNX Runtime's NodeArg.type string, so callers that read .type work unchanged.
ORT_TYPES = {
    np.dtype(np.float32): "tensor(float)",
    np.dtype(np.float16): "tensor(float16)",
    np.dtype(np.float64): "tensor(double)",
    np.dtype(np.int64): "tensor(int64)",
    np.dtype(np.int32): "tensor(int32)",
    np.dtype(np.int8): "tensor(int8)",
    np.dtype(np.uint8): "tensor(uint8)",
    np.dtype(np.bool_): "tensor(bool)",
}


class GraphInputError(ValueError):
    """A feed the graph cannot take: the request's fault (INVALID_ARGUMENT),
    like onnxruntime's InvalidArgument."""


@dataclass(frozen=True)
class TensorArg:
    """One graph input or output, shaped like ``onnxruntime.NodeArg``
    (``shape``: None for a dynamic axis)."""

    name: str
    shape: list[int | None]
    type: str
    dtype: np.dtype

    @classmethod
    def of(cls, name: str, shape: list[int | None], dtype: np.dtype) -> "TensorArg":
        dtype = np.dtype(dtype)
        return cls(name, shape, ORT_TYPES.get(dtype, f"tensor({dtype.name})"), dtype)


def same_kind(a: np.dtype, b: np.dtype) -> bool:
    """Both integer, both float or both bool: a cast between them keeps the meaning."""
    def kind(d: np.dtype) -> str:
        return "int" if d.kind in "iu" else d.kind

    return kind(np.dtype(a)) == kind(np.dtype(b))
