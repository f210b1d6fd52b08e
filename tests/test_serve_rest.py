"""KServe v2 REST (Triton's HTTP protocol) on a real server's --http-port:
raw HTTP over sockets, and tritonclient.http, byte for byte against gRPC."""

from __future__ import annotations

import http.client as http_client
import json
import subprocess
import sys
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
from serving_fixtures import make_segmenter_repository, tamper

from seedlock.protos.inference import grpc_service_pb2 as pb
from seedlock.protos.inference import grpc_service_pb2_grpc as pb_grpc
from seedlock.serve.server import start_server

TOKEN = "rest-token-123"
LIMIT = 8 << 20  # the module server's --max-message-bytes; its JSON part may be a quarter of it


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = tmp_path_factory.mktemp("restrepo")
    make_segmenter_repository(path, name="segmenter", num_classes=4, seed=0)
    make_segmenter_repository(path, name="broken", num_classes=4, seed=0)  # the same export (no second one), tampered
    tamper(path, "broken")
    return path


@pytest.fixture(scope="module")
def server(repo):
    running = start_server(repo, threads=1, workers=2, http_port=0, max_message_bytes=LIMIT)
    yield running
    running.stop(grace=1.0)


def url(server, path: str) -> str:
    return f"http://{server.address_at(server.http_port)}{path}"


def http(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url(server, path), data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def seeded(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def grpc_raw(server, x: np.ndarray) -> bytes:
    request = pb.ModelInferRequest(model_name="segmenter")
    request.inputs.add(name="image", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    with grpc.insecure_channel(server.address) as channel:
        response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    return response.raw_output_contents[0]


def test_health_and_metadata(server):
    assert http(server, "GET", "/v2/health/live")[0] == 200
    assert http(server, "GET", "/v2/health/ready")[0] == 200
    status, _, body = http(server, "GET", "/v2")
    assert status == 200 and json.loads(body)["name"] == "seedlock"
    status, _, body = http(server, "GET", "/v2/models/segmenter")
    meta = json.loads(body)
    assert status == 200 and meta["name"] == "segmenter" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 3, -1, -1]}]
    assert json.loads(http(server, "GET", "/v2/models/segmenter/versions/1")[2]) == meta
    assert http(server, "GET", "/v2/models/segmenter/ready")[0] == 200
    assert http(server, "GET", "/v2/models/segmenter/versions/1/ready")[0] == 200
    assert http(server, "GET", "/v2/models/segmenter/versions/7/ready")[0] == 400
    assert http(server, "GET", "/v2/models/nope/ready")[0] == 400


def test_unknown_model_refused_model_and_route(server):
    status, _, body = http(server, "GET", "/v2/models/nope")
    assert status == 404 and "unknown model" in json.loads(body)["error"]
    status, _, body = http(server, "POST", "/v2/models/nope/infer", b'{"inputs": []}')
    assert status == 404 and "error" in json.loads(body)
    status, _, body = http(server, "GET", "/v2/models/broken")
    assert status == 503 and "no ready version" in json.loads(body)["error"]
    status, _, body = http(server, "GET", "/v3/anything")
    assert status == 404 and "no route" in json.loads(body)["error"]


@pytest.mark.parametrize("shape", [(1, 3, 8, 12), (1, 3, 64, 80)])  # the larger one is parsed and written off the event loop
def test_json_tensors_equal_grpc(server, shape):
    x = seeded(shape, seed=4)
    doc = {"id": "j1", "inputs": [{"name": "image", "datatype": "FP32", "shape": list(x.shape), "data": x.tolist()}],
           "outputs": [{"name": "logits"}]}  # fmt: skip
    status, headers, body = http(server, "POST", "/v2/models/segmenter/infer", json.dumps(doc).encode())
    assert status == 200 and headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["id"] == "j1" and answer["model_name"] == "segmenter" and answer["model_version"] == "1"
    out = answer["outputs"][0]
    assert out["datatype"] == "FP32" and out["shape"] == [1, 4, *shape[2:]]
    want = np.frombuffer(grpc_raw(server, x), dtype="<f4")
    assert np.array(out["data"], dtype=np.float32).tobytes() == want.tobytes()


def test_binary_tensors_equal_grpc_bytes(server):
    x = seeded((2, 3, 8, 8), seed=9)
    header = json.dumps({
        "inputs": [{"name": "image", "datatype": "FP32", "shape": list(x.shape), "parameters": {"binary_data_size": x.nbytes}}],
        "parameters": {"binary_data_output": True},
    }).encode()  # fmt: skip
    status, headers, body = http(server, "POST", "/v2/models/segmenter/versions/1/infer", header + x.tobytes(),
                                 {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"})  # fmt: skip
    assert status == 200, body
    split = int(headers["inference-header-content-length"])
    answer = json.loads(body[:split])
    assert answer["outputs"][0]["parameters"]["binary_data_size"] == len(body) - split
    assert body[split:] == grpc_raw(server, x)


def test_tritonclient_http_matches_grpc_bytes(server):
    tc = pytest.importorskip("tritonclient.http", reason="tritonclient[http] (geventhttpclient) is not installed")
    x = seeded((1, 3, 16, 16), seed=2)
    client = tc.InferenceServerClient(server.address_at(server.http_port))
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("segmenter")
        assert client.get_model_metadata("segmenter")["outputs"][0]["shape"] == [-1, 4, -1, -1]
        inp = tc.InferInput("image", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)  # binary by default
        binary = client.infer("segmenter", [inp], outputs=[tc.InferRequestedOutput("logits")], request_id="b")
        as_json = client.infer("segmenter", [inp], outputs=[tc.InferRequestedOutput("logits", binary_data=False)])
        default = client.infer("segmenter", [inp])  # no outputs named: JSON, as Triton answers
        want = grpc_raw(server, x)
        for result in (binary, as_json, default):
            assert result.as_numpy("logits").astype("<f4").tobytes() == want
        assert binary.get_response()["id"] == "b"
        with pytest.raises(tc.InferenceServerException, match="multiples of 4"):
            bad = tc.InferInput("image", [1, 3, 9, 13], "FP32")
            bad.set_data_from_numpy(seeded((1, 3, 9, 13)))
            client.infer("segmenter", [bad])
    finally:
        client.close()


@pytest.mark.parametrize("body,headers,status,match", [
    (b"{not json", {}, 400, "not valid JSON"),
    (b"[" * 200_000 + b"]" * 200_000, {}, 400, "nests too deeply"),
    (b'{"inputs": 3}', {}, 400, "non-empty 'inputs'"),
    (b'{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 3, 4, 4], "data": [1, 2]}]}', {}, 400, "must hold 48"),
    (b'{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 3, 4, 4], "data": ["a"]}]}', {}, 400, "must hold 48"),
    (b'{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 3, 4, -4], "data": []}]}', {}, 400, "non-negative"),
    (b'{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 3, 4, 4], "parameters": {"binary_data_size": 192}}]}',
     {}, 400, "binary byte"),
    (b'{"inputs": []}xx', {"Inference-Header-Content-Length": "99"}, 400, "no larger than the body"),
    (b'{"inputs": []}xx', {"Inference-Header-Content-Length": "-1"}, 400, "Inference-Header-Content-Length"),
    (b"{}", {"Content-Encoding": "gzip"}, 400, "uncompressed"),
])  # fmt: skip
def test_malformed_requests_get_400(server, body, headers, status, match):
    got, _, answer = http(server, "POST", "/v2/models/segmenter/infer", body, headers)
    assert got == status, answer
    assert match in json.loads(answer)["error"]
    assert http(server, "GET", "/v2/health/ready")[0] == 200


def test_binary_sizes_must_add_up_to_the_body(server):
    header = b'{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 3, 4, 4], "parameters": {"binary_data_size": 192}}]}'
    extra = header + bytes(192) + b"tail"
    status, _, answer = http(server, "POST", "/v2/models/segmenter/infer", extra, {"Inference-Header-Content-Length": str(len(header))})
    assert status == 400 and "4 binary byte(s) after" in json.loads(answer)["error"]
    exact = header + bytes(192)
    status, _, answer = http(server, "POST", "/v2/models/segmenter/infer", exact, {"Inference-Header-Content-Length": str(len(header))})
    assert status == 200, answer


def test_body_over_the_limit_is_413_before_reading(server):
    """Refused on its Content-Length: the answer comes back with no byte of the body sent."""
    host, port = server.address_at(server.http_port).rsplit(":", 1)
    connection = http_client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("POST", "/v2/models/segmenter/infer")
        connection.putheader("Content-Length", str(LIMIT + 1))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413 and "--max-message-bytes" in json.loads(response.read())["error"]
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/v2/models/segmenter/infer", "/v2/models/nope/infer"])
def test_a_refused_body_still_being_sent_gets_an_answer_or_a_reset_not_a_hang(server, path):
    """An answer before the body was read closes the connection; without that the
    server would wait for the body with reading paused while the client blocks sending it."""
    request = urllib.request.Request(url(server, path), data=bytes(3 * LIMIT // 2), method="POST")
    try:
        urllib.request.urlopen(request, timeout=20)
        pytest.fail("the request was answered 200")
    except urllib.error.HTTPError as exc:
        assert exc.code in (404, 413) and exc.headers["connection"] == "close"
    except urllib.error.URLError as exc:  # reset while still sending: the answer came first
        assert isinstance(exc.reason, ConnectionError), exc.reason
    assert http(server, "GET", "/v2/health/ready")[0] == 200


def test_a_json_part_over_a_quarter_of_the_limit_is_413_with_what_to_do(server):
    body = b'{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [' + b"0," * (LIMIT // 8) + b"0]}]}"
    status, _, answer = http(server, "POST", "/v2/models/segmenter/infer", body)
    assert status == 413 and "send large tensors binary" in json.loads(answer)["error"]


def test_bearer_tokens_apply_over_http_health_stays_open(repo):
    with start_server(repo, threads=1, workers=2, models=["segmenter"], http_port=0, metrics_port=0, auth_tokens=[TOKEN]) as running:
        assert http(running, "GET", "/v2/health/ready")[0] == 200
        assert http(running, "GET", "/v2/health/live")[0] == 200
        status, headers, body = http(running, "GET", "/v2/models/segmenter")
        assert status == 401 and headers["www-authenticate"] == "Bearer" and "bearer token" in json.loads(body)["error"]
        assert http(running, "GET", "/v2/models/segmenter", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert http(running, "GET", "/v2/models/segmenter", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        metrics = f"http://{running.address_at(running.metrics_port)}/metrics"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(metrics, timeout=30)
        assert refused.value.code == 401
        with urllib.request.urlopen(urllib.request.Request(metrics, headers={"Authorization": f"Bearer {TOKEN}"}), timeout=30) as ok:
            assert b"nv_inference_request_success" in ok.read()


def test_a_taken_http_port_fails_start(repo, server):
    from seedlock.core.errors import UserError

    with pytest.raises(UserError, match="--http-port"):
        start_server(repo, threads=1, workers=2, models=["segmenter"], http_port=server.http_port)


def test_cli_prints_the_http_and_metrics_addresses(repo):
    """`seedlock serve --port 0`: the REST and metrics ports are free ones too, printed like the gRPC one."""
    proc = subprocess.Popen([sys.executable, "-m", "seedlock", "serve", "--repository", str(repo), "--port", "0",
                             "--models", "segmenter", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert lines[0].startswith("seedlock serve: listening on ")
        http_address = lines[1].removeprefix("seedlock serve: http on ")
        metrics_address = lines[2].removeprefix("seedlock serve: metrics on ")
        with urllib.request.urlopen(f"http://{http_address}/v2/health/ready", timeout=30) as ready:
            assert ready.status == 200
        with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=30) as metrics:
            assert b'seedlock_model_ready{model="segmenter",version="1"} 1.0' in metrics.read()
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0


def _self_signed() -> tuple[bytes, bytes]:
    import datetime
    import ipaddress

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


def test_tls_serves_https_with_the_grpc_certificate(repo, tmp_path):
    import ssl

    from seedlock.serve.security import ServerTLS

    cert, key = _self_signed()
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert)
    with start_server(repo, threads=1, workers=2, models=["segmenter"], http_port=0, metrics_port=0, tls=ServerTLS(cert, key)) as running:
        context = ssl.create_default_context(cafile=str(ca))
        for port, path in ((running.http_port, "/v2/health/ready"), (running.metrics_port, "/metrics")):
            with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=context, timeout=30) as response:
                assert response.status == 200
        with pytest.raises(OSError):  # plaintext HTTP gets no answer from a TLS port
            urllib.request.urlopen(f"http://127.0.0.1:{running.http_port}/v2/health/ready", timeout=30)
