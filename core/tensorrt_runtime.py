"""Serving a prebuilt TensorRT engine (``<stem>.plan`` from ``seedlock export trt``).

:class:`EngineSession` deserializes the plan with the TensorRT runtime and
answers the part of ``onnxruntime.InferenceSession`` the server uses
(``run``, ``get_inputs``, ``get_outputs``, ``get_providers``), so task
pipelines cannot tell which backend serves them. Device memory and the stream
come from :mod:`seedlock.core.cuda` (ctypes; no pycuda / cuda-python).

``tensorrt`` is imported lazily: this module imports on any host, and
:func:`tensorrt_unavailable` says why engines cannot run where they cannot.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from seedlock.core import cuda
from seedlock.core.engines import EngineRecord, mismatch
from seedlock.core.graph_io import GraphInputError, TensorArg, same_kind

# The label ModelRuntime.providers / ListModels report for graphs served by an
# engine; distinct from ONNX Runtime's "TensorrtExecutionProvider", which
# builds its own engines from the ONNX graph.
ENGINE_PROVIDER = "TensorRTEngine"

def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError from a broken libnvinfer
        raise RuntimeError(
            f"the tensorrt Python package is not importable ({type(exc).__name__}: {exc}); "
            "install TensorRT on this GPU host (pip install tensorrt from pypi.nvidia.com, matching the "
            "version the engine was built with), or serve the ONNX graphs (--backend onnxruntime)"
        ) from None
    return tensorrt


def tensorrt_unavailable() -> str | None:
    """Why TensorRT engines cannot run on this host (no tensorrt package, no
    usable GPU), or None when they can."""
    try:
        _import_tensorrt()
    except RuntimeError as exc:
        return str(exc)
    return cuda.available()


def host_refusal(record: EngineRecord) -> str | None:
    """Why ``record``'s engine must not be deserialized here, or None: TensorRT
    or a GPU is missing, or the engine was built for another TensorRT / CUDA /
    GPU (a foreign plan fails to deserialize at best)."""
    reason = tensorrt_unavailable()
    if reason:
        return reason
    try:
        host = cuda.host_environment(_import_tensorrt().__version__)
    except cuda.CudaError as exc:
        return f"cannot describe this host's GPU: {exc}"
    return mismatch(record, host)


# The engine session's name for a feed it cannot take (INVALID_ARGUMENT).
EngineInputError = GraphInputError


class EngineSession:
    """One deserialized TensorRT engine, run like an ONNX Runtime session.

    One execution context, used under a lock: a context per concurrent caller
    would multiply activation memory and need one optimization profile per
    context in the plan; runs of one graph are serialized instead (the GPU is
    the bottleneck either way, and the server's per-model gates already bound
    how many requests wait). Device buffers are per tensor and only grow, so
    steady-state requests allocate nothing.
    """

    def __init__(self, plan: str | Path) -> None:
        trt = _import_tensorrt()
        reason = cuda.available()
        if reason:
            raise RuntimeError(f"cannot load TensorRT engine {plan}: {reason}")
        self.path = Path(plan)
        self._trt = trt
        # TensorRT requires the logger to outlive the runtime and engine.
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise RuntimeError(
                f"TensorRT could not deserialize {self.path} (see the TensorRT log above); "
                "the plan was likely built with another TensorRT version or GPU; rebuild it on this host "
                "with `seedlock export trt`"
            )
        self._engine = engine
        context = engine.create_execution_context()
        if context is None:
            raise RuntimeError(f"TensorRT could not create an execution context for {self.path} (out of GPU memory?)")
        self._context = context
        self._inputs: dict[str, TensorArg] = {}
        self._outputs: dict[str, TensorArg] = {}
        self._profile: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_location(name) != trt.TensorLocation.DEVICE:
                raise RuntimeError(f"{self.path}: tensor {name!r} is a host (shape) tensor; seedlock engines take device tensors only")
            try:
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            except TypeError:
                raise RuntimeError(f"{self.path}: tensor {name!r} has dtype {engine.get_tensor_dtype(name)}, which numpy cannot hold") from None
            shape = [int(d) for d in engine.get_tensor_shape(name)]
            arg = TensorArg.of(name, [d if d >= 0 else None for d in shape], dtype)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._inputs[name] = arg
                if all(d >= 0 for d in shape):  # static input: the profile is its shape
                    self._profile[name] = (tuple(shape), tuple(shape))
                else:  # seedlock builds one optimization profile (index 0), used by the one context
                    lo, _opt, hi = engine.get_tensor_profile_shape(name, 0)
                    self._profile[name] = (tuple(int(d) for d in lo), tuple(int(d) for d in hi))
            else:
                self._outputs[name] = arg
        self._stream = cuda.Stream()
        self._buffers = {name: cuda.DeviceBuffer() for name in (*self._inputs, *self._outputs)}
        self._lock = threading.Lock()

    # -- the onnxruntime.InferenceSession surface ----------------------------
    def get_inputs(self) -> list[TensorArg]:
        return list(self._inputs.values())

    def get_outputs(self) -> list[TensorArg]:
        return list(self._outputs.values())

    def get_providers(self) -> list[str]:
        return [ENGINE_PROVIDER]

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray], run_options: Any = None) -> list[np.ndarray]:
        """Run the engine; arrays of ``output_names`` (all outputs when None), in that order.

        Raises :class:`EngineInputError` for a feed the engine cannot take (unknown or missing
        name, wrong dtype kind, shape outside the engine's optimization profile).
        """
        names = list(output_names) if output_names else list(self._outputs)
        unknown = [n for n in names if n not in self._outputs]
        if unknown:
            raise EngineInputError(f"engine {self.path.name} has no output(s) {unknown} (outputs: {list(self._outputs)})")
        extra = [n for n in feeds if n not in self._inputs]
        missing = [n for n in self._inputs if n not in feeds]
        if extra or missing:
            raise EngineInputError(f"engine {self.path.name} takes inputs {list(self._inputs)}; got {list(feeds)}")
        arrays = {name: self._prepare(name, feeds[name]) for name in self._inputs}
        with self._lock:
            return self._run_locked(names, arrays)

    # -- internals -----------------------------------------------------------
    def _prepare(self, name: str, value: np.ndarray) -> np.ndarray:
        arg = self._inputs[name]
        array = np.asarray(value)
        # Cast within a kind only (float64 -> float32, int64 -> int32: an engine
        # may narrow what the ONNX graph declared); float for int is a caller's bug.
        if not same_kind(array.dtype, arg.dtype):
            raise EngineInputError(f"input {name!r} has dtype {array.dtype}; the engine expects {arg.dtype}")
        lo, hi = self._profile[name]
        shape = array.shape
        if len(shape) != len(lo) or any(not (a <= d <= b) for d, a, b in zip(shape, lo, hi)):
            raise EngineInputError(
                f"input {name!r} has shape {list(shape)}, outside the engine's optimization profile "
                f"(min {list(lo)}, max {list(hi)}); send smaller batches or rebuild the engine with a wider "
                "profile (`seedlock export trt`)"
            )
        return np.ascontiguousarray(array, dtype=arg.dtype)

    def _bind(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Set input shapes and every tensor's device address; empty host arrays for the outputs."""
        context = self._context
        for name, array in arrays.items():
            if not context.set_input_shape(name, array.shape):
                raise EngineInputError(f"TensorRT refused shape {list(array.shape)} for input {name!r} (see the TensorRT log)")
        results: dict[str, np.ndarray] = {}
        for name, arg in self._outputs.items():
            shape = tuple(int(d) for d in context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise RuntimeError(f"engine {self.path.name}: output {name!r} has a data-dependent shape {list(shape)}; not supported")
            results[name] = np.empty(shape, arg.dtype)
        for name, array in (*arrays.items(), *results.items()):
            ptr = self._buffers[name].ensure(array.nbytes)
            if not context.set_tensor_address(name, ptr):
                raise RuntimeError(f"TensorRT refused the device address of tensor {name!r}")
        return results

    def _execute(self) -> None:
        if not self._context.execute_async_v3(self._stream.handle):
            self._stream.synchronize()
            raise RuntimeError(f"TensorRT failed to run {self.path.name} (see the TensorRT log above)")

    def _run_locked(self, names: list[str], arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        stream = self._stream
        results = self._bind(arrays)
        for name, array in arrays.items():
            cuda.memcpy_htod_async(self._buffers[name].ptr, array, stream)
        self._execute()
        for name in names:
            cuda.memcpy_dtoh_async(results[name], self._buffers[name].ptr, stream)
        # The host arrays (`arrays`, `results`) stay referenced until here, as the async copies require.
        stream.synchronize()
        return [results[name] for name in names]

    def time_device(self, feeds: Mapping[str, np.ndarray], runs: int, warmup: int = 10) -> list[float]:
        """Milliseconds per engine execution with inputs already on the device
        (copied once), synchronizing after each: the kernel time a benchmark
        compares with the memory-bandwidth floor, without host copies."""
        import time

        arrays = {name: self._prepare(name, feeds[name]) for name in self._inputs}
        with self._lock:
            self._bind(arrays)
            for name, array in arrays.items():
                cuda.memcpy_htod_async(self._buffers[name].ptr, array, self._stream)
            self._stream.synchronize()
            samples = []
            for i in range(warmup + runs):
                t0 = time.perf_counter()
                self._execute()
                self._stream.synchronize()
                if i >= warmup:
                    samples.append((time.perf_counter() - t0) * 1e3)
        return samples

    def close(self) -> None:
        """Release the context, engine and device memory (context first: it uses the engine)."""
        with self._lock:
            self._context = None
            self._engine = None
            for buf in self._buffers.values():
                buf.free()
            self._stream.close()
