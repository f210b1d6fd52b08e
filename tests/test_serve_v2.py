"""KServe v2 through the standard client (tritonclient.grpc), bit for bit
against an in-process ONNX Runtime run of the same model file."""

from __future__ import annotations

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from serving_fixtures import make_segmenter_repository

from seedlock.clients import InferenceClient
from seedlock.core.repository import load_version
from seedlock.serve.server import start_server

tc = pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = tmp_path_factory.mktemp("v2repo")
    make_segmenter_repository(path, name="segmenter", num_classes=4, seed=0)
    make_segmenter_repository(path, name="other", num_classes=3, seed=1, width=6)
    return path


@pytest.fixture(scope="module")
def server(repo):
    running = start_server(repo, threads=1, workers=4)
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def triton(server):
    client = tc.InferenceServerClient(server.address)
    yield client
    client.close()


def reference(repo, name: str, x: np.ndarray) -> np.ndarray:
    """The same model file in a plain, default ONNX Runtime session."""
    mv = load_version(repo, name)
    session = ort.InferenceSession(str(mv.path()), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": x})[0]


def seeded(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_live_ready_and_model_ready(triton):
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("segmenter")
    assert triton.is_model_ready("segmenter", "1")
    assert triton.is_model_ready("other")
    assert not triton.is_model_ready("segmenter", "7")
    assert not triton.is_model_ready("no-such-model")


def test_server_metadata_reports_the_provider(triton):
    meta = triton.get_server_metadata()
    assert meta.name == "seedlock"
    assert meta.version
    assert "provider:CPUExecutionProvider" in list(meta.extensions)


def test_model_metadata(triton):
    meta = triton.get_model_metadata("segmenter")
    assert meta.name == "segmenter"
    assert list(meta.versions) == ["1"]
    assert meta.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("image", "FP32", [-1, 3, -1, -1])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [("logits", "FP32", [-1, 4, -1, -1])]
    other = triton.get_model_metadata("other", "1")
    assert list(other.outputs[0].shape) == [-1, 3, -1, -1]


@pytest.mark.parametrize("name,shape", [("segmenter", (1, 3, 16, 16)), ("segmenter", (2, 3, 24, 40)), ("other", (1, 3, 12, 20))])
def test_infer_raw_matches_in_process_onnxruntime_bit_for_bit(repo, triton, name, shape):
    x = seeded(shape, seed=sum(shape))
    inp = tc.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = triton.infer(name, [inp], outputs=[tc.InferRequestedOutput("logits")], request_id="req-7")
    got = result.as_numpy("logits")
    want = reference(repo, name, x)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert got.tobytes() == want.tobytes()
    response = result.get_response()
    assert response.id == "req-7" and response.model_name == name and response.model_version == "1"


def test_infer_typed_contents_in_and_out(repo, server):
    """Typed InferTensorContents (no raw bytes) through tritonclient's own stub and messages."""
    x = seeded((1, 3, 12, 20), seed=3)
    request = service_pb2.ModelInferRequest(model_name="segmenter", model_version="1", id="typed")
    tensor = request.inputs.add(name="image", datatype="FP32", shape=list(x.shape))
    tensor.contents.fp32_contents.extend(x.ravel().tolist())
    request.outputs.add(name="logits").parameters["binary_data"].bool_param = False
    with grpc.insecure_channel(server.address) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert len(response.raw_output_contents) == 0
    out = response.outputs[0]
    got = np.array(out.contents.fp32_contents, dtype=np.float32).reshape(list(out.shape))
    assert got.tobytes() == reference(repo, "segmenter", x).tobytes()


def test_raw_request_with_typed_response_and_vice_versa_via_our_client(repo, server):
    x = seeded((1, 3, 8, 8), seed=5)
    want = reference(repo, "segmenter", x)
    with InferenceClient(server.address, timeout=30) as client:
        assert client.live() and client.ready() and client.model_ready("segmenter")
        assert client.server_metadata()["name"] == "seedlock"
        assert client.model_metadata("segmenter")["inputs"][0]["shape"] == [-1, 3, -1, -1]
        raw = client.infer("segmenter", {"image": x})
        typed = client.infer("segmenter", {"image": x}, raw=False)
    assert raw["logits"].tobytes() == want.tobytes()
    assert typed["logits"].tobytes() == want.tobytes()


def test_repeated_infer_responses_are_byte_identical(server):
    x = seeded((1, 3, 16, 16), seed=11)
    request = InferenceClient.build_request("segmenter", {"image": x}, request_id="same")
    with grpc.insecure_channel(server.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        a = stub.ModelInfer(service_pb2.ModelInferRequest.FromString(request.SerializeToString()), timeout=30)
        b = stub.ModelInfer(service_pb2.ModelInferRequest.FromString(request.SerializeToString()), timeout=30)
    assert a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


def test_infer_refuses_a_size_the_unet_cannot_take(triton):
    """The exported U-Net halves H and W twice: the manifest's divisor (4) is checked before the model runs."""
    inp = tc.InferInput("image", [1, 3, 9, 13], "FP32")
    inp.set_data_from_numpy(seeded((1, 3, 9, 13)))
    with pytest.raises(tc.InferenceServerException, match="height and width must be multiples of 4, got 9x13") as info:
        triton.infer("other", [inp])
    assert "INVALID_ARGUMENT" in str(info.value)
    assert triton.is_server_ready()
