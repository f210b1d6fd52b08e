"""KServe v2 / Open Inference Protocol servicer (``inference.GRPCInferenceService``)."""

from __future__ import annotations

import asyncio
from typing import Callable

import grpc
import numpy as np

from seedlock.core import model_config
from seedlock.core.dtypes import V2_TO_NUMPY, manifest_to_v2
from seedlock.core.manifest import TensorSpec
from seedlock.core.version import VERSION as __version__
from seedlock.protos.inference import grpc_service_pb2 as pb
from seedlock.protos.inference import grpc_service_pb2_grpc as pb_grpc
from seedlock.protos.inference import model_config_pb2 as mc
from seedlock.serve.errors import echo, echo_list, exhausted, invalid, not_found, rpc, status_of, unavailable
from seedlock.serve.model_control import ModelControl
from seedlock.serve.repository import Registry, parse_version
from seedlock.serve.runtime import ModelRuntime
from seedlock.serve.scheduler import deadline_from
from seedlock.serve.shared_memory import SystemSharedMemory, shm_parameters
from seedlock.serve.statistics import Duration, ModelStats
from seedlock.serve.tensors import from_raw, from_typed, set_typed, v2_datatype

SERVER_NAME = "seedlock"
# Raw tensors up to this size are read and written on the event loop (see ModelInfer).
INLINE_BYTES = 8 << 20
PLATFORM = "onnxruntime_onnx"  # Triton's name for the same backend
# Triton's names of the protocol extensions this servicer implements (ServerMetadata).
TRITON_EXTENSIONS = ("model_repository", "model_configuration", "system_shared_memory", "statistics", "binary_tensor_data")


def _tensor_metadata(spec: TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(name=spec.name, datatype=manifest_to_v2(spec.dtype), shape=spec.shape)


def _inline_inputs(request: pb.ModelInferRequest) -> bool:
    """Inputs read on the event loop: every one raw or in shared memory, and small."""
    total = sum(len(b) for b in request.raw_input_contents)
    for tensor in request.inputs:
        size = tensor.parameters.get("shared_memory_byte_size")
        if size is not None:
            total += max(0, size.int64_param or size.uint64_param)
        elif not request.raw_input_contents:
            return False  # typed contents: Python lists, decoded off the loop
    return total <= INLINE_BYTES


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
    def __init__(self, registry: Registry, extensions: list[str], is_ready: Callable[[], bool], max_message_bytes: int = 0,
                 shm: SystemSharedMemory | None = None, control: ModelControl | None = None) -> None:  # fmt: skip
        self.registry = registry
        self.shm = shm if shm is not None else SystemSharedMemory()
        self.control = control if control is not None else ModelControl(registry)
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
        # Triton: inputs in shared memory have no raw_input_contents entry; the others have one each (or none at all).
        in_shm = [shm_parameters(t.parameters, f"input {t.name!r}") for t in request.inputs]
        carried = sum(1 for where in in_shm if where is None)
        if raw and len(raw) != carried:
            raise invalid(f"{len(raw)} raw_input_contents for {carried} inputs not in shared memory; send one per input, or none")
        next_raw = 0
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
            if in_shm[i] is not None:
                region, offset, size = in_shm[i]
                feeds[tensor.name] = self.shm.read(region, offset, size, V2_TO_NUMPY[expected], shape, f"input {tensor.name!r}")
            elif raw:
                feeds[tensor.name] = from_raw(tensor.name, tensor.datatype, shape, raw[next_raw])
                next_raw += 1
            else:
                feeds[tensor.name] = from_typed(tensor.name, tensor.datatype, shape, tensor.contents)
        missing = [n for n in specs if n not in feeds]
        if missing:
            raise invalid(f"missing input(s) {', '.join(missing)} for model {runtime.name!r}")
        return feeds

    @rpc
    async def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext) -> pb.ModelInferResponse:
        return await self.infer(request, deadline_from(context.time_remaining()))

    async def infer(self, request: pb.ModelInferRequest, deadline: float | None) -> pb.ModelInferResponse:
        """ModelInfer without a gRPC context: the REST endpoint calls it too
        (seedlock.serve.rest), so both answer the same bytes. Raises ServeError."""
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
        raw = _inline_inputs(request)
        feeds = self._inputs(runtime, request) if raw else await self.registry.offload(self._inputs, runtime, request)
        out_shm = {o.name: w for o in request.outputs if (w := shm_parameters(o.parameters, f"output {o.name!r}")) is not None}
        for name, (region, offset, size) in out_shm.items():  # refused before compute, as Triton does
            self.shm.check(region, offset, size, f"output {name!r}")
        self._check_response_size(runtime, feeds, [n for n in names if n not in out_shm])
        results = await scheduler.infer(feeds, names, deadline)
        if out_shm:  # small writes on the loop, as raw outputs are copied
            shm_bytes = sum(np.asarray(r).nbytes for n, r in zip(names, results) if n in out_shm)
            if shm_bytes <= INLINE_BYTES:
                self._write_shm(out_shm, names, results)
            else:
                await self.registry.offload(self._write_shm, out_shm, names, results)
        if not _wants_typed(request) and sum(np.asarray(r).nbytes for r in results) <= INLINE_BYTES:
            return self._response(runtime, request, names, results, set(out_shm))
        return await self.registry.offload(self._response, runtime, request, names, results, set(out_shm))

    def _write_shm(self, out_shm: dict[str, tuple[str, int, int]], names: list[str], results: list[np.ndarray]) -> None:
        for name, array in zip(names, results):
            if name in out_shm:
                region, offset, size = out_shm[name]
                self.shm.write(region, offset, size, np.asarray(array), f"output {name!r}")

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
    def _response(runtime: ModelRuntime, request: pb.ModelInferRequest, names: list[str], results: list[np.ndarray],
                  in_shm: frozenset[str] | set[str] = frozenset()) -> pb.ModelInferResponse:  # fmt: skip
        typed = _wants_typed(request)
        response = pb.ModelInferResponse(model_name=runtime.name, model_version=str(runtime.version), id=request.id)
        for name, array in zip(names, results):
            array = np.asarray(array)
            datatype = v2_datatype(array.dtype)
            out = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
            if name in in_shm:  # written to the client's region; an empty entry keeps raw contents aligned with outputs
                response.raw_output_contents.append(b"")
            elif typed:
                set_typed(out.contents, datatype, array)
            else:
                response.raw_output_contents.append(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
        return response

    # -- streaming -----------------------------------------------------------------
    @rpc
    async def ModelStreamInfer(self, request_iterator, context: grpc.aio.ServicerContext):  # noqa: ANN001, ANN201 - grpc's types
        """Answers in the order of the requests; requests of one stream run
        concurrently (up to STREAM_WINDOW at once). A failed request is
        answered with its error_message, as Triton does; the stream goes on."""
        deadline = deadline_from(context.time_remaining())
        pending: asyncio.Queue = asyncio.Queue(maxsize=STREAM_WINDOW)

        async def read() -> None:
            try:
                async for request in request_iterator:
                    await pending.put(asyncio.ensure_future(self._stream_one(request, deadline)))
            finally:
                await pending.put(None)

        reader = asyncio.ensure_future(read())
        try:
            while (task := await pending.get()) is not None:
                yield await task
            await reader  # a request stream that broke ends the call with its status
        finally:
            reader.cancel()
            while not pending.empty():
                task = pending.get_nowait()
                if task is not None:
                    task.cancel()

    async def _stream_one(self, request: pb.ModelInferRequest, deadline: float | None) -> pb.ModelStreamInferResponse:
        try:
            return pb.ModelStreamInferResponse(infer_response=await self.infer(request, deadline))
        except Exception as exc:  # noqa: BLE001 - mapped as a unary call's error would be, answered in the stream
            _, message = status_of(exc, "ModelStreamInfer")
            return pb.ModelStreamInferResponse(
                error_message=message,
                infer_response=pb.ModelInferResponse(model_name=request.model_name, model_version=request.model_version, id=request.id),
            )

    # -- configuration and statistics ----------------------------------------------------
    @rpc
    async def ModelConfig(self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext) -> pb.ModelConfigResponse:
        runtime = self.registry.get(request.name, request.version)
        return pb.ModelConfigResponse(config=await self.registry.offload(model_configuration, runtime))

    @rpc
    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext) -> pb.ModelStatisticsResponse:
        reg = self.registry
        if request.name:
            number = parse_version(request.version)
            if number is None:
                keys = [(request.name, v) for v in reg.ready_versions(request.name)]
                if not keys:
                    reg.get(request.name)  # NOT_FOUND / UNAVAILABLE with why
            else:
                keys = [(reg.get(request.name, number).name, number)]
        else:
            if request.version:
                raise invalid("a version is given without a model name; name the model too")
            keys = sorted(reg.schedulers)
        response = pb.ModelStatisticsResponse()
        for name, number in keys:
            scheduler = reg.schedulers.get((name, number))
            if scheduler is not None:
                _statistics(response.model_stats.add(name=name, version=str(number)), scheduler.stats.snapshot())
        return response

    # -- repository ------------------------------------------------------------------------
    @rpc
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext) -> pb.RepositoryIndexResponse:
        _check_repository_name(request.repository_name)
        entries = await self.control.index(request.ready)
        response = pb.RepositoryIndexResponse()
        for e in entries:
            response.models.add(name=e.name, version=e.version, state=e.state, reason=e.reason)
        return response

    @rpc
    async def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext) -> pb.RepositoryModelLoadResponse:
        _check_repository_name(request.repository_name)
        if request.parameters:
            raise invalid(f"load parameters ({echo_list(sorted(request.parameters), bare=True)}) are not supported: "
                          "seedlock loads a model's files as they are in the repository")  # fmt: skip
        await self.control.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    @rpc
    async def RepositoryModelUnload(self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext) -> pb.RepositoryModelUnloadResponse:
        _check_repository_name(request.repository_name)
        await self.control.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    # -- system shared memory ---------------------------------------------------------------
    @rpc
    async def SystemSharedMemoryStatus(self, request: pb.SystemSharedMemoryStatusRequest, context: grpc.aio.ServicerContext) -> pb.SystemSharedMemoryStatusResponse:
        response = pb.SystemSharedMemoryStatusResponse()
        for region in self.shm.status(request.name):
            response.regions[region.name].CopyFrom(pb.SystemSharedMemoryStatusResponse.RegionStatus(
                name=region.name, key=region.key, offset=region.offset, byte_size=region.byte_size))  # fmt: skip
        return response

    @rpc
    async def SystemSharedMemoryRegister(self, request: pb.SystemSharedMemoryRegisterRequest, context: grpc.aio.ServicerContext) -> pb.SystemSharedMemoryRegisterResponse:
        await asyncio.to_thread(self.shm.register, request.name, request.key, request.offset, request.byte_size)
        return pb.SystemSharedMemoryRegisterResponse()

    @rpc
    async def SystemSharedMemoryUnregister(self, request: pb.SystemSharedMemoryUnregisterRequest, context: grpc.aio.ServicerContext) -> pb.SystemSharedMemoryUnregisterResponse:
        self.shm.unregister(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()

    # -- features this server does not have: answered as Triton built without them ---------
    @rpc
    async def CudaSharedMemoryStatus(self, request: pb.CudaSharedMemoryStatusRequest, context: grpc.aio.ServicerContext) -> pb.CudaSharedMemoryStatusResponse:
        if request.name:
            raise not_found(f"no CUDA shared-memory region {echo(request.name)}: CUDA shared memory is not supported on this server")
        return pb.CudaSharedMemoryStatusResponse()

    @rpc
    async def CudaSharedMemoryRegister(self, request: pb.CudaSharedMemoryRegisterRequest, context: grpc.aio.ServicerContext) -> pb.CudaSharedMemoryRegisterResponse:
        raise invalid(f"failed to register CUDA shared memory region {echo(request.name)}: CUDA shared memory is not "
                      "supported on this server; use system shared memory (SystemSharedMemoryRegister)")  # fmt: skip

    @rpc
    async def CudaSharedMemoryUnregister(self, request: pb.CudaSharedMemoryUnregisterRequest, context: grpc.aio.ServicerContext) -> pb.CudaSharedMemoryUnregisterResponse:
        return pb.CudaSharedMemoryUnregisterResponse()  # nothing can be registered, so nothing is left to drop

    @rpc
    async def TraceSetting(self, request: pb.TraceSettingRequest, context: grpc.aio.ServicerContext) -> pb.TraceSettingResponse:
        raise unavailable("the server does not support trace (Triton's trace extension); seedlock traces with OpenTelemetry when configured")

    @rpc
    async def LogSettings(self, request: pb.LogSettingsRequest, context: grpc.aio.ServicerContext) -> pb.LogSettingsResponse:
        raise unavailable("the server does not support dynamic logging (Triton's logging extension); set logging with the server's flags")


STREAM_WINDOW = 64  # requests of one stream in flight at once


def _check_repository_name(name: str) -> None:
    if name:
        raise invalid(f"repository_name {echo(name)}: this server has one model repository; leave repository_name empty")


def _duration(target: pb.StatisticDuration, value: Duration) -> None:
    target.count, target.ns = value.count, value.ns


def _statistics(out: pb.ModelStatistics, stats: ModelStats) -> None:
    out.last_inference = stats.last_inference_ms
    out.inference_count = stats.inference_count
    out.execution_count = stats.execution_count
    for field in ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output"):
        _duration(getattr(out.inference_stats, field), getattr(stats, field))
    for size in sorted(stats.batches):
        batch = stats.batches[size]
        row = out.batch_stats.add(batch_size=size)
        for field in ("compute_input", "compute_infer", "compute_output"):
            _duration(getattr(row, field), getattr(batch, field))


def model_configuration(runtime: ModelRuntime) -> mc.ModelConfig:
    """The model's ``config.pbtxt`` as Triton reads it; built from the
    manifest (as the exporter writes it) when the folder has none. The
    name is always the model's, as Triton fills it in."""
    config = model_config.read(runtime.folder.parent)
    if config is None:
        config = model_config.build(runtime.manifest)
    if not config.name:
        config.name = runtime.name
    return config
