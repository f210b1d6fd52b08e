"""Sessions for served models: a prebuilt TensorRT engine where the model
version has one this host can run, else the runtime the version is pinned to
(ONNX Runtime, or OpenVINO for bf16/int8 exports) through the one session
factory, :func:`seedlock.core.sessions.graph_session`. The backend
(``--backend``) decides whether engines recorded in the manifest (``seedlock
export trt``) are used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from seedlock.core.manifest import GraphSpec, Manifest, ManifestError
from seedlock.core.openvino_runtime import is_openvino
from seedlock.core.sessions import SessionConfig, graph_session
from seedlock.core.tensorrt_runtime import EngineSession, host_refusal

log = logging.getLogger("seedlock.serve")


class GraphSession(Protocol):
    """What the server uses of a session: ``onnxruntime.InferenceSession``,
    :class:`~seedlock.core.tensorrt_runtime.EngineSession` or
    :class:`~seedlock.core.openvino_runtime.OpenVINOSession`."""

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
    # The model's pinned thread count, whatever the host or --threads: the
    # server scales by instances, never by changing a session's arithmetic.
    config = replace(config, intra_op_threads=manifest.intra_op_threads)
    sessions: dict[str, GraphSession] = {}
    for role, spec in sorted(manifest.graphs.items()):
        if not spec.file.endswith(".onnx"):
            raise ManifestError(f"graph {role!r} is {spec.file!r}; this server runs ONNX graphs only")
        engine_wanted = config.backend == "tensorrt" or (config.backend == "auto" and role in manifest.engines)
        session, why_not = _engine_session(manifest, folder, spec, role) if engine_wanted else (None, "")
        if session is None:
            session = graph_session(manifest, folder / spec.file, config)
            check_graph(session, spec, role)
            if why_not:
                log.warning(
                    "model %s version %d graph %r: %s; serving %s through %s (%s) instead",
                    manifest.name, manifest.version, role, why_not, spec.file,
                    "OpenVINO" if is_openvino(session) else "ONNX Runtime",
                    ", ".join(session.get_providers()),
                )
        sessions[role] = session
    return ModelRuntime(manifest, folder, sessions)
