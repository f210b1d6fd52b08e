"""TLS and bearer-token authentication for the server.

- TLS: ``seedlock serve --tls-cert FILE --tls-key FILE`` serves over TLS;
  ``--tls-client-ca FILE`` makes it mutual (every client must present a
  certificate that CA signed, or the handshake fails).
- Tokens: ``--auth-token-file FILE`` holds one or more tokens, one per line
  (blank lines and ``#`` comments ignored). Every call must carry metadata
  ``authorization: Bearer <token>`` naming one of them, or is answered
  UNAUTHENTICATED. Tokens are compared as SHA-256 digests with
  ``hmac.compare_digest`` against every token, so the time taken says nothing
  about how much of a guess was right, nor which token it came close to.

Open without a token, so orchestrators can probe (:data:`OPEN_METHODS`):
``grpc.health.v1.Health`` Check and Watch, and KServe's ServerLive and
ServerReady, which Triton users' Kubernetes probes call. They say only whether
the server (or a named model) is up. Everything else needs the token,
reflection included: it describes the whole API, and grpcurl sends ``-H``
headers with its reflection calls too.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

import grpc

from seedlock.core.credentials import load_tls_files, read_tokens

log = logging.getLogger("seedlock.serve")

OPEN_METHODS = frozenset({
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
})

HOW_TO_SEND = (
    "send metadata 'authorization: Bearer <token>' (seedlock client: --token-file FILE or $SEEDLOCK_TOKEN; "
    "tritonclient: headers={'authorization': 'Bearer <token>'})"
)


@dataclass(frozen=True)
class ServerTLS:
    """The server's certificate chain and key (PEM), and the CA that signs
    client certificates when TLS is mutual."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)], root_certificates=self.client_ca, require_client_auth=self.mutual
        )


def load_server_tls(cert: str | Path, key: str | Path, client_ca: str | Path | None = None) -> ServerTLS:
    """Read and check the files of ``--tls-cert/--tls-key/--tls-client-ca``;
    a missing, unreadable or non-PEM file, or a key that is not the
    certificate's, is a :class:`~seedlock.core.errors.UserError`."""
    files = load_tls_files(cert, key, client_ca, ca_flag="--tls-client-ca")
    assert files.cert_chain is not None and files.private_key is not None
    return ServerTLS(files.cert_chain, files.private_key, files.ca)


def load_tokens(path: str | Path) -> tuple[str, ...]:
    """The tokens of ``--auth-token-file``."""
    return read_tokens(path)


def _digest(token: str | bytes) -> bytes:
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).digest()


class BearerTokenAuth(grpc.aio.ServerInterceptor):
    """Answers UNAUTHENTICATED, before the request is even parsed, every call
    outside ``open_methods`` whose metadata lacks a known bearer token."""

    def __init__(self, tokens: Iterable[str], open_methods: Iterable[str] = OPEN_METHODS) -> None:
        self._digests = tuple(_digest(t) for t in tokens)
        if not self._digests:
            raise ValueError("BearerTokenAuth needs at least one token")
        self.open_methods = frozenset(open_methods)
        self._refused = 0
        self._last_log = 0.0

    def accepts(self, metadata: Iterable[tuple[str, Any]] | None) -> str | None:
        """None when the metadata carries a known token, else why not (for the client)."""
        values = [v for k, v in (metadata or ()) if k == "authorization"]
        if not values:
            return f"this server needs a bearer token: {HOW_TO_SEND}"
        bearer = False
        for value in values:
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                continue
            bearer = True
            given = _digest(token.strip().encode("latin-1"))
            match = False
            for known in self._digests:  # no early exit: every token costs the same
                match |= hmac.compare_digest(given, known)
            if match:
                return None
        if not bearer:
            return f"the authorization metadata must be 'Bearer <token>': {HOW_TO_SEND}"
        return "the bearer token was not accepted; check the token against the server's --auth-token-file"

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or details.method in self.open_methods:
            return handler  # unknown methods get UNIMPLEMENTED as before
        why = self.accepts(details.invocation_metadata)
        if why is None:
            return handler
        self._note_refusal(details.method)
        return _refusal(handler, why)

    def _note_refusal(self, method: str) -> None:
        # One log line per minute at most, so a client hammering without a token cannot flood the log.
        self._refused += 1
        now = time.monotonic()
        if now - self._last_log >= 60.0:
            log.warning("refused %d call(s) without an accepted bearer token (latest: %s)", self._refused, method)
            self._refused, self._last_log = 0, now


def _refusal(handler: grpc.RpcMethodHandler, why: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that answers UNAUTHENTICATED
    without reading the request (it stays undecoded bytes)."""

    async def unary(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, why)

    async def streaming(_request: Any, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, why)
        yield  # pragma: no cover - makes this an async generator; abort raises

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming)
    return grpc.unary_unary_rpc_method_handler(unary)
