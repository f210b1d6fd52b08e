"""Tiny captioning runs: artifacts, seed-locked weights, ablation table, export with ORT == torch captions."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from seedlock.core.caption_decoding import prepare_image
from seedlock.core.errors import UserError
from seedlock.core.imaging import read_image
from seedlock.core.manifest import Manifest, verify_files
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


def _check_export(run_dir, repo, name):
    from seedlock.export.caption import export_captioner, ort_graphs
    from seedlock.train.captioner import torch_graphs

    result = export_captioner(run_dir, repo, name=name, log=lambda _: None)
    folder = result.folder
    manifest = Manifest.load(folder)
    verify_files(manifest, folder)
    assert set(manifest.graphs) == {"encoder", "decoder_step"} and manifest.task == "captioning"
    assert all(r.ok for r in result.rows)
    graphs, manifest, vocab = ort_graphs(folder)
    ref = manifest.postprocess["reference"]
    x = prepare_image(read_image(folder / ref["image"]), manifest.preprocess)
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
    from seedlock.train.caption_cli import config_from_args, register_train
    from seedlock.export.caption_cli import register_export

    parser = argparse.ArgumentParser()
    register_train(parser.add_subparsers())
    args = parser.parse_args(["caption", "--cell", "gru", "--direction", "bi", "--attention", "--init", "he-uniform", "--steps", "7", "--ablation"])
    cfg = config_from_args(args)
    assert (cfg.cell, cfg.direction, cfg.attention, cfg.init, cfg.steps, cfg.encoder) == ("gru", "bi", True, "he-uniform", 7, "resnet")
    assert args.ablation and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["caption", "--cell", "rnn"])
    with pytest.raises(UserError, match="glove"):
        config_from_args(parser.parse_args(["caption", "--embedding", "glove"])).validate()
    eparser = argparse.ArgumentParser()
    register_export(eparser.add_subparsers())
    eargs = eparser.parse_args(["caption", str(tmp_path / "nope.pt"), "--repository", str(tmp_path / "repo")])
    with pytest.raises(UserError, match="not found"):
        eargs.func(eargs)
