"""Client-side exceptions: one class per gRPC status, carrying the server's
code and message, and also the matching built-in exception type, so callers
can ``except ValueError`` / ``LookupError`` / ``TimeoutError`` / ``ConnectionError``."""

from __future__ import annotations

import grpc


class SeedlockError(Exception):
    """A call failed. ``code`` is the gRPC status, ``message`` the server's text."""

    def __init__(self, code: grpc.StatusCode, message: str, method: str = "") -> None:
        self.code = code
        self.message = message
        self.method = method
        super().__init__(f"{code.name}: {message}" if message else code.name)


class InvalidArgument(SeedlockError, ValueError):
    """The request was wrong: an undecodable image, a bad tensor shape or dtype."""


class NotFound(SeedlockError, LookupError):
    """No such model or version on the server."""


class ResourceExhausted(SeedlockError):
    """The payload was too large, or the model was at its in-flight limit."""


class DeadlineExceeded(SeedlockError, TimeoutError):
    """The call did not finish within its timeout."""


class Unavailable(SeedlockError, ConnectionError):
    """The server could not be reached, is shutting down, or the model is not ready."""


class Unimplemented(SeedlockError, NotImplementedError):
    """The server does not offer this RPC."""


class Internal(SeedlockError, RuntimeError):
    """The server failed (a bug on its side)."""


_BY_CODE: dict[grpc.StatusCode, type[SeedlockError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
}


def from_rpc_error(error: grpc.RpcError, method: str = "") -> SeedlockError:
    """The exception for a failed call, keeping the server's message."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return _BY_CODE.get(code, SeedlockError)(code, details or "", method)
