"""``InferenceClient``: a small KServe v2 client (numpy in, numpy out).

For the full v2 surface, ``tritonclient.grpc`` talks to seedlock as well;
this client needs nothing beyond grpcio and seedlock's own protos.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import grpc
import numpy as np

from seedlock.clients.base import BaseClient
from seedlock.clients.errors import InvalidArgument
from seedlock.core.dtypes import TYPED_FIELD, V2_TO_NUMPY, numpy_to_v2
from seedlock.protos.inference import grpc_service_pb2 as pb
from seedlock.protos.inference import grpc_service_pb2_grpc as pb_grpc


def v2_datatype(dtype: np.dtype) -> str:
    name = numpy_to_v2(dtype)
    if name is None:
        raise InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT, f"dtype {dtype} has no v2 datatype")
    return name


def _metadata(tensors) -> list[dict[str, Any]]:
    return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in tensors]


class InferenceClient(BaseClient):
    """Client for ``inference.GRPCInferenceService`` (KServe v2)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._stub = pb_grpc.GRPCInferenceServiceStub(self.channel)

    def live(self, timeout: float | None = None) -> bool:
        return self._call(self._stub.ServerLive, pb.ServerLiveRequest(), timeout, "ServerLive").live

    def ready(self, timeout: float | None = None) -> bool:
        return self._call(self._stub.ServerReady, pb.ServerReadyRequest(), timeout, "ServerReady").ready

    def model_ready(self, name: str, version: str | int = "", timeout: float | None = None) -> bool:
        req = pb.ModelReadyRequest(name=name, version=str(version or ""))
        return self._call(self._stub.ModelReady, req, timeout, "ModelReady").ready

    def server_metadata(self, timeout: float | None = None) -> dict[str, Any]:
        r = self._call(self._stub.ServerMetadata, pb.ServerMetadataRequest(), timeout, "ServerMetadata")
        return {"name": r.name, "version": r.version, "extensions": list(r.extensions)}

    def model_metadata(self, name: str, version: str | int = "", timeout: float | None = None) -> dict[str, Any]:
        req = pb.ModelMetadataRequest(name=name, version=str(version or ""))
        r = self._call(self._stub.ModelMetadata, req, timeout, "ModelMetadata")
        return {
            "name": r.name,
            "versions": list(r.versions),
            "platform": r.platform,
            "inputs": _metadata(r.inputs),
            "outputs": _metadata(r.outputs),
        }

    def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None = None,
        version: str | int = "",
        raw: bool = True,
        request_id: str = "",
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Run ``model`` on named numpy arrays; returns the outputs by name.
        ``raw`` False sends and asks for typed contents instead of raw bytes."""
        request = self.build_request(model, inputs, outputs, version, raw, request_id)
        response = self._call(self._stub.ModelInfer, request, timeout, "ModelInfer")
        return self.parse_response(response)

    @staticmethod
    def build_request(
        model: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None = None,
        version: str | int = "",
        raw: bool = True,
        request_id: str = "",
    ) -> pb.ModelInferRequest:
        request = pb.ModelInferRequest(model_name=model, model_version=str(version or ""), id=request_id)
        for name, value in inputs.items():
            array = np.asarray(value)
            datatype = v2_datatype(array.dtype)
            tensor = request.inputs.add(name=name, datatype=datatype, shape=array.shape)
            if raw:
                request.raw_input_contents.append(np.ascontiguousarray(array, dtype=V2_TO_NUMPY[datatype]).tobytes())
            else:
                getattr(tensor.contents, TYPED_FIELD[datatype]).extend(array.ravel().tolist())
        for name in outputs or []:
            out = request.outputs.add(name=name)
            if not raw:
                out.parameters["binary_data"].bool_param = False
        if not raw and not outputs:
            request.parameters["binary_data_output"].bool_param = False
        return request

    @staticmethod
    def parse_response(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
        result = {}
        for i, out in enumerate(response.outputs):
            dtype = V2_TO_NUMPY[out.datatype]
            if i < len(response.raw_output_contents):
                array = np.frombuffer(response.raw_output_contents[i], dtype=dtype)
            else:
                array = np.array(getattr(out.contents, TYPED_FIELD[out.datatype]), dtype=dtype)
            result[out.name] = array.reshape(list(out.shape))
        return result
