"""Channel, timeouts and retries shared by the seedlock clients."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seedlock.clients.errors import from_rpc_error
from seedlock.protos.seedlock.v1 import models_pb2, models_pb2_grpc

DEFAULT_SERVER = "localhost:8001"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def default_server() -> str:
    """``$SEEDLOCK_SERVER`` or ``localhost:8001``."""
    return os.environ.get("SEEDLOCK_SERVER") or DEFAULT_SERVER


@dataclass(frozen=True)
class RetryPolicy:
    """Retry UNAVAILABLE (server unreachable, restarting, draining) only: every
    other status is an answer, and retrying it would return the same answer.
    ``attempts`` counts the first try; waits grow by ``multiplier`` up to
    ``max_backoff`` seconds."""

    attempts: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0


NO_RETRY = RetryPolicy(attempts=1)


def call_with_retry(
    fn: Callable[..., Any],
    request: Any,
    timeout: float | None,
    retry: RetryPolicy,
    method: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Call ``fn(request, timeout=...)``; translate failures to
    :class:`~seedlock.clients.errors.SeedlockError` subclasses."""
    backoff = retry.initial_backoff
    attempts = max(1, retry.attempts)
    for attempt in range(attempts):
        try:
            return fn(request, timeout=timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE and attempt + 1 < attempts:
                sleep(backoff)
                backoff = min(backoff * retry.multiplier, retry.max_backoff)
                continue
            raise from_rpc_error(exc, method) from None
    raise AssertionError("unreachable")  # pragma: no cover


class BaseClient:
    """A channel to one server plus health and model listing.

    ``timeout`` (seconds) applies to every call unless the call overrides it.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        server: str | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.server = server or default_server()
        self.timeout = timeout
        self.retry = retry
        self._own_channel = channel is None
        self.channel = channel or grpc.insecure_channel(
            self.server,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ],
        )
        self._health = health_pb2_grpc.HealthStub(self.channel)
        self._models = models_pb2_grpc.ModelsStub(self.channel)

    def _call(self, fn: Callable[..., Any], request: Any, timeout: float | None, method: str) -> Any:
        return call_with_retry(fn, request, self.timeout if timeout is None else timeout, self.retry, method)

    def health(self, service: str = "", timeout: float | None = None) -> str:
        """The health status name (``SERVING``, ``NOT_SERVING``...) of the
        server ("") or of one model."""
        reply = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service), timeout, "Health.Check")
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def list_models(self, timeout: float | None = None) -> models_pb2.ListModelsResponse:
        """Every model the server knows, with versions, tasks, digests, providers and refusals."""
        return self._call(self._models.ListModels, models_pb2.ListModelsRequest(), timeout, "Models.ListModels")

    def close(self) -> None:
        if self._own_channel:
            self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
