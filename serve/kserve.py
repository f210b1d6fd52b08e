"""KServe v2 / Open Inference Protocol servicer (``inference.GRPCInferenceService``)."""

from __future__ import annotations

from typing import Callable

import grpc
import numpy as np

from seedlock.core.dtypes import manifest_to_v2
from seedlock.core.manifest import TensorSpec
from seedlock.core.version import VERSION as __version__
from seedlock.protos.inference import grpc_service_pb2 as pb
from seedlock.protos.inference import grpc_service_pb2_grpc as pb_grpc
from seedlock.serve.errors import echo, echo_list, exhausted, invalid, not_found, rpc
from seedlock.serve.repository import Registry, parse_version
from seedlock.serve.runtime import ModelRuntime
from seedlock.serve.scheduler import deadline_from
from seedlock.serve.tensors import from_raw, from_typed, set_typed, v2_datatype

SERVER_NAME = "seedlock"
# Raw tensors up to this size are read and written on the event loop (see ModelInfer).
INLINE_BYTES = 8 << 20
PLATFORM = "onnxruntime_onnx"  # Triton's name for the same backend


def _tensor_metadata(spec: TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(name=spec.name, datatype=manifest_to_v2(spec.dtype), shape=spec.shape)


def _wants_typed(request: pb.ModelInferRequest) -> bool:
    """Raw outputs unless the client asks otherwise with ``binary_data: false``
    on the request or on a requested output (Triton's parameter name)."""
    param = request.parameters.get("binary_data_output")
    if param is not None and param.WhichOneof("parameter_choice") == "bool_param" and not param.bool_param:
        return True
    for out in request.outputs:
        p = out.parameters.get("binary_data")
        if p is not None and p.WhichOneof("parameter_choice") == "bool_param" and not p.bool_param:
            return True
    return False


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, registry: Registry, extensions: list[str], is_ready: Callable[[], bool], max_message_bytes: int = 0) -> None:
        self.registry = registry
        self.max_message_bytes = max_message_bytes
        self.extensions = extensions
        self.is_ready = is_ready

    @rpc
    async def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @rpc
    async def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.is_ready())

    @rpc
    async def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext) -> pb.ModelReadyResponse:
        # Like Triton: an unknown or refused model is "not ready", not an error.
        number = parse_version(request.version)
        versions = self.registry.runtimes.get(request.name, {})
        ready = bool(versions) if number is None else number in versions
        return pb.ModelReadyResponse(ready=ready and self.is_ready())

    @rpc
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=__version__, extensions=self.extensions)

    @rpc
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext) -> pb.ModelMetadataResponse:
        runtime = self.registry.get(request.name, request.version)
        graph = self._graph(runtime)
        return pb.ModelMetadataResponse(
            name=runtime.name,
            versions=[str(v) for v in self.registry.ready_versions(runtime.name)],
            platform=PLATFORM,
            inputs=[_tensor_metadata(t) for t in graph.inputs],
            outputs=[_tensor_metadata(t) for t in graph.outputs],
        )

    @staticmethod
    def _graph(runtime: ModelRuntime):
        graph = runtime.manifest.graphs.get("model")
        if graph is None:
            raise invalid(
                f"model {runtime.name!r} has graphs {sorted(runtime.manifest.graphs)} and no single 'model' graph; "
                "call its task service instead"
            )
        return graph

    def _inputs(self, runtime: ModelRuntime, request: pb.ModelInferRequest) -> dict[str, np.ndarray]:
        specs = {t.name: t for t in self._graph(runtime).inputs}
        scheduler = self.registry.scheduler(runtime)
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise invalid(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; send one per input, or none")
        # A fully convolutional model records the multiple its H and W must be (a U-Net's 2**depth).
        divisor = int(runtime.manifest.preprocess.get("divisor", 1) or 1)
        feeds: dict[str, np.ndarray] = {}
        for i, tensor in enumerate(request.inputs):
            spec = specs.get(tensor.name)
            if spec is None:
                raise invalid(f"model {runtime.name!r} has no input {echo(tensor.name)} (inputs: {', '.join(specs)})")
            if tensor.name in feeds:
                raise invalid(f"input {tensor.name!r} is given twice")
            expected = manifest_to_v2(spec.dtype)
            if tensor.datatype != expected:
                raise invalid(f"input {tensor.name!r} has datatype {echo(tensor.datatype, bare=True) if tensor.datatype else '(none)'}; "
                              f"the model expects {expected}")  # fmt: skip
            shape = list(tensor.shape)
            if len(shape) != len(spec.shape) or any(want not in (-1, got) for want, got in zip(spec.shape, shape)):
                raise invalid(f"input {tensor.name!r} has shape {echo_list(shape)}; the model expects {spec.shape} (-1: any size)")
            if any(d <= 0 for d in shape):
                raise invalid(f"input {tensor.name!r} has shape {shape}; every dimension must be positive")
            if shape:  # before any byte is decoded
                scheduler.batching.check_rows(shape[0], scheduler.label)
            if divisor > 1 and len(shape) == 4 and (shape[2] % divisor or shape[3] % divisor):
                raise invalid(f"input {tensor.name!r}: height and width must be multiples of {divisor}, got {shape[2]}x{shape[3]}")
            if raw:
                feeds[tensor.name] = from_raw(tensor.name, tensor.datatype, shape, raw[i])
            else:
                feeds[tensor.name] = from_typed(tensor.name, tensor.datatype, shape, tensor.contents)
        missing = [n for n in specs if n not in feeds]
        if missing:
            raise invalid(f"missing input(s) {', '.join(missing)} for model {runtime.name!r}")
        return feeds

    @rpc
    async def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext) -> pb.ModelInferResponse:
        deadline = deadline_from(context.time_remaining())
        if not request.model_name:
            raise not_found("model_name is empty")
        runtime = self.registry.get(request.model_name, request.model_version)
        graph = self._graph(runtime)
        known = [t.name for t in graph.outputs]
        names = [o.name for o in request.outputs] or known
        unknown = [n for n in names if n not in known]
        if unknown:
            raise invalid(f"model {runtime.name!r} has no output(s) {echo_list(unknown, bare=True)} (outputs: {', '.join(known)})")
        scheduler = self.registry.scheduler(runtime)
        # Raw tensors are views of the request's bytes: reading them (and
        # copying raw outputs back) costs less than a hop to a worker thread
        # and back. Typed contents are Python lists, decoded off the loop.
        raw = bool(request.raw_input_contents) and sum(len(b) for b in request.raw_input_contents) <= INLINE_BYTES
        feeds = self._inputs(runtime, request) if raw else await self.registry.offload(self._inputs, runtime, request)
        self._check_response_size(runtime, feeds, names)
        results = await scheduler.infer(feeds, names, deadline)
        if not _wants_typed(request) and sum(np.asarray(r).nbytes for r in results) <= INLINE_BYTES:
            return self._response(runtime, request, names, results)
        return await self.registry.offload(self._response, runtime, request, names, results)

    def _check_response_size(self, runtime: ModelRuntime, feeds: dict[str, np.ndarray], names: list[str]) -> None:
        """Refuse before compute a response whose size follows from the input
        shapes and is over the message limit (each -1 output axis taken from the
        first input's axis at the same place: the batch, a U-Net's H and W)."""
        limit = self.max_message_bytes
        if not limit:
            return
        specs = {t.name: t for t in self._graph(runtime).outputs}
        first = next(iter(feeds.values()))
        total = 0
        for name in names:
            spec = specs[name]
            dims = []
            for i, d in enumerate(spec.shape):
                if d >= 0:
                    dims.append(d)
                elif i < first.ndim:
                    dims.append(first.shape[i])
                else:
                    return  # its size does not follow from the input: checked after compute
            total += int(np.prod(dims, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
        if total > limit:
            raise exhausted(
                f"the response would be {total} bytes, over the server's message limit of {limit} "
                "(--max-message-bytes); send a smaller batch or smaller inputs"
            )

    @staticmethod
    def _response(runtime: ModelRuntime, request: pb.ModelInferRequest, names: list[str], results: list[np.ndarray]) -> pb.ModelInferResponse:
        typed = _wants_typed(request)
        response = pb.ModelInferResponse(model_name=runtime.name, model_version=str(runtime.version), id=request.id)
        for name, array in zip(names, results):
            array = np.asarray(array)
            datatype = v2_datatype(array.dtype)
            out = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
            if typed:
                set_typed(out.contents, datatype, array)
            else:
                response.raw_output_contents.append(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
        return response
