"""Segmenter export: repository layout, parity, determinism, verify, CLI errors."""


import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import make_tiny_checkpoint, run_cli

from seedlock.core.manifest import Manifest
from seedlock.core.repository import load_version
from seedlock.core.sessions import SessionConfig, create_session
from seedlock.export.onnx_export import ExportError
from seedlock.export.segmenter import export_segmenter
from seedlock.export.verify import verify_model
from seedlock.train.checkpoint import load_checkpoint

REF_IN, REF_OUT = "reference.model.image.npy", "reference.model.logits.npy"  # the stored seeded reference
REF_RT = "reference.runtime.model.logits.npy"  # ONNX Runtime's bytes for REF_IN on the export host


def test_repository_layout_and_manifest(segmenter_repository, tiny_checkpoint):
    model_dir = segmenter_repository / "segmenter"
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "config.pbtxt"]
    files = sorted(p.name for p in (model_dir / "1").iterdir())
    assert files == ["manifest.json", "model.onnx", REF_IN, REF_OUT, REF_RT]
    m = Manifest.load(model_dir / "1")
    assert m.task == "segmentation" and m.name == "segmenter" and m.version == 1
    assert m.graphs["model"].inputs[0].shape == [-1, 3, -1, -1]
    assert m.graphs["model"].outputs[0].shape[0] == -1
    assert set(m.files) == {"model.onnx", REF_IN, REF_OUT, REF_RT}
    assert m.reference["graphs"] == {"model": {"inputs": {"image": REF_IN}, "outputs": {"logits": REF_OUT}}}
    assert m.reference["runtime"] == {"model": {"logits": REF_RT}} and m.session == {"intra_op_threads": 1}
    # The runtime reference is what ONNX Runtime gives here, pinned threads, byte for byte.
    session = create_session(model_dir / "1" / "model.onnx", SessionConfig(intra_op_threads=m.intra_op_threads))
    got = session.run(["logits"], {"image": np.load(model_dir / "1" / REF_IN)})[0]
    assert got.tobytes() == np.load(model_dir / "1" / REF_RT).tobytes()
    assert m.reference["tolerance"] == 1e-4 and "reference" not in m.preprocess and "reference" not in m.postprocess
    assert m.preprocess["size"] == 32 and m.preprocess["divisor"] == 4 and m.preprocess["resize"] == "letterbox"
    assert m.labels == load_checkpoint(tiny_checkpoint).labels
    assert m.metrics["export_parity_max_abs"] <= 1e-4
    assert {"torch", "onnx", "onnxruntime", "seedlock"} <= set(m.tools)
    assert 'name: "segmenter"' in (model_dir / "config.pbtxt").read_text()


def test_exported_model_matches_torch_on_new_shapes(segmenter_repository, tiny_checkpoint):
    mv = load_version(segmenter_repository, "segmenter")
    session = ort.InferenceSession(str(mv.path()), providers=["CPUExecutionProvider"])
    model = load_checkpoint(tiny_checkpoint).model
    x = np.random.default_rng(5).normal(size=(4, 3, 24, 40)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = session.run(None, {"image": x})[0]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4


def test_export_twice_is_byte_identical(tmp_path, tiny_checkpoint):
    a = export_segmenter(tiny_checkpoint, tmp_path / "a", log=lambda _: None).folder
    b = export_segmenter(tiny_checkpoint, tmp_path / "b", log=lambda _: None).folder
    for name in ("model.onnx", "manifest.json", REF_IN, REF_OUT):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a.parent / "config.pbtxt").read_bytes() == (b.parent / "config.pbtxt").read_bytes()


def test_failed_parity_writes_nothing(tmp_path, tiny_checkpoint):
    with pytest.raises(ExportError, match="nothing was written"):
        export_segmenter(tiny_checkpoint, tmp_path / "repo", tolerance=1e-15, log=lambda _: None)
    assert not (tmp_path / "repo" / "segmenter" / "1").exists()
    leftovers = list((tmp_path / "repo").rglob("*")) if (tmp_path / "repo").exists() else []
    assert [p for p in leftovers if p.is_file()] == []


def test_verify_passes_then_catches_tampering(tmp_path, tiny_checkpoint):
    folder = export_segmenter(tiny_checkpoint, tmp_path, log=lambda _: None).folder
    rows = verify_model(tmp_path / "segmenter", checkpoint=tiny_checkpoint, log=lambda _: None)
    assert rows[0].case == "model/logits stored reference" and all(r.ok for r in rows) and len(rows) >= 4
    assert [r.case for r in rows[1:]] == [f"model/logits {c}: torch vs onnxruntime" for c in ("stored", "fresh b1", "fresh b3")]
    assert [r.shape[0] for r in rows[1:]] == [1, 1, 3]
    # a changed reference output is caught by its digest before any parity runs
    ref = np.load(folder / REF_OUT)
    np.save(folder / REF_OUT, ref + 1.0)
    with pytest.raises(ExportError, match="digest check failed"):
        verify_model(tmp_path / "segmenter", log=lambda _: None)


def test_verify_detects_parity_drift_when_digest_is_rerecorded(tmp_path, tiny_checkpoint):
    """If someone edits the reference and re-records digests, the parity check still fails."""
    from seedlock.core.manifest import record_files

    folder = export_segmenter(tiny_checkpoint, tmp_path, log=lambda _: None).folder
    np.save(folder / REF_OUT, np.load(folder / REF_OUT) + 0.01)
    m = Manifest.load(folder)
    record_files(m, folder, list(m.files))
    m.save(folder)
    with pytest.raises(ExportError, match="parity check failed"):
        verify_model(tmp_path / "segmenter", log=lambda _: None)


def test_verify_reads_a_version_1_manifest(tmp_path, tiny_checkpoint):
    """A model exported before the reference had its own section (schema 1:
    reference_input/output.npy named in preprocess) still verifies and serves."""
    import json

    from seedlock.core.manifest import record_files

    folder = export_segmenter(tiny_checkpoint, tmp_path, log=lambda _: None).folder
    (folder / REF_IN).rename(folder / "reference_input.npy")
    (folder / REF_OUT).rename(folder / "reference_output.npy")
    data = json.loads((folder / "manifest.json").read_text())
    del data["reference"]
    data["schema_version"] = 1
    data["preprocess"]["reference"] = {"input": "reference_input.npy", "output": "reference_output.npy", "seed": 20201, "tolerance": 1e-4}
    data["files"] = {}
    (folder / "manifest.json").write_text(json.dumps(data))
    m = Manifest.load(folder)
    record_files(m, folder, ["model.onnx", "reference_input.npy", "reference_output.npy"])
    raw = json.loads((folder / "manifest.json").read_text())
    raw["files"] = m.files
    (folder / "manifest.json").write_text(json.dumps(raw))
    assert Manifest.load(folder).reference["graphs"]["model"] == {"inputs": {"image": "reference_input.npy"},
                                                                 "outputs": {"logits": "reference_output.npy"}}
    rows = verify_model(tmp_path / "segmenter", log=lambda _: None)
    assert [r.case for r in rows] == ["model/logits stored reference"] and rows[0].ok


def test_cli_export_and_verify(tmp_path, tiny_checkpoint):
    proc = run_cli("export", "onnx", str(tiny_checkpoint), "--repository", str(tmp_path), "--name", "seg", "--version", "2")
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout and "FAIL" not in proc.stdout
    assert (tmp_path / "seg" / "2" / "model.onnx").is_file()
    proc = run_cli("export", "verify", str(tmp_path / "seg"))
    assert proc.returncode == 0 and "verify: PASS" in proc.stdout
    # exporting onto an existing version is refused with one line
    proc = run_cli("export", "onnx", str(tiny_checkpoint), "--repository", str(tmp_path), "--name", "seg", "--version", "2")
    assert proc.returncode == 2 and "already exists" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_intra_op_threads_are_pinned_at_export_and_servers_scale_by_instances(tmp_path, tiny_checkpoint):
    from seedlock.core import model_config
    from seedlock.serve.server import start_server

    proc = run_cli("export", "onnx", str(tiny_checkpoint), "--repository", str(tmp_path), "--intra-op-threads", "2")
    assert proc.returncode == 0, proc.stderr
    m = Manifest.load(tmp_path / "segmenter" / "1")
    assert m.session == {"intra_op_threads": 2} and m.intra_op_threads == 2
    config = model_config.parse((tmp_path / "segmenter" / "config.pbtxt").read_text())
    assert config.parameters["intra_op_thread_count"].string_value == "2"  # what Triton's ORT backend reads
    x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    answers = []
    for threads in (2, 5):  # one instance of two threads, then two
        with start_server(tmp_path, threads=threads) as server:
            runtime = server.registry.get("segmenter")
            assert server.registry.scheduler(runtime).instances == threads // 2
            serving = server.registry.serving[("segmenter", 1)]
            assert serving.bit_exact, serving.bit_exact_detail  # the runtime reference was taken with 2 threads
            answers.append(runtime.run({"image": x}, ["logits"])[0].tobytes())
    assert answers[0] == answers[1]
    proc = run_cli("export", "onnx", str(tiny_checkpoint), "--repository", str(tmp_path), "--name", "x", "--intra-op-threads", "0")
    assert proc.returncode == 2 and "--intra-op-threads" in proc.stderr


@pytest.mark.parametrize(
    "content,message",
    [(None, "checkpoint"), (b"not a checkpoint at all", "not a readable checkpoint")],
)
def test_cli_user_errors_are_one_line(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    proc = run_cli("export", "onnx", str(path), "--repository", str(tmp_path / "repo"))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    good = make_tiny_checkpoint(tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    proc = run_cli("export", "onnx", str(tmp_path / "cut.pt"), "--repository", str(tmp_path / "repo"))
    assert proc.returncode == 2
    assert "corrupt or truncated" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_help_reads_well():
    top = run_cli("--help")
    assert top.returncode == 0
    for command in ("train", "export", "serve", "client", "bench", "demo"):
        assert command in top.stdout
    export = run_cli("export", "onnx", "--help")
    assert export.returncode == 0 and "--repository" in export.stdout and "1e-4" in export.stdout
    bad = run_cli("export", "onnx")
    assert bad.returncode == 2 and "required" in bad.stderr


def test_export_size_override_sets_the_serving_input(tmp_path, tiny_checkpoint):
    from seedlock.core.errors import UserError

    result = export_segmenter(tiny_checkpoint, tmp_path, size=48, log=lambda _: None)
    assert result.manifest.preprocess["size"] == 48
    assert all(r.ok for r in result.rows)
    assert any(r.shape[-2:] == (48, 48) for r in result.rows)  # parity was checked at the new size
    with pytest.raises(UserError, match="multiple of 4"):
        export_segmenter(tiny_checkpoint, tmp_path / "bad", size=30, log=lambda _: None)


def test_one_export_shape_for_every_task(tmp_path, tiny_checkpoint):
    """`export segment` is `export onnx` for segmenters; a checkpoint of another
    task, or another task's option, is refused with one line naming the fix."""
    proc = run_cli("export", "segment", str(tiny_checkpoint), "--repository", str(tmp_path), "--name", "seg")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "seg" / "1" / "model.onnx").is_file()
    proc = run_cli("export", "caption", str(tiny_checkpoint), "--repository", str(tmp_path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "holds a 'segmentation' model, not a 'captioning' one" in lines[0] and "seedlock export segment" in lines[0]
    proc = run_cli("export", "onnx", str(tiny_checkpoint), "--repository", str(tmp_path), "--max-count", "8")
    assert proc.returncode == 2 and "--max-count do(es) not apply to a segmentation model" in proc.stderr
    for bad in ("0", "x"):
        proc = run_cli("export", "onnx", str(tiny_checkpoint), "--repository", str(tmp_path), "--version", bad)
        assert proc.returncode == 2 and "--version" in proc.stderr and "Traceback" not in proc.stderr
