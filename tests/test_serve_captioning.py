"""seedlock.v1.Captioning end to end on a tiny trained captioner: served ==
in-process ORT == torch reference captions, byte-identical answers alone and
concurrently, INVALID_ARGUMENT / NOT_FOUND for bad requests, and the CLI."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from conftest import run_cli
from serving_fixtures import check_configs_match_graphs, make_segmenter_repository, sample_png

from seedlock.clients import InferenceClient
from seedlock.clients.captioning import CaptioningClient
from seedlock.clients.errors import InvalidArgument, NotFound
from seedlock.core.captioning import CaptioningSpec
from seedlock.core.imaging import decode_image, encode_png
from seedlock.core.manifest import Manifest, ManifestError
from seedlock.core.sessions import SessionConfig
from seedlock.serve.captioning import load_captioner
from seedlock.serve.server import start_server

torch.set_num_threads(1)
NAME = "captioner"
MAX_LENGTH = 8


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny LSTM captioner, a few steps on embedded scenes, exported as ``captioner`` v1."""
    from seedlock.export.caption import export_captioner
    from seedlock.train.caption_train import CaptionConfig, train_captioner

    root = tmp_path_factory.mktemp("capserve")
    cfg = CaptionConfig(
        out=str(root / "run"), size=32, n_train=8, n_val=2, min_count=1, width=4, embed_dim=8, hidden=16,
        batch_size=4, steps=4, beam=2, max_length=MAX_LENGTH, threads=1, progress=False,
    )  # fmt: skip
    train_captioner(cfg, log=lambda _: None)
    repo = root / "repository"
    export_captioner(root / "run", repo, name=NAME, log=lambda _: None)
    make_segmenter_repository(repo, name="segmenter")  # a model of another task beside it
    return root / "run", repo


@pytest.fixture(scope="module")
def server(trained):
    running = start_server(trained[1], threads=1, workers=8, max_queue=32)
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def client(server):
    with CaptioningClient(server.address, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def in_process(trained):
    return load_captioner(trained[1], NAME, config=SessionConfig(intra_op_threads=1))


def images(repo) -> dict[str, bytes]:
    folder = repo / NAME / "1"
    return {
        "reference scene": (folder / "reference_image.png").read_bytes(),
        "non-square 45x30": sample_png(30, 45, seed=7),
    }


def test_every_graph_is_a_triton_model_the_v2_endpoint_serves(trained, server):
    """captioner.encoder and captioner.decoder_step: configs that match their
    graphs, answering ModelInfer as ONNX Runtime does on the graph itself."""
    import onnxruntime as ort

    repo = trained[1]
    assert set(check_configs_match_graphs(repo)) == {"captioner", "captioner.encoder", "captioner.decoder_step", "segmenter"}
    folder = repo / NAME / "1"
    parent = Manifest.load(folder)
    with InferenceClient(server.address, timeout=60) as v2:
        for role, graph in sorted(parent.graphs.items()):
            feeds = {t: np.load(folder / f) for t, f in parent.reference["graphs"][role]["inputs"].items()}
            outputs = [t.name for t in graph.outputs]
            want = ort.InferenceSession(str(folder / graph.file), providers=["CPUExecutionProvider"]).run(outputs, feeds)
            got = v2.infer(f"{NAME}.{role}", feeds, outputs)
            assert [got[n].tobytes() for n in outputs] == [w.tobytes() for w in want], role


@pytest.mark.parametrize("beam,n", [(1, 1), (3, 3)], ids=["greedy", "beam3"])
def test_served_equals_in_process_equals_torch(trained, client, in_process, beam, n):
    from seedlock.train.captioner import torch_graphs
    from seedlock.train.checkpoint import load_checkpoint

    run_dir, repo = trained
    reference = torch_graphs(load_checkpoint(run_dir).model.eval())
    spec = in_process.spec
    for label, data in images(repo).items():
        served = client.caption(data, beam=beam, max_length=MAX_LENGTH, n=n)
        local = in_process.caption_bytes(data, beam=beam, max_length=MAX_LENGTH, n=n)
        want = reference.caption(spec.prepare_image(decode_image(data)), beam=beam, max_length=MAX_LENGTH, n=n)[0]
        assert len(served.captions) == n, label
        assert [c.tokens for c in served.captions] == [c.tokens for c in local.captions] == [c.tokens for c in want], label
        assert [c.text for c in served.captions] == local.texts, label
        # Same graphs, same session settings: the same bits. Torch rounds differently.
        assert [c.log_prob for c in served.captions] == [c.log_prob for c in local.captions], label
        assert [c.log_prob for c in served.captions] == pytest.approx([c.log_prob for c in want], abs=1e-4), label
        assert [c.finished for c in served.captions] == [c.finished for c in want], label
        assert served.decoding == ("greedy" if beam == 1 else "beam")
        assert (served.beam_size, served.max_length) == (beam, MAX_LENGTH)


def test_matches_the_captions_recorded_at_export(trained, client):
    repo = trained[1]
    ref = Manifest.load(repo / NAME / "1").reference["task"]
    data = (repo / NAME / "1" / ref["image"]).read_bytes()
    served = client.caption(data, beam=ref["beam"], max_length=ref["max_length"], n=ref["n"])
    assert [c.text for c in served.captions] == [c["caption"] for c in ref["captions"]]


def test_model_digest_request_id_and_defaults(trained, client):
    repo = trained[1]
    r = client.caption(images(repo)["reference scene"], beam=None, max_length=None, n=None, request_id="abc")
    assert (r.model_name, r.model_version, r.request_id) == (NAME, 1, "abc")
    assert r.model_digest == Manifest.load(repo / NAME / "1").digest
    assert (r.beam_size, r.max_length, len(r.captions), r.decoding) == (3, 20, 1, "beam")
    assert set(r.timing) == {"decode_ms", "preprocess_ms", "infer_ms", "postprocess_ms", "total_ms"}
    # Named model and version, or an RGB array instead of PNG bytes: the same answer.
    data = images(repo)["reference scene"]
    greedy = client.caption(data, beam=1)
    assert client.caption(data, beam=1, model=NAME, version=1).captions == greedy.captions
    assert client.caption(decode_image(data), beam=1).captions == greedy.captions


def _stable_bytes(response) -> bytes:
    copy = type(response)()
    copy.CopyFrom(response)
    copy.ClearField("timing")
    return copy.SerializeToString(deterministic=True)


def test_repeated_requests_give_byte_identical_responses(trained, client):
    data = images(trained[1])["non-square 45x30"]
    first = client.caption_raw(data, beam=3, max_length=MAX_LENGTH, n=2, request_id="r")
    for _ in range(3):
        assert _stable_bytes(client.caption_raw(data, beam=3, max_length=MAX_LENGTH, n=2, request_id="r")) == _stable_bytes(first)


def test_concurrent_requests_match_sequential_answers(server):
    cases = [(sample_png(20 + 3 * i, 40 - 2 * i, seed=50 + i), 1 + i % 4, 1 + i % 2) for i in range(8)]
    with CaptioningClient(server.address, timeout=60) as c:
        sequential = [_stable_bytes(c.caption_raw(d, beam=b, max_length=MAX_LENGTH, n=n)) for d, b, n in cases]
    work = cases * 2

    def call(case):
        d, b, n = case
        with CaptioningClient(server.address, timeout=60) as c:
            return _stable_bytes(c.caption_raw(d, beam=b, max_length=MAX_LENGTH, n=n))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, work))
    assert answers == sequential * 2


GOOD = sample_png(24, 24, seed=3)


@pytest.mark.parametrize(
    "label,kwargs,message",
    [
        ("undecodable image", dict(image=b"not an image at all"), "could not decode 19 bytes as an image"),
        ("empty image", dict(image=b""), "empty image"),
        ("beam 0", dict(beam=0), "beam size must be an integer from 1 to 16, got 0"),
        ("beam over the limit", dict(beam=17), "beam size must be an integer from 1 to 16, got 17"),
        ("max length 0", dict(max_length=0), "max length must be an integer from 1 to 50, got 0"),
        ("max length over the limit", dict(max_length=51), "max length must be an integer from 1 to 50, got 51"),
        ("more captions than beams", dict(beam=2, n=3), r"number of captions must be from 1 to the beam size \(2\), got 3"),
        ("a segmentation model", dict(model="segmenter"), "'segmenter' is a 'segmentation' model, not a captioning model"),
    ],
)
def test_bad_input_is_invalid_argument_and_the_server_carries_on(client, label, kwargs, message):
    before = _stable_bytes(client.caption_raw(GOOD, beam=2, max_length=MAX_LENGTH, n=2))
    args = {"image": GOOD, "beam": 2, "max_length": MAX_LENGTH, "n": 1, **kwargs}
    with pytest.raises(InvalidArgument, match=message) as info:
        client.caption(args.pop("image"), **args)
    assert info.value.code.name == "INVALID_ARGUMENT", label
    assert _stable_bytes(client.caption_raw(GOOD, beam=2, max_length=MAX_LENGTH, n=2)) == before


def test_unknown_model_and_version_are_not_found(client):
    with pytest.raises(NotFound, match="unknown model 'nope'"):
        client.caption(GOOD, model="nope")
    with pytest.raises(NotFound, match="has no version 7"):
        client.caption(GOOD, model=NAME, version=7)


def _edited(manifest: Manifest, edit) -> Manifest:
    copy = Manifest.from_dict(json.loads(manifest.to_json()))
    edit(copy)
    return copy


def test_manifest_checks_refuse_unusable_models(trained):
    manifest = Manifest.load(trained[1] / NAME / "1")
    spec = CaptioningSpec.from_manifest(manifest)
    assert spec.to_manifest() == {"preprocess": manifest.preprocess, "postprocess": manifest.postprocess, "labels": manifest.labels}
    broken = Manifest.from_dict(json.loads(manifest.to_json()))
    broken.postprocess["decoder_mode"] = "sideways"
    with pytest.raises(ManifestError, match="bad decoder settings"):
        CaptioningSpec.from_manifest(broken)
    broken = Manifest.from_dict(json.loads(manifest.to_json()))
    broken.labels = ["a", "b"]
    with pytest.raises(ManifestError, match="vocabulary"):
        CaptioningSpec.from_manifest(broken)


@pytest.mark.parametrize(
    "label,edit,message",
    [
        ("no decoder step", lambda m: m.graphs.pop("decoder_step"), "needs graphs 'encoder' and 'decoder_step'"),
        ("state input missing", lambda m: m.graphs["decoder_step"].inputs.pop(), "a recurrent decoder step needs inputs"),
        ("zero std", lambda m: m.preprocess.update(std=[0.2, 0.0, 0.2]), "bad preprocess"),
        ("no size", lambda m: m.preprocess.pop("size"), "preprocess needs size, mean and std"),
        ("size not the graph's", lambda m: m.preprocess.update(size=48), r"encoder input is \[-1, 3, 32, 32\] but preprocess size is 48"),
        ("another resize", lambda m: m.preprocess.update(resize="stretch"), "letterbox only"),
        ("beam limit 0", lambda m: m.postprocess.update(max_beam=0), "max_beam and max_length must be at least 1"),
        ("log_probs width", lambda m: m.labels.append("zebra-extra"), "log_probs has .* words but the vocabulary has"),
    ],
)
def test_spec_validation_errors_name_the_model_and_the_fault(trained, label, edit, message):
    broken = _edited(Manifest.load(trained[1] / NAME / "1"), edit)
    with pytest.raises(ManifestError, match=message) as info:
        CaptioningSpec.from_manifest(broken)
    assert str(info.value).startswith(f"captioning model {NAME!r} v1: "), label


def test_load_captioner_refuses_other_tasks_and_broken_models(trained, tmp_path):
    with pytest.raises(ManifestError, match="'segmenter' is a 'segmentation' model, not a captioning model"):
        load_captioner(trained[1], "segmenter")
    shutil.copytree(trained[1] / NAME, tmp_path / NAME)
    broken = _edited(Manifest.load(tmp_path / NAME / "1"), lambda m: m.postprocess.update(decoder_mode="sideways"))
    broken.save(tmp_path / NAME / "1")
    with pytest.raises(ManifestError, match="bad decoder settings"):
        load_captioner(tmp_path, NAME)


def test_cli_caption(server, trained, tmp_path):
    image = tmp_path / "scene.png"
    image.write_bytes(images(trained[1])["reference scene"])
    out = tmp_path / "answer.json"
    proc = run_cli("client", "caption", str(image), "--beam", "3", "--n", "3", "--max-length", str(MAX_LENGTH),
                   "--server", server.address, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    saved = json.loads(out.read_text())
    with CaptioningClient(server.address) as c:
        want = c.caption(image, beam=3, max_length=MAX_LENGTH, n=3)
    assert [(c["text"], c["log_prob"]) for c in saved["captions"]] == [(c.text, c.log_prob) for c in want.captions]
    lines = proc.stdout.splitlines()
    assert "beam search, beam 3" in lines[0] and NAME in lines[0]
    for i, c in enumerate(want.captions, 1):
        assert f"{i:>2}. {c.text}  (log-prob {c.log_prob:.4f})" in lines[i]

    # over the model's limit (16): the client's --beam range is only the wire's, so the server says the limit
    bad = run_cli("client", "caption", str(image), "--beam", "17", "--server", server.address)
    assert bad.returncode != 0
    assert "INVALID_ARGUMENT" in bad.stderr and "beam size must be" in bad.stderr and "Traceback" not in bad.stderr
    missing = run_cli("client", "caption", str(tmp_path / "nope.png"), "--server", server.address)
    assert missing.returncode != 0 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_in_process_errors(in_process):
    with pytest.raises(ValueError, match="beam size"):
        in_process.caption_bytes(encode_png(np.zeros((8, 8, 3), np.uint8)), beam=0)
    with pytest.raises(ValueError, match="could not decode"):
        in_process.caption_bytes(b"\x89PNG broken", beam=1)
