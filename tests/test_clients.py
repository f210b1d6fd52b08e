"""The client library and `seedlock client` against a live server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import cv2
import grpc
import numpy as np
import pytest
from serving_fixtures import make_segmenter_repository, sample_png

from seedlock.clients import RetryPolicy, SegmentationClient
from seedlock.clients.base import call_with_retry
from seedlock.clients.errors import DeadlineExceeded, InvalidArgument, Unavailable
from seedlock.serve.server import start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("clientrepo")
    make_segmenter_repository(repo, name="segmenter")
    running = start_server(repo, threads=1, workers=4)
    yield running
    running.stop(grace=1.0)


def cli(*args: str, timeout: float = 120):
    env = {**os.environ, "SEEDLOCK_SERVER": ""}
    return subprocess.run([sys.executable, "-m", "seedlock", "client", *args], capture_output=True, text=True, timeout=timeout, env=env)


def closed_port() -> int:
    """A localhost port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_segment_writes_mask_and_overlay(server, tmp_path):
    image = tmp_path / "photo.png"
    image.write_bytes(sample_png(37, 53, seed=1))
    mask_path, overlay_path = tmp_path / "out" / "mask.png", tmp_path / "overlay.png"
    proc = cli("segment", str(image), "--out", str(mask_path), "--overlay", str(overlay_path), "--server", server.address)
    assert proc.returncode == 0, proc.stderr
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (37, 53) and mask.dtype == np.uint8
    with SegmentationClient(server.address) as client:
        expected = client.segment(image)
    assert mask_path.read_bytes() == expected.mask_png
    overlay = cv2.imread(str(overlay_path))
    assert overlay.shape == (37, 53, 3)
    assert f"wrote {mask_path}" in proc.stdout and f"wrote {overlay_path}" in proc.stdout
    for name, count in expected.counts.items():
        assert any(line.split()[:2] == [name, str(count)] for line in proc.stdout.splitlines())


def test_cli_health_and_models(server):
    proc = cli("health", "--server", server.address)
    assert proc.returncode == 0 and "SERVING" in proc.stdout
    proc = cli("health", "--model", "segmenter", "--server", server.address)
    assert proc.returncode == 0 and "segmenter: SERVING" in proc.stdout
    proc = cli("health", "--model", "ghost", "--server", server.address)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no model 'ghost'" in proc.stderr
    proc = cli("models", "--server", server.address)
    assert proc.returncode == 0, proc.stderr
    digest = server.registry.get("segmenter").digest
    row = next(line for line in proc.stdout.splitlines() if line.startswith("segmenter"))
    assert row.split()[:4] == ["segmenter", "1", "ready", "segmentation"]
    assert digest[:16] in row and "CPU" in row
    # The scheduler and the load-time proofs: batching, instances x threads, bit-exact.
    assert row.split()[5:] == ["dynamic", "<=", "8", "1", "x", "1t", "yes", "CPU"], row
    proc = cli("models", "--server", server.address, "--json")
    assert proc.returncode == 0, proc.stderr
    (version,) = json.loads(proc.stdout)["models"][0]["versions"]
    assert version["digest"] == digest and version["batching"] == "dynamic" and version["bit_exact_with_export"] is True
    assert "proved" in version["batching_reason"] and version["preferred_batch_sizes"] == [4, 8]


def test_cli_unreachable_server_and_missing_image_fail_in_one_line(tmp_path):
    image = tmp_path / "x.png"
    image.write_bytes(sample_png(8, 8))
    address = f"127.0.0.1:{closed_port()}"
    for args in (
        ("segment", str(image), "--out", str(tmp_path / "m.png"), "--server", address, "--timeout", "5"),
        ("health", "--server", address, "--timeout", "5"),
        ("models", "--server", address, "--timeout", "5"),
    ):
        proc = cli(*args)
        assert proc.returncode != 0
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("seedlock client: error: cannot reach a seedlock server at " + address)
    proc = cli("segment", str(tmp_path / "missing.png"), "--out", str(tmp_path / "m.png"), "--server", address)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and proc.stderr.count("\n") == 1


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def scripted(*outcomes):
    """A stub method that fails (or answers) as scripted, recording its calls."""
    calls = []

    def fn(request, timeout=None):
        calls.append(timeout)
        outcome = outcomes[min(len(calls) - 1, len(outcomes) - 1)]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return fn, calls


def test_retries_unavailable_with_backoff_then_succeeds():
    fn, calls = scripted(FakeRpcError(grpc.StatusCode.UNAVAILABLE), FakeRpcError(grpc.StatusCode.UNAVAILABLE), "answer")
    sleeps = []
    policy = RetryPolicy(attempts=4, initial_backoff=0.1, multiplier=2.0, max_backoff=1.0)
    assert call_with_retry(fn, "req", 3.0, policy, sleep=sleeps.append) == "answer"
    assert calls == [3.0, 3.0, 3.0] and sleeps == [0.1, 0.2]


def test_gives_up_after_the_attempts_with_the_servers_message():
    fn, calls = scripted(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"))
    sleeps = []
    with pytest.raises(Unavailable, match="connection refused") as info:
        call_with_retry(fn, "req", 1.0, RetryPolicy(attempts=3, initial_backoff=0.5, max_backoff=0.6), sleep=sleeps.append)
    assert len(calls) == 3 and sleeps == [0.5, 0.6]
    assert info.value.code == grpc.StatusCode.UNAVAILABLE and info.value.message == "connection refused"


@pytest.mark.parametrize(
    "code,exc",
    [(grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument), (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded)],
)
def test_other_errors_are_not_retried(code, exc):
    fn, calls = scripted(FakeRpcError(code, "bad input: details"), "never")
    with pytest.raises(exc, match="bad input: details"):
        call_with_retry(fn, "req", 1.0, RetryPolicy(attempts=5), sleep=lambda s: pytest.fail("slept"))
    assert len(calls) == 1


def test_client_against_an_unreachable_server_raises_unavailable():
    with SegmentationClient(f"127.0.0.1:{closed_port()}", timeout=5, retry=RetryPolicy(attempts=2, initial_backoff=0.01)) as c:
        with pytest.raises(Unavailable) as info:
            c.segment(sample_png(8, 8))
    assert isinstance(info.value, ConnectionError)
