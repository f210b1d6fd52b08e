"""The OpenVINO CPU fast path: the session (with seedlock's bi-activation op),
reduced-precision exports behind their agreement gates, and a real server
serving them to tritonclient with the seed-lock proofs passed."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from pipeline_helpers import start_server

pytest.importorskip("openvino", reason="the openvino extra is not installed")

from seedlock.clients import InferenceClient  # noqa: E402
from seedlock.clients.base import NO_RETRY  # noqa: E402
from seedlock.core.graph_io import GraphInputError  # noqa: E402
from seedlock.core.manifest import Manifest, ManifestError  # noqa: E402
from seedlock.core.openvino_runtime import OpenVINOSession, openvino_unavailable  # noqa: E402
from seedlock.core.sessions import SessionConfig, create_session, graph_session  # noqa: E402
from seedlock.export import precision as precision_mod  # noqa: E402
from seedlock.export.classifier import export_classifier  # noqa: E402
from seedlock.export.quantize import quantize_int8  # noqa: E402
from seedlock.serve.runtime import load_runtime  # noqa: E402
from seedlock.train.classifier import Classifier, ClassifierConfig  # noqa: E402

BF16 = pytest.mark.skipif(bool(openvino_unavailable("bf16")), reason=f"{openvino_unavailable('bf16')}")


@pytest.fixture(scope="module")
def bi_elu_classifier(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A CNN-Little bi-ELU digit classifier exported by seedlock's exporter
    (BiActivation nodes plus their model-local function), and seeded inputs."""
    torch.manual_seed(5)
    model = Classifier(ClassifierConfig(size="little", activation="bi-elu", width=0.25, hidden=32)).eval()
    path = tmp_path_factory.mktemp("cls") / "model.onnx"
    path.write_bytes(export_classifier(model, 1, 8))
    x = np.random.default_rng(0).standard_normal((16, 1, 8, 8)).astype(np.float32)
    return path, x


def test_bi_activation_graph_runs_in_openvino_and_matches_onnxruntime(bi_elu_classifier):
    path, x = bi_elu_classifier
    assert b"ai.seedlock" in path.read_bytes() and b"BiActivation" in path.read_bytes()
    ref = create_session(path).run(None, {"image": x})[0]
    fp32 = OpenVINOSession(path, "fp32").run(None, {"image": x})[0]
    np.testing.assert_allclose(fp32, ref, rtol=0, atol=1e-5)
    int8 = OpenVINOSession(_write(path.with_name("int8.onnx"), quantize_int8(path.read_bytes(), [{"image": x[:8]}, {"image": x[8:]}])), "int8")
    got = int8.run(None, {"image": x})[0]
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()  # quantized, yet close on its own calibration data


@BF16
def test_bf16_is_close_but_not_fp32(bi_elu_classifier):
    path, x = bi_elu_classifier
    ref = create_session(path).run(None, {"image": x})[0]
    got = OpenVINOSession(path, "bf16").run(None, {"image": x})[0]
    err = np.abs(got - ref).max()
    assert 0 < err < 1e-2 * np.abs(ref).max()  # nonzero: the precision hint really took effect
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_session_rejects_bad_feeds_and_is_thread_safe(bi_elu_classifier):
    path, x = bi_elu_classifier
    s = OpenVINOSession(path, "fp32")
    with pytest.raises(GraphInputError, match="shape"):
        s.run(None, {"image": x[:, :, :4]})
    with pytest.raises(GraphInputError, match="dtype"):
        s.run(None, {"image": x.astype(np.int64)})
    with pytest.raises(GraphInputError, match="takes inputs"):
        s.run(None, {"pixels": x})
    expected = [s.run(None, {"image": x[i:i + 1]})[0].tobytes() for i in range(8)]
    got: dict[int, bytes] = {}

    def worker(i: int) -> None:
        for _ in range(5):
            got[i] = s.run(None, {"image": x[i:i + 1]})[0].tobytes()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(8)] == expected


def test_quantization_is_a_function_of_the_calibration_set(bi_elu_classifier):
    path, x = bi_elu_classifier
    feeds = [{"image": x[:8]}]
    assert quantize_int8(path.read_bytes(), feeds) == quantize_int8(path.read_bytes(), feeds)
    assert quantize_int8(path.read_bytes(), feeds) != quantize_int8(path.read_bytes(), [{"image": 2 * x[:8]}])


# -- reduced-precision exports ------------------------------------------------------------
# A trained tiny segmenter (bf16: 32 px, 6 validation scenes) and a tiny fingerprint
# GAN (int8). The tiny segmenter's int8 masks fall below the 99.5 % gate (about 98 %
# of pixels agree), which the refusal test below relies on only through the gate.


@pytest.fixture(scope="module")
def trained_segmenter(tmp_path_factory) -> Path:
    from seedlock.train.segment import SegmentConfig, train_segmenter

    out = tmp_path_factory.mktemp("seg") / "run"
    cfg = SegmentConfig(out=str(out), size=32, width=8, depth=2, n_train=48, n_val=6, steps=300, threads=1,
                        progress=False, activation="bi-relu")  # fmt: skip
    return train_segmenter(cfg) / "checkpoint.pt"


@pytest.fixture(scope="module")
def gan_checkpoint(tmp_path_factory) -> Path:
    from seedlock.train.fingerprint_gan import FingerprintGANConfig, train_fingerprint_gan

    out = tmp_path_factory.mktemp("gan") / "run"
    cfg = FingerprintGANConfig(out=str(out), latent_dim=16, g_width=4, d_width=4, batch_size=4, n_per_quality=6,
                               steps=20, samples=8, log_every=10, threads=1, progress=False)  # fmt: skip
    return train_fingerprint_gan(cfg, log=lambda _: None) / "checkpoint.pt"


def _export(checkpoint: Path, repo: Path, name: str, precision: str, gate_measure: str) -> None:
    proc = run_cli("export", "onnx", str(checkpoint), "--repository", str(repo), "--name", name, "--precision", precision, check=True)
    row = next(line for line in proc.stdout.splitlines() if line.startswith(precision + " "))
    assert row.endswith(gate_measure) and " PASS " in row, proc.stdout


@pytest.fixture(scope="module")
def precision_repository(tmp_path_factory, trained_segmenter, gan_checkpoint) -> Path:
    repo = tmp_path_factory.mktemp("precision-repo")
    run_cli("export", "segment", str(trained_segmenter), "--repository", str(repo), "--name", "seg", check=True)
    _export(gan_checkpoint, repo, "gan-int8", "int8", "PSNR (dB) of uint8 images against fp32")
    if not openvino_unavailable("bf16"):
        _export(trained_segmenter, repo, "seg-bf16", "bf16", "mask pixels equal to fp32 (validation split)")
    return repo


def test_precision_version_records_runtime_calibration_and_agreement(precision_repository):
    folder = precision_repository / "gan-int8" / "1"
    m = Manifest.load(folder)
    assert (m.runtime, m.precision, m.precision_of("model"), m.intra_op_threads) == ("openvino", "int8", "int8", 1)
    cal = m.session["calibration"]["model"]
    assert cal["method"] == "minmax" and cal["samples"] == 32 and cal["seed"] == precision_mod.CALIBRATION_SEED
    feeds, _ = precision_mod.GATES[m.task].calibrate(m, folder, 32, cal["seed"])
    from seedlock.export.quantize import calibration_digest

    assert cal["sha256"] == calibration_digest(feeds["model"])  # the recorded digest names the set used
    agreement = m.metrics["precision_agreement"]
    assert agreement["passed"] and agreement["gate"] == 35.0 and agreement["value"] >= 35.0
    assert b"QuantizeLinear" in (folder / "model.onnx").read_bytes()
    assert b"QuantizeLinear" not in (precision_repository / "seg" / "1" / "model.onnx").read_bytes()
    assert Manifest.load(precision_repository / "seg" / "1").precision == "fp32"
    # the stored runtime reference is OpenVINO's answer, so a server can prove it reproduces it
    ref = np.load(folder / "reference.runtime.model.image.npy")
    inputs = np.load(folder / "reference.model.latent.npy")
    got = graph_session(m, folder / "model.onnx").run(None, {"latent": inputs})[0]
    assert got.tobytes() == ref.tobytes()


def test_int8_export_is_reproducible(precision_repository, gan_checkpoint, tmp_path):
    _export(gan_checkpoint, tmp_path, "gan-int8", "int8", "PSNR (dB) of uint8 images against fp32")
    for name in ("model.onnx", "manifest.json"):
        assert (tmp_path / "gan-int8" / "1" / name).read_bytes() == (precision_repository / "gan-int8" / "1" / name).read_bytes()


def test_verify_passes_on_a_precision_version(precision_repository):
    proc = run_cli("export", "verify", str(precision_repository / "gan-int8"))
    assert proc.returncode == 0, proc.stderr
    assert "verify: PASS" in proc.stdout


def test_gate_below_threshold_writes_nothing(trained_segmenter, tmp_path, monkeypatch):
    """The segmentation gate, measured for real, against a bar only identical masks clear."""
    gate = precision_mod.GATES["segmentation"].gate

    def strict(manifest, reference, candidate):
        a = gate(manifest, reference, candidate)
        return precision_mod.Agreement(a.measure, a.value, 1.0 + 1e-9, a.cases, a.detail)

    monkeypatch.setitem(precision_mod.GATES, "segmentation", replace(precision_mod.GATES["segmentation"], gate=strict))
    from seedlock.export.common import export_checkpoint
    from seedlock.export.errors import ExportError

    lines: list[str] = []
    with pytest.raises(ExportError, match="below the gate"):
        export_checkpoint(trained_segmenter, tmp_path, name="seg", precision="int8", log=lines.append)
    assert any("FAIL" in line for line in lines)
    assert not (tmp_path / "seg").exists() or not any((tmp_path / "seg").glob("1"))


def test_every_task_has_a_gate_and_other_precisions_are_refused():
    from seedlock.core import tasks
    from seedlock.core.errors import UserError

    assert sorted(precision_mod.GATES) == sorted(tasks.names())
    with pytest.raises(UserError, match="--precision must be one of fp32, bf16, int8"):
        precision_mod.check_precision("fp8", "segmentation")
    with pytest.raises(UserError, match="not available for detection models"):
        precision_mod.check_precision("int8", "detection")  # a task added without a gate


def test_onnxruntime_backend_refuses_a_pinned_version(precision_repository):
    m = Manifest.load(precision_repository / "gan-int8" / "1")
    with pytest.raises(ManifestError, match="pinned to OpenVINO"):
        load_runtime(m, precision_repository / "gan-int8" / "1", SessionConfig(backend="onnxruntime"))
    fp32 = Manifest.load(precision_repository / "seg" / "1")
    runtime = load_runtime(fp32, precision_repository / "seg" / "1", SessionConfig(backend="openvino"))
    assert runtime.providers == ["OpenVINO:fp32"]


def _triton_rows(address: str, z: np.ndarray) -> list[bytes]:
    """Each row of ``z`` as its own gan-int8 request, all at once, through
    tritonclient with its default options: the answers' bytes, in row order."""
    import tritonclient.grpc as tc

    def one(i: int) -> bytes:
        client = tc.InferenceServerClient(address)
        try:
            inp = tc.InferInput("latent", [1, z.shape[1]], "FP32")
            inp.set_data_from_numpy(z[i:i + 1])
            return client.infer("gan-int8", [inp]).as_numpy("image").tobytes()
        finally:
            client.close()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(z)) as pool:
        return list(pool.map(one, range(len(z))))


def test_server_serves_precision_versions_with_proofs(precision_repository, tmp_path):
    """Loaded on OpenVINO with both seed-lock proofs passed; the answers are the
    export host's in-process bytes whether a row comes alone or batched with
    others, and whatever the server's threads (1 instance, or 3 compiled copies)."""
    folder = precision_repository / "gan-int8" / "1"
    z = np.random.default_rng(3).standard_normal((8, 16)).astype(np.float32)
    local = graph_session(Manifest.load(folder), folder / "model.onnx").run(None, {"latent": z})[0]
    expected = [local[i:i + 1].tobytes() for i in range(len(z))]
    for threads in ("1", "3"):
        log_dir = tmp_path / f"threads{threads}"
        log_dir.mkdir()
        server = start_server(precision_repository, log_dir, threads=("--threads", threads))
        try:
            with InferenceClient(server.address, retry=NO_RETRY) as client:
                listing = {m.name: m.versions[0] for m in client.list_models().models}
            names = [n for n in listing if n.endswith(("-int8", "-bf16"))]
            assert "gan-int8" in names and listing["gan-int8"].instances == int(threads)
            for name in names:
                v = listing[name]
                assert v.batching == "dynamic" and "proved" in v.batching_reason, (name, v.batching_reason)
                assert v.bit_exact_with_export, v.bit_exact_detail
            assert _triton_rows(server.address, z) == expected
        finally:
            assert server.terminate() == 0


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_manifest_rejects_an_unknown_precision(precision_repository):
    data = json.loads((precision_repository / "gan-int8" / "1" / "manifest.json").read_text())
    data["session"]["precision"] = "fp8"
    with pytest.raises(ManifestError, match="fp8"):
        _ = Manifest.from_dict(data).precision
