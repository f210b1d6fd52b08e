"""TLS, mutual TLS and bearer tokens on a real server over a real socket, with
certificates made here (a CA, a server certificate for localhost/127.0.0.1, a
client certificate), through seedlock's clients, tritonclient and the CLI."""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import re
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import run_cli
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from serving_fixtures import write_plain_model

from seedlock.clients.base import NO_RETRY, BaseClient
from seedlock.clients.cli import connection
from seedlock.clients.errors import SeedlockError, Unavailable
from seedlock.clients.inference import InferenceClient
from seedlock.core.errors import UserError
from seedlock.protos.seedlock.v1 import models_pb2
from seedlock.serve.security import load_server_tls, load_tokens
from seedlock.serve.server import start_server

x509 = pytest.importorskip("cryptography.x509", reason="the TLS tests make certificates with cryptography (dev extra)")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOKENS = ("first-token-0123456789", "second-token-abcdef")
X = np.arange(3 * 8 * 8, dtype=np.float32).reshape(1, 3, 8, 8) / 100


# -- certificates ------------------------------------------------------------------
def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(name: str, key, issuer=None, issuer_key=None, ca: bool = False, sans=(), usage=None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )  # fmt: skip
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(folder: Path, name: str, data: bytes) -> Path:
    (folder / name).write_bytes(data)
    return folder / name


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """ca, server (localhost + 127.0.0.1), client (signed by ca), stranger
    (a client certificate from another CA), and wrong files."""
    d = tmp_path_factory.mktemp("pki")
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    plain = lambda k: k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())  # noqa: E731
    ca_key, other_ca_key = _key(), _key()
    ca, other_ca = _cert("seedlock test CA", ca_key, ca=True), _cert("another CA", other_ca_key, ca=True)
    server_key, client_key, stranger_key = _key(), _key(), _key()
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _cert("localhost", server_key, ca, ca_key, sans=sans, usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = _cert("client", client_key, ca, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger = _cert("stranger", stranger_key, other_ca, other_ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    encrypted = server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"passphrase"))  # fmt: skip
    files = {
        "ca": _write(d, "ca.pem", pem(ca)), "other_ca": _write(d, "other-ca.pem", pem(other_ca)),
        "server": _write(d, "server.pem", pem(server)), "server_key": _write(d, "server.key", plain(server_key)),
        "client": _write(d, "client.pem", pem(client)), "client_key": _write(d, "client.key", plain(client_key)),
        "stranger": _write(d, "stranger.pem", pem(stranger)), "stranger_key": _write(d, "stranger.key", plain(stranger_key)),
        "encrypted_key": _write(d, "encrypted.key", encrypted), "other_key": _write(d, "other.key", plain(_key())),
        "not_pem": _write(d, "notes.txt", b"not a certificate\n"),
        "tokens": _write(d, "tokens", f"# tokens for the tests\n\n{TOKENS[0]}\n   {TOKENS[1]}  \n".encode()),
        "client_token": _write(d, "client-token", f"# mine\n{TOKENS[1]}\n".encode()),
    }  # fmt: skip
    return files


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("secrepo")
    write_plain_model(path, "plain")
    return path


@pytest.fixture(scope="module")
def tls_server(repo, pki):
    """TLS (not mutual) with tokens."""
    running = start_server(repo, threads=1, workers=2, tls=load_server_tls(pki["server"], pki["server_key"]),
                           auth_tokens=load_tokens(pki["tokens"]))  # fmt: skip
    yield running
    running.stop(grace=0.5)


@pytest.fixture(scope="module")
def mtls_server(repo, pki):
    """Mutual TLS, no tokens."""
    running = start_server(repo, threads=1, workers=2, tls=load_server_tls(pki["server"], pki["server_key"], pki["ca"]))
    yield running
    running.stop(grace=0.5)


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


# -- TLS ---------------------------------------------------------------------------
def test_tls_client_talks_to_the_tls_server(tls_server, pki):
    with InferenceClient(tls_server.address, tls_ca=pki["ca"], token=TOKENS[0], retry=NO_RETRY, timeout=10) as client:
        assert client.health() == "SERVING"
        out = client.infer("plain", {"image": X})
    # PEM bytes work as well as file names; the name checked can differ from the host dialled.
    with InferenceClient(tls_server.address, tls_ca=pki["ca"].read_bytes(), tls_server_name="localhost",
                         token=TOKENS[1], retry=NO_RETRY, timeout=10) as client:  # fmt: skip
        again = client.infer("plain", {"image": X})
    assert np.array_equal(out["logits"], again["logits"]) and out["logits"].shape == (1, 4, 8, 8)


def test_plaintext_or_untrusting_clients_fail_cleanly_and_the_server_keeps_serving(tls_server, pki):
    with BaseClient(tls_server.address, retry=NO_RETRY, timeout=10) as plaintext:
        with pytest.raises(Unavailable):
            plaintext.health()
    with BaseClient(tls_server.address, tls_ca=pki["other_ca"], retry=NO_RETRY, timeout=10) as untrusting:
        with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.health()
    # the CLI says what to do, on one line
    proc = run_cli("client", "health", "--server", tls_server.address, "--timeout", "10", timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "if it serves TLS, pass --tls-ca FILE" in proc.stderr
    with BaseClient(tls_server.address, tls_ca=pki["ca"], retry=NO_RETRY, timeout=10) as client:
        assert client.health() == "SERVING"


def test_mutual_tls_refuses_clients_without_an_accepted_certificate(mtls_server, pki):
    address = mtls_server.address
    with BaseClient(address, tls_ca=pki["ca"], retry=NO_RETRY, timeout=10) as no_cert:
        with pytest.raises(Unavailable):
            no_cert.health()
    with BaseClient(address, tls_ca=pki["ca"], tls_cert=pki["stranger"], tls_key=pki["stranger_key"], retry=NO_RETRY, timeout=10) as c:
        with pytest.raises(Unavailable):
            c.health()
    with BaseClient(address, tls_ca=pki["ca"], tls_cert=pki["client"], tls_key=pki["client_key"], retry=NO_RETRY, timeout=10) as c:
        assert c.health() == "SERVING"
        assert [m.name for m in c.list_models().models] == ["plain"]  # no tokens on this server


# -- tokens ------------------------------------------------------------------------
def test_tokens_missing_wrong_or_malformed_are_unauthenticated_and_right_ones_pass(tls_server, pki):
    def models(token: str | None = None, metadata=None):
        with BaseClient(tls_server.address, tls_ca=pki["ca"], token=token, retry=NO_RETRY, timeout=10) as c:
            return c._models.ListModels(models_pb2.ListModelsRequest(), timeout=10, metadata=metadata)

    with pytest.raises(grpc.RpcError) as missing:
        models()
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <token>" in missing.value.details() and "--token-file" in missing.value.details()
    for wrong in ("nope", TOKENS[0][:-1], TOKENS[0] + "x", TOKENS[0].upper()):
        with pytest.raises(grpc.RpcError) as refused:
            models(wrong)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED and "not accepted" in refused.value.details()
    for header in (f"Basic {TOKENS[0]}", TOKENS[0], "Bearer", "Bearer "):
        assert _code(lambda h=header: models(metadata=[("authorization", h)])) == grpc.StatusCode.UNAUTHENTICATED
    for token in TOKENS:  # every token of the file, stripped of the file's whitespace
        assert [m.name for m in models(token).models] == ["plain"]
    assert models(metadata=[("authorization", f"bearer {TOKENS[0]}")]).models  # the scheme is case-insensitive


def test_health_and_liveness_stay_open_everything_else_needs_the_token(tls_server, pki):
    with BaseClient(tls_server.address, tls_ca=pki["ca"], retry=NO_RETRY, timeout=10) as anonymous, \
            InferenceClient(tls_server.address, tls_ca=pki["ca"], retry=NO_RETRY, timeout=10) as v2:
        ch = anonymous.channel
        health = health_pb2_grpc.HealthStub(ch)
        assert health.Check(health_pb2.HealthCheckRequest(service="plain"), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=10)
        assert next(iter(watch)).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        assert v2.live() and v2.ready()
        with pytest.raises(SeedlockError, match="UNAUTHENTICATED"):
            v2.server_metadata()
        with pytest.raises(SeedlockError, match="UNAUTHENTICATED"):
            v2.infer("plain", {"image": X})
        # reflection (stream-stream) and a server-streaming method are refused too
        reflect = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        assert _code(lambda: next(iter(reflect))) == grpc.StatusCode.UNAUTHENTICATED
        stream = ch.unary_stream("/seedlock.v1.Composition/ComposeStream")(b"", timeout=10)
        assert _code(lambda: next(iter(stream))) == grpc.StatusCode.UNAUTHENTICATED
        # the token is checked before the request is parsed: garbage without it is UNAUTHENTICATED
        garbage = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        assert _code(lambda: garbage(b"\xff\xff\xff garbage", timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
    with BaseClient(tls_server.address, tls_ca=pki["ca"], token=TOKENS[0], retry=NO_RETRY, timeout=10) as c:
        reflect = reflection_pb2_grpc.ServerReflectionStub(c.channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        names = {s.name for s in next(iter(reflect)).list_services_response.service}
        assert "grpc.health.v1.Health" in names and "inference.GRPCInferenceService" in names


def test_tritonclient_with_tls_and_a_bearer_header(tls_server, pki):
    grpcclient = pytest.importorskip("tritonclient.grpc")
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(tls_server.address, ssl=True, root_certificates=str(pki["ca"]))
    headers = {"authorization": f"Bearer {TOKENS[0]}"}
    assert client.is_server_live() and client.is_server_ready()  # the probes need no token
    assert client.is_server_live(headers=headers)
    inp = grpcclient.InferInput("image", list(X.shape), "FP32")
    inp.set_data_from_numpy(X)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("plain", [inp])
    assert "UNAUTHENTICATED" in str(refused.value.status()) and "Bearer" in refused.value.message()
    with pytest.raises(InferenceServerException, match="not accepted"):
        client.infer("plain", [inp], headers={"authorization": "Bearer wrong"})
    got = client.infer("plain", [inp], headers=headers).as_numpy("logits")
    with InferenceClient(tls_server.address, tls_ca=pki["ca"], token=TOKENS[0], retry=NO_RETRY) as ours:
        assert np.array_equal(got, ours.infer("plain", {"image": X})["logits"])
    assert client.is_model_ready("plain", headers=headers)
    client.close()


# -- files and flags -----------------------------------------------------------------
def test_bad_tls_and_token_files_are_user_errors(pki, tmp_path):
    cases = [
        ((tmp_path / "missing.pem", pki["server_key"]), "does not exist"),
        ((tmp_path, pki["server_key"]), "is a folder, not a regular file"),
        ((pki["not_pem"], pki["server_key"]), "holds no PEM certificate"),
        ((pki["server"], pki["not_pem"]), "holds no PEM private key"),
        ((pki["server"], pki["server"]), "holds no PEM private key"),
        ((pki["server"], pki["other_key"]), "does not belong to the certificate"),
        ((pki["server"], pki["encrypted_key"]), "is encrypted"),
        ((pki["server"], pki["server_key"], pki["not_pem"]), "--tls-client-ca.*holds no PEM certificate"),
    ]
    for files, message in cases:
        with pytest.raises(UserError, match=message):
            load_server_tls(*files)
    os.mkfifo(tmp_path / "fifo")  # never blocks: refused as not a regular file
    with pytest.raises(UserError, match="is a FIFO .*not a regular file"):
        load_tokens(tmp_path / "fifo")
    for text, message in [(b"# only a comment\n\n", "holds no token"), (b"two words\n", "line 1 .* holds a space"),
                          ("caf\u00e9\n".encode(), "not ASCII")]:  # fmt: skip
        (tmp_path / "tokens").write_bytes(text)
        with pytest.raises(UserError, match=message) as info:
            load_tokens(tmp_path / "tokens")
        assert "two words" not in str(info.value)  # a token is never echoed
    with pytest.raises(UserError, match="holds 2 tokens"):
        BaseClient("127.0.0.1:1", **connection(argparse.Namespace(token_file=pki["tokens"])))
    with pytest.raises(UserError, match="go together"):
        BaseClient("127.0.0.1:1", tls_ca=pki["ca"], tls_cert=pki["client"])
    with pytest.raises(UserError, match="--port must be from 0 to 65535"):
        start_server(ROOT / "nothing-here", port=65536)


def test_serve_refuses_bad_credentials_in_one_line(pki, repo, tmp_path):
    for flags, message in [
        (["--tls-cert", str(pki["server"]), "--tls-key", str(pki["other_key"])], "does not belong to the certificate"),
        (["--tls-cert", str(pki["server"])], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", str(pki["ca"])], "--tls-client-ca needs --tls-cert"),
        (["--auth-token-file", str(tmp_path / "none")], "token file .* does not exist"),
    ]:
        proc = run_cli("serve", "--repository", str(repo), "--port", "0", *flags, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert re.search(message, proc.stderr), proc.stderr


def test_cli_serve_and_client_with_mutual_tls_and_tokens(repo, pki, tmp_path):
    """``seedlock serve`` with every security flag; ``seedlock client`` and the
    container health check with theirs (flags and environment); SIGTERM exits 0."""
    serve = subprocess.Popen(
        [sys.executable, "-m", "seedlock", "serve", "--repository", str(repo), "--port", "0", "--threads", "1",
         "--tls-cert", str(pki["server"]), "--tls-key", str(pki["server_key"]), "--tls-client-ca", str(pki["ca"]),
         "--auth-token-file", str(pki["tokens"])],
        stdout=subprocess.PIPE, stderr=open(tmp_path / "serve.log", "w"), text=True,
    )  # fmt: skip
    try:
        sel = selectors.DefaultSelector()
        sel.register(serve.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=120), "server did not start"
        line = serve.stdout.readline()
        assert "listening on" in line, (tmp_path / "serve.log").read_text()
        address = line.rsplit(" ", 1)[1].strip()
        tls = ["--tls-ca", str(pki["ca"]), "--tls-cert", str(pki["client"]), "--tls-key", str(pki["client_key"])]
        ok = run_cli("client", "models", "--server", address, *tls, "--token-file", str(pki["client_token"]), timeout=60)
        assert ok.returncode == 0 and "plain" in ok.stdout, ok.stderr
        refused = run_cli("client", "models", "--server", address, *tls, timeout=60)
        assert refused.returncode == 2 and "UNAUTHENTICATED" in refused.stderr and refused.stderr.count("\n") == 1
        env = {"SEEDLOCK_TOKEN": TOKENS[0], "SEEDLOCK_TLS_CA": str(pki["ca"]), "SEEDLOCK_TLS_CERT": str(pki["client"]),
               "SEEDLOCK_TLS_KEY": str(pki["client_key"]), "SEEDLOCK_SERVER": address}  # fmt: skip
        assert run_cli("client", "models", "--json", env=env, timeout=60).returncode == 0
        assert run_cli("client", "health", env={**env, "SEEDLOCK_TOKEN": ""}, timeout=60).stdout.strip() == "server: SERVING"
        no_cert = run_cli("client", "health", "--server", address, "--tls-ca", str(pki["ca"]), timeout=60)
        assert no_cert.returncode == 2 and "pass --tls-cert FILE --tls-key FILE" in no_cert.stderr
        # the Docker HEALTHCHECK's command: everything from the environment
        probe = [sys.executable, "-m", "seedlock.serve.healthcheck"]
        health_env = {**os.environ, **env, "SEEDLOCK_HEALTH_ADDRESS": address}
        del health_env["SEEDLOCK_TOKEN"]
        assert subprocess.run(probe, env=health_env, capture_output=True, timeout=60).returncode == 0
        without_tls = {k: v for k, v in health_env.items() if not k.startswith("SEEDLOCK_TLS_")}
        failed = subprocess.run(probe, env=without_tls, capture_output=True, text=True, timeout=60)
        assert failed.returncode == 1 and failed.stderr.startswith(f"unhealthy: {address}")
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
