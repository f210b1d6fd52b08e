"""What every method the server registers gets, whatever its service
(KServe v2, ``seedlock.v1``, health, reflection):

- Request bytes that do not parse as the method's message are answered
  INVALID_ARGUMENT with what to send. grpc parses a request before any
  servicer code runs and answers a parse failure UNKNOWN, with a logged
  traceback; so the request deserializer itself is replaced: on failure it
  hands the call a :class:`Malformed` marker, which the wrapped behaviour
  answers.
- Calls report their start and end to a :class:`CallWatcher`, so the server
  can give memory back once large requests are over (:mod:`seedlock.serve.memory`).
- Each call ends with one access log line (:mod:`seedlock.serve.logs`: method,
  model, status, duration, request id, peer) and, when tracing is on, a span
  (:mod:`seedlock.serve.tracing`). Both cost a level check when off.

:class:`GuardedServer` stands in for the grpc.aio server where the generated
``add_*_to_server`` functions want one: it wraps their handlers and
registers them on the real server.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Protocol, Sequence

import grpc

from seedlock.serve import tracing
from seedlock.serve.errors import cap
from seedlock.serve.logs import ACCESS, log_access


class CallWatcher(Protocol):
    """Told when calls start and end. A streamed answer (which may stay open,
    as a health Watch does) reports only its end, with ``counted=False``."""

    def started(self) -> None: ...
    def ended(self, counted: bool = True) -> None: ...


class _Unwatched:
    def started(self) -> None:
        pass

    def ended(self, counted: bool = True) -> None:
        pass


@dataclass(frozen=True)
class Malformed:
    """Request bytes that did not parse as the method's message."""

    method: str
    message_type: str
    size: int
    error: str

    @property
    def message(self) -> str:
        return cap(
            f"the request ({self.size} bytes) is not a valid {self.message_type} message ({self.error}); "
            f"{self.method} takes a serialized {self.message_type}"
        )


def _message_type(parse: Callable[[bytes], Any]) -> str:
    """``inference.ModelInferRequest`` for a generated ``ModelInferRequest.FromString``."""
    owner = getattr(parse, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", None) or "request"


def _deserializer(parse: Callable[[bytes], Any], method: str) -> Callable[[bytes], Any]:
    message_type = _message_type(parse)

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:  # noqa: BLE001 - DecodeError, RecursionError on deep nesting, MemoryError
            return Malformed(method, message_type, len(data), str(exc) or type(exc).__name__)

    return deserialize


def _model_of(request: Any) -> str | None:
    """The model a request names: ``model_name`` (KServe infer, seedlock.v1),
    else ``name`` in KServe's per-model requests (metadata, ready, config, ...)."""
    if isinstance(request, Malformed) or request is None:
        return None
    model = getattr(request, "model_name", None)
    if model is None and type(request).__module__.startswith("seedlock.protos.inference"):
        model = getattr(request, "name", None)
    return (model or None) if isinstance(model, str) else None


def _request_id(request: Any, metadata: Any) -> str | None:
    """The request's own ``id`` (KServe infer), else its ``x-request-id`` metadata."""
    own = getattr(request, "id", None)
    if isinstance(own, str) and own:
        return cap(own, 128)
    for key, value in metadata or ():
        if key == "x-request-id" and isinstance(value, str):
            return cap(value, 128)
    return None


class _Call:
    """One call being observed for the access log and tracing (made only when either is on)."""

    def __init__(self, method: str, context: Any) -> None:
        self.method = method
        self.context = context
        self._metadata: Any = None
        self.model: str | None = None
        self.request_id: str | None = None
        self.start = time.perf_counter()
        self.span = tracing.start(method, self.metadata) if tracing.enabled() else None

    @property
    def metadata(self) -> Any:
        if self._metadata is None:
            self._metadata = _safe(self.context.invocation_metadata) or ()
        return self._metadata

    @classmethod
    def begin(cls, method: str, context: Any) -> "_Call | None":
        return cls(method, context) if ACCESS.isEnabledFor(logging.INFO) or tracing.enabled() else None

    def saw(self, request: Any) -> None:
        """Note the (first) request message's model and id."""
        if self.model is None and self.request_id is None:
            self.model = _model_of(request)
            own = getattr(request, "id", None)  # the metadata is read only when the request has no id
            self.request_id = cap(own, 128) if isinstance(own, str) and own else _request_id(None, self.metadata)

    def end(self, exc: BaseException | None) -> None:
        duration_ms = (time.perf_counter() - self.start) * 1000.0
        code = _safe(self.context.code)
        if code is None:  # no status set: what grpc answers for how the behaviour ended
            code = (grpc.StatusCode.OK if exc is None
                    else grpc.StatusCode.CANCELLED if isinstance(exc, (asyncio.CancelledError, GeneratorExit))
                    else grpc.StatusCode.UNKNOWN)  # fmt: skip
        code = code if isinstance(code, grpc.StatusCode) else _code_of(code)
        if self.request_id is None:
            self.request_id = _request_id(None, self.metadata)
        error = None
        if code is not grpc.StatusCode.OK:
            details = _safe(self.context.details)
            error = details.decode("utf-8", "replace") if isinstance(details, bytes) else details
            error = error or (f"{type(exc).__name__}: {exc}" if exc is not None and code is grpc.StatusCode.UNKNOWN else None)
        tracing.finish(self.span, code, self.model, self.request_id, error)
        if ACCESS.isEnabledFor(logging.INFO):
            line = (self.method, code.name, duration_ms, self.model, self.request_id, _safe(self.context.peer), error)
            try:  # written once the answer is on its way: a line takes tens of microseconds
                asyncio.get_running_loop().call_soon(log_access, *line)
            except RuntimeError:  # a plain behaviour, on a thread of grpc's
                log_access(*line)


def _safe(getter: Callable[[], Any]) -> Any:
    """A context accessor's value, None where this kind of context lacks it."""
    try:
        return getter()
    except Exception:  # noqa: BLE001 - observing a call must never fail it
        return None


def _code_of(value: Any) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if value in (code.value[0], code.value):
            return code
    return grpc.StatusCode.UNKNOWN


async def _refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
    if isinstance(request, Malformed):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext, call: _Call | None) -> AsyncIterator[Any]:
    async for request in requests:
        if call is not None:
            call.saw(request)
        await _refuse(request, context)
        yield request


async def _admitted(request: Any, request_streaming: bool, context: grpc.aio.ServicerContext, call: "_Call | None") -> Any:
    """The request a behaviour gets: a stream checked message by message, or
    one message noted for the access log and answered here if malformed."""
    if request_streaming:
        return _checked(request, context, call)
    if call is not None:
        call.saw(request)
    await _refuse(request, context)
    return request


def _wrap_behaviour(behaviour: Callable[..., Any], request_streaming: bool, response_streaming: bool,
                    watcher: CallWatcher, method: str = "") -> Callable[..., Any]:  # fmt: skip
    """``behaviour`` that first answers a malformed request (each message of a
    request stream), and reports its start and end (to ``watcher``, the access
    log and tracing). Keeps its kind (a coroutine, an async generator for
    streamed answers, or a plain function), which grpc.aio dispatches on."""

    if inspect.isasyncgenfunction(behaviour):

        async def streamed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            call = _Call.begin(method, context)
            failure: BaseException | None = None
            try:
                request = await _admitted(request, request_streaming, context, call)
                async for item in behaviour(request, context):
                    yield item
            except BaseException as exc:
                failure = exc
                raise
            finally:
                watcher.ended(counted=False)
                if call is not None:
                    call.end(failure)

        return streamed

    if not inspect.iscoroutinefunction(behaviour):
        # A plain function, which grpc.aio runs on a thread (health's List,
        # which the aio servicer leaves unimplemented): its context aborts by raising.
        def plain(request: Any, context: Any) -> Any:
            call = _Call.begin(method, context)
            failure: BaseException | None = None
            try:
                if not request_streaming:
                    if call is not None:
                        call.saw(request)
                    if isinstance(request, Malformed):
                        context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
                return behaviour(request, context)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                watcher.ended(counted=False)
                if call is not None:
                    call.end(failure)

        return plain

    async def called(request: Any, context: grpc.aio.ServicerContext) -> Any:
        # A streamed answer (here through context.write, as health's Watch
        # does) may stay open for good: only unary answers count as in flight.
        counted = not response_streaming
        if counted:
            watcher.started()
        call = _Call.begin(method, context)
        failure: BaseException | None = None
        try:
            request = await _admitted(request, request_streaming, context, call)
            return await behaviour(request, context)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            watcher.ended(counted)
            if call is not None:
                call.end(failure)

    return called


def guard_handler(handler: grpc.RpcMethodHandler, method: str, watcher: CallWatcher) -> grpc.RpcMethodHandler:
    """``handler`` of ``method`` (``/package.Service/Method``) with a
    deserializer that never raises and behaviours that answer what it could not parse."""
    parse = handler.request_deserializer
    fields = {
        "request_deserializer": _deserializer(parse, method) if parse is not None else None,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_wrap_behaviour(handler.stream_stream, True, True, watcher, method), **fields)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_wrap_behaviour(handler.stream_unary, True, False, watcher, method), **fields)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_wrap_behaviour(handler.unary_stream, False, True, watcher, method), **fields)
    return grpc.unary_unary_rpc_method_handler(_wrap_behaviour(handler.unary_unary, False, False, watcher, method), **fields)


class _GuardedGeneric(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are guarded (each wrapped once)."""

    def __init__(self, inner: grpc.GenericRpcHandler, watcher: CallWatcher) -> None:
        self.inner = inner
        self.watcher = watcher
        self.guarded: dict[str, grpc.RpcMethodHandler] = {}  # only methods the inner handler has

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        found = self.guarded.get(method)
        if found is None:
            handler = self.inner.service(handler_call_details)
            if handler is None:
                return None
            found = self.guarded[method] = guard_handler(handler, method, self.watcher)
        return found


class GuardedServer(grpc.aio.Server):
    """The grpc.aio ``server`` for registering services: each one's handlers
    are guarded (:func:`guard_handler`) on their way in. Ports and the
    server's life stay with ``server`` itself."""

    def __init__(self, server: grpc.aio.Server, watcher: CallWatcher | None = None) -> None:
        self.server = server
        self.watcher = watcher or _Unwatched()

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.server.add_generic_rpc_handlers([_GuardedGeneric(h, self.watcher) for h in generic_rpc_handlers])

    def add_registered_method_handlers(self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        guarded = {name: guard_handler(h, f"/{service_name}/{name}", self.watcher) for name, h in method_handlers.items()}
        self.server.add_registered_method_handlers(service_name, guarded)

    def add_insecure_port(self, address: str) -> int:
        return self.server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self.server.add_secure_port(address, server_credentials)

    async def start(self) -> None:
        await self.server.start()

    async def stop(self, grace: float | None) -> None:
        await self.server.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return await self.server.wait_for_termination(timeout)
