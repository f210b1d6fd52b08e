"""Loading (refusals), health, reflection, and SIGTERM draining."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from process_helpers import read_address
from serving_fixtures import half_write, make_segmenter_repository, sample_png, tamper

from seedlock.clients import InferenceClient, SegmentationClient
from seedlock.clients.base import NO_RETRY, BaseClient
from seedlock.clients.errors import NotFound, SeedlockError, Unavailable
from seedlock.core.errors import UserError
from seedlock.serve.server import start_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = tmp_path_factory.mktemp("liferepo")
    make_segmenter_repository(path, name="segmenter")
    make_segmenter_repository(path, name="tampered", seed=2)
    tamper(path, "tampered")
    make_segmenter_repository(path, name="halfwritten", seed=3)
    half_write(path, "halfwritten")
    make_segmenter_repository(path, name="versions", seed=4, version=1)
    make_segmenter_repository(path, name="versions", seed=5, version=2)
    tamper(path, "versions", version=2)
    return path


@pytest.fixture(scope="module")
def server(repo):
    running = start_server(repo, threads=1, workers=4)
    yield running
    running.stop(grace=1.0)


def test_tampered_and_half_written_models_are_refused_with_a_logged_reason(repo, caplog):
    with caplog.at_level(logging.ERROR, logger="seedlock.serve"):
        running = start_server(repo, threads=1, workers=2)
    try:
        reg = running.registry
        assert reg.ready_names() == ["segmenter", "versions"]
        assert "does not match the manifest" in reg.refused["tampered"][1]
        assert "half-written" in reg.refused["halfwritten"][1]
        assert reg.ready_versions("versions") == [1] and 2 in reg.refused["versions"]
        log = caplog.text
        assert "refused tampered version 1" in log and "refused halfwritten version 1" in log
    finally:
        running.stop(grace=0.5)


def test_refused_models_answer_unavailable_and_the_rest_serve(server):
    with SegmentationClient(server.address, timeout=30, retry=NO_RETRY) as seg, InferenceClient(server.address, retry=NO_RETRY) as v2:
        assert seg.segment(sample_png(20, 20), model="segmenter").mask.shape == (20, 20)
        # The highest *ready* version serves by default; the refused one says why.
        assert seg.segment(sample_png(20, 20), model="versions").model_version == 1
        with pytest.raises(Unavailable, match="version 2 was refused at load.*sha256"):
            seg.segment(sample_png(20, 20), model="versions", version=2)
        with pytest.raises(Unavailable, match="no ready version.*half-written"):
            seg.segment(sample_png(20, 20), model="halfwritten")
        assert v2.model_ready("segmenter") and not v2.model_ready("tampered")
        with pytest.raises(Unavailable):
            v2.infer("tampered", {"image": np.zeros((1, 3, 8, 8), np.float32)})
        listing = {m.name: m for m in seg.list_models().models}
    assert set(listing) == {"segmenter", "tampered", "halfwritten", "versions"}
    assert [(v.version, v.ready) for v in listing["versions"].versions] == [(1, True), (2, False)]
    assert listing["tampered"].versions[0].reason and not listing["tampered"].versions[0].ready
    good = listing["segmenter"].versions[0]
    assert good.task == "segmentation" and len(good.digest) == 64 and good.providers == ["CPUExecutionProvider"]


def test_health_overall_and_per_model(server):
    with BaseClient(server.address, timeout=10, retry=NO_RETRY) as client:
        assert client.health() == "SERVING"
        assert client.health("segmenter") == "SERVING"
        assert client.health("versions") == "SERVING"
        assert client.health("tampered") == "NOT_SERVING"
        with pytest.raises(NotFound):
            client.health("no-such-model")


def test_container_healthcheck_module(server):
    def check(*args):
        return subprocess.run([sys.executable, "-m", "seedlock.serve.healthcheck", "--address", server.address, *args],
                              capture_output=True, text=True, timeout=60)

    assert check().returncode == 0
    assert check("--service", "segmenter").returncode == 0
    proc = check("--service", "tampered")
    assert proc.returncode == 1 and "NOT_SERVING" in proc.stderr


def test_reflection_lists_every_service(server):
    with grpc.insecure_channel(server.address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {
            "inference.GRPCInferenceService",
            "seedlock.v1.Segmentation",
            "seedlock.v1.Models",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        } <= services
        infer = db.FindFileContainingSymbol("inference.GRPCInferenceService")
        assert infer.package == "inference"
        seg = db.FindFileContainingSymbol("seedlock.v1.Segmentation")
        assert "seedlock/v1/common.proto" in list(seg.dependency)


def test_nothing_loadable_is_a_user_error(tmp_path):
    make_segmenter_repository(tmp_path, name="only")
    tamper(tmp_path, "only")
    with pytest.raises(UserError, match="no model .* could be loaded.*only"):
        start_server(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        start_server(tmp_path / "missing")
    with pytest.raises(UserError, match="not in"):
        start_server(tmp_path, models=["ghost"])


def test_serve_cli_refuses_a_bad_repository_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "seedlock", "serve", "--repository", str(tmp_path / "nope"), "--port", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("seedlock serve: error:")
    assert "Traceback" not in proc.stderr


# A hook loaded into the server subprocess only (via sitecustomize): every model
# call on a scheduler instance waits while the gate file exists, so the test can
# hold a request in flight; every request the scheduler admits leaves a file.
GATE_HOOK = textwrap.dedent(
    """
    import itertools, os, pathlib, threading, time
    gate = os.environ.get("SEEDLOCK_TEST_GATE")
    if gate:
        import seedlock.serve.runtime as runtime
        import seedlock.serve.scheduler as scheduler
        path = pathlib.Path(gate)
        real_run = runtime.ModelRuntime.run
        def run(self, *args, **kwargs):
            if threading.current_thread().name.startswith("seedlock-instance"):  # not the load-time proofs
                (path.parent / "entered").touch()
                for _ in range(600):  # at most 60 s
                    if not path.exists():
                        break
                    time.sleep(0.1)
            return real_run(self, *args, **kwargs)
        runtime.ModelRuntime.run = run
        real_admit = scheduler.ModelScheduler._admit
        admitted = itertools.count()
        def admit(self, request):
            real_admit(self, request)
            (path.parent / f"admitted-{next(admitted)}").touch()
        scheduler.ModelScheduler._admit = admit
    """
)


def _wait_for(predicate, tries: int = 300, pause: float = 0.1) -> bool:
    for _ in range(tries):
        if predicate():
            return True
        time.sleep(pause)
    return False


def test_sigterm_drains_in_flight_requests_then_exits_zero(tmp_path):
    repo = make_segmenter_repository(tmp_path / "repo")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(GATE_HOOK)
    gate = tmp_path / "gate"
    gate.touch()
    env = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "SEEDLOCK_TEST_GATE": str(gate)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "seedlock", "serve", "--repository", str(repo), "--port", "0", "--threads", "1",
         "--workers", "4", "--grace", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    try:
        address = read_address(proc)
        image = sample_png(37, 53, seed=1)
        results: list = []

        def in_flight():
            with SegmentationClient(address, timeout=120, retry=NO_RETRY) as c:
                try:
                    results.append(c.segment(image))
                except Exception as exc:  # noqa: BLE001 - checked below
                    results.append(exc)

        callers = [threading.Thread(target=in_flight) for _ in range(4)]
        for caller in callers:  # one computing on the held instance, three queued behind it
            caller.start()
        assert _wait_for(lambda: (tmp_path / "entered").exists() and (tmp_path / "admitted-3").exists()), \
            "requests never reached the model"
        proc.send_signal(signal.SIGTERM)

        def refused() -> bool:
            with BaseClient(address, timeout=5, retry=NO_RETRY) as c:
                try:
                    return c.health() == "NOT_SERVING"
                except (Unavailable, SeedlockError) as exc:  # a stopping server refuses (UNAVAILABLE) or cancels
                    return exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)

        assert _wait_for(refused), "server kept accepting new work after SIGTERM"
        assert proc.poll() is None, "server exited before its in-flight requests finished"
        gate.unlink()
        for caller in callers:
            caller.join(timeout=60)
            assert not caller.is_alive()
        assert len(results) == 4 and not [r for r in results if isinstance(r, Exception)], results
        assert all(r.mask.shape == (37, 53) for r in results)
        assert proc.wait(timeout=60) == 0
        stderr = proc.stderr.read()
        assert "SIGTERM received" in stderr and "draining" in stderr and "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_models_flag_serves_only_the_named_models(repo):
    running = start_server(repo, models=["versions"], threads=1, workers=2)
    try:
        assert running.registry.names() == ["versions"]
        with InferenceClient(running.address, retry=NO_RETRY) as v2:
            assert v2.model_ready("versions") and not v2.model_ready("segmenter")
    finally:
        running.stop(grace=0.5)


def test_execution_provider_choice():
    import onnxruntime as ort

    from seedlock.core.sessions import CPU, PREFERENCE, resolve_providers

    available = ort.get_available_providers()
    auto = resolve_providers(None)
    assert auto == [p for p in PREFERENCE if p in available] and auto[-1] == CPU
    assert resolve_providers("cpu") == [CPU] == resolve_providers(["CPUExecutionProvider"])
    missing = next((alias for alias, full in (("trt", "TensorrtExecutionProvider"), ("cuda", "CUDAExecutionProvider")) if full not in available), None)
    if missing:
        with pytest.raises(UserError, match=f"'{missing}' is not available"):
            resolve_providers(f"{missing},cpu")


@pytest.mark.gpu
def test_cuda_provider_serves_the_segmenter(repo):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no CUDA execution provider in this onnxruntime build (install the gpu extra on a CUDA host)")
    running = start_server(repo, models=["segmenter"], providers="cuda,cpu", workers=2)
    try:
        assert running.registry.get("segmenter").providers[0] == "CUDAExecutionProvider"
        with SegmentationClient(running.address, retry=NO_RETRY) as c:
            first = c.segment(sample_png(37, 53, seed=1))
            assert c.segment(sample_png(37, 53, seed=1)).mask_png == first.mask_png
    finally:
        running.stop(grace=0.5)
