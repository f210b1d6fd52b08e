"""Request errors and their gRPC status codes (DESIGN.md, Errors).

Servicer code raises :class:`ServeError`; :func:`rpc` turns it, and the
library errors that stand for bad input, into a status with a message a
person can act on. Anything else is a bug: it is logged with its traceback and
answered INTERNAL, and the server carries on.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
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


def check_deadline(deadline: float | None, stop: threading.Event | None = None) -> None:
    """Between the steps of a long job: stop when the deadline (``time.monotonic()``)
    has passed or the caller has gone."""
    if stop is not None and stop.is_set():
        raise ServeError(grpc.StatusCode.CANCELLED, "the client cancelled the request")
    if deadline is not None and time.monotonic() >= deadline:
        raise deadline_exceeded("the request's deadline passed while the model was running; it was stopped")


def _ort_invalid_argument() -> tuple[type[BaseException], ...]:
    """The runtimes' "bad input" errors: onnxruntime's and the TensorRT engine session's."""
    from seedlock.core.tensorrt_runtime import EngineInputError

    try:
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
    except ImportError:  # pragma: no cover - onnxruntime layout changed
        return (EngineInputError,)
    return (InvalidArgument, EngineInputError)


_ORT_INVALID = _ort_invalid_argument()


def status_of(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    """The status a request error maps to; anything unexpected is a bug (INTERNAL, logged)."""
    if isinstance(exc, ServeError):
        return exc.code, exc.message
    if isinstance(exc, ImageError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, _ORT_INVALID):
        return grpc.StatusCode.INVALID_ARGUMENT, f"the model rejected the input: {exc}"
    log.error("%s failed", method, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(exc).__name__}: {exc}"


def rpc(method: F) -> F:
    """Wrap an async servicer method, unary or server-streaming (an async
    generator): map errors to statuses, never let one escape."""

    async def fail(exc: Exception, context: grpc.aio.ServicerContext) -> None:
        code, message = status_of(exc, method.__name__)
        log.debug("%s -> %s: %s", method.__name__, code.name, message)
        await context.abort(code, message)

    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def streaming(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                async for item in method(self, request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug must not take the server down
                await fail(exc, context)

        return streaming  # type: ignore[return-value]

    if not inspect.iscoroutinefunction(method):
        raise TypeError(f"{method.__qualname__}: servicer methods are async (the server is grpc.aio)")

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug must not take the server down
            await fail(exc, context)

    return wrapper  # type: ignore[return-value]
