"""Static int8 quantization of an exported ONNX graph (QDQ format).

ONNX Runtime's ``quantize_static`` with min/max calibration over the feeds it
is given: weights int8 per output channel, activations uint8 per tensor; the
layer writing a graph output stays float, and recurrent graphs quantize only
their convolutions and matrix products (:data:`INT8_OPS`). The
result is a standard ONNX graph with QuantizeLinear/DequantizeLinear pairs,
which OpenVINO compiles to int8 kernels (and ONNX Runtime runs as well).
Min/max calibration is a pure function of the feeds, so the same calibration
set gives the same graph bytes; :func:`calibration_record` is what the
manifest keeps to say which set that was.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from seedlock.export.errors import ExportError

# The compute-bound ops int8 pays for: all that a recurrent graph quantizes.
INT8_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
RECURRENT = ("LSTM", "GRU", "RNN")


def calibration_digest(feeds: Iterable[Mapping[str, np.ndarray]]) -> str:
    """sha256 over every calibration tensor (name, dtype, shape, bytes), in order."""
    h = hashlib.sha256()
    for feed in feeds:
        for name in sorted(feed):
            a = np.ascontiguousarray(feed[name])
            h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def calibration_record(feeds: list[Mapping[str, np.ndarray]], source: str, seed: int) -> dict[str, Any]:
    """The manifest's account of a calibration set."""
    return {"method": "minmax", "source": source, "seed": int(seed), "samples": len(feeds),
            "sha256": calibration_digest(feeds)}  # fmt: skip


def _quiet_preprocessing_advice(record: logging.LogRecord) -> bool:
    """ONNX Runtime's quantizer logs advice to run its pre-processing on the
    root logger for every graph; seedlock quantizes the graph as exported."""
    return "pre-processing" not in record.getMessage()


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[Mapping[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed = next(self._feeds, None)
        return None if feed is None else {k: np.ascontiguousarray(v) for k, v in feed.items()}

    def rewind(self) -> None:  # pragma: no cover - only called by entropy/percentile calibrators
        raise NotImplementedError


def quantize_int8(model: bytes, feeds: list[Mapping[str, np.ndarray]]) -> bytes:
    """The QDQ int8 form of ``model`` (ONNX bytes), calibrated on ``feeds``."""
    if not feeds:
        raise ExportError("int8 quantization needs at least one calibration input")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory(prefix="seedlock-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model)
        root = logging.getLogger()
        root.addFilter(_quiet_preprocessing_advice)
        try:
            import onnx

            graph = onnx.load(str(src)).graph
            outputs = {o.name for o in graph.output}
            # The layer that writes a graph output (logits, an image) stays float:
            # its rounding decides argmax ties and grey levels, and it is cheap.
            keep = [n.name for n in graph.node if n.name and set(n.output) & outputs]
            # OpenVINO compiles LSTM/GRU only with constant weights, and the exporter
            # may leave them behind an Unsqueeze the quantizer would wrap in QDQ: in a
            # recurrent graph only convolutions and matrix products are quantized.
            # (Elsewhere every op is: fewer float islands, ~25 % faster in OpenVINO.)
            recurrent = any(n.op_type in RECURRENT for n in graph.node)
            op_types = list(INT8_OPS) if recurrent else None
            quantize_static(
                str(src), str(dst), _Reader(feeds),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep, op_types_to_quantize=op_types,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the quantizer raises anything; say which step failed
            raise ExportError(f"int8 quantization failed: {type(exc).__name__}: {exc}") from None
        finally:
            root.removeFilter(_quiet_preprocessing_advice)
        return dst.read_bytes()
