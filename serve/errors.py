"""Request errors and their gRPC status codes (DESIGN.md, Errors).

Servicer code raises :class:`ServeError`; :func:`rpc` turns it, and the
library errors that stand for bad input, into a status with a message a
person can act on. Anything else is a bug: it is logged with its traceback and
answered INTERNAL, and the server carries on.

Messages quote what a client sent only through :func:`echo` (a short, marked
prefix), and :func:`status_of` caps every message: a status travels in the
``grpc-message`` trailer, and a trailer over grpc's metadata limit (8 KB soft,
16 KB hard) reaches the client as RESOURCE_EXHAUSTED instead of the real status.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from typing import Any, Callable, Sequence, TypeVar

import grpc

from seedlock.core.imaging import ImageError

log = logging.getLogger("seedlock.serve")
F = TypeVar("F", bound=Callable[..., Any])

ECHO_CHARS = 64  # of a client's string quoted in a message
ECHO_ITEMS = 8  # of a client's list (names, dimensions) quoted in a message
# UTF-8 bytes of a status message. grpc percent-encodes every byte outside
# printable ASCII, so the trailer stays under 3 KB whatever the message holds.
MAX_MESSAGE_BYTES = 1024


def echo(value: object, limit: int = ECHO_CHARS, bare: bool = False) -> str:
    """``value`` as a message quotes it: its repr when short, else the repr of
    its first ``limit`` characters (bytes) marked as cut, with its full length.
    ``bare``: without the quotes (control characters still escaped), for tokens like a datatype."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        size = len(value)
        head = bytes(value[:limit])
        return repr(head) if size <= limit else f"{head!r}… ({size} bytes)"
    text = value if isinstance(value, str) else str(value)
    shown = repr(text[:limit])
    if bare:
        shown = shown[1:-1]
    return shown if len(text) <= limit else f"{shown}… ({len(text)} characters)"


def echo_list(values: Sequence[object], limit: int = ECHO_ITEMS, bare: bool = False) -> str:
    """A client's list (names, a shape) for a message: its first ``limit``
    items, strings through :func:`echo`, and how many there are when cut.
    ``bare``: items unquoted, comma-separated, no brackets."""
    shown = [echo(v, bare=bare) if isinstance(v, str) else _cut(str(v)) for v in values[:limit]]
    more = f", … ({len(values)} in all)" if len(values) > limit else ""
    return f"{', '.join(shown)}{more}" if bare else f"[{', '.join(shown)}{more}]"


def _cut(text: str, limit: int = ECHO_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def cap(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """``message`` as valid UTF-8 of at most ``limit`` bytes (cut and marked when longer)."""
    data = message.encode("utf-8", "backslashreplace")
    if len(data) <= limit:
        return data.decode("utf-8")
    return data[: limit - 20].decode("utf-8", "ignore") + " … (message cut)"


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
    """The runtimes' "bad input" errors: onnxruntime's, and the TensorRT and OpenVINO sessions'."""
    from seedlock.core.graph_io import GraphInputError

    try:
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
    except ImportError:  # pragma: no cover - onnxruntime layout changed
        return (GraphInputError,)
    return (InvalidArgument, GraphInputError)


_ORT_INVALID = _ort_invalid_argument()


OUT_OF_MEMORY = (
    "the server ran out of memory for this request; send less at once "
    "(fewer rows in a batch, smaller images or tensors)"
)


def status_of(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    """The status a request error maps to, its message capped (:func:`cap`);
    anything unexpected is a bug (INTERNAL, logged with its traceback)."""
    code, message = _status_of(exc, method)
    return code, cap(message)


def _status_of(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, ServeError):
        return exc.code, exc.message
    if isinstance(exc, ImageError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, _ORT_INVALID):
        return grpc.StatusCode.INVALID_ARGUMENT, f"the model rejected the input: {exc}"
    if isinstance(exc, MemoryError):
        # The request was too big for the memory this host has left: the
        # client can act on it by sending less, and the server carries on
        # (what the failed request held is freed with its frames).
        log.warning("%s: out of memory (%s); answered RESOURCE_EXHAUSTED", method, exc or "MemoryError")
        return grpc.StatusCode.RESOURCE_EXHAUSTED, OUT_OF_MEMORY
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
