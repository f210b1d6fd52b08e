"""The seedlock gRPC server: KServe v2, ``seedlock.v1`` task services,
``grpc.health.v1`` health and server reflection, on one port.

:func:`start_server` is the in-process entry point (tests, demo, bench);
``seedlock serve`` wraps it with signal handling (``seedlock.serve.cli``).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import grpc
import onnxruntime as ort
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from seedlock.core import tasks
from seedlock.core.errors import UserError
from seedlock.core.sessions import SessionConfig, default_threads, resolve_providers
from seedlock.core.version import VERSION as __version__
from seedlock.protos import pool
from seedlock.protos.inference import grpc_service_pb2, grpc_service_pb2_grpc
from seedlock.protos.seedlock.v1 import models_pb2, models_pb2_grpc
from seedlock.serve.defaults import DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_WORKERS
from seedlock.serve.errors import rpc
from seedlock.serve.kserve import InferenceServicer
from seedlock.serve.repository import Registry, load_repository

log = logging.getLogger("seedlock.serve")


def service_names() -> tuple[str, ...]:
    """Every gRPC service the server offers (for reflection): one per task of the table, and the shared ones."""
    return (
        grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
        *(task.module("serve").SERVICE_NAME for task in tasks.TASKS),
        models_pb2.DESCRIPTOR.services_by_name["Models"].full_name,
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    )


class ModelsServicer(models_pb2_grpc.ModelsServicer):
    """``seedlock.v1.Models``: what is loaded, refused, and on which providers."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @rpc
    def ListModels(self, request: models_pb2.ListModelsRequest, context: grpc.ServicerContext) -> models_pb2.ListModelsResponse:
        reg = self.registry
        response = models_pb2.ListModelsResponse(server_version=__version__, providers=list(reg.config.providers))
        for name in reg.names():
            info = response.models.add(name=name)
            entries = [(v, rt, None) for v, rt in reg.runtimes.get(name, {}).items()]
            entries += [(v if v is not None else 0, None, why) for v, why in reg.refused.get(name, {}).items()]
            for number, rt, why in sorted(entries, key=lambda e: e[0]):
                if rt is not None:
                    info.versions.add(
                        version=number, ready=True, task=rt.task, digest=rt.digest,
                        providers=rt.providers, labels=rt.manifest.labels,
                    )
                else:
                    info.versions.add(version=number, ready=False, reason=why)
        return response


def default_concurrency(intra_op_threads: int) -> int:
    """Requests per model computing at once: enough to overlap one request's
    Python pre/post-processing with another's model run, few enough that the
    cores are not oversubscribed."""
    return max(2, default_threads() // max(1, intra_op_threads))


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


@dataclass
class RunningServer:
    """A started server. ``address`` is ``host:port`` for clients."""

    server: grpc.Server
    registry: Registry
    health: health.HealthServicer
    host: str
    port: int
    executor: ThreadPoolExecutor
    _draining: threading.Event = field(default_factory=threading.Event)

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else ("::1" if self.host == "::" else self.host)
        return _bind_address(host, self.port)

    @property
    def ready(self) -> bool:
        return not self._draining.is_set() and bool(self.registry.ready_names())

    def stop(self, grace: float | None = 5.0) -> None:
        """Drain: health NOT_SERVING, refuse new requests, let in-flight ones
        finish (up to ``grace`` seconds), then stop. Blocks until stopped."""
        if not self._draining.is_set():
            self._draining.set()
            self.health.enter_graceful_shutdown()
            log.info("draining: no new requests; waiting up to %ss for in-flight ones", grace)
        self.server.stop(grace).wait()
        self.executor.shutdown(wait=True)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True when it has stopped."""
        return self.server.wait_for_termination(timeout)

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(grace=1.0)


def start_server(
    repository: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    models: Sequence[str] | None = None,
    providers: str | Sequence[str] | None = None,
    intra_op_threads: int | None = None,
    inter_op_threads: int = 1,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_inflight: int = DEFAULT_MAX_INFLIGHT,
    workers: int = DEFAULT_WORKERS,
    model_concurrency: int | None = None,
    allow_spinning: bool = False,
    cache_dir: str | None = None,
    backend: str = "auto",
) -> RunningServer:
    """Load the repository and serve it on ``host:port`` (0: a free port).

    ``backend``: "auto" serves a graph through its TensorRT engine (``seedlock
    export trt``) when this host can run it, else through ONNX Runtime;
    "onnxruntime" ignores engines; "tensorrt" is "auto" that also warns about
    models without an engine.

    Raises :class:`UserError` when nothing can be served (no repository, no
    loadable model, port taken) or a flag is wrong.
    """
    if workers < 1:
        raise UserError("--workers must be at least 1")
    if max_inflight < 0:
        raise UserError("--max-inflight must be 0 or more")
    chosen = resolve_providers(providers)
    config = SessionConfig(
        providers=tuple(chosen),
        intra_op_threads=intra_op_threads or default_threads(),
        inter_op_threads=inter_op_threads,
        allow_spinning=allow_spinning,
        cache_dir=cache_dir,
        explicit_providers=bool(providers),
        backend=backend,
    )
    log.info(
        "backend %s; onnxruntime %s; execution providers %s (available: %s); %d intra-op thread(s)",
        backend, ort.__version__, ", ".join(chosen), ", ".join(ort.get_available_providers()), config.intra_op_threads,
    )
    concurrency = model_concurrency or default_concurrency(config.intra_op_threads)
    registry = load_repository(repository, config, models=models, max_inflight=max_inflight, concurrency=concurrency)
    if not registry.ready_names():
        reasons = "; ".join(f"{n}: {'; '.join(r.values())}" for n, r in registry.refused.items()) or "it holds no model"
        raise UserError(f"no model in {repository} could be loaded ({reasons})")

    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seedlock-rpc")
    server = grpc.server(
        executor,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
        ],
        # Beyond this many RPCs in the server at once, gRPC answers
        # RESOURCE_EXHAUSTED instead of queueing without bound.
        maximum_concurrent_rpcs=2 * workers + 8,
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    running = RunningServer(server, registry, health_servicer, host, 0, executor)

    used_providers = sorted({p for versions in registry.runtimes.values() for rt in versions.values() for p in rt.providers[:1]})
    extensions = ["seedlock.v1", "health", "reflection"] + [f"provider:{p}" for p in used_providers]
    grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(registry, extensions, lambda: running.ready), server
    )
    for task in tasks.TASKS:  # one seedlock.v1 service per task of the table
        task.module("serve").add_to_server(registry, server)
    models_pb2_grpc.add_ModelsServicer_to_server(ModelsServicer(registry), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    # Reflection describes services from seedlock's private descriptor pool
    # (see seedlock.protos.pool), so the standard ones are added to it too.
    pool.include(health_pb2.DESCRIPTOR)
    pool.include(reflection_pb2.DESCRIPTOR)
    reflection.enable_server_reflection(service_names(), server, pool=pool.POOL)

    try:
        bound = server.add_insecure_port(_bind_address(host, port))
    except RuntimeError as exc:
        executor.shutdown(wait=False)
        raise UserError(f"cannot listen on {_bind_address(host, port)}: {exc}") from None
    if bound == 0:
        executor.shutdown(wait=False)
        raise UserError(f"cannot listen on {_bind_address(host, port)} (address in use or not available)")
    running.port = bound

    for name in registry.names():
        status = health_pb2.HealthCheckResponse.SERVING if registry.runtimes.get(name) else health_pb2.HealthCheckResponse.NOT_SERVING
        health_servicer.set(name, status)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    server.start()
    log.info(
        "serving %d model(s) [%s] on %s (providers: %s)",
        len(registry.ready_names()), ", ".join(registry.ready_names()), running.address, ", ".join(used_providers),
    )
    return running
