"""Prometheus metrics on a real server's --metrics-port: Triton's names, types
and labels, moving with gRPC and REST traffic; seedlock's own gauges."""

from __future__ import annotations

import json
import re
import urllib.request

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_fixtures import make_segmenter_repository, tamper

from seedlock.protos.inference import grpc_service_pb2 as pb
from seedlock.protos.inference import grpc_service_pb2_grpc as pb_grpc
from seedlock.serve.metrics import TRITON_COUNTERS
from seedlock.serve.server import start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("metricsrepo")
    make_segmenter_repository(path, name="segmenter", num_classes=4, seed=0)
    make_segmenter_repository(path, name="broken", num_classes=4, seed=0)  # the same export (no second one), tampered
    tamper(path, "broken")
    running = start_server(path, threads=1, workers=2, http_port=0, metrics_port=0)
    yield running
    running.stop(grace=1.0)


def scrape_text(server) -> str:
    with urllib.request.urlopen(f"http://{server.address_at(server.metrics_port)}/metrics", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


SAMPLE = re.compile(r'^(\w+)\{(.*)\} (\S+)$')


def scrape(server) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, as written (the text must parse with prometheus_client's parser too)."""
    text = scrape_text(server)
    assert list(text_string_to_metric_families(text))
    got = {}
    for line in text.splitlines():
        if match := SAMPLE.match(line):
            labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2])))
            got[(match[1], labels)] = float(match[3])
    return got


def seg(**extra: str) -> tuple:
    return tuple(sorted({"model": "segmenter", "version": "1", **extra}.items()))


def infer_grpc(server, rows: int) -> None:
    x = np.zeros((rows, 3, 8, 8), np.float32)
    request = pb.ModelInferRequest(model_name="segmenter")
    request.inputs.add(name="image", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    with grpc.insecure_channel(server.address) as channel:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)


def infer_rest(server) -> None:
    doc = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 3, 8, 8], "data": [0.5] * 192}]}
    url = f"http://{server.address_at(server.http_port)}/v2/models/segmenter/infer"
    with urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(doc).encode()), timeout=30) as response:
        assert response.status == 200


def test_triton_names_are_counters_without_total_suffix(server):
    text = scrape_text(server)
    for name in TRITON_COUNTERS:
        assert f"# TYPE {name} counter\n" in text
        assert f'{name}{{model="segmenter",version="1"}} ' in text
    assert "_total" not in text
    assert "# TYPE nv_inference_pending_request_count gauge\n" in text


def test_counters_move_with_grpc_and_rest_traffic(server):
    before = scrape(server)
    for _ in range(3):
        infer_grpc(server, rows=2)
    for _ in range(2):
        infer_rest(server)
    after = scrape(server)

    def moved(name: str) -> float:
        return after[(name, seg())] - before.get((name, seg()), 0.0)

    assert moved("nv_inference_request_success") == 5
    assert moved("nv_inference_count") == 3 * 2 + 2  # rows
    assert 1 <= moved("nv_inference_exec_count") <= 5  # concurrent requests may share a call
    assert moved("nv_inference_request_failure") == 0
    for name in ("nv_inference_request_duration_us", "nv_inference_compute_infer_duration_us"):
        assert moved(name) > 0
    assert after[("nv_inference_request_duration_us", seg())] >= after[("nv_inference_queue_duration_us", seg())]


def test_seedlock_gauges(server):
    got = scrape(server)
    assert got[("seedlock_model_ready", seg())] == 1
    assert got[("seedlock_bit_exact_with_export", seg())] == 1
    assert got[("seedlock_queue_size", seg())] == 0
    assert got[("seedlock_max_queue_size", seg())] == 128
    modes = [dict(labels)["mode"] for (name, labels), value in got.items() if name == "seedlock_batching_proof" and value == 1]
    assert len(modes) == 1 and modes[0] in ("dynamic", "padded", "off")
    broken = tuple(sorted({"model": "broken", "version": "1"}.items()))
    assert got[("seedlock_model_ready", broken)] == 0
    assert got[("seedlock_model_refused", broken)] == 1
    assert not any(name.startswith("nv_") and dict(labels).get("model") == "broken" for name, labels in got)
