"""The one way seedlock builds ONNX Runtime sessions: the server's, the export
parity checks', ``export verify``'s and the benches', so a check runs a graph
exactly as the server will (same execution providers, thread counts,
optimization level and deterministic settings).

The execution provider is taken from what this onnxruntime build offers, best
first (TensorRT EP, CUDA EP, CPU), or named by the operator (``--providers``).
onnxruntime is imported when a session is built, not when this module is.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from seedlock.core.errors import UserError

if TYPE_CHECKING:
    import onnxruntime as ort

    from seedlock.core.manifest import Manifest

log = logging.getLogger("seedlock.sessions")

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERENCE = (TENSORRT, CUDA, CPU)
ALIASES = {"trt": TENSORRT, "tensorrt": TENSORRT, "cuda": CUDA, "gpu": CUDA, "cpu": CPU}
# "auto": a recorded engine when this host can run it, else the runtime the
# model is pinned to (ONNX Runtime for fp32, OpenVINO for bf16/int8);
# "tensorrt": the same, but a model without an engine is worth a warning;
# "onnxruntime": ignore engines; "openvino": every graph through OpenVINO
# (fp32 models in fp32).
BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt")
# Intra-op threads of a model's sessions unless its manifest records another
# count. ONNX Runtime's last bits depend on how many threads split a kernel,
# so the count belongs to the model (written at export), not to the host: a
# server scales by running more instances, never by changing it. One thread,
# because with two a row's bytes also depend on the batch it is in (measured on
# the tiny U-Net: rows differ in batches of 2, 4, 7 and 8, padded or not); with
# one they are identical at every batch size and position.
DEFAULT_MODEL_THREADS = 1
MAX_MODEL_THREADS = 256


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
    import onnxruntime as ort

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
    intra_op_threads: int = DEFAULT_MODEL_THREADS
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


def session_options(config: SessionConfig) -> "ort.SessionOptions":
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = config.intra_op_threads
    so.inter_op_num_threads = config.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.use_deterministic_compute = True
    # No CPU memory arena: an arena keeps the peak of the largest call for the
    # session's life (a burst of large requests held ~0.8 GB for good). Plain
    # malloc costs no measurable latency here, and the server returns freed
    # memory after large requests (seedlock.serve.memory).
    so.enable_cpu_mem_arena = False
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


def create_session(model: str | Path | bytes, config: SessionConfig | None = None) -> "ort.InferenceSession":
    """An inference session on the configured providers (default: the
    server's defaults on the CPU). When the providers were chosen automatically
    and a GPU one fails to start (no device, driver mismatch), fall back to CPU
    with a warning."""
    import onnxruntime as ort

    config = config or SessionConfig()
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


def provider_session(model: str | Path | bytes, provider: str, intra_op_threads: int | None = None) -> "ort.InferenceSession":
    """A session on exactly ``provider`` (for comparing backends: no fallback).
    Raises ``RuntimeError`` saying why when this build or host cannot run it."""
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        raise RuntimeError(f"{provider} is not in this onnxruntime build; install the gpu extra on a CUDA host")
    config = SessionConfig(providers=(provider,), explicit_providers=True,
                           intra_op_threads=intra_op_threads or default_threads())  # fmt: skip
    session = create_session(model, config)
    if session.get_providers()[0] != provider:
        raise RuntimeError(f"onnxruntime could not start {provider} on this host")
    return session


def graph_session(manifest: "Manifest", path: str | Path, config: SessionConfig | None = None) -> Any:
    """A session for one graph of ``manifest`` on the runtime its answers are
    pinned to: OpenVINO at the recorded precision for a bf16/int8 graph (or any
    graph under ``backend="openvino"``), else ONNX Runtime
    (:func:`create_session`). The thread count is the model's. Raises
    :class:`~seedlock.core.manifest.ManifestError` when the backend asked for
    cannot give this version's answers (a bf16/int8 version under
    ``onnxruntime``, no OpenVINO, no bf16 on this CPU): the server skips the
    version and serves the rest."""
    from dataclasses import replace

    from seedlock.core.manifest import ManifestError

    config = replace(config or SessionConfig(), intra_op_threads=manifest.intra_op_threads)
    if manifest.runtime == "openvino" and config.backend == "onnxruntime":
        raise ManifestError(
            f"model {manifest.name} version {manifest.version} is exported in {manifest.precision} and pinned to OpenVINO; "
            "serve it with --backend auto or openvino, or export an fp32 version for ONNX Runtime"
        )
    role = next((r for r, g in manifest.graphs.items() if g.file == Path(path).name), "model")
    precision = manifest.precision_of(role)
    # A graph a reduced-precision version keeps in fp32 (a decoder step) runs on
    # ONNX Runtime, as in the fp32 export: the same answers, and a small graph
    # called once per token pays OpenVINO's larger per-call cost.
    if config.backend == "openvino" or precision != "fp32":
        from seedlock.core.openvino_runtime import OpenVINOSession

        try:
            return OpenVINOSession(path, precision, config.intra_op_threads)
        except RuntimeError as exc:
            raise ManifestError(f"model {manifest.name} version {manifest.version}: {exc}") from None
    return create_session(path, config)


def graph_sessions(manifest: "Manifest", folder: str | Path, config: SessionConfig | None = None) -> dict[str, Any]:
    """:func:`graph_session` for every graph of ``manifest``, by role."""
    return {role: graph_session(manifest, Path(folder) / g.file, config) for role, g in manifest.graphs.items()}
