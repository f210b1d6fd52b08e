"""The seedlock gRPC server: KServe v2, ``seedlock.v1`` task services,
``grpc.health.v1`` health and server reflection, on one port.

:func:`start_server` is the in-process entry point (tests, demo, bench);
``seedlock serve`` wraps it with signal handling (``seedlock.serve.cli``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Sequence

import grpc
import onnxruntime as ort
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from seedlock.core import tasks
from seedlock.core.argtypes import MAX_PORT
from seedlock.core.errors import UserError
from seedlock.core.imaging import DEFAULT_LIMITS, ImageLimits
from seedlock.core.sessions import SessionConfig, default_threads, resolve_providers
from seedlock.core.version import VERSION as __version__
from seedlock.protos import pool
from seedlock.protos.inference import grpc_service_pb2, grpc_service_pb2_grpc
from seedlock.protos.seedlock.v1 import models_pb2, models_pb2_grpc
from seedlock.serve.asgi_server import HttpServer, http_endpoints
from seedlock.serve.defaults import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_QUEUE
from seedlock.serve.errors import rpc
from seedlock.serve.handlers import GuardedServer
from seedlock.serve.kserve import TRITON_EXTENSIONS, InferenceServicer
from seedlock.serve.model_control import DEFAULT_POLL_SECS, MODES, ModelControl, empty_registry
from seedlock.serve.repository import Registry, load_repository
from seedlock.serve.security import BearerTokenAuth, ServerTLS
from seedlock.serve.shared_memory import SystemSharedMemory

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
    """``seedlock.v1.Models``: what is loaded, refused, on which providers, and
    how each version is scheduled (its load-time proofs)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @rpc
    async def ListModels(self, request: models_pb2.ListModelsRequest, context: grpc.aio.ServicerContext) -> models_pb2.ListModelsResponse:
        reg = self.registry
        response = models_pb2.ListModelsResponse(server_version=__version__, providers=list(reg.config.providers))
        for name in reg.names():
            info = response.models.add(name=name)
            entries = [(v, rt, None) for v, rt in reg.runtimes.get(name, {}).items()]
            entries += [(v if v is not None else 0, None, why) for v, why in reg.refused.get(name, {}).items()]
            for number, rt, why in sorted(entries, key=lambda e: e[0]):
                if rt is None:
                    info.versions.add(version=number, ready=False, reason=why)
                    continue
                serving = reg.serving[(name, number)]
                info.versions.add(
                    version=number, ready=True, task=rt.task, digest=rt.digest,
                    providers=rt.providers, labels=rt.manifest.labels,
                    max_batch_size=serving.batching.max_batch_size, batching=serving.batching.mode,
                    batching_reason=serving.batching_reason, preferred_batch_sizes=list(serving.batching.preferred),
                    bit_exact_with_export=serving.bit_exact, bit_exact_detail=serving.bit_exact_detail,
                    intra_op_threads=rt.manifest.intra_op_threads, instances=serving.instances,
                    max_queue_size=serving.max_queue, reason=serving.unverified,
                )
        return response


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class RunningServer:
    """A started server, its asyncio event loop running on a thread of its own.
    ``address`` is ``host:port`` for clients."""

    def __init__(self, registry: Registry, host: str, control: ModelControl | None = None) -> None:
        self.registry = registry
        self.control = control if control is not None else ModelControl(registry)
        self.shm = SystemSharedMemory()
        self.host = host
        self.port = 0
        self.server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._draining = threading.Event()
        self._stopped = threading.Event()
        self.http_port: int | None = None  # KServe v2 REST; None: off
        self.metrics_port: int | None = None  # Prometheus /metrics; None: off
        self.endpoints: list[HttpServer] = []  # their uvicorn servers, on this loop

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else ("::1" if self.host == "::" else self.host)
        return _bind_address(host, self.port)

    def address_at(self, port: int) -> str:
        """``host:port`` for clients of another port of this server (REST, metrics)."""
        return f"{self.address.rsplit(':', 1)[0]}:{port}"

    @property
    def ready(self) -> bool:
        # explicit model control may start with no model loaded (Triton is ready then too)
        return not self._draining.is_set() and (bool(self.registry.ready_names()) or self.control.mode == "explicit")

    def stop(self, grace: float | None = 5.0) -> None:
        """Drain: health NOT_SERVING, refuse new requests, let queued and
        in-flight ones finish (up to ``grace`` seconds), then stop. Blocks until stopped."""
        if self._stopped.is_set():
            return
        if not self._draining.is_set():
            self._draining.set()
            log.info("draining: no new requests; waiting up to %ss for queued and in-flight ones", grace)
        asyncio.run_coroutine_threadsafe(self._shutdown(grace), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join()
        self.loop.close()
        self._stopped.set()

    async def _shutdown(self, grace: float | None) -> None:
        await self.health.enter_graceful_shutdown()
        assert self.server is not None
        await self.control.stop()  # no repository change while draining
        await asyncio.gather(self.server.stop(grace), self.registry.drain(grace), *(e.stop(grace) for e in self.endpoints))
        self.registry.close()  # server.stop returned: every RPC has answered
        self.shm.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True when it has stopped."""
        return self._stopped.wait(timeout)

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
    threads: int | None = None,
    inter_op_threads: int = 1,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_queue: int = DEFAULT_MAX_QUEUE,
    workers: int | None = None,
    instances: int | None = None,
    allow_spinning: bool = False,
    cache_dir: str | None = None,
    backend: str = "auto",
    image_limits: ImageLimits = DEFAULT_LIMITS,
    tls: ServerTLS | None = None,
    auth_tokens: Sequence[str] = (),
    http_port: int | None = None,
    metrics_port: int | None = None,
    model_control_mode: str = "none",
    repository_poll_secs: float = DEFAULT_POLL_SECS,
    load_models: Sequence[str] = (),
) -> RunningServer:
    """Load the repository and serve it on ``host:port`` (0: a free port).

    ``threads``: CPU threads each model version may keep busy (default: the cores);
    each model version runs ``threads // its intra-op threads`` instances
    unless its ``config.pbtxt`` (``instance_group``) or ``instances`` says
    otherwise. A session's own thread count is the model's (its manifest), so
    no flag here changes an answer. ``max_queue``: requests waiting per model
    version before RESOURCE_EXHAUSTED (``config.pbtxt``'s ``max_queue_size``
    wins). ``workers``: threads decoding and encoding requests.

    ``backend``: "auto" serves a graph through its TensorRT engine (``seedlock
    export trt``) when this host can run it, else through the runtime the
    version is pinned to (ONNX Runtime; OpenVINO for bf16/int8 exports);
    "onnxruntime" ignores engines and skips bf16/int8 versions; "openvino" runs
    every graph through OpenVINO; "tensorrt" is "auto" that also warns about
    models without an engine.

    ``image_limits``: the largest image a request may send, read from its
    header before anything is decoded.

    ``tls``: serve over TLS (mutual when it has a client CA), from
    :func:`seedlock.serve.security.load_server_tls`. ``auth_tokens``: when
    given, every call but health needs ``authorization: Bearer <one of them>``.

    ``model_control_mode``: Triton's ``none``, ``poll`` (rescan the repository
    every ``repository_poll_secs``) or ``explicit`` (RepositoryModelLoad/Unload;
    only ``load_models`` load at start-up, every model with ``["*"]``); see
    :mod:`seedlock.serve.model_control`.

    Raises :class:`UserError` when nothing can be served (no repository, no
    loadable model, port taken) or a flag is wrong.
    """
    for flag, value in (("--threads", threads), ("--instances", instances), ("--workers", workers)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if max_queue < 1:
        raise UserError(f"--max-queue must be at least 1, got {max_queue}")
    if not 0 <= port <= MAX_PORT:
        raise UserError(f"--port must be from 0 to {MAX_PORT} (0 picks a free port), got {port}")
    for flag, value in (("--http-port", http_port), ("--metrics-port", metrics_port)):
        if value is not None and not 0 <= value <= MAX_PORT:
            raise UserError(f"{flag} must be from 0 to {MAX_PORT} (0 picks a free port; -1 turns it off), got {value}")
    if model_control_mode not in MODES:
        raise UserError(f"--model-control-mode must be one of {', '.join(MODES)}, got {model_control_mode!r}")
    if load_models and model_control_mode != "explicit":
        raise UserError("--load-model needs --model-control-mode explicit (in the other modes every model loads)")
    if not 0 < repository_poll_secs <= 86400:
        raise UserError(f"--repository-poll-secs must be over 0 and at most 86400, got {repository_poll_secs}")
    explicit = model_control_mode == "explicit"
    if explicit:  # Triton: only the --load-model models (all with '*'); --models narrows that
        if "*" not in load_models:
            models = [m for m in load_models if not models or m in models]  # [] loads nothing
    auth = BearerTokenAuth(auth_tokens) if auth_tokens else None
    chosen = resolve_providers(providers)
    config = SessionConfig(
        providers=tuple(chosen),
        inter_op_threads=inter_op_threads,
        allow_spinning=allow_spinning,
        cache_dir=cache_dir,
        explicit_providers=bool(providers),
        backend=backend,
    )
    budget = threads or default_threads()
    log.info(
        "backend %s; onnxruntime %s; execution providers %s (available: %s); %d thread(s) for model instances",
        backend, ort.__version__, ", ".join(chosen), ", ".join(ort.get_available_providers()), budget,
    )
    settings = dict(threads=budget, max_queue=max_queue, instances=instances, workers=workers or max(2, default_threads()))
    if models is not None and not models:  # explicit mode, nothing to load at start-up
        registry = empty_registry(repository, config, **settings)
    else:
        registry = load_repository(repository, config, models=models, **settings)
    registry.image_limits = image_limits
    if not registry.ready_names() and not explicit:
        reasons = "; ".join(f"{n}: {'; '.join(r.values())}" for n, r in registry.refused.items()) or "it holds no model"
        raise UserError(f"no model in {repository} could be loaded ({reasons})")

    control = ModelControl(registry, model_control_mode, repository_poll_secs, models)
    running = RunningServer(registry, host, control)
    started = threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(running.loop)
        try:
            running.loop.run_until_complete(_start(running, host, port, max_message_bytes, tls, auth,
                                                    http_port=http_port, metrics_port=metrics_port))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)
            started.set()
            return
        started.set()
        running.loop.run_forever()

    running._thread = threading.Thread(target=main, name="seedlock-server", daemon=True)
    running._thread.start()
    started.wait()
    if failure:
        running._thread.join()
        running.loop.close()
        raise failure[0]
    log.info(
        "serving %d model(s) [%s] on %s (providers: %s)",
        len(registry.ready_names()), ", ".join(registry.ready_names()), running.address,
        ", ".join(_used_providers(registry)),
    )
    return running


def _used_providers(registry: Registry) -> list[str]:
    return sorted({p for versions in registry.runtimes.values() for rt in versions.values() for p in rt.providers[:1]})


async def _start(running: RunningServer, host: str, port: int, max_message_bytes: int,
                 tls: ServerTLS | None = None, auth: BearerTokenAuth | None = None,
                 http_port: int | None = None, metrics_port: int | None = None) -> None:
    """Build, bind and start the grpc.aio server, and the REST and metrics ports, on the running loop."""
    registry = running.registry
    # No maximum_concurrent_rpcs: a waiting request costs a coroutine, not a
    # thread, and each model's queue bound refuses overload; health is never
    # refused for load.
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
        ],
        interceptors=[auth] if auth is not None else None,  # the token is checked before anything else
    )
    running.server = server
    registry.start()
    # Services register through the guard: a request that does not parse is
    # INVALID_ARGUMENT, and calls report to the trimmer, which returns memory once they pause.
    services = GuardedServer(server, watcher=registry.trimmer)
    extensions = ["seedlock.v1", "health", "reflection", *TRITON_EXTENSIONS] + [f"provider:{p}" for p in _used_providers(registry)]
    servicer = InferenceServicer(registry, extensions, lambda: running.ready, max_message_bytes, running.shm, running.control)
    grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, services)
    for task in tasks.TASKS:  # one seedlock.v1 service per task of the table
        task.module("serve").add_to_server(registry, services)
    models_pb2_grpc.add_ModelsServicer_to_server(ModelsServicer(registry), services)
    health_pb2_grpc.add_HealthServicer_to_server(running.health, services)
    # Reflection describes services from seedlock's private descriptor pool
    # (see seedlock.protos.pool), so the standard ones are added to it too.
    pool.include(health_pb2.DESCRIPTOR)
    pool.include(reflection_pb2.DESCRIPTOR)
    reflection.enable_server_reflection(service_names(), services, pool=pool.POOL)
    address = _bind_address(host, port)
    try:
        bound = server.add_secure_port(address, tls.credentials()) if tls is not None else server.add_insecure_port(address)
    except RuntimeError as exc:
        await registry.drain(0)
        registry.close()
        raise UserError(f"cannot listen on {address}: {exc}") from None
    if bound == 0:
        await registry.drain(0)
        registry.close()
        raise UserError(f"cannot listen on {address} (address in use or not available)")
    running.port = bound
    try:  # REST and metrics share the gRPC port's TLS and tokens, and its message limit
        endpoints = http_endpoints(host, http_port, metrics_port, servicer, registry, max_message_bytes, tls, auth)
    except UserError:
        await registry.drain(0)
        registry.close()
        raise
    running.endpoints = [e for e in endpoints if e is not None]
    running.http_port, running.metrics_port = (e.port if e is not None else None for e in endpoints)
    for name in registry.names():
        status = health_pb2.HealthCheckResponse.SERVING if registry.runtimes.get(name) else health_pb2.HealthCheckResponse.NOT_SERVING
        await running.health.set(name, status)
    await running.health.set("", health_pb2.HealthCheckResponse.SERVING)

    async def model_changed(name: str) -> None:
        serving = bool(registry.runtimes.get(name))
        await running.health.set(name, health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING)

    running.control.on_change = model_changed
    running.control.start()
    await server.start()
    for endpoint in running.endpoints:
        await endpoint.start()
