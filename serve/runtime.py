"""Sessions for served models: a prebuilt TensorRT engine where the model
version has one this host can run, else ONNX Runtime (execution provider
choice, thread counts and deterministic settings).

The ONNX Runtime provider is taken from what this onnxruntime build offers,
best first (TensorRT EP, CUDA EP, CPU), or named by the operator
(``--providers``). The backend (``--backend``) decides whether engines
recorded in the manifest (``seedlock export trt``) are used.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import onnxruntime as ort

from seedlock.core.errors import UserError
from seedlock.core.manifest import GraphSpec, Manifest, ManifestError
from seedlock.serve.tensorrt_runtime import EngineSession, host_refusal

log = logging.getLogger("seedlock.serve")

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERENCE = (TENSORRT, CUDA, CPU)
ALIASES = {"trt": TENSORRT, "tensorrt": TENSORRT, "cuda": CUDA, "gpu": CUDA, "cpu": CPU}
# "auto": a recorded engine when this host can run it, else ONNX Runtime;
# "tensorrt": the same, but a model without an engine is worth a warning;
# "onnxruntime": ignore engines.
BACKENDS = ("auto", "onnxruntime", "tensorrt")


def default_threads() -> int:
    """Intra-op threads when not given: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def resolve_providers(requested: str | Sequence[str] | None = None) -> list[str]:
    """Execution providers in priority order.

    ``None``: every provider of :data:`PREFERENCE` this build has. Otherwise
    the named ones (``trt``, ``cuda``, ``cpu`` or full ORT names, comma
    separated or a list); a name this build lacks is a :class:`UserError`.
    """
    available = ort.get_available_providers()
    if requested is None or requested == "" or requested == []:
        return [p for p in PREFERENCE if p in available] or [CPU]
    names = [n.strip() for n in requested.split(",")] if isinstance(requested, str) else list(requested)
    chosen: list[str] = []
    for name in filter(None, names):
        full = ALIASES.get(name.lower(), name)
        if full not in available:
            raise UserError(
                f"execution provider {name!r} is not available in this onnxruntime build "
                f"(available: {', '.join(available)}); install the `gpu` extra on a CUDA host for trt/cuda"
            )
        if full not in chosen:
            chosen.append(full)
    if not chosen:
        raise UserError("--providers named no execution provider")
    return chosen


@dataclass(frozen=True)
class SessionConfig:
    """How every session of a server is built."""

    providers: tuple[str, ...] = (CPU,)
    intra_op_threads: int = field(default_factory=default_threads)
    inter_op_threads: int = 1
    # Spinning intra-op threads cut latency but burn cores that gRPC threads need
    # under concurrent load; off unless asked for.
    allow_spinning: bool = False
    cache_dir: str | None = None  # TensorRT engine/timing caches
    explicit_providers: bool = False  # operator named them: fail rather than fall back
    backend: str = "auto"  # one of BACKENDS

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UserError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")


def _provider_options(name: str, config: SessionConfig) -> dict[str, str]:
    if name == TENSORRT:
        cache = config.cache_dir or str(Path.home() / ".cache" / "seedlock" / "tensorrt")
        Path(cache).mkdir(parents=True, exist_ok=True)
        # fp32 only: fp16 would change the answers the manifest's parity checks vouched for.
        return {
            "trt_fp16_enable": "False",
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": cache,
        }
    if name == CUDA:
        # Heuristic algorithm choice: the same convolution algorithm on every
        # load, where benchmarking ("EXHAUSTIVE") could pick differently.
        # TF32 off: fp32 answers must match the CPU within the parity tolerance,
        # and TF32 convolutions/matmuls (the default on Ampere+) would not.
        return {"cudnn_conv_algo_search": "DEFAULT", "use_tf32": "0"}
    return {}


def session_options(config: SessionConfig) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = config.intra_op_threads
    so.inter_op_num_threads = config.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.use_deterministic_compute = True
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.allow_spinning else "0")
    return so


def _load_tensorrt_libraries() -> None:
    """The TensorRT EP dlopen()s libnvinfer by name. The pip ``tensorrt``
    package keeps it outside the loader's search path, but importing the
    package loads it into the process, where dlopen finds it by soname."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - the EP reports the real failure if it matters
        log.debug("tensorrt python package not importable (%s); relying on the system loader path", exc)


def create_session(model: str | Path | bytes, config: SessionConfig) -> ort.InferenceSession:
    """An inference session on the configured providers. When the providers
    were chosen automatically and a GPU one fails to start (no device, driver
    mismatch), fall back to CPU with a warning."""
    source = model if isinstance(model, bytes) else str(model)
    if TENSORRT in config.providers:
        _load_tensorrt_libraries()
    providers = [(p, _provider_options(p, config)) for p in config.providers]
    try:
        return ort.InferenceSession(source, sess_options=session_options(config), providers=providers)
    except Exception as exc:
        if config.explicit_providers or list(config.providers) == [CPU]:
            raise
        log.warning("providers %s failed (%s); falling back to %s", ", ".join(config.providers), exc, CPU)
        return ort.InferenceSession(source, sess_options=session_options(config), providers=[CPU])


class GraphSession(Protocol):
    """What the server uses of a session: ``onnxruntime.InferenceSession`` or
    :class:`~seedlock.serve.tensorrt_runtime.EngineSession`."""

    def run(self, output_names: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[Any]: ...
    def get_inputs(self) -> list[Any]: ...
    def get_outputs(self) -> list[Any]: ...
    def get_providers(self) -> list[str]: ...


def check_graph(session: GraphSession, spec: GraphSpec, role: str) -> None:
    """The manifest's tensor names must be the graph's, or requests would fail late."""
    graph_inputs = [i.name for i in session.get_inputs()]
    graph_outputs = [o.name for o in session.get_outputs()]
    want_in = [t.name for t in spec.inputs]
    want_out = [t.name for t in spec.outputs]
    if sorted(graph_inputs) != sorted(want_in):
        raise ManifestError(f"graph {role!r}: manifest inputs {want_in} but the ONNX graph has {graph_inputs}")
    missing = [n for n in want_out if n not in graph_outputs]
    if missing:
        raise ManifestError(f"graph {role!r}: manifest outputs {missing} are not in the ONNX graph ({graph_outputs})")


@dataclass
class ModelRuntime:
    """One loaded, verified model version: its manifest and a session per graph."""

    manifest: Manifest
    folder: Path
    sessions: dict[str, GraphSession]

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def task(self) -> str:
        return self.manifest.task

    @property
    def digest(self) -> str:
        return self._digest

    @property
    def providers(self) -> list[str]:
        """What actually serves the graphs, "model" first (e.g. ["TensorRTEngine"]
        or ["CUDAExecutionProvider", "CPUExecutionProvider"])."""
        roles = sorted(self.sessions, key=lambda r: (r != "model", r))
        seen: list[str] = []
        for role in roles:
            seen += [p for p in self.sessions[role].get_providers() if p not in seen]
        return seen

    def __post_init__(self) -> None:
        # Computed once: the digest hashes the canonical manifest JSON.
        self._digest = self.manifest.digest

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None, role: str = "model") -> list[np.ndarray]:
        """Run one graph. Session.run is thread-safe and releases the GIL."""
        return self.sessions[role].run(outputs, feeds)


def _engine_session(manifest: Manifest, folder: Path, spec: GraphSpec, role: str) -> tuple[GraphSession | None, str]:
    """The graph's TensorRT engine as a session, or None and why it cannot serve."""
    record = manifest.engine(role)
    if record is None:
        return None, f"has no TensorRT engine (build one with `seedlock export trt {folder.parent}`)"
    reason = host_refusal(record)
    if reason:
        return None, reason
    session = None
    try:
        session = EngineSession(folder / record.file)
        check_graph(session, spec, role)
    except Exception as exc:  # noqa: BLE001 - any engine failure falls back to the ONNX graph
        if session is not None:
            session.close()  # its device memory now, not whenever GC gets to it
        return None, f"engine {record.file} failed to load: {type(exc).__name__}: {exc}"
    log.info("%s v%d graph %r: serving TensorRT engine %s (%s)", manifest.name, manifest.version, role, record.file, record.precision)
    return session, ""


def load_runtime(manifest: Manifest, folder: Path, config: SessionConfig) -> ModelRuntime:
    """A session per graph: the recorded TensorRT engine when the backend allows
    it and this host can run it, else the ONNX graph through ONNX Runtime (with
    a warning saying why, when an engine was expected)."""
    sessions: dict[str, GraphSession] = {}
    for role, spec in sorted(manifest.graphs.items()):
        if not spec.file.endswith(".onnx"):
            raise ManifestError(f"graph {role!r} is {spec.file!r}; this server runs ONNX graphs only")
        engine_wanted = config.backend == "tensorrt" or (config.backend == "auto" and role in manifest.engines)
        session, why_not = _engine_session(manifest, folder, spec, role) if engine_wanted else (None, "")
        if session is None:
            session = create_session(folder / spec.file, config)
            check_graph(session, spec, role)
            if why_not:
                log.warning(
                    "model %s version %d graph %r: %s; serving %s through ONNX Runtime (%s) instead",
                    manifest.name, manifest.version, role, why_not, spec.file, ", ".join(session.get_providers()),
                )
        sessions[role] = session
    return ModelRuntime(manifest, folder, sessions)
