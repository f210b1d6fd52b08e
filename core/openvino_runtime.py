"""Serving an ONNX graph with OpenVINO on the CPU, in fp32, bf16 or int8.

:class:`OpenVINOSession` reads a version's ``model.onnx`` with OpenVINO's ONNX
frontend, compiles it for the CPU with the settings the model is pinned to,
and answers the part of ``onnxruntime.InferenceSession`` the server uses
(``run``, ``get_inputs``, ``get_outputs``, ``get_providers``), like the
TensorRT engine session, so task pipelines cannot tell which backend serves
them.

* ``ai.seedlock::BiActivation``: OpenVINO's ONNX frontend does not expand
  model-local functions of custom domains, so the node is translated by a
  frontend conversion extension into the same standard ops the function
  holds (``concat(f(x), -f(-x))``, f = ELU(alpha), or ReLU when alpha is 0).
* Precision: ``fp32`` and ``bf16`` compile the same graph with OpenVINO's
  inference-precision hint; ``int8`` is a quantize/dequantize (QDQ) graph
  written at export, whose remaining float layers run in fp32.
* Determinism: one stream, a pinned thread count (the manifest's, as for ONNX
  Runtime), the latency hint, no dynamic quantization. Whether a row's bytes
  then depend on its batch is not assumed: the server's load-time proof
  (:mod:`seedlock.serve.proofs`) measures it, as for every backend.

``openvino`` is imported lazily: this module imports on any host, and
:func:`openvino_unavailable` says why OpenVINO cannot run where it cannot.
"""

from __future__ import annotations

import functools
import queue
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from seedlock.core.graph_io import GraphInputError, TensorArg, same_kind

PRECISIONS = ("fp32", "bf16", "int8")
# seedlock precision -> OpenVINO's INFERENCE_PRECISION_HINT. int8 layers come
# from the graph's QDQ nodes; what the graph keeps in float runs in fp32.
_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
PROVIDER_PREFIX = "OpenVINO"
BI_ACTIVATION = ("BiActivation", "ai.seedlock")


def _import_openvino() -> Any:
    try:
        import openvino
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken shared library
        raise RuntimeError(
            f"the openvino Python package is not importable ({type(exc).__name__}: {exc}); "
            "install it with `pip install 'seedlock[openvino]'`, or serve with --backend onnxruntime"
        ) from None
    return openvino


@functools.cache
def openvino_unavailable(precision: str = "fp32") -> str | None:
    """Why OpenVINO cannot run a ``precision`` graph on this host's CPU, or None
    (asked once per process: neither the package nor the CPU changes)."""
    try:
        core = _core()
    except RuntimeError as exc:
        return str(exc)
    if precision == "bf16":
        capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if "BF16" not in capabilities:
            # OpenVINO would silently fall back to fp32: other answers than the export's.
            return f"this CPU has no bf16 instructions (OpenVINO reports {', '.join(capabilities)})"
    return None


def _bi_activation(node: Any) -> Any:
    """OpenVINO ops for one BiActivation node: concat(f(x), -f(-x)) on axis 1."""
    import openvino.opset13 as ops

    x = node.get_input(0)
    alpha = float(node.get_attribute("alpha", 0.0))

    def f(v: Any) -> Any:
        return ops.elu(v, alpha) if alpha != 0.0 else ops.relu(v)

    return ops.concat([f(x), ops.negative(f(ops.negative(x)))], 1).outputs()


@functools.cache
def _core() -> Any:
    """One OpenVINO core per process, with seedlock's op registered."""
    ov = _import_openvino()
    from openvino.frontend.onnx import ConversionExtension

    core = ov.Core()
    core.add_extension(ConversionExtension(*BI_ACTIVATION, _bi_activation))
    return core


def compile_properties(precision: str, threads: int) -> dict[str, Any]:
    """The CPU plugin settings a model's answers are pinned to."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return {
        "INFERENCE_PRECISION_HINT": _HINT[precision],
        "INFERENCE_NUM_THREADS": int(threads),
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        # a shared host: do not pin threads to cores other processes need
        "ENABLE_CPU_PINNING": False,
        # weights-only dynamic quantization would make fp32/bf16 answers depend on activations' ranges
        "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0,
    }


class OpenVINOSession:
    """One ONNX graph compiled by OpenVINO for the CPU, run like an ONNX Runtime session.

    Thread-safe like ``InferenceSession.run``, and concurrent like it: each
    call takes an idle infer request from a pool. A compiled model runs its
    requests one at a time on its one stream, so when none is idle another copy
    of the model is compiled with the same settings (same arithmetic, hence the
    same bytes) and lent out; the pool grows to the number of callers that run
    at once, which the server's scheduler bounds by the model's instances.
    OpenVINO releases the GIL while it computes.
    """

    def __init__(self, model: str | Path, precision: str = "fp32", threads: int = 1) -> None:
        reason = openvino_unavailable(precision)
        if reason:
            raise RuntimeError(f"cannot compile {model} with OpenVINO ({precision}): {reason}")
        self.path = Path(model)
        self.precision = precision
        core = _core()
        self._model = core.read_model(str(self.path))
        self._properties = compile_properties(precision, threads)
        compiled = core.compile_model(self._model, "CPU", self._properties)
        self._inputs = {p.get_any_name(): _arg(p) for p in compiled.inputs}
        self._outputs = {p.get_any_name(): _arg(p) for p in compiled.outputs}
        self._idle: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._idle.put(self._request(compiled))
        self._grow = threading.Lock()
        self.copies = 1  # compiled copies of the model (one per concurrent caller seen)

    def _request(self, compiled: Any) -> tuple[Any, Any]:
        """An infer request and its output ports by name (ports belong to the copy)."""
        return compiled.create_infer_request(), {p.get_any_name(): p for p in compiled.outputs}

    def _take(self) -> tuple[Any, Any]:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._grow:  # one compile at a time; a request freed meanwhile is taken instead
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                self.copies += 1
                return self._request(_core().compile_model(self._model, "CPU", self._properties))

    # -- the onnxruntime.InferenceSession surface ----------------------------
    def get_inputs(self) -> list[TensorArg]:
        return list(self._inputs.values())

    def get_outputs(self) -> list[TensorArg]:
        return list(self._outputs.values())

    def get_providers(self) -> list[str]:
        return [f"{PROVIDER_PREFIX}:{self.precision}"]

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray], run_options: Any = None) -> list[np.ndarray]:
        """Arrays of ``output_names`` (all outputs when None), in that order.

        Raises :class:`GraphInputError` for a feed the graph cannot take
        (unknown or missing name, another dtype kind, wrong rank, a fixed axis
        of another size)."""
        names = list(output_names) if output_names else list(self._outputs)
        unknown = [n for n in names if n not in self._outputs]
        if unknown:
            raise GraphInputError(f"{self.path.name} has no output(s) {unknown} (outputs: {list(self._outputs)})")
        if sorted(feeds) != sorted(self._inputs):
            raise GraphInputError(f"{self.path.name} takes inputs {list(self._inputs)}; got {list(feeds)}")
        arrays = {name: self._prepare(name, feeds[name]) for name in self._inputs}
        request, ports = self._take()
        try:
            request.infer(arrays, share_inputs=True)
            # copies: the request's output buffers are reused by its next call
            return [np.array(request.get_tensor(ports[n]).data) for n in names]
        finally:
            self._idle.put((request, ports))

    def _prepare(self, name: str, value: np.ndarray) -> np.ndarray:
        arg = self._inputs[name]
        array = np.asarray(value)
        if not same_kind(array.dtype, arg.dtype):
            raise GraphInputError(f"input {name!r} has dtype {array.dtype}; the graph expects {arg.dtype}")
        if array.ndim != len(arg.shape) or any(d is not None and d != n for d, n in zip(arg.shape, array.shape)):
            expected = ["?" if d is None else d for d in arg.shape]
            raise GraphInputError(f"input {name!r} has shape {list(array.shape)}; the graph takes {expected} (? = any size)")
        if array.size == 0:
            raise GraphInputError(f"input {name!r} is empty (shape {list(array.shape)})")
        return np.ascontiguousarray(array, dtype=arg.dtype)


def _arg(port: Any) -> TensorArg:
    shape = port.get_partial_shape()
    dims = [None if d.is_dynamic else int(d.get_length()) for d in shape] if shape.rank.is_static else []
    return TensorArg.of(port.get_any_name(), dims, port.get_element_type().to_dtype())


def is_openvino(session: Any) -> bool:
    """Whether ``session`` (any runtime's) runs on OpenVINO."""
    return any(p.startswith(PROVIDER_PREFIX + ":") for p in session.get_providers())
