"""Tiny captioning runs: artifacts, seed-locked weights, ablation table, export
with ORT == torch captions, byte-identical re-export, and ``export verify``."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import run_cli

from seedlock.core.captioning import CaptioningSpec
from seedlock.core.errors import UserError
from seedlock.core.imaging import read_image
from seedlock.core.manifest import Manifest, verify_files
from seedlock.core.sessions import create_session
from seedlock.core.vocab import Vocabulary
from seedlock.train.caption_train import CaptionConfig, run_ablation, train_captioner
from seedlock.train.checkpoint import load_checkpoint

torch.set_num_threads(1)


def tiny_config(out, **kw) -> CaptionConfig:
    base = dict(
        out=str(out), size=32, n_train=8, n_val=3, min_count=1, width=4, embed_dim=8, hidden=16,
        batch_size=4, steps=3, beam=2, max_length=8, threads=1, progress=False,
    )  # fmt: skip
    return CaptionConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cap") / "lstm"
    metrics = train_captioner(tiny_config(out), log=lambda _: None)
    return out, metrics


def test_run_writes_artifacts(lstm_run):
    out, metrics = lstm_run
    for name in ("checkpoint.pt", "config.json", "metrics.json", "vocab.json"):
        assert (out / name).is_file(), name
    raw = torch.load(out / "checkpoint.pt", weights_only=True)
    assert raw["task"] == "captioning" and raw["labels"][:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    on_disk = json.loads((out / "metrics.json").read_text())
    for mode in ("greedy", "beam"):
        assert set(on_disk[mode]) == {"bleu1", "bleu2", "bleu3", "bleu4"}
        assert all(0.0 <= v <= 1.0 for v in on_disk[mode].values())
    assert 0.0 <= on_disk["next_word_accuracy"] <= 1.0 and on_disk["steps"] == 3
    assert Vocabulary.load(out / "vocab.json").itos == raw["labels"]
    assert CaptionConfig.from_file(out / "config.json") == tiny_config(out)
    ckpt = load_checkpoint(out)
    assert ckpt.model.cfg.vocab_size == len(raw["labels"])


def test_same_seed_same_weights(lstm_run, tmp_path):
    out, _ = lstm_run
    train_captioner(tiny_config(tmp_path / "again"), log=lambda _: None)
    a = torch.load(out / "checkpoint.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "again" / "checkpoint.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    train_captioner(tiny_config(tmp_path / "other", seed=778), log=lambda _: None)
    c = torch.load(tmp_path / "other" / "checkpoint.pt", weights_only=True)["state_dict"]
    assert not torch.equal(a["rnn.weight_hh_l0"], c["rnn.weight_hh_l0"])


@pytest.fixture(scope="module")
def lstm_repo(lstm_run, tmp_path_factory):
    """The LSTM run exported as ``captioner`` v1 through the CLI, as a user would."""
    out, _ = lstm_run
    repo = tmp_path_factory.mktemp("caprepo")
    proc = run_cli("export", "caption", str(out), "--repository", str(repo))
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout and "FAIL" not in proc.stdout
    return repo


def ort_graphs(folder):
    """The exported graphs through ONNX Runtime sessions built as the server builds them."""
    manifest = Manifest.load(folder)
    spec = CaptioningSpec.from_manifest(manifest)
    sessions = {role: create_session(folder / g.file) for role, g in manifest.graphs.items()}
    return spec.graphs(sessions), manifest, spec


def _check_export(run_dir, repo, name):
    from seedlock.export.caption import export_captioner
    from seedlock.train.captioner import torch_graphs

    result = export_captioner(run_dir, repo, name=name, log=lambda _: None)
    folder = result.folder
    manifest = Manifest.load(folder)
    verify_files(manifest, folder)
    assert set(manifest.graphs) == {"encoder", "decoder_step"} and manifest.task == "captioning"
    assert all(r.ok for r in result.rows)
    graphs, manifest, spec = ort_graphs(folder)
    vocab = spec.vocab
    # the reference lives in one place: per graph (seeded inputs, torch outputs) and the task's captions
    assert "reference" not in manifest.preprocess and "reference" not in manifest.postprocess
    assert set(manifest.reference["graphs"]) == {"encoder", "decoder_step"}
    assert set(manifest.reference["graphs"]["decoder_step"]["inputs"]) == {t.name for t in manifest.graph("decoder_step").inputs}
    for entry in manifest.reference["graphs"].values():
        assert set(entry["inputs"].values()) | set(entry["outputs"].values()) <= set(manifest.files)
    ref = manifest.reference["task"]
    assert result.details["captions"][0]["greedy"] == ref["greedy"]
    assert result.details["captions"][0][f"beam{ref['beam']}"] == ref["captions"]
    x = spec.prepare_image(read_image(folder / ref["image"]))
    ckpt = load_checkpoint(run_dir)
    reference = torch_graphs(ckpt.model.eval())
    for beam, n in ((1, 1), (2, 2), (3, 3)):
        got = graphs.caption(x, beam=beam, max_length=10, n=n)[0]
        want = reference.caption(x, beam=beam, max_length=10, n=n)[0]
        assert [c.tokens for c in got] == [c.tokens for c in want]
        assert [c.log_prob for c in got] == pytest.approx([c.log_prob for c in want], abs=1e-4)
        # in-process ORT twice: byte-identical
        assert graphs.caption(x, beam=beam, max_length=10, n=n)[0] == got
    stored = graphs.caption(x, beam=ref["beam"], max_length=ref["max_length"], n=ref["n"])[0]
    assert [vocab.decode(c.tokens) for c in stored] == [c["caption"] for c in ref["captions"]]
    # export verify, in process: both graphs' stored references, the captions, and torch re-run
    from seedlock.export.verify import verify_model

    rows = verify_model(folder.parent, checkpoint=run_dir, log=lambda _: None)
    assert all(r.ok for r in rows)
    cases = {r.case for r in rows}
    assert {"captioning/greedy caption tokens", f"captioning/beam{ref['beam']} caption tokens"} <= cases
    assert {f"{g}/{t} {c}: torch vs onnxruntime" for g in ("encoder", "decoder_step") for t in manifest.reference["graphs"][g]["outputs"] for c in ("stored", "fresh b1", "fresh b3")} <= cases
    return folder


def test_export_recurrent_lstm(lstm_run, tmp_path):
    out, _ = lstm_run
    folder = _check_export(out, tmp_path, "cap_lstm")
    m = Manifest.load(folder)
    assert m.postprocess["decoder_mode"] == "recurrent" and m.postprocess["state_names"] == ["h", "c"]
    assert [t.name for t in m.graph("decoder_step").inputs] == ["tokens", "memory", "h", "c"]
    from seedlock.export.caption import export_captioner

    with pytest.raises(UserError, match="already exists"):
        export_captioner(out, tmp_path, name="cap_lstm", log=lambda _: None)


def test_export_prefix_bi_gru_attention(tmp_path):
    run = tmp_path / "bigru"
    train_captioner(tiny_config(run, cell="gru", direction="bi", attention=True, steps=2), log=lambda _: None)
    folder = _check_export(run, tmp_path / "repo", "cap_bi")
    m = Manifest.load(folder)
    assert m.postprocess["decoder_mode"] == "prefix" and m.postprocess["state_names"] == []
    assert m.graph("decoder_step").inputs[0].shape == [-1, -1]


def test_ablation_table(tmp_path):
    variants = [
        ("sequential (T27)", "LSTM, vanilla", {"cell": "lstm"}),
        ("embedding (T28)", "learned", {"embedding": "learned"}),  # same model as above: trained once
        ("embedding (T28)", "GloVe", {"embedding": "glove"}),  # no --glove: skipped with a note
        ("initial seed (Fig. 45)", "he-normal", {"init": "he-normal"}),
    ]
    rows = run_ablation(tiny_config(tmp_path, steps=2, n_val=2), log=lambda _: None, variants=variants)
    assert len(list((tmp_path / "runs").iterdir())) == 2
    assert rows[0]["greedy"] == rows[1]["greedy"] and "skipped" in rows[2]
    md = (tmp_path / "ablation.md").read_text()
    assert "| sequential (T27) | LSTM, vanilla |" in md and "he-normal" in md and "GloVe" in md


def test_glove_run(tmp_path):
    glove = tmp_path / "glove.txt"
    rng = np.random.default_rng(0)
    glove.write_text("".join(f"{w} " + " ".join(f"{v:.4f}" for v in rng.normal(size=8)) + "\n" for w in ("a", "red", "circle", "square")))
    train_captioner(tiny_config(tmp_path / "g", embedding="glove", glove=str(glove), steps=1, n_val=1), log=lambda _: None)
    ckpt = load_checkpoint(tmp_path / "g")
    vocab = Vocabulary(ckpt.labels)
    row = ckpt.model.embed.weight[vocab.stoi["red"]].detach().numpy()
    assert np.allclose(row, [float(v) for v in glove.read_text().splitlines()[1].split()[1:]], atol=1e-6)  # frozen


def test_cli_flags_and_errors(tmp_path):
    from seedlock.export.cli import register as register_export
    from seedlock.train.caption_cli import register_train
    from seedlock.train.config import config_from_args

    parser = argparse.ArgumentParser()
    register_train(parser.add_subparsers())
    args = parser.parse_args(["caption", "--cell", "gru", "--direction", "bi", "--attention", "--init", "he-uniform", "--steps", "7", "--ablation"])
    cfg = config_from_args(CaptionConfig, args)
    assert (cfg.cell, cfg.direction, cfg.attention, cfg.init, cfg.steps, cfg.encoder) == ("gru", "bi", True, "he-uniform", 7, "resnet")
    assert args.ablation and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["caption", "--cell", "rnn"])
    with pytest.raises(UserError, match="glove"):
        config_from_args(CaptionConfig, parser.parse_args(["caption", "--embedding", "glove"])).validate()
    # a --config file's values survive unless a flag is given
    (tmp_path / "c.yaml").write_text("hidden: 33\nsteps: 5\n")
    cfg = config_from_args(CaptionConfig, parser.parse_args(["caption", "--config", str(tmp_path / "c.yaml"), "--steps", "9"]))
    assert (cfg.hidden, cfg.steps, cfg.cell) == (33, 9, "lstm")
    eparser = argparse.ArgumentParser()
    register_export(eparser.add_subparsers())
    eargs = eparser.parse_args(["export", "caption", str(tmp_path / "nope.pt"), "--repository", str(tmp_path / "repo")])
    with pytest.raises(UserError, match="does not exist"):
        eargs.func(eargs)


# -- the exported repository: spec round trip, byte-identical re-export, export verify ----------------------
def test_spec_round_trips_the_manifest(lstm_repo):
    m = Manifest.load(lstm_repo / "captioner" / "1")
    spec = CaptioningSpec.from_manifest(m)
    assert spec.TASK == m.task == "captioning"
    assert spec.to_manifest() == {"preprocess": m.preprocess, "postprocess": m.postprocess, "labels": m.labels}
    assert spec.vocab == Vocabulary.load(lstm_repo / "captioner" / "1" / spec.vocab_file)


def test_export_twice_is_byte_identical(lstm_run, lstm_repo, tmp_path):
    from seedlock.export.caption import export_captioner

    out, _ = lstm_run
    a = export_captioner(out, tmp_path / "a", log=lambda _: None).folder.parent
    b = lstm_repo / "captioner"  # exported by the CLI in another process
    names = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    assert {"config.pbtxt", "1/manifest.json", "1/encoder.onnx", "1/decoder_step.onnx", "1/reference_image.png"} <= set(names)
    assert any(n.startswith("1/reference.decoder_step.") for n in names)
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_export_verify_cli_passes(lstm_run, lstm_repo):
    out, _ = lstm_run
    proc = run_cli("export", "verify", str(lstm_repo / "captioner"))
    assert proc.returncode == 0, proc.stderr
    assert "verify: PASS" in proc.stdout and "FAIL" not in proc.stdout
    assert "captioning/greedy caption tokens" in proc.stdout and "captioning/beam3 caption tokens" in proc.stdout
    assert "decoder_step/log_probs stored reference" in proc.stdout and "encoder/memory stored reference" in proc.stdout
    proc = run_cli("export", "verify", str(lstm_repo / "captioner"), "--checkpoint", str(out / "checkpoint.pt"))
    assert proc.returncode == 0, proc.stderr
    assert "verify: PASS" in proc.stdout and "torch vs onnxruntime" in proc.stdout and "FAIL" not in proc.stdout


def _copy_model(lstm_repo, tmp_path):
    shutil.copytree(lstm_repo / "captioner", tmp_path / "captioner")
    return tmp_path / "captioner", tmp_path / "captioner" / "1"


def _one_line_failure(proc) -> str:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_export_verify_cli_catches_a_tampered_reference_file(lstm_repo, tmp_path):
    model, folder = _copy_model(lstm_repo, tmp_path)
    path = folder / "reference.decoder_step.log_probs.npy"
    np.save(path, np.load(path) + 0.5)
    assert "digest check failed" in _one_line_failure(run_cli("export", "verify", str(model)))


@pytest.mark.parametrize("which", ["captions", "greedy"])
def test_export_verify_cli_catches_edited_reference_captions(lstm_repo, tmp_path, which):
    """manifest.json is not among the digested files: edited captions must fail the re-decoding."""
    model, folder = _copy_model(lstm_repo, tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    stored = data["reference"]["task"][which][0]
    original = stored["caption"]
    stored["caption"] = (original + " <unk>").strip()  # one word more than the model says
    (folder / "manifest.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert Manifest.load(folder).reference["task"][which][0]["caption"] != original
    proc = run_cli("export", "verify", str(model))
    assert "parity check failed" in _one_line_failure(proc)
    label = "greedy" if which == "greedy" else "beam3"
    assert any(f"captioning/{label} caption tokens" in line and line.endswith("FAIL") for line in proc.stdout.splitlines())
