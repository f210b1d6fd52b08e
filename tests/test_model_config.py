"""Real configs (issue 14): config.pbtxt through Triton's vendored ModelConfig,
version_policy, refused garbage configs, one Triton model per graph of a
multi-graph model, and plain Triton model folders served over KServe v2."""

from __future__ import annotations

import logging
import os

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from serving_fixtures import check_configs_match_graphs, make_segmenter_repository, write_plain_model, write_triton_model

from seedlock.clients import InferenceClient
from seedlock.clients.base import NO_RETRY
from seedlock.clients.errors import NotFound, Unavailable
from seedlock.core import model_config
from seedlock.core.manifest import Manifest, ManifestError, sha256_file
from seedlock.protos.inference import model_config_pb2 as mc
from seedlock.serve.server import start_server

tc = pytest.importorskip("tritonclient.grpc")


def policy(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


@pytest.mark.parametrize(
    ("text", "selected", "missing"),
    [
        ("", [3], []),  # Triton's default: the latest version only
        ("version_policy { latest { num_versions: 2 } }", [2, 3], []),
        ("version_policy { all {} }", [1, 2, 3], []),
        ("version_policy { specific { versions: [1, 3, 7] } }", [1, 3], [7]),
    ],
)
def test_version_policy_selects_like_triton(text, selected, missing):
    assert model_config.select_versions(policy(text), [3, 1, 2]) == (selected, missing)


def test_version_policy_errors_and_a_model_without_config_serves_every_version():
    assert model_config.select_versions(None, [2, 1]) == ([1, 2], [])
    with pytest.raises(ManifestError, match="num_versions must be at least 1"):
        model_config.select_versions(policy("version_policy { latest { num_versions: 0 } }"), [1])
    with pytest.raises(ManifestError, match="specific names no version"):
        model_config.select_versions(policy("version_policy { specific {} }"), [1])


def test_parse_is_strict_with_the_whole_triton_schema():
    # Fields of Triton's schema that seedlock does not use parse ...
    config = model_config.parse("max_batch_size: 4 optimization { priority: PRIORITY_MAX } "
                                "model_warmup { name: 'w' batch_size: 1 } response_cache { enable: true }")  # fmt: skip
    assert config.max_batch_size == 4 and config.response_cache.enable
    # ... and one Triton does not know refuses the model, as Triton would.
    with pytest.raises(ManifestError, match="m/config.pbtxt: not a Triton model configuration"):
        model_config.parse("max_batch_size: 4 no_such_field: 1", "m/config.pbtxt")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = tmp_path_factory.mktemp("configrepo")
    make_segmenter_repository(path, name="segmenter")
    for name, text in (("latest2", "latest { num_versions: 2 }"), ("every", "all {}"), ("chosen", "specific { versions: [1, 3, 7] }"),
                       ("default", None)):  # fmt: skip
        for version in (1, 2, 3):
            write_plain_model(path, name, version=version)
        config = model_config.parse((path / name / "config.pbtxt").read_text())
        config.ClearField("version_policy")
        if text is not None:
            text_format.Parse(text, config.version_policy)
        (path / name / "config.pbtxt").write_text(text_format.MessageToString(config))
    write_plain_model(path, "garbage")
    (path / "garbage" / "config.pbtxt").write_text("max_batch_size: lots\n")
    write_plain_model(path, "unknown_field")
    with open(path / "unknown_field" / "config.pbtxt", "a") as f:
        f.write("not_a_triton_field: 1\n")
    write_triton_model(path, "plain", versions=(1, 2))
    write_triton_model(path, "plain_unbatched", max_batch_size=0, num_classes=3,
                       config_text='name: "plain_unbatched" platform: "onnxruntime_onnx" version_policy { all {} }')
    write_triton_model(path, "plain_wrong", config_text='platform: "onnxruntime_onnx" input { name: "image" data_type: TYPE_INT32 dims: [-1, 3, -1, -1] }')
    write_triton_model(path, "plain_tf", config_text='platform: "tensorflow_savedmodel"')
    return path


@pytest.fixture(scope="module")
def server(repo):
    running = start_server(repo, threads=1, workers=4)
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def triton(server):
    client = tc.InferenceServerClient(server.address)
    yield client
    client.close()


def test_every_config_the_exporter_writes_parses_and_matches_its_graph(repo):
    names = ("segmenter", "every", "latest2", "plain")
    assert check_configs_match_graphs(repo, names) == sorted(names)
    config = model_config.parse((repo / "segmenter" / "config.pbtxt").read_text())
    assert config.version_policy.WhichOneof("policy_choice") == "all"  # Triton serves every exported version too
    assert config.max_batch_size == 8 and config.HasField("dynamic_batching")
    assert [g.kind for g in config.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]


def test_the_server_loads_only_the_versions_the_policy_selects(server, triton):
    reg = server.registry
    assert reg.ready_versions("latest2") == [2, 3]
    assert reg.ready_versions("every") == [1, 2, 3]
    assert reg.ready_versions("chosen") == [1, 3]
    assert "no folder" not in str(reg.refused.get("chosen"))  # a named version that is absent is logged, not served
    assert reg.ready_versions("default") == [3]
    assert triton.is_model_ready("latest2", "3") and not triton.is_model_ready("latest2", "1")
    x = np.ones((1, 3, 8, 8), np.float32)
    inp = tc.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    assert triton.infer("chosen", [inp], model_version="3").as_numpy("logits").shape == (1, 4, 8, 8)
    with InferenceClient(server.address, retry=NO_RETRY, timeout=30) as v2, pytest.raises(NotFound, match="no version 2"):
        v2.infer("chosen", {"image": x}, version=2)


def test_a_config_that_is_not_a_model_config_refuses_the_model_with_the_reason(server):
    reg = server.registry
    assert "garbage" not in reg.ready_names() and "unknown_field" not in reg.ready_names()
    assert "garbage/config.pbtxt: not a Triton model configuration" in reg.refused["garbage"][1]
    assert "no_such_field" not in reg.refused["unknown_field"][1] and "not_a_triton_field" in reg.refused["unknown_field"][1]
    with InferenceClient(server.address, retry=NO_RETRY, timeout=30) as v2:
        with pytest.raises(Unavailable, match="not a Triton model configuration"):
            v2.infer("garbage", {"image": np.ones((1, 3, 8, 8), np.float32)})


def test_a_plain_triton_folder_serves_over_v2_with_digests_reported_unverified(repo, server, triton):
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    # "plain" has versions 1 and 2 and no version_policy: Triton's default serves the latest only.
    for name, version in (("plain", "2"), ("plain_unbatched", "1")):
        session = ort.InferenceSession(str(repo / name / version / "model.onnx"), providers=["CPUExecutionProvider"])
        want = session.run(["logits"], {"image": x})[0]
        inp = tc.InferInput("image", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        got = triton.infer(name, [inp], model_version=version).as_numpy("logits")
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), name
    meta = triton.get_model_metadata("plain")
    assert meta.versions == ["2"] and meta.inputs[0].shape == [-1, 3, -1, -1] and meta.outputs[0].datatype == "FP32"
    with InferenceClient(server.address, retry=NO_RETRY, timeout=30) as v2:
        listing = {m.name: m for m in v2.list_models().models}
    (plain,) = listing["plain"].versions
    assert plain.ready and plain.version == 2
    assert plain.reason.startswith("digests unverified") and plain.task == ""
    assert plain.digest and plain.max_batch_size == 8
    segmenter = listing["segmenter"].versions[0]
    assert segmenter.ready and segmenter.reason == ""
    reg = server.registry
    assert "TYPE_INT32" in reg.refused["plain_wrong"][1] and "the graph's is float32" in reg.refused["plain_wrong"][1]
    assert "this server runs ONNX models only" in reg.refused["plain_tf"][1]


def test_plain_models_log_a_warning_and_a_seedlock_model_without_its_manifest_is_refused(tmp_path, caplog):
    write_triton_model(tmp_path, "plain")
    write_plain_model(tmp_path, "lost")
    os.unlink(tmp_path / "lost" / "1" / "manifest.json")
    with caplog.at_level(logging.WARNING, logger="seedlock.serve"):
        running = start_server(tmp_path, threads=1, workers=2)
    try:
        assert running.registry.ready_names() == ["plain"]
        assert "plain v1: digests unverified" in caplog.text
        assert "says seedlock exported this 'tensors' model" in running.registry.refused["lost"][1]
    finally:
        running.stop(grace=0.5)


# -- multi-graph models: one Triton model per graph --------------------------------------------


@pytest.fixture(scope="module")
def composer_server(composer_model):
    running = start_server(composer_model[1], threads=1, workers=4)
    yield running
    running.stop(grace=1.0)


def test_the_composer_export_writes_a_triton_model_per_graph(composer_model):
    repo, folder = composer_model[1], composer_model[2]
    assert set(check_configs_match_graphs(repo)) == {"composer", "composer.encoder", "composer.decoder_step"}
    parent = Manifest.load(folder)
    for role, graph in parent.graphs.items():
        sub_folder = repo / f"composer.{role}" / "1"
        sub = Manifest.load(sub_folder)
        assert sub.name == f"composer.{role}" and sub.config["part_of"] == {
            "model": "composer", "version": 1, "graph": role, "file": graph.file, "sha256": parent.files[graph.file]}
        # The sub-model's graph is the parent's file (a hard link), pinned by both manifests.
        assert sub.files["model.onnx"] == parent.files[graph.file] == sha256_file(sub_folder / "model.onnx")
        assert os.stat(sub_folder / "model.onnx").st_ino == os.stat(folder / graph.file).st_ino
        assert [t.name for t in sub.graphs["model"].inputs] == [t.name for t in graph.inputs]


def test_graph_models_answer_model_infer_like_onnxruntime_on_the_graph(composer_model, composer_server):
    folder = composer_model[2]
    parent = Manifest.load(folder)
    reg = composer_server.registry
    assert {"composer", "composer.encoder", "composer.decoder_step"} <= set(reg.ready_names())
    client = tc.InferenceServerClient(composer_server.address)
    try:
        for role, graph in sorted(parent.graphs.items()):
            name = f"composer.{role}"
            entry = parent.reference["graphs"][role]
            feeds = {t: np.load(folder / f) for t, f in entry["inputs"].items()}
            session = ort.InferenceSession(str(folder / graph.file), providers=["CPUExecutionProvider"])
            outputs = [t.name for t in graph.outputs]
            want = dict(zip(outputs, session.run(outputs, feeds)))
            inputs = []
            for spec in graph.inputs:
                array = feeds[spec.name]
                inp = tc.InferInput(spec.name, list(array.shape), tc.np_to_triton_dtype(array.dtype))
                inp.set_data_from_numpy(array)
                inputs.append(inp)
            result = client.infer(name, inputs, outputs=[tc.InferRequestedOutput(n) for n in outputs])
            for n in outputs:
                assert result.as_numpy(n).tobytes() == want[n].tobytes(), (name, n)
            assert client.get_model_metadata(name).platform == "onnxruntime_onnx"
    finally:
        client.close()
    # The task-level model is still seedlock's: its task service and its manifest.
    assert reg.runtimes["composer"][1].task == "composition"
    assert reg.runtimes["composer.encoder"][1].task == "composition.encoder"


def test_export_verify_checks_a_graph_model_against_its_own_reference(composer_model):
    from seedlock.export.errors import ExportError
    from seedlock.export.verify import verify_model

    repo = composer_model[1]
    for role in ("encoder", "decoder_step"):
        rows = verify_model(repo / f"composer.{role}", log=lambda _: None)
        assert rows and all(r.ok for r in rows)
    with pytest.raises(ExportError, match="graph 'encoder' of model 'composer'; verify that model against its checkpoint"):
        verify_model(repo / "composer.encoder", checkpoint=composer_model[0] / "checkpoint.pt", log=lambda _: None)


def test_the_vendored_schema_holds_every_field_of_tritonclients_model_config():
    """Field for field (name, number, type) a superset of the ModelConfig the
    installed tritonclient decodes (ours is 2.73.0's: equal to it there)."""
    theirs = pytest.importorskip("tritonclient.grpc.model_config_pb2")

    def fields(desc, seen):
        if desc.full_name in seen:
            return {}
        seen.add(desc.full_name)
        out = {}
        for f in desc.fields:
            out[f"{desc.full_name}.{f.name}"] = (f.number, f.type, f.message_type.full_name if f.message_type else "")
            if f.message_type is not None:
                out.update(fields(f.message_type, seen))
        return out

    ours, triton = fields(mc.ModelConfig.DESCRIPTOR, set()), fields(theirs.ModelConfig.DESCRIPTOR, set())
    assert len(triton) > 100
    assert {k: v for k, v in triton.items() if ours.get(k) != v} == {}
