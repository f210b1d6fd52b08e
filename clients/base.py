"""Channel (plaintext or TLS, with an optional bearer token), timeouts and
retries shared by the seedlock clients."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seedlock.clients.errors import from_rpc_error
from seedlock.core.credentials import check_certificates, check_key_pair, check_private_key, check_token, read_file
from seedlock.core.errors import UserError
from seedlock.protos.seedlock.v1 import models_pb2, models_pb2_grpc

DEFAULT_SERVER = "localhost:8001"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def default_server() -> str:
    """``$SEEDLOCK_SERVER`` or ``localhost:8001``."""
    return os.environ.get("SEEDLOCK_SERVER") or DEFAULT_SERVER


def default_token() -> str | None:
    """``$SEEDLOCK_TOKEN`` (what ``seedlock client`` sends when no --token-file is given), or None."""
    value = os.environ.get("SEEDLOCK_TOKEN")
    return check_token(value, "$SEEDLOCK_TOKEN") if value is not None and value.strip() else None


Pem = str | Path | bytes  # a file name, or the PEM text itself as bytes


def _pem(value: Pem, what: str, check: Callable[[bytes, str], None]) -> bytes:
    data = value if isinstance(value, bytes) else read_file(value, what)
    check(data, f"{what} {value}" if not isinstance(value, bytes) else f"the {what} given")
    return data


def channel_credentials(tls_ca: Pem | None = None, tls_cert: Pem | None = None, tls_key: Pem | None = None) -> grpc.ChannelCredentials:
    """TLS credentials: verify the server with ``tls_ca`` (default: the system's
    roots) and, for mutual TLS, present ``tls_cert`` with its ``tls_key``. Each
    is a PEM file name or PEM bytes, checked here, so a wrong one is named now
    rather than failing the handshake later."""
    if (tls_cert is None) != (tls_key is None):
        raise UserError("a client certificate and its key go together: give both tls_cert and tls_key, or neither")
    roots = None if tls_ca is None else _pem(tls_ca, "CA certificate", check_certificates)
    chain = key = None
    if tls_cert is not None and tls_key is not None:
        chain = _pem(tls_cert, "TLS certificate", check_certificates)
        key = _pem(tls_key, "TLS key", check_private_key)
        if not isinstance(tls_cert, bytes) and not isinstance(tls_key, bytes):
            check_key_pair(tls_cert, tls_key)
    return grpc.ssl_channel_credentials(root_certificates=roots, private_key=key, certificate_chain=chain)


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: Any


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                  grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call. A metadata header
    rather than call credentials, so it also works over plaintext to a server
    behind a TLS-terminating proxy (never send a token in clear over a network)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {check_token(token, 'the token')}")

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        metadata = [m for m in (details.metadata or ()) if m[0] != "authorization"] + [self._header]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


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

    TLS: ``tls_ca`` (PEM file or bytes) verifies the server; ``tls=True``
    without it uses the system's roots; ``tls_cert`` with ``tls_key`` is the
    client certificate for a server that requires one (mutual TLS);
    ``tls_server_name`` checks the certificate for that name instead of the
    host in ``server`` (e.g. when connecting to 127.0.0.1). ``token``: sent as
    ``authorization: Bearer <token>`` on every call (see :func:`default_token`).
    """

    def __init__(
        self,
        server: str | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        channel: grpc.Channel | None = None,
        *,
        tls: bool = False,
        tls_ca: Pem | None = None,
        tls_cert: Pem | None = None,
        tls_key: Pem | None = None,
        tls_server_name: str | None = None,
        token: str | None = None,
    ) -> None:
        self.server = server or default_server()
        self.timeout = timeout
        self.retry = retry
        self.tls = tls or any(v is not None for v in (tls_ca, tls_cert, tls_key, tls_server_name))
        self._own_channel = channel is None
        if channel is None:
            options: list[tuple[str, Any]] = [
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ]
            if self.tls:
                if tls_server_name:
                    options.append(("grpc.ssl_target_name_override", tls_server_name))
                channel = grpc.secure_channel(self.server, channel_credentials(tls_ca, tls_cert, tls_key), options=options)
            else:
                channel = grpc.insecure_channel(self.server, options=options)
        if token is not None:
            channel = grpc.intercept_channel(channel, BearerToken(token))  # closing it closes the channel below
        self.channel = channel
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
