"""The per-model scheduler at load: standard clients with their defaults,
isolation between models, batched answers equal to single ones, answers that
do not depend on ``--threads``, and the load-time proofs (DESIGN.md, Serving
core and Determinism)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from serving_fixtures import make_segmenter_repository, sample_png, write_plain_model
from test_serve_errors import Held, in_thread

from seedlock.clients import InferenceClient, SegmentationClient
from seedlock.clients.base import NO_RETRY
from seedlock.core.manifest import GraphSpec, TensorSpec
from seedlock.serve.proofs import prove_at, prove_batching
from seedlock.serve.server import start_server

tc = pytest.importorskip("tritonclient.grpc")


def tensor(seed: int, side: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, side, side)).astype(np.float32)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("schedrepo")
    make_segmenter_repository(repo, name="segmenter")
    make_segmenter_repository(repo, name="other", num_classes=3, seed=1)
    write_plain_model(repo, "plain")
    return repo


@pytest.fixture(scope="module")
def server(repo):
    running = start_server(repo, threads=1, workers=4, max_queue=64)
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def singles(server):
    """Each input's answer alone, one request at a time, before any load."""
    with InferenceClient(server.address, timeout=30, retry=NO_RETRY) as v2:
        return {seed: v2.infer("segmenter", {"image": tensor(seed)})["logits"].tobytes() for seed in range(32)}


def triton_infer(address: str, x: np.ndarray, model: str = "segmenter") -> np.ndarray:
    client = tc.InferenceServerClient(address)  # tritonclient's defaults: no deadline, no retries
    try:
        inp = tc.InferInput("image", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        return client.infer(model, [inp]).as_numpy("logits")
    finally:
        client.close()


def test_32_default_tritonclient_clients_get_answers_never_internal(server, singles):
    """32 clients at once, each its own input: every answer is the one it gets
    alone, however the scheduler grouped them."""
    scheduler = server.registry.scheduler(server.registry.get("segmenter"))
    assert scheduler.batching.mode == "dynamic"
    calls_before, rows_before = scheduler.counters.calls, scheduler.counters.rows
    errors: list = []

    def client(seed: int) -> list[bool]:
        same = []
        for _ in range(3):
            try:
                same.append(triton_infer(server.address, tensor(seed)).tobytes() == singles[seed])
            except Exception as exc:  # noqa: BLE001 - collected: must stay empty
                errors.append(exc)
        return same

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(client, range(32)))
    assert errors == [], errors[:3]
    assert all(all(r) and len(r) == 3 for r in results)
    calls = scheduler.counters.calls - calls_before
    assert scheduler.counters.rows - rows_before == 96 and 1 <= calls <= 96


def test_batched_answers_are_byte_identical_to_single_ones(server, singles):
    """Hold the model so that the queued requests must go as one batch."""
    with Held(server, "segmenter") as held:
        first = in_thread(triton_infer, server.address, tensor(0))
        assert held.running.wait(30)
        waiting = [in_thread(triton_infer, server.address, tensor(seed)) for seed in range(1, 8)]
        held.wait_queued(7)
        held.release()
        for t, _ in [first, *waiting]:
            t.join(30)
    assert held.calls[:2] == [1, 7], held.calls  # the queued seven ran as one call
    for seed, (_, out) in enumerate([first, *waiting]):
        assert len(out) == 1 and not isinstance(out[0], Exception), out
        assert out[0].tobytes() == singles[seed]


def test_inputs_of_a_shape_the_proof_did_not_cover_run_one_request_per_call(server):
    """Kernels may split work differently by shape, so only the shapes proved
    at load are batched; others are answered, one request per call."""
    scheduler = server.registry.scheduler(server.registry.get("segmenter"))
    assert "other shapes run one request per call" in server.registry.serving[("segmenter", 1)].batching_reason
    x = np.random.default_rng(9).standard_normal((1, 3, 16, 24)).astype(np.float32)
    alone = triton_infer(server.address, x)
    with Held(server, "segmenter") as held:
        first = in_thread(triton_infer, server.address, x)
        assert held.running.wait(30)
        waiting = [in_thread(triton_infer, server.address, x) for _ in range(3)]
        held.wait_queued(3)
        held.release()
        for t, _ in [first, *waiting]:
            t.join(30)
    assert held.calls == [1, 1, 1, 1] and scheduler.batching.mode == "dynamic"
    assert all(out[0].tobytes() == alone.tobytes() for _, out in [first, *waiting])


def test_segment_requests_batch_and_match_their_single_answers(server):
    images = [sample_png(30 + 3 * i, 50 - 2 * i, seed=i) for i in range(6)]
    with SegmentationClient(server.address, timeout=30, retry=NO_RETRY) as seg:
        alone = [seg.segment(img, model="segmenter").mask_png for img in images]
        with Held(server, "segmenter") as held:
            first = in_thread(seg.segment, images[0], model="segmenter")
            assert held.running.wait(30)
            waiting = [in_thread(seg.segment, img, model="segmenter") for img in images[1:]]
            held.wait_queued(5)
            held.release()
            for t, _ in [first, *waiting]:
                t.join(30)
    assert held.calls[:2] == [1, 5], held.calls
    assert [out[0].mask_png for _, out in [first, *waiting]] == alone


def test_a_saturated_model_leaves_health_metadata_and_other_models_answering(server, singles):
    """While every instance of one model is busy and its queue holds requests,
    health, liveness, metadata and another model answer at once."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with Held(server, "segmenter") as held:
        busy = [in_thread(triton_infer, server.address, tensor(seed)) for seed in range(6)]
        held.wait_queued(3)
        with grpc.insecure_channel(server.address) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            assert check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
            assert check(health_pb2.HealthCheckRequest(service="segmenter"), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        client = tc.InferenceServerClient(server.address)
        try:
            assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("other")
            assert client.get_model_metadata("segmenter").name == "segmenter"
        finally:
            client.close()
        other = triton_infer(server.address, tensor(5), model="other")
        assert other.shape == (1, 3, 32, 32)
        assert all(not out for _, out in busy)  # the saturated model's requests are all still waiting
        held.release()
        for t, _ in busy:
            t.join(30)
    assert [out[0].tobytes() for _, out in busy] == [singles[s] for s in range(6)]


def test_list_models_reports_the_scheduler_and_the_proofs(server):
    with InferenceClient(server.address, retry=NO_RETRY) as client:
        listing = {m.name: m.versions[0] for m in client.list_models().models}
    seg = listing["segmenter"]
    assert (seg.batching, seg.max_batch_size, list(seg.preferred_batch_sizes)) == ("dynamic", 8, [4, 8])
    assert "proved" in seg.batching_reason
    assert seg.intra_op_threads == 1 and seg.instances == 1 and seg.max_queue_size == 64
    # The exporter stored ONNX Runtime's bytes for its reference input; this host reproduces them.
    assert seg.bit_exact_with_export, seg.bit_exact_detail
    plain = listing["plain"]  # written by hand, not by the exporter: nothing to prove with
    assert plain.batching == "off" and not plain.bit_exact_with_export
    assert "no runtime reference" in plain.bit_exact_detail


def test_answers_do_not_depend_on_the_servers_threads_or_instances(repo, server, singles):
    """--threads and --instances change how many calls run at once, never an answer."""
    image = sample_png(41, 29, seed=3)
    with SegmentationClient(server.address, timeout=30, retry=NO_RETRY) as seg:
        want_png = seg.segment(image, model="segmenter").mask_png
    for kwargs in ({"threads": 1}, {"threads": 5}, {"threads": 2, "instances": 3}):
        with start_server(repo, workers=2, **kwargs) as other:
            with InferenceClient(other.address, timeout=30, retry=NO_RETRY) as v2:
                assert v2.infer("segmenter", {"image": tensor(4)})["logits"].tobytes() == singles[4]
            with SegmentationClient(other.address, timeout=30, retry=NO_RETRY) as seg:
                assert seg.segment(image, model="segmenter").mask_png == want_png
            scheduler = other.registry.scheduler(other.registry.get("segmenter"))
            assert scheduler.instances == kwargs.get("instances", kwargs["threads"])


# -- the batching proof on graphs with known behaviour --------------------------------
GRAPH = GraphSpec("model.onnx", [TensorSpec("x", "float32", [-1, 4])], [TensorSpec("y", "float32", [-1, 4])])
ROWS = {"x": np.random.default_rng(0).standard_normal((1, 4)).astype(np.float32)}


def test_the_proof_accepts_a_row_wise_graph():
    proof = prove_batching(lambda feeds, _: [feeds["x"] * 2.0], GRAPH, [ROWS], 8)
    assert proof.mode == "dynamic" and "2..8" in proof.reason


def test_the_proof_pads_a_graph_whose_bits_depend_on_the_batch_size():
    def run(feeds, _):  # the last bits depend on how many rows there are, not on which
        x = feeds["x"]
        return [(x * np.float32(1 + 1e-7 * len(x))).astype(np.float32)]

    proof = prove_at(run, GRAPH, ROWS, 8)
    assert proof.mode == "padded" and "differs alone and at position" in proof.reason


def test_the_proof_refuses_batching_when_companions_leak_into_a_row():
    proof = prove_at(lambda feeds, _: [feeds["x"] + feeds["x"].mean(axis=0, keepdims=True)], GRAPH, ROWS, 8)
    assert proof.mode == "off" and "one request per call" in proof.reason


def test_the_proof_needs_a_reference_input():
    assert prove_batching(lambda feeds, _: [feeds["x"]], GRAPH, [], 8).mode == "off"
    assert prove_at(lambda feeds, _: [feeds["x"]], GRAPH, ROWS, 1).mode == "off"


def test_no_thread_waits_for_a_model(server):
    """Requests waiting for a model are coroutines, not threads: 20 queued
    requests add no server thread (the old design held one per request)."""

    def server_threads() -> int:
        return sum(t.name.startswith("seedlock") for t in threading.enumerate())

    with Held(server, "segmenter") as held:
        first = in_thread(triton_infer, server.address, tensor(1))
        assert held.running.wait(30)
        before = server_threads()
        waiting = [in_thread(triton_infer, server.address, tensor(s)) for s in range(2, 22)]
        held.wait_queued(20)
        # At most the decode pool's lazily started threads (workers=4) appear.
        assert server_threads() - before <= 4
        held.release()
        for t, _ in [first, *waiting]:
            t.join(30)
    assert all(len(out) == 1 and not isinstance(out[0], Exception) for _, out in waiting)


def test_bench_scheduler_reports_every_path_and_target(repo, tmp_path):
    """`seedlock bench scheduler` end to end at a tiny size (what it measures is
    speed; here only that every figure is there and the servers answered)."""
    import json

    from conftest import run_cli

    out = tmp_path / "bench.json"
    proc = run_cli("bench", "scheduler", "--repository", str(repo), "--models", "segmenter", "--requests", "8",
                   "--warmup", "1", "--concurrency", "1,2", "--json", str(out), timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    (model,) = report["models"]
    assert model["model"] == "segmenter" and model["max_batch_size"] == 8 and model["instances"] == 1
    assert [p["batch"] for p in model["in_process"]["curve"]] == list(range(1, 9))
    for key in ("null_servicer", "null_servicer_paced", "seedlock"):
        for level in ("1", "2"):
            m = model[key][level]
            # CPU time comes in clock ticks (10 ms): at this size it may round to 0.
            assert m["requests_per_s"] > 0 and m["p50_ms"] > 0 and m["server_cpu_ms_per_request"] >= 0, (key, m)
    assert model["null_servicer_paced"]["hold_ms"] == model["in_process"]["batch1_p50_ms"]
    assert set(model["targets"]) == {"c1_own_cost", "c1_cost_beyond_paced_null", "throughput_vs_floor", "throughput_vs_batch1"}
    assert len(report["load_average_before"]) == 3
