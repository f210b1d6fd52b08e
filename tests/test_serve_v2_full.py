"""The rest of Triton's GRPCInferenceService over a real socket, through
tritonclient.grpc (default options) and seedlock's own protos: model
configuration, statistics, the repository index and model control (none,
explicit, poll), streaming, system shared memory (hostile parameters too),
and the features answered as off (CUDA shared memory, trace, log settings)."""

from __future__ import annotations

import os
import queue
import shutil
import time
import uuid

import grpc
import numpy as np
import pytest
from serving_fixtures import make_segmenter_repository, tamper

from seedlock.protos.inference import grpc_service_pb2 as pb
from seedlock.protos.inference import grpc_service_pb2_grpc as pb_grpc
from seedlock.serve.server import start_server

tc = pytest.importorskip("tritonclient.grpc")
shm = pytest.importorskip("tritonclient.utils.shared_memory")
from tritonclient.utils import InferenceServerException  # noqa: E402

X = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = tmp_path_factory.mktemp("v2full")
    make_segmenter_repository(path, name="segmenter", num_classes=4, seed=0)
    make_segmenter_repository(path, name="other", num_classes=3, seed=1, width=6)
    make_segmenter_repository(path, name="broken", seed=0)
    tamper(path, "broken")
    return path


@pytest.fixture(scope="module")
def server(repo):
    running = start_server(repo, threads=1, workers=2)
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def triton(server):
    client = tc.InferenceServerClient(server.address)
    yield client
    client.close()


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.address)
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def infer(client, model="segmenter", x=X, **kw):
    tensor = tc.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return client.infer(model, [tensor], **kw)


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


# -- configuration, statistics, index ---------------------------------------------------------
def test_model_config_through_both_clients(triton, stub):
    config = triton.get_model_config("segmenter").config
    assert config.name == "segmenter" and config.max_batch_size > 0
    (image,) = config.input
    assert (image.name, image.data_type, list(image.dims)) == ("image", tc.model_config_pb2.TYPE_FP32, [3, -1, -1])
    assert [o.name for o in config.output] == ["logits"] and list(config.output[0].dims) == [4, -1, -1]
    ours = stub.ModelConfig(pb.ModelConfigRequest(name="segmenter", version="1")).config
    assert ours.SerializeToString(deterministic=True) == config.SerializeToString(deterministic=True)
    assert code_of(lambda: stub.ModelConfig(pb.ModelConfigRequest(name="nope"))) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: stub.ModelConfig(pb.ModelConfigRequest(name="broken"))) == grpc.StatusCode.UNAVAILABLE


def test_statistics_move_with_traffic(triton, stub):
    def stats():
        (one,) = triton.get_inference_statistics("segmenter").model_stats
        return one

    before = stats()
    for _ in range(3):
        infer(triton)
    after = stats()
    assert after.inference_count - before.inference_count == 3
    assert after.inference_stats.success.count - before.inference_stats.success.count == 3
    assert after.inference_stats.compute_infer.ns > before.inference_stats.compute_infer.ns
    assert after.last_inference >= before.last_inference and after.batch_stats
    every = stub.ModelStatistics(pb.ModelStatisticsRequest()).model_stats
    assert {(m.name, m.version) for m in every} == {("segmenter", "1"), ("other", "1")}
    assert code_of(lambda: stub.ModelStatistics(pb.ModelStatisticsRequest(name="nope"))) == grpc.StatusCode.NOT_FOUND


def test_repository_index(triton, stub):
    index = {(m.name, m.version): m for m in triton.get_model_repository_index().models}
    assert index[("segmenter", "1")].state == index[("other", "1")].state == "READY"
    assert index[("broken", "1")].state == "UNAVAILABLE" and "sha256" in index[("broken", "1")].reason
    ready = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True)).models
    assert sorted(m.name for m in ready) == ["other", "segmenter"]
    bad = pb.RepositoryIndexRequest(repository_name="elsewhere")
    assert code_of(lambda: stub.RepositoryIndex(bad)) == grpc.StatusCode.INVALID_ARGUMENT


def test_load_and_unload_refused_without_explicit_mode(triton):
    for call in (triton.load_model, triton.unload_model):
        with pytest.raises(InferenceServerException, match="not allowed") as info:
            call("segmenter")
        assert info.value.status() == "StatusCode.UNAVAILABLE"
    assert triton.is_model_ready("segmenter")


def test_features_off_answer_as_triton(triton, stub):
    with pytest.raises(InferenceServerException, match="CUDA shared memory is not supported") as info:
        triton.register_cuda_shared_memory("r", b"aGFuZGxl", 0, 64)  # base64, as the client sends it
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert not stub.CudaSharedMemoryStatus(pb.CudaSharedMemoryStatusRequest()).regions
    triton.unregister_cuda_shared_memory()
    assert code_of(lambda: stub.TraceSetting(pb.TraceSettingRequest())) == grpc.StatusCode.UNAVAILABLE
    assert code_of(lambda: stub.LogSettings(pb.LogSettingsRequest())) == grpc.StatusCode.UNAVAILABLE
    assert "system_shared_memory" in triton.get_server_metadata().extensions


# -- streaming ------------------------------------------------------------------------------------
def test_stream_answers_in_order_with_errors_in_place(triton):
    results: queue.Queue = queue.Queue()
    triton.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        for i in range(6):
            x = np.full((1, 3, 32, 32), i, np.float32) if i != 3 else np.zeros((1, 3, 30, 30), np.float32)
            tensor = tc.InferInput("image", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            triton.async_stream_infer("segmenter", [tensor], request_id=str(i))
        got = [results.get(timeout=30) for _ in range(6)]
    finally:
        triton.stop_stream()
    assert [r.get_response().id if r is not None else None for r, _ in got] == ["0", "1", "2", None, "4", "5"]
    assert got[3][1] is not None and "multiples of" in str(got[3][1])
    plain = infer(triton, x=np.full((1, 3, 32, 32), 5, np.float32)).as_numpy("logits")
    assert np.array_equal(got[5][0].as_numpy("logits"), plain)


def test_stream_through_seedlock_protos(stub):
    def request(i, size=32):
        x = np.full((1, 3, size, size), i, np.float32)
        return pb.ModelInferRequest(model_name="segmenter", id=str(i), raw_input_contents=[x.tobytes()],
                                    inputs=[pb.ModelInferRequest.InferInputTensor(name="image", datatype="FP32", shape=x.shape)])  # fmt: skip

    answers = list(stub.ModelStreamInfer(iter([request(0), request(1, 30), request(2)])))
    assert [a.infer_response.id for a in answers] == ["0", "1", "2"]
    assert [bool(a.error_message) for a in answers] == [False, True, False]


# -- system shared memory --------------------------------------------------------------------------
@pytest.fixture
def regions(triton):
    made = []

    def make(nbytes):
        name = f"seedlock-test-{uuid.uuid4().hex[:8]}"
        handle = shm.create_shared_memory_region(name, "/" + name, nbytes)
        made.append(handle)
        return name, "/" + name, handle

    yield make
    triton.unregister_system_shared_memory()
    for handle in made:
        try:
            shm.destroy_shared_memory_region(handle)
        except FileNotFoundError:  # the test unlinked it itself
            pass


def test_infer_through_system_shared_memory(triton, regions):
    want = infer(triton).as_numpy("logits")
    in_name, in_key, in_handle = regions(X.nbytes)
    out_name, out_key, out_handle = regions(want.nbytes + 64)
    shm.set_shared_memory_region(in_handle, [X])
    triton.register_system_shared_memory(in_name, in_key, X.nbytes)
    triton.register_system_shared_memory(out_name, out_key, want.nbytes, offset=64)
    status = triton.get_system_shared_memory_status()
    assert {r.name: (r.key, r.offset) for r in status.regions.values()}[out_name] == (out_key, 64)
    tensor = tc.InferInput("image", list(X.shape), "FP32")
    tensor.set_shared_memory(in_name, X.nbytes)
    output = tc.InferRequestedOutput("logits")
    output.set_shared_memory(out_name, want.nbytes)
    result = triton.infer("segmenter", [tensor], outputs=[output])
    (meta,) = result.get_response().outputs
    assert list(meta.shape) == list(want.shape)
    got = shm.get_contents_as_numpy(out_handle, np.float32, [want.size + 16])[16:].reshape(want.shape)
    assert np.array_equal(got, want)
    triton.unregister_system_shared_memory(in_name)
    assert in_name not in triton.get_system_shared_memory_status().regions


def test_hostile_shared_memory(triton, stub, regions, server):
    name, key, handle = regions(X.nbytes)
    shm.set_shared_memory_region(handle, [X])

    def register(**kw):
        fields = dict(name="r", key=key, offset=0, byte_size=X.nbytes) | kw
        return code_of(lambda: stub.SystemSharedMemoryRegister(pb.SystemSharedMemoryRegisterRequest(**fields)))

    for bad_key in ("../etc/passwd", "/a/b", "..", "/..", "", "/" + "k" * 300, "/no-such-seedlock-key"):
        assert register(key=bad_key) == grpc.StatusCode.INVALID_ARGUMENT, bad_key
    assert register(name="") == grpc.StatusCode.INVALID_ARGUMENT
    assert register(byte_size=0) == grpc.StatusCode.INVALID_ARGUMENT
    assert register(offset=8) == grpc.StatusCode.INVALID_ARGUMENT  # past the object's end
    assert register(offset=2**63) == grpc.StatusCode.INVALID_ARGUMENT
    triton.register_system_shared_memory(name, key, X.nbytes)
    assert register(name=name) == grpc.StatusCode.ALREADY_EXISTS

    def infer_shm(region=name, size=X.nbytes, offset=0):
        tensor = tc.InferInput("image", list(X.shape), "FP32")
        tensor.set_shared_memory(region, size, offset)
        with pytest.raises(InferenceServerException) as info:
            triton.infer("segmenter", [tensor])
        return info.value.status()

    assert infer_shm(offset=4) == "StatusCode.INVALID_ARGUMENT"  # runs past the region
    assert infer_shm(size=X.nbytes - 4) == "StatusCode.INVALID_ARGUMENT"  # does not match the shape
    assert infer_shm(region="unknown") == "StatusCode.INVALID_ARGUMENT"
    out = tc.InferRequestedOutput("logits")
    out.set_shared_memory(name, 16)  # too small for the output
    tensor = tc.InferInput("image", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X)
    with pytest.raises(InferenceServerException, match="too small"):
        triton.infer("segmenter", [tensor], outputs=[out])
    os.truncate("/dev/shm" + key, 0)  # the client shrinks its object: refused, not SIGBUS
    assert infer_shm() == "StatusCode.INVALID_ARGUMENT"
    os.unlink("/dev/shm" + key)  # and unlinks it: the server keeps running
    assert infer_shm() == "StatusCode.INVALID_ARGUMENT"
    assert triton.is_server_live() and infer(triton).as_numpy("logits").shape == (1, 4, 32, 32)


# -- model control ------------------------------------------------------------------------------------
def test_explicit_mode_loads_and_unloads(tmp_path):
    make_segmenter_repository(tmp_path, name="segmenter", seed=0)
    make_segmenter_repository(tmp_path, name="other", num_classes=3, seed=1, width=6)
    with start_server(tmp_path, threads=1, workers=2, model_control_mode="explicit", load_models=["segmenter"]) as running:
        client = tc.InferenceServerClient(running.address)
        index = {m.name: m for m in client.get_model_repository_index().models}
        assert index["segmenter"].state == "READY" and index["other"].state == ""
        assert not client.is_model_ready("other")
        client.load_model("other")
        assert client.is_model_ready("other") and infer(client, "other").as_numpy("logits").shape == (1, 3, 32, 32)
        client.unload_model("segmenter")
        assert not client.is_model_ready("segmenter")
        index = {m.name: m for m in client.get_model_repository_index().models}
        assert index["segmenter"].state == "UNAVAILABLE" and "unloaded" in index["segmenter"].reason
        with pytest.raises(InferenceServerException):
            infer(client)
        stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(running.address))
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="segmenter"))
        assert client.is_model_ready("segmenter") and infer(client).as_numpy("logits").shape == (1, 4, 32, 32)
        missing = pb.RepositoryModelLoadRequest(model_name="nope")
        assert code_of(lambda: stub.RepositoryModelLoad(missing)) == grpc.StatusCode.NOT_FOUND
        client.close()


def test_poll_mode_picks_up_new_and_removed_versions(tmp_path):
    repo, staging = tmp_path / "repo", tmp_path / "staging"
    make_segmenter_repository(repo, seed=0)
    make_segmenter_repository(staging, seed=0, version=2)  # the exports of this module's other models, reused
    with start_server(repo, threads=1, workers=2, model_control_mode="poll", repository_poll_secs=0.1) as running:
        client = tc.InferenceServerClient(running.address)

        def wait_for(versions):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                index = client.get_model_repository_index().models
                if sorted(m.version for m in index if m.state == "READY") == versions:
                    return
                time.sleep(0.05)  # a poll loop on the index
            raise AssertionError(f"the index never showed versions {versions}: {index}")

        os.rename(staging / "segmenter" / "2", repo / "segmenter" / "2")  # as a deployment should: whole
        wait_for(["1", "2"])
        assert infer(client, model_version="2").get_response().model_version == "2"
        shutil.move(repo / "segmenter" / "1", tmp_path / "retired")
        wait_for(["2"])
        assert not client.is_model_ready("segmenter", "1")
        assert infer(client).get_response().model_version == "2"
        client.close()


def test_bad_model_control_flags(tmp_path):
    from seedlock.core.errors import UserError

    make_segmenter_repository(tmp_path)
    with pytest.raises(UserError, match="--load-model needs"):
        start_server(tmp_path, load_models=["segmenter"])
    with pytest.raises(UserError, match="--model-control-mode"):
        start_server(tmp_path, model_control_mode="sometimes")
    with pytest.raises(UserError, match="--repository-poll-secs"):
        start_server(tmp_path, model_control_mode="poll", repository_poll_secs=0)


def test_dropped_version_finishes_its_in_flight_requests(tmp_path):
    """Dropping a version (poll, unload) drains its scheduler: requests already
    admitted finish on it; new ones no longer find it."""
    import asyncio

    from seedlock.core.sessions import SessionConfig
    from seedlock.serve.errors import ServeError
    from seedlock.serve.repository import load_repository

    make_segmenter_repository(tmp_path)
    registry = load_repository(tmp_path, SessionConfig(intra_op_threads=1), threads=1, workers=1)

    async def main():
        registry.start()
        scheduler = registry.scheduler(registry.get("segmenter"))
        calls = [asyncio.ensure_future(scheduler.infer({"image": X}, ["logits"], None)) for _ in range(4)]
        await asyncio.sleep(0)  # one turn of the loop: all four are admitted to the queue
        await registry.remove_version("segmenter", 1, grace=30)
        results = await asyncio.gather(*calls)
        assert [r[0].shape for r in results] == [(1, 4, 32, 32)] * 4
        assert ("segmenter", 1) not in registry.schedulers
        with pytest.raises(ServeError, match="no ready version"):
            registry.get("segmenter")
        await registry.drain(0)
        registry.close()

    asyncio.run(main())
