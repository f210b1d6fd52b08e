"""TensorRT engines on the serving side: engine records and host checks, the
CUDA binding, backend choice, and falling back to ONNX Runtime with a warning.

Everything here runs on the CPU except the tests marked ``gpu``, which need
TensorRT and a CUDA GPU and skip with the reason elsewhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from serving_fixtures import make_segmenter_repository, sample_png

from seedlock.clients import InferenceClient, SegmentationClient
from seedlock.clients.base import NO_RETRY
from seedlock.clients.errors import InvalidArgument
from seedlock.core import cuda
from seedlock.core.engines import EngineRecord, mismatch
from seedlock.core.errors import UserError
from seedlock.core.manifest import Manifest, record_files
from seedlock.core.sessions import CPU, CUDA, SessionConfig, _provider_options
from seedlock.core.tensorrt_runtime import ENGINE_PROVIDER, EngineSession, tensorrt_unavailable
from seedlock.serve.server import start_server

# A host other than any CI machine: the engine is refused before it is read.
FOREIGN_HOST = {"tensorrt": "10.9.0.34", "cuda": "12.8", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
FALLBACK = "serving model.onnx through ONNX Runtime (CPUExecutionProvider) instead"


def engine_record(**changes: object) -> EngineRecord:
    fields = {
        "file": "model.plan",
        "precision": "fp32",
        **FOREIGN_HOST,
        "profile": {"image": {"min": [1, 3, 32, 32], "opt": [1, 3, 32, 32], "max": [8, 3, 32, 32]}},
        "plugins": ["seedlock::BiActivation"],
        "workspace_mib": 1024,
        **changes,
    }
    return EngineRecord(**fields)  # type: ignore[arg-type]


# -- core.engines ------------------------------------------------------------------
def test_identical_host_is_accepted():
    assert mismatch(engine_record(), dict(FOREIGN_HOST)) is None


@pytest.mark.parametrize(
    "key,value",
    [("tensorrt", "10.8.0.43"), ("gpu", "NVIDIA A100-SXM4-80GB"), ("compute_capability", "8.0")],
)
def test_each_differing_field_is_named(key, value):
    reason = mismatch(engine_record(), {**FOREIGN_HOST, key: value})
    assert reason is not None
    assert f"{key} {FOREIGN_HOST[key]} (engine) vs {value} (this host)" in reason
    assert "model.plan" in reason
    others = [k for k in FOREIGN_HOST if k != key]
    assert not any(f"{k} " in reason.split("host: ", 1)[1] for k in others), reason


def test_cuda_minor_versions_are_compatible_majors_are_not():
    assert mismatch(engine_record(cuda="12.4"), {**FOREIGN_HOST, "cuda": "12.8"}) is None
    reason = mismatch(engine_record(cuda="12.8"), {**FOREIGN_HOST, "cuda": "13.0"})
    assert reason is not None and "cuda 12.8 (engine) vs 13.0 (this host)" in reason


def test_engine_record_rejects_a_bad_precision():
    with pytest.raises(ValueError, match="precision 'int8' is not fp32 or fp16"):
        engine_record(precision="int8")
    with pytest.raises(ValueError, match="malformed engine record"):
        EngineRecord.from_dict({"file": "model.plan"})


def test_manifest_round_trips_an_engine_record(tmp_path):
    make_segmenter_repository(tmp_path, name="seg")
    folder = tmp_path / "seg" / "1"
    manifest = Manifest.load(folder)
    assert manifest.engine("model") is None
    record = engine_record()
    manifest.engines["model"] = record.to_dict()
    again = Manifest.from_dict(json.loads(manifest.to_json()))
    assert again.engine("model") == record
    assert again.engine("model").host() == FOREIGN_HOST
    assert again.to_json() == manifest.to_json()


# -- core.cuda on this host --------------------------------------------------------
GPU_REASON = cuda.available()


def test_cuda_available_explains_why_not():
    if GPU_REASON is None:
        pytest.skip("this host has a usable CUDA GPU")
    assert isinstance(GPU_REASON, str)
    assert GPU_REASON.startswith(("no CUDA runtime library found", "CUDA runtime found but no GPU"))


def test_gpu_only_calls_raise_cuda_error_with_a_message():
    if GPU_REASON is None:
        pytest.skip("this host has a usable CUDA GPU")
    calls = [
        cuda.device_count,
        cuda.device_name,
        cuda.compute_capability,
        lambda: cuda.DeviceBuffer(64),
        cuda.Stream,
        lambda: cuda.host_environment("10.9.0.34"),
    ]
    for call in calls:
        with pytest.raises(cuda.CudaError) as info:
            call()
        message = str(info.value)
        assert len(message) > 20 and ("failed" in message or "no CUDA runtime" in message), message
    assert cuda.peak_bandwidth_gbs() is None


def test_runtime_version_reads_major_dot_minor():
    if cuda.library_path() is None:
        with pytest.raises(cuda.CudaError, match="no CUDA runtime library found"):
            cuda.runtime_version()
        return
    major, minor = cuda.runtime_version().split(".")
    assert int(major) >= 11 and 0 <= int(minor) <= 99


def test_host_arrays_must_be_c_contiguous():
    # Checked before any CUDA call, so this runs everywhere.
    with pytest.raises(ValueError, match="C-contiguous"):
        cuda.memcpy_htod_async(0, np.zeros((4, 4), np.float32)[:, ::2], None)  # type: ignore[arg-type]
    read_only = np.zeros(4, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        cuda.memcpy_dtoh_async(read_only, 0, None)  # type: ignore[arg-type]


# -- backend configuration ---------------------------------------------------------
TRT_REASON = tensorrt_unavailable()


def test_tensorrt_unavailable_says_why():
    if TRT_REASON is None:
        pytest.skip("TensorRT engines can run on this host")
    assert "tensorrt" in TRT_REASON.lower() or "GPU" in TRT_REASON or "CUDA" in TRT_REASON


def test_engine_session_refuses_clearly_without_tensorrt(tmp_path):
    if TRT_REASON is None:
        pytest.skip("TensorRT engines can run on this host")
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"\0" * 16)
    with pytest.raises(RuntimeError, match="tensorrt|GPU|CUDA"):
        EngineSession(plan)


def test_unknown_backend_is_a_user_error():
    with pytest.raises(UserError, match="backend 'tensorrt-llm' is not one of auto, onnxruntime, openvino, tensorrt"):
        SessionConfig(backend="tensorrt-llm")


def test_serve_cli_takes_a_backend():
    from seedlock.serve.cli import register

    parser = argparse.ArgumentParser(prog="seedlock")
    register(parser.add_subparsers())
    assert parser.parse_args(["serve", "--repository", "r"]).backend == "auto"
    assert parser.parse_args(["serve", "--repository", "r", "--backend", "tensorrt"]).backend == "tensorrt"
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--repository", "r", "--backend", "cuda"])


def test_cuda_execution_provider_keeps_fp32_math():
    options = _provider_options(CUDA, SessionConfig())
    assert options["use_tf32"] == "0" and options["cudnn_conv_algo_search"] == "DEFAULT"


# -- falling back to ONNX Runtime, with real files and a real server -----------------
def add_engine(repository: Path, name: str, version: int, record: EngineRecord) -> Path:
    """What `seedlock export trt` leaves behind: a plan beside the ONNX graph,
    its record in the manifest and its digest among the files. The bytes stand
    for an engine built on another host; the server refuses it before reading."""
    folder = repository / name / str(version)
    (folder / record.file).write_bytes(b"serialized TensorRT engine built on another host\n" * 64)
    manifest = Manifest.load(folder)
    manifest.engines["model"] = record.to_dict()
    record_files(manifest, folder, ["model.onnx", record.file])
    manifest.save(folder)
    return folder


@pytest.fixture(scope="module")
def engine_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("trtrepo")
    make_segmenter_repository(repo, name="segmenter", version=1)
    add_engine(repo, "segmenter", 1, engine_record())
    # Version 2's plan is corrupted after export: refused by its digest.
    make_segmenter_repository(repo, name="segmenter", version=2, seed=1)
    plan = add_engine(repo, "segmenter", 2, engine_record()) / "model.plan"
    plan.write_bytes(plan.read_bytes()[:-1] + b"!")
    make_segmenter_repository(repo, name="plain", seed=2)  # no engine at all
    return repo


def expected_reason() -> str:
    # Where TensorRT and a GPU exist the record's host differs from this one
    # (or, improbably the same, the fake plan fails to deserialize).
    return TRT_REASON or "engine model.plan"


def serve_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "seedlock.serve" and r.levelno == logging.WARNING]


def stable_bytes(response) -> bytes:
    copy = type(response)()
    copy.CopyFrom(response)
    copy.ClearField("timing")
    return copy.SerializeToString(deterministic=True)


def segment_all(address: str, model: str) -> tuple[bytes, list[str]]:
    with SegmentationClient(address, timeout=30, retry=NO_RETRY) as client:
        answer = client.segment_raw(sample_png(37, 53, seed=1), model=model, request_id="r")
        listing = {m.name: m for m in client.list_models().models}
    providers = [list(v.providers) for v in listing[model].versions if v.ready]
    assert answer.model_version == 1
    return stable_bytes(answer), providers[0]


def test_auto_backend_serves_a_foreign_engine_through_onnxruntime_with_a_warning(engine_repo, caplog):
    with caplog.at_level(logging.WARNING, logger="seedlock.serve"):
        running = start_server(engine_repo, models=["segmenter"], providers="cpu", threads=1, workers=2, backend="auto")
    with running:
        warnings = [w for w in serve_warnings(caplog) if "segmenter version 1" in w]
        assert len(warnings) == 1, serve_warnings(caplog)
        assert warnings[0].startswith("model segmenter version 1 graph 'model': ")
        assert expected_reason() in warnings[0]
        assert warnings[0].endswith(FALLBACK)
        assert running.registry.get("segmenter", 1).providers == [CPU]
        answer, providers = segment_all(running.address, "segmenter")
        assert providers == [CPU]
    with start_server(engine_repo, models=["segmenter"], providers="cpu", threads=1, workers=2, backend="onnxruntime") as plain:
        assert segment_all(plain.address, "segmenter")[0] == answer, "the fallback must answer as the ONNX backend does"


def test_a_plan_corrupted_after_export_refuses_its_version_only(engine_repo, caplog):
    with caplog.at_level(logging.ERROR, logger="seedlock.serve"):
        running = start_server(engine_repo, models=["segmenter"], providers="cpu", threads=1, workers=2)
    with running:
        reg = running.registry
        assert reg.ready_versions("segmenter") == [1]
        assert "model.plan" in reg.refused["segmenter"][2] and "does not match the manifest" in reg.refused["segmenter"][2]
        assert "refused segmenter version 2" in caplog.text
        # The default (latest ready) version still serves.
        with SegmentationClient(running.address, timeout=30, retry=NO_RETRY) as client:
            assert client.segment(sample_png(20, 20), model="segmenter").model_version == 1


def test_tensorrt_backend_warns_about_models_without_an_engine(engine_repo, caplog):
    with caplog.at_level(logging.WARNING, logger="seedlock.serve"):
        running = start_server(engine_repo, providers="cpu", threads=1, workers=2, backend="tensorrt")
    with running:
        warnings = serve_warnings(caplog)
        foreign = [w for w in warnings if "segmenter version 1" in w]
        assert len(foreign) == 1 and expected_reason() in foreign[0] and foreign[0].endswith(FALLBACK)
        plain = [w for w in warnings if "model plain version 1" in w]
        assert len(plain) == 1, warnings
        assert "has no TensorRT engine (build one with `seedlock export trt" in plain[0] and plain[0].endswith(FALLBACK)
        for name in ("segmenter", "plain"):
            _, providers = segment_all(running.address, name)
            assert providers == [CPU]


def test_onnxruntime_backend_ignores_engines_silently(engine_repo, caplog):
    with caplog.at_level(logging.WARNING, logger="seedlock.serve"):
        running = start_server(engine_repo, providers="cpu", threads=1, workers=2, backend="onnxruntime")
    with running:
        assert serve_warnings(caplog) == []
        assert running.registry.get("segmenter").providers == [CPU]


# -- on a GPU with TensorRT ----------------------------------------------------------
def needs_tensorrt() -> None:
    if TRT_REASON:
        pytest.skip(TRT_REASON)


@pytest.fixture(scope="module")
def trt_repo(request, tmp_path_factory) -> Path:
    """The tiny bi-elu U-Net (the plugin is exercised) with a TensorRT engine built here."""
    needs_tensorrt()  # before the (torch) export of the shared repository
    segmenter_repository = request.getfixturevalue("segmenter_repository")
    from seedlock.export.tensorrt_engine import EngineOptions, export_engines

    repo = tmp_path_factory.mktemp("trtbuilt")
    shutil.copytree(segmenter_repository / "segmenter", repo / "segmenter")
    records = export_engines(repo / "segmenter", EngineOptions(), log=lambda _: None)
    assert [r.file for r in records] == ["model.plan"]
    return repo


@pytest.mark.gpu
def test_device_buffer_round_trip():
    if GPU_REASON:
        pytest.skip(GPU_REASON)
    data = np.arange(1000, dtype=np.float32).reshape(10, 100)
    back = np.empty_like(data)
    buf, stream = cuda.DeviceBuffer(), cuda.Stream()
    ptr = buf.ensure(data.nbytes)
    assert buf.ensure(16) == ptr  # grow-only: a smaller request keeps the allocation
    cuda.memcpy_htod_async(ptr, data, stream)
    cuda.memcpy_dtoh_async(back, ptr, stream)
    stream.synchronize()
    assert np.array_equal(back, data)
    buf.free()
    stream.close()
    assert cuda.device_count() >= 1 and cuda.device_name() and "." in cuda.compute_capability()


@pytest.mark.gpu
def test_engine_session_matches_onnxruntime_cpu(trt_repo):
    folder = trt_repo / "segmenter" / "1"
    manifest = Manifest.load(folder)
    session = EngineSession(folder / manifest.engine("model").file)
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert session.get_inputs()[0].type == "tensor(float)"
    assert session.get_providers() == [ENGINE_PROVIDER]
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    (got,) = session.run(None, {"image": x})
    cpu = ort.InferenceSession(str(folder / manifest.graph("model").file), providers=[CPU])
    (want,) = cpu.run(None, {"image": x})
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="dtype"):
        session.run(None, {"image": x.astype(np.int32)})
    with pytest.raises(ValueError, match="optimization profile"):
        session.run(None, {"image": np.zeros((64, 3, 32, 32), np.float32)})
    session.close()


def _determinism_and_agreement(address: str, cpu_address: str) -> None:
    data = sample_png(37, 53, seed=1)
    with SegmentationClient(address, timeout=60, retry=NO_RETRY) as client:
        answers = {stable_bytes(client.segment_raw(data, model="segmenter", request_id="r")) for _ in range(5)}
        mask = client.segment(data, model="segmenter").mask
    assert len(answers) == 1, "5 identical requests gave different responses"
    with SegmentationClient(cpu_address, timeout=60, retry=NO_RETRY) as client:
        cpu_mask = client.segment(data, model="segmenter").mask
    assert mask.shape == cpu_mask.shape
    # argmax may flip where two classes' logits nearly tie
    assert (mask == cpu_mask).mean() >= 0.99


@pytest.mark.gpu
def test_tensorrt_engine_serves_deterministically_and_agrees_with_the_cpu(trt_repo, request, caplog):
    segmenter_repository = request.getfixturevalue("segmenter_repository")
    with caplog.at_level(logging.WARNING, logger="seedlock.serve"):
        gpu = start_server(trt_repo, threads=1, workers=4, backend="tensorrt")
    with gpu, start_server(segmenter_repository, providers="cpu", threads=1, workers=2, backend="onnxruntime") as cpu_server:
        assert serve_warnings(caplog) == []
        assert gpu.registry.get("segmenter").providers == [ENGINE_PROVIDER]
        _, providers = segment_all(gpu.address, "segmenter")
        assert any("TensorRT" in p for p in providers)
        _determinism_and_agreement(gpu.address, cpu_server.address)
        with InferenceClient(gpu.address, retry=NO_RETRY) as v2, pytest.raises(InvalidArgument, match="optimization profile"):
            v2.infer("segmenter", {"image": np.zeros((64, 3, 32, 32), np.float32)})


@pytest.mark.gpu
def test_onnxruntime_cuda_provider_is_deterministic(request):
    if CUDA not in ort.get_available_providers():
        pytest.skip(f"this onnxruntime build has no {CUDA} (install the `gpu` extra)")
    if GPU_REASON:
        pytest.skip(GPU_REASON)
    segmenter_repository = request.getfixturevalue("segmenter_repository")
    with start_server(segmenter_repository, providers="cuda", threads=1, workers=2, backend="onnxruntime") as gpu, \
            start_server(segmenter_repository, providers="cpu", threads=1, workers=2, backend="onnxruntime") as cpu_server:
        assert gpu.registry.get("segmenter").providers[0] == CUDA
        _determinism_and_agreement(gpu.address, cpu_server.address)
