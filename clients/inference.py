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
from seedlock.protos.inference import grpc_service_pb2 as pb
from seedlock.protos.inference import grpc_service_pb2_grpc as pb_grpc

_V2: dict[str, np.dtype] = {
    "BOOL": np.dtype("bool"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_FROM_NUMPY = {dt.newbyteorder("="): name for name, dt in _V2.items()}
_TYPED = {
    "BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
}


def v2_datatype(dtype: np.dtype) -> str:
    try:
        return _FROM_NUMPY[np.dtype(dtype).newbyteorder("=")]
    except KeyError:
        raise InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT, f"dtype {dtype} has no v2 datatype") from None


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
                request.raw_input_contents.append(np.ascontiguousarray(array, dtype=_V2[datatype]).tobytes())
            else:
                getattr(tensor.contents, _TYPED[datatype]).extend(array.ravel().tolist())
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
            dtype = _V2[out.datatype]
            if i < len(response.raw_output_contents):
                array = np.frombuffer(response.raw_output_contents[i], dtype=dtype)
            else:
                array = np.array(getattr(out.contents, _TYPED[out.datatype]), dtype=dtype)
            result[out.name] = array.reshape(list(out.shape))
        return result
