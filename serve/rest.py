"""KServe v2 over HTTP/REST (Triton's HTTP protocol) on ``--http-port``.

Every route calls the gRPC servicer's own code (:class:`InferenceServicer`):
a REST infer request becomes a ``ModelInferRequest`` whose tensors are raw
bytes, goes through :meth:`InferenceServicer.infer` (decode, scheduler,
encode), and the answer's raw outputs are sent as they are (Triton's binary
tensor extension) or as JSON numbers. So REST and gRPC give the same bytes.

Limits: a body over ``max_body`` bytes (``--max-message-bytes``) is refused
with 413 before it is read (Content-Length) or as soon as it passes the
limit (chunked). JSON that does not parse, nests too deeply, or whose data do
not match the declared shape and datatype is 400. Errors are Triton's shape,
``{"error": "..."}``, with the gRPC status mapped to HTTP (:data:`HTTP_STATUS`).
With bearer tokens configured every route but ``/v2/health/*`` needs
``Authorization: Bearer <token>``, as over gRPC.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any, Callable

import grpc
import numpy as np
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from seedlock.core.dtypes import V2_TO_NUMPY
from seedlock.protos.inference import grpc_service_pb2 as pb
from seedlock.serve.errors import echo, invalid, status_of
from seedlock.serve.kserve import InferenceServicer
from seedlock.serve.logs import ACCESS, log_access
from seedlock.serve.security import BearerTokenAuth

log = logging.getLogger("seedlock.serve")

HEADER_LENGTH = "inference-header-content-length"
INLINE_JSON_BYTES = 64 << 10  # JSON up to this size is parsed (and written) on the event loop
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 503,  # a full queue: retry later, as Triton answers it
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_JSON_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}  # a tensor dtype kind -> the JSON value kinds (numpy's) it takes


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _unwrapped(servicer: InferenceServicer, name: str) -> Callable[..., Any] | None:
    """The servicer method without its gRPC error wrapper (``@rpc``), bound:
    its errors reach the REST side as exceptions, mapped here to HTTP."""
    method = getattr(type(servicer), name, None)
    if method is None:
        return None
    return getattr(method, "__wrapped__", method).__get__(servicer)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) past ``limit`` bytes: by Content-Length before reading, else while streaming."""
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise HttpError(400, "compressed request bodies are not supported; send the body uncompressed")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HttpError(400, f"Content-Length {echo(declared)} is not a number")
        if int(declared) > limit:
            raise HttpError(413, f"the body is {declared} bytes, over the server's limit of {limit} (--max-message-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"the body is over the server's limit of {limit} bytes (--max-message-bytes)")
        chunks.append(chunk)
    request.state.body_read = True
    return b"".join(chunks)


def refuse(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer; one to a request whose body was left unread also closes the connection:
    uvicorn would otherwise wait for that body with reading paused, and a client still sending it would hang."""
    if request.method == "POST" and not getattr(request.state, "body_read", False):
        headers = {**(headers or {}), "Connection": "close"}
    return error(status, message, headers)


def parse_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise HttpError(400, "the JSON nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpError(400, f"the body is not valid JSON: {echo(str(exc), bare=True)}") from None


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise HttpError(400, message)


def _bool_param(parameters: Any, key: str, where: str) -> bool | None:
    if parameters is None:
        return None
    _check(isinstance(parameters, dict), f"{where}: 'parameters' must be a JSON object")
    value = parameters.get(key)
    _check(value is None or isinstance(value, bool), f"{where}: parameter {key!r} must be true or false")
    return value


def json_to_raw(name: str, datatype: str, shape: list[int], data: Any) -> bytes:
    """A tensor's JSON ``data`` (flat or nested, row-major) as the raw little-endian bytes gRPC carries."""
    dtype = V2_TO_NUMPY.get(datatype)
    if dtype is None:
        raise invalid(f"input {name!r}: datatype {echo(datatype)} is not supported (use one of {', '.join(V2_TO_NUMPY)})")
    _check(isinstance(data, list), f"input {name!r}: 'data' must be a JSON array")
    try:
        array = np.asarray(data)
    except (ValueError, OverflowError) as exc:
        raise HttpError(400, f"input {name!r}: 'data' is not a regular array of numbers ({exc})") from None
    count = math.prod(shape)
    accepted = _JSON_KINDS[dtype.kind]
    if array.size != count or (array.size and array.dtype.kind not in accepted):
        got = {"b": "boolean", "i": "integer", "u": "integer", "f": "number"}.get(array.dtype.kind, "mixed or non-numeric")
        raise HttpError(400, f"input {name!r}: 'data' must hold {count} {datatype} value(s) for shape {shape}; got {array.size} {got} value(s)")
    converted = array.astype(dtype)
    if dtype.kind in "iu" and array.size and not np.array_equal(converted, array):
        raise HttpError(400, f"input {name!r}: values out of range for {datatype}")
    return converted.tobytes()


def to_request(doc: Any, binary: memoryview, model: str, version: str) -> tuple[pb.ModelInferRequest, list[bool]]:
    """The REST request as the gRPC one (raw tensors), and for each output whether it goes back binary."""
    _check(isinstance(doc, dict), "the request must be a JSON object with an 'inputs' array")
    inputs = doc.get("inputs")
    _check(isinstance(inputs, list) and len(inputs) > 0, "the request needs a non-empty 'inputs' array")
    request = pb.ModelInferRequest(model_name=model, model_version=version)
    rid = doc.get("id")
    if rid is not None:
        _check(isinstance(rid, str), "'id' must be a string")
        request.id = rid
    all_binary = bool(_bool_param(doc.get("parameters"), "binary_data_output", "the request"))
    offset = 0
    for i, tensor in enumerate(inputs):
        _check(isinstance(tensor, dict), f"inputs[{i}] must be a JSON object")
        name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
        _check(isinstance(name, str) and isinstance(datatype, str), f"inputs[{i}] needs a string 'name' and 'datatype'")
        _check(isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**63 for d in shape),
               f"input {name!r}: 'shape' must be an array of non-negative integers")  # fmt: skip
        params = tensor.get("parameters")
        _bool_param(params, "binary_data", f"input {name!r}")
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            _check(isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= len(binary) - offset,
                   f"input {name!r}: binary_data_size {echo(size)} is more than the {len(binary) - offset} binary byte(s) left in the body")  # fmt: skip
            _check("data" not in tensor, f"input {name!r} has both 'data' and binary_data_size; send one")
            raw = bytes(binary[offset : offset + size])
            offset += size
        else:
            _check("data" in tensor, f"input {name!r} needs 'data' or parameters.binary_data_size")
            raw = json_to_raw(name, datatype, shape, tensor["data"])
        request.inputs.add(name=name, datatype=datatype, shape=shape)
        request.raw_input_contents.append(raw)
    _check(offset == len(binary), f"{len(binary) - offset} binary byte(s) after the inputs' binary_data_size; the sizes must add up to the body")
    outputs = doc.get("outputs")
    binary_out: list[bool] = []
    if outputs is not None:
        _check(isinstance(outputs, list), "'outputs' must be an array")
        for i, out in enumerate(outputs):
            _check(isinstance(out, dict) and isinstance(out.get("name"), str), f"outputs[{i}] needs a string 'name'")
            wanted = _bool_param(out.get("parameters"), "binary_data", f"output {out['name']!r}")
            request.outputs.add(name=out["name"])
            binary_out.append(all_binary if wanted is None else wanted)
    return request, binary_out or [all_binary]


def decode(body: bytes, split: int, model: str, version: str) -> tuple[pb.ModelInferRequest, list[bool]]:
    """The body's JSON header (its first ``split`` bytes) and binary tensors as the gRPC request."""
    view = memoryview(body)
    return to_request(parse_json(body if split == len(body) else body[:split]), view[split:], model, version)


def to_response(response: pb.ModelInferResponse, binary_out: list[bool]) -> Response:
    """Triton's JSON answer; binary outputs follow the JSON, which Inference-Header-Content-Length measures."""
    doc: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version, "outputs": []}
    if response.id:
        doc["id"] = response.id
    blobs: list[bytes] = []
    for i, (out, raw) in enumerate(zip(response.outputs, response.raw_output_contents)):
        entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": list(out.shape)}
        if binary_out[i] if i < len(binary_out) else binary_out[-1]:
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = np.frombuffer(raw, dtype=V2_TO_NUMPY[out.datatype]).tolist()
        doc["outputs"].append(entry)
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(b"".join([header, *blobs]), media_type="application/octet-stream", headers={"Inference-Header-Content-Length": str(len(header))})


class AccessLog:
    """ASGI wrapper: one access line per HTTP request (``seedlock.access``), as
    the gRPC side writes one per call; ``status`` is the HTTP status code."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not ACCESS.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = scope.get("path", "")
            parts = path.split("/")
            model = parts[3] if len(parts) > 3 and parts[1:3] == ["v2", "models"] else None
            request_id = dict(scope.get("headers") or ()).get(b"x-request-id")
            client = scope.get("client")
            log_access(f"{scope.get('method', '')} {echo(path, 128, bare=True)}", str(status[0]),
                       (time.perf_counter() - start) * 1000.0, echo(model, 128, bare=True) if model else None,
                       echo(request_id.decode("latin-1"), 128, bare=True) if request_id else None,
                       f"{client[0]}:{client[1]}" if client else None)  # fmt: skip


class RestApp:
    """The REST routes, over the gRPC servicer of the same server."""

    def __init__(self, servicer: InferenceServicer, is_live: Callable[[], bool], max_body: int,
                 auth: BearerTokenAuth | None = None, watcher: Any = None) -> None:  # fmt: skip
        self.servicer = servicer
        self.is_live = is_live
        self.max_body = max_body
        self.max_json = max(1 << 20, max_body // 4)
        self.auth = auth
        self.watcher = watcher
        model = "/v2/models/{model}"
        versioned = model + "/versions/{version}"
        routes = [
            Route("/v2/health/live", self.live),
            Route("/v2/health/ready", self.ready),
            Route("/v2", self.server_metadata),
        ]
        for prefix in (model, versioned):
            routes += [
                Route(prefix, self.model_metadata),
                Route(prefix + "/ready", self.model_ready),
                Route(prefix + "/config", self.model_config),
                Route(prefix + "/stats", self.model_stats),
                Route(prefix + "/infer", self.infer, methods=["POST"]),
            ]
        self.app = AccessLog(Starlette(routes=routes, exception_handlers={404: self._no_route, 405: self._no_route}))

    async def _no_route(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return refuse(request, status, f"no route {request.method} {echo(request.url.path)} (KServe v2 REST: /v2/...)")

    def _refusal(self, request: Request) -> Response | None:
        if self.auth is None:
            return None
        why = self.auth.accepts([("authorization", v) for v in request.headers.getlist("authorization")])
        return None if why is None else refuse(request, 401, why, {"WWW-Authenticate": "Bearer"})

    async def _call(self, request: Request, name: str, message: Any) -> Any:
        method = _unwrapped(self.servicer, name)
        if method is None:
            raise HttpError(501, f"{name} is not implemented by this server")
        return await method(message, None)

    async def _answer(self, request: Request, work: Callable[[], Any], open_route: bool = False) -> Response:
        if not open_route and (refused := self._refusal(request)) is not None:
            return refused
        try:
            return await work()
        except HttpError as exc:
            return refuse(request, exc.status, exc.message)
        except Exception as exc:  # noqa: BLE001 - mapped as the gRPC side maps it; a bug is logged there
            code, message = status_of(exc, f"REST {request.url.path}")
            return refuse(request, HTTP_STATUS.get(code, 500), message)

    # Health answers 200 or, like Triton, 400 (tritonclient reads any non-200 as "no").
    async def live(self, request: Request) -> Response:
        return Response(status_code=200 if self.is_live() else 400)

    async def ready(self, request: Request) -> Response:
        async def work() -> Response:
            answer = await self._call(request, "ServerReady", pb.ServerReadyRequest())
            return Response(status_code=200 if answer.ready else 400)

        return await self._answer(request, work, open_route=True)

    async def server_metadata(self, request: Request) -> Response:
        async def work() -> Response:
            answer = await self._call(request, "ServerMetadata", pb.ServerMetadataRequest())
            return JSONResponse({"name": answer.name, "version": answer.version, "extensions": list(answer.extensions)})

        return await self._answer(request, work)

    def _model(self, request: Request) -> tuple[str, str]:
        return request.path_params["model"], request.path_params.get("version", "")

    async def model_metadata(self, request: Request) -> Response:
        async def work() -> Response:
            name, version = self._model(request)
            answer = await self._call(request, "ModelMetadata", pb.ModelMetadataRequest(name=name, version=version))
            tensors = lambda ts: [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in ts]  # noqa: E731
            return JSONResponse({"name": answer.name, "versions": list(answer.versions), "platform": answer.platform,
                                 "inputs": tensors(answer.inputs), "outputs": tensors(answer.outputs)})  # fmt: skip

        return await self._answer(request, work)

    async def model_ready(self, request: Request) -> Response:
        async def work() -> Response:
            name, version = self._model(request)
            answer = await self._call(request, "ModelReady", pb.ModelReadyRequest(name=name, version=version))
            return Response(status_code=200 if answer.ready else 400)

        return await self._answer(request, work)

    async def model_config(self, request: Request) -> Response:
        async def work() -> Response:
            name, version = self._model(request)
            answer = await self._call(request, "ModelConfig", pb.ModelConfigRequest(name=name, version=version))
            return JSONResponse(json_format.MessageToDict(answer.config, preserving_proto_field_name=True))

        return await self._answer(request, work)

    async def model_stats(self, request: Request) -> Response:
        async def work() -> Response:
            name, version = self._model(request)
            answer = await self._call(request, "ModelStatistics", pb.ModelStatisticsRequest(name=name, version=version))
            return JSONResponse(json_format.MessageToDict(answer, preserving_proto_field_name=True))

        return await self._answer(request, work)

    async def infer(self, request: Request) -> Response:
        async def work() -> Response:
            name, version = self._model(request)
            self.servicer.registry.get(name, version)  # an unknown model is 404 whatever the body
            body = await read_body(request, self.max_body)
            length = request.headers.get(HEADER_LENGTH)
            if length is not None:
                _check(length.isdigit() and int(length) <= len(body),
                       f"Inference-Header-Content-Length {echo(length)} must be a number of bytes no larger than the body ({len(body)})")  # fmt: skip
                split = int(length)
            else:
                split = len(body)
            if split > self.max_json:
                raise HttpError(413, f"the JSON part is {split} bytes, over this server's limit of {self.max_json} for JSON "
                                "(a quarter of --max-message-bytes: JSON numbers cost ~16x their text while parsed); "
                                "send large tensors binary (parameters.binary_data_size, Inference-Header-Content-Length)")
            registry = self.servicer.registry
            # JSON is parsed and written off the event loop unless it is small: a large body would stall every other call.
            if split > INLINE_JSON_BYTES:
                message, binary_out = await registry.offload(decode, body, split, name, version)
            else:
                message, binary_out = decode(body, split, name, version)
            answer = await self.servicer.infer(message, None)
            if not all(binary_out) and sum(len(r) for r in answer.raw_output_contents) > INLINE_JSON_BYTES:
                return await registry.offload(to_response, answer, binary_out)
            return to_response(answer, binary_out)

        if self.watcher is None:
            return await self._answer(request, work)
        self.watcher.started()
        try:
            return await self._answer(request, work)
        finally:
            self.watcher.ended()


def rest_app(servicer: InferenceServicer, max_body: int, auth: BearerTokenAuth | None = None, watcher: Any = None) -> Starlette:
    return RestApp(servicer, lambda: True, max_body, auth, watcher).app

