"""Request errors and their gRPC status codes (DESIGN.md, Errors).

Servicer code raises :class:`ServeError`; :func:`rpc` turns it, and the
library errors that stand for bad input, into a status with a message a
person can act on. Anything else is a bug: it is logged with its traceback and
answered INTERNAL, and the server carries on.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, TypeVar

import grpc

from seedlock.core.imaging import ImageError

log = logging.getLogger("seedlock.serve")
F = TypeVar("F", bound=Callable[..., Any])


class ServeError(Exception):
    """A request the server will not (or cannot now) answer, with its status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ServeError:
    return ServeError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServeError:
    return ServeError(grpc.StatusCode.NOT_FOUND, message)


def unavailable(message: str) -> ServeError:
    return ServeError(grpc.StatusCode.UNAVAILABLE, message)


def exhausted(message: str) -> ServeError:
    return ServeError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def deadline_exceeded(message: str = "the request's deadline passed before the model ran") -> ServeError:
    return ServeError(grpc.StatusCode.DEADLINE_EXCEEDED, message)


def check_deadline(context: grpc.ServicerContext) -> None:
    """Stop early when the caller has given up: no point running the model."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise deadline_exceeded()
    if not context.is_active():
        raise ServeError(grpc.StatusCode.CANCELLED, "the client cancelled the request")


def _ort_invalid_argument() -> tuple[type[BaseException], ...]:
    """The runtimes' "bad input" errors: onnxruntime's and the TensorRT engine session's."""
    from seedlock.serve.tensorrt_runtime import EngineInputError

    try:
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
    except ImportError:  # pragma: no cover - onnxruntime layout changed
        return (EngineInputError,)
    return (InvalidArgument, EngineInputError)


_ORT_INVALID = _ort_invalid_argument()


def rpc(method: F) -> F:
    """Wrap a servicer method: map errors to statuses, never let one escape."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except ServeError as exc:
            code, message = exc.code, exc.message
        except ImageError as exc:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except _ORT_INVALID as exc:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, f"the model rejected the input: {exc}"
        except Exception as exc:  # noqa: BLE001 - a bug must not take the server down
            log.exception("%s failed", method.__name__)
            code, message = grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}: {type(exc).__name__}: {exc}"
        log.debug("%s -> %s: %s", method.__name__, code.name, message)
        context.abort(code, message)

    return wrapper  # type: ignore[return-value]
