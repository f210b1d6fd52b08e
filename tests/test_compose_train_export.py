"""Composer pipeline end to end on tiny synthetic melodies: train (seed-locked),
adaptive L2, ablation table, export, and ORT melody == torch melody for a seed."""

import argparse
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import synthetic_piece

from seedlock.core import music_events as me
from seedlock.core import music_sampling as ms
from seedlock.core.errors import UserError
from seedlock.export.compose import export_composer
from seedlock.train import compose_train as ct
from seedlock.train.data import music_corpus as mc

torch.set_num_threads(1)


def synthetic_data() -> mc.MusicData:
    pieces = [mc.Piece(g, f"{g}/{i}", synthetic_piece(gi, i)) for gi, g in enumerate(("up", "down")) for i in range(6)]
    return mc.split_pieces(pieces, ["up", "down"], seed=3)


def tiny_config(out) -> ct.ComposeConfig:
    return ct.ComposeConfig(out=str(out), window=8, horizon=8, hidden=16, epochs=2, batch_size=16, stride=4, lr=0.01,
                            seed=5, eval_windows=8, progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("compose")
    result = ct.train_compose(tiny_config(out), synthetic_data(), log=lambda s: None)
    return out, result


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The trained composer exported by the real exporter: (ExportResult, repository)."""
    repo = tmp_path_factory.mktemp("composerrepo")
    return export_composer(trained[0], repo, name="composer", version=1, log=lambda s: None), repo


def test_split_is_by_piece_and_seeded():
    data = synthetic_data()
    sources = [p.source for s in ("train", "validation", "test") for p in getattr(data, s)]
    assert len(sources) == len(set(sources)) == 12
    assert all(len(getattr(data, s)) >= 2 for s in ("validation", "test"))
    again = synthetic_data()
    assert [p.source for p in again.test] == [p.source for p in data.test]


def test_windows():
    data = synthetic_data()
    w = ct.make_windows(data.train, data.genres, 8, 8, 4)
    assert w.src.shape[1:] == (8, 2) and w.tgt.shape[1:] == (8, 2) and len(w) > 0
    assert set(np.unique(w.genre)) == {0, 1}


def test_run_writes_artifacts_and_metrics(trained):
    out, result = trained
    for name in ("checkpoint.pt", "config.json", "metrics.json", "pianoroll.png"):
        assert (out / name).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    for key in ("top1_error_pitch", "top1_error_duration", "pitch_total_error", "duration_total_error",
                "pitch_cosine", "duration_pearson", "pitch_generated_mean", "duration_true_std"):
        assert np.isfinite(test[key])
    assert len(metrics["history"]) == 2
    assert 0.0 <= metrics["l2_final"] <= 0.5
    payload = torch.load(out / "checkpoint.pt", weights_only=True)
    assert payload["task"] == "composition" and set(payload["preprocess"]["primers"]) == {"up", "down"}


def test_same_seed_identical_weights(trained, tmp_path):
    _, first = trained
    second = ct.train_compose(tiny_config(tmp_path), synthetic_data(), log=lambda s: None, write=False)
    a, b = first.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_adaptive_l2_follows_the_gap_within_bounds():
    l2 = ct.AdaptiveL2(init=0.25, target_gap=0.05)
    for _ in range(20):
        l2.update(train_loss=1.0, val_loss=2.0)  # overfitting
    assert l2.value == 0.5
    for _ in range(40):
        l2.update(train_loss=1.0, val_loss=1.0)  # no gap
    assert l2.value == 0.0
    assert len(l2.history) == 60
    with pytest.raises(UserError):
        ct.make_l2(replace(ct.ComposeConfig(), l2="0.7"))
    assert ct.make_l2(replace(ct.ComposeConfig(), l2="none")).value == 0.0


def test_ablation_writes_markdown(tmp_path, monkeypatch):
    cfg = replace(tiny_config(tmp_path), epochs=1)
    monkeypatch.setattr(ct, "load_data", lambda c: synthetic_data())
    md = ct.run_ablation(cfg, log=lambda s: None, variants=[("one-hot", {}), ("whole", {"encoding": "whole"})])
    text = md.read_text()
    assert "| one-hot |" in text and "| whole |" in text
    assert len(json.loads((tmp_path / "ablation.json").read_text())["rows"]) == 2


def test_export_and_ort_melody_equals_torch(trained, exported):
    from seedlock.export.common import ExportResult
    from seedlock.serve.composition import OrtComposer
    from seedlock.train import composer as comp
    from seedlock.train.checkpoint import load_checkpoint

    out, _ = trained
    result, repo = exported
    assert isinstance(result, ExportResult)
    assert all(r.ok for r in result.rows)
    assert [c["same"] for c in result.details["end_to_end"]] == [True, True, True]
    folder = repo / "composer" / "1"
    assert {"encoder.onnx", "decoder_step.onnx", "manifest.json"} <= {p.name for p in folder.iterdir()}
    assert (repo / "composer" / "config.pbtxt").is_file()

    runtime = OrtComposer.from_folder(folder)
    model = load_checkpoint(out).model
    params = ms.SamplingParams("top_k", temperature=1.1, top_k=5)
    primer = runtime.primer_for("down")
    state = comp.torch_initial_state(model, ms.prepare_primer(primer, 8), 1)
    reference = ms.generate(comp.torch_step(model, 1), primer[-1], state, 24, params, seed=7)
    melody = runtime.compose("down", 24, params, seed=7)
    np.testing.assert_array_equal(melody, reference)
    np.testing.assert_array_equal(melody, runtime.compose("down", 24, params, seed=7))
    # the stored melody lives in the manifest's reference section, not in postprocess
    assert "reference" not in result.manifest.postprocess and "reference" not in result.manifest.preprocess
    ref = result.manifest.reference["task"]
    again = runtime.compose(ref["genre"], ref["length"], ms.SamplingParams(**ref["sampling"]), ref["seed"])
    assert again.tolist() == ref["events"]
    # the generated melody survives the codecs the service will return
    np.testing.assert_array_equal(me.events_from_bytes(me.to_midi_bytes(me.merge_rests(melody))), me.merge_rests(melody))
    with pytest.raises(ValueError, match="unknown genre"):
        runtime.compose("polka", 4, params, seed=1)
    # nothing is overwritten silently
    with pytest.raises(UserError):
        export_composer(out, repo, log=lambda s: None)


def test_manifest_stores_a_reference_for_both_graphs(exported):
    from seedlock.core.manifest import Manifest

    result, repo = exported
    folder = repo / "composer" / "1"
    m = Manifest.load(folder)
    graphs = m.reference["graphs"]
    assert set(graphs) == {"encoder", "decoder_step"}
    for role, entry in graphs.items():
        # every stored input is one the graph takes, every declared output is stored
        assert set(entry["inputs"]) == {t.name for t in m.graphs[role].inputs}, role
        assert set(entry["outputs"]) == {t.name for t in m.graphs[role].outputs}, role
        for file in (*entry["inputs"].values(), *entry["outputs"].values()):
            assert file in m.files and (folder / file).is_file()
    assert m.reference["tolerance"] == 1e-4 and isinstance(m.reference["seed"], int)
    assert set(m.reference["task"]) == {"genre", "seed", "length", "sampling", "events"}


def test_spec_round_trips_the_exported_manifest(exported):
    from seedlock.core.composition import CompositionSpec
    from seedlock.core.manifest import Manifest

    result, repo = exported
    for m in (result.manifest, Manifest.load(repo / "composer" / "1")):
        spec = CompositionSpec.from_manifest(m)
        assert spec.to_manifest() == {"preprocess": m.preprocess, "postprocess": m.postprocess, "labels": m.labels}
        assert spec.genres == ("up", "down") and spec.window == 8 and spec.genre_input
        assert spec.default_sampling == ms.SamplingParams("top_k", 1.0, 8) and spec.length_limit == ms.MAX_LENGTH
    assert CompositionSpec.TASK == result.manifest.task == "composition"
    for key in ("window", "primers", "num_pitches", "num_durations", "genre_input", "horizon", "vocab"):
        assert key in result.manifest.preprocess, key
    assert set(result.manifest.postprocess) == {"max_length", "max_temperature", "strategies", "default_sampling"}


def _edit(section: str, key: str, value):
    def change(data: dict) -> None:
        if value is _DROP:
            del data[section][key]
        else:
            data[section][key] = value

    return change


_DROP = object()
BAD_MANIFESTS = [
    ("no decoder step graph", lambda d: d["graphs"].pop("decoder_step"), "needs graphs 'encoder' and 'decoder_step'"),
    ("no window", _edit("preprocess", "window", _DROP), "preprocess needs 'window'"),
    ("window not the encoder's", _edit("preprocess", "window", 9), "the encoder reads 8 events but preprocess.window is 9"),
    ("a genre without a primer", lambda d: d["preprocess"]["primers"].pop("down"), "genre 'down' has no stored primer"),
    ("an empty primer", lambda d: d["preprocess"]["primers"].update(up=[]), "genre 'up' has an empty stored primer"),
    ("a primer out of the vocabulary", lambda d: d["preprocess"]["primers"].update(up=[[99, 0]]), "genre 'up' has an unusable stored primer"),
    ("no genres", lambda d: d.update(labels=[]), "at least one genre"),
    ("another vocabulary", _edit("preprocess", "vocab", "events/0"), "retrain and re-export it"),
    ("bad default sampling", _edit("postprocess", "default_sampling", {"strategy": "beam"}), "default_sampling: unknown sampling strategy"),
    ("zero max length", _edit("postprocess", "max_length", 0), "max_length >= 1"),
]


@pytest.mark.parametrize("label,change,message", BAD_MANIFESTS, ids=[b[0] for b in BAD_MANIFESTS])
def test_spec_refuses_a_bad_manifest_with_a_clear_error(exported, label, change, message):
    import copy

    from seedlock.core.composition import CompositionSpec
    from seedlock.core.manifest import Manifest, ManifestError

    data = copy.deepcopy(json.loads(exported[0].manifest.to_json()))
    change(data)
    with pytest.raises(ManifestError, match=message) as info:
        CompositionSpec.from_manifest(Manifest.from_dict(data))
    assert str(info.value).startswith("composition model 'composer' v1: ")


def test_cli_export_verify_passes_then_catches_an_edited_melody(exported, tmp_path):
    import shutil

    from conftest import run_cli

    repo = tmp_path / "repo"
    shutil.copytree(exported[1], repo)
    proc = run_cli("export", "verify", str(repo / "composer"))
    assert proc.returncode == 0, proc.stderr
    assert "verify: PASS" in proc.stdout and "composition/events reference" in proc.stdout
    for role in ("encoder", "decoder_step"):
        assert f"{role}/" in proc.stdout
    # manifest.json is not among the digested files: an edited stored melody is caught by regenerating it
    path = repo / "composer" / "1" / "manifest.json"
    data = json.loads(path.read_text())
    events = data["reference"]["task"]["events"]
    events[0][0] = (events[0][0] + 1) % me.NUM_PITCHES
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    proc = run_cli("export", "verify", str(repo / "composer"))
    assert proc.returncode != 0
    assert "parity check failed" in proc.stderr and "Traceback" not in proc.stderr
    assert "verify: PASS" not in proc.stdout


def test_cli_export_verify_against_the_checkpoint(trained, exported):
    from conftest import run_cli

    proc = run_cli("export", "verify", str(exported[1] / "composer"), "--checkpoint", str(trained[0] / "checkpoint.pt"))
    assert proc.returncode == 0, proc.stderr
    assert "verify: PASS" in proc.stdout
    for role, tensor in (("encoder", "memory"), ("decoder_step", "pitch_logits")):
        assert f"{role}/{tensor} stored: torch vs onnxruntime" in proc.stdout and f"{role}/{tensor} fresh b3: torch vs onnxruntime" in proc.stdout


def test_export_twice_is_byte_identical(trained, exported, tmp_path):
    out, _ = trained
    again = export_composer(out / "checkpoint.pt", tmp_path / "again", log=lambda s: None)
    first_repo = exported[1]
    files = sorted(p.relative_to(first_repo) for p in first_repo.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    assert len(files) > 4
    for rel in files:
        assert (first_repo / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel
    assert again.manifest.digest == exported[0].manifest.digest


def test_unconditioned_lstm_vanilla_composer_exports_verifies_and_serves(tmp_path):
    """The graphs of a model without genre input or attention memory: the
    manifest names only the inputs the exported graphs kept, so the server loads it."""
    from seedlock.export.verify import verify_model
    from seedlock.serve.composition import OrtComposer
    from seedlock.train import composer as comp

    cfg = replace(tiny_config(tmp_path / "run"), conditioning=False, decoder="vanilla", cell="lstm", epochs=1)
    result = ct.train_compose(cfg, synthetic_data(), log=lambda s: None)
    exported = export_composer(tmp_path / "run", tmp_path / "repo", log=lambda s: None)
    assert exported.manifest.preprocess["genre_input"] is False
    rows = verify_model(tmp_path / "repo" / "composer", checkpoint=tmp_path / "run", log=lambda s: None)
    assert all(r.ok for r in rows)
    local = OrtComposer.from_folder(exported.folder)  # the server's load path: manifest names == graph names
    params = ms.SamplingParams("temperature", 0.9)
    primer = local.primer_for("up")
    state = comp.torch_initial_state(result.model.eval(), ms.prepare_primer(primer, 8), 0)
    want = ms.generate(comp.torch_step(result.model, 0), primer[-1], state, 16, params, seed=3)
    np.testing.assert_array_equal(local.compose("up", 16, params, seed=3), want)


def test_corrupt_checkpoint_is_a_user_error(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError):
        export_composer(bad, tmp_path / "repo", log=lambda s: None)


def test_user_folder_loader(tmp_path):
    for gi, genre in enumerate(("reels", "airs")):
        (tmp_path / genre).mkdir()
        for i in range(3):
            (tmp_path / genre / f"{i}.mid").write_bytes(me.to_midi_bytes(synthetic_piece(gi, i, 12)))
    (tmp_path / "airs" / "broken.mid").write_bytes(b"MThd garbage")
    data = mc.load_folder(tmp_path, seed=1, progress=False)
    assert data.genres == ["airs", "reels"]
    assert sum(len(getattr(data, s)) for s in ("train", "validation", "test")) == 6
    with pytest.raises(UserError):
        mc.load_folder(tmp_path / "missing")


def _train_parser() -> argparse.ArgumentParser:
    from seedlock.train.compose_cli import register_train

    parser = argparse.ArgumentParser()
    register_train(parser.add_subparsers())
    return parser


def test_cli_flags_fill_the_config():
    from seedlock.core import tasks
    from seedlock.export.cli import register
    from seedlock.train.compose_cli import compose_config

    parser = _train_parser()
    args = parser.parse_args(["compose", "--demo", "--epochs", "3", "--l2", "0.1", "--unidirectional", "--genres", "bach,essen"])
    cfg = compose_config(args)
    assert (cfg.epochs, cfg.l2, cfg.bidirectional, cfg.genres) == (3, "0.1", False, ["bach", "essen"])
    assert args.func.__name__ == "handle_compose"
    with pytest.raises(UserError):
        compose_config(parser.parse_args(["compose", "--l2", "lots"]))
    with pytest.raises(UserError):
        compose_config(parser.parse_args(["compose", "--cell", "sru"]))
    eparser = argparse.ArgumentParser()
    register(eparser.add_subparsers())
    eargs = eparser.parse_args(["export", "compose", "ckpt.pt", "--repository", "repo", "--version", "2"])
    assert (eargs.repository, eargs.version, eargs.name) == ("repo", 2, None)  # None: the task's model name
    assert tasks.by_command("compose").model_name == "composer"
    assert [t.name for t in eargs.export_tasks] == ["composition"] and eargs.expect_task == "composition"


def test_every_flag_sets_its_config_field():
    from seedlock.train.compose_cli import compose_config

    parser = _train_parser()
    flags = ["--out", "o", "--data", "songs", "--per-genre", "3", "--window", "16", "--horizon", "12", "--encoding", "whole",
             "--cell", "lstm", "--hidden", "32", "--decoder", "vanilla", "--norm", "group", "--dropout", "0.2",
             "--epochs", "5", "--batch-size", "8", "--lr", "0.002", "--seed", "9", "--stride", "6",
             "--max-train-windows", "100", "--l2", "none", "--l2-init", "0.1", "--eval-windows", "4", "--threads", "2",
             "--genres", " bach , essen,", "--per-genre-training", "--no-conditioning", "--unidirectional", "--no-progress"]
    cfg = compose_config(parser.parse_args(["compose", *flags]))
    want = dict(out="o", data="songs", per_genre=3, window=16, horizon=12, encoding="whole", cell="lstm", hidden=32,
                decoder="vanilla", norm="group", dropout=0.2, epochs=5, batch_size=8, lr=0.002, seed=9, stride=6,
                max_train_windows=100, l2="none", l2_init=0.1, eval_windows=4, threads=2, genres=["bach", "essen"],
                per_genre_training=True, conditioning=False, bidirectional=False, progress=False)
    assert {k: getattr(cfg, k) for k in want} == want
    # no flag: the thesis's budget; --demo and --ablation start from theirs
    assert compose_config(parser.parse_args(["compose"])) == ct.ComposeConfig()
    assert compose_config(parser.parse_args(["compose", "--demo"])) == ct.demo_config()
    assert compose_config(parser.parse_args(["compose", "--ablation", "--demo"])) == ct.ablation_config()
    with pytest.raises(SystemExit):  # argparse's one-line usage error
        parser.parse_args(["compose", "--genres", " , "])


def test_config_file_then_flags(tmp_path):
    from seedlock.train.compose_cli import compose_config

    parser = _train_parser()
    path = tmp_path / "compose.yaml"
    path.write_text("epochs: 7\nhidden: 32\nbidirectional: false\ngenres: [bach]\nbatch-size: 16\n")
    cfg = compose_config(parser.parse_args(["compose", "--demo", "--config", str(path), "--epochs", "2"]))
    # flags beat the file, the file beats --demo, --demo beats the defaults
    assert (cfg.epochs, cfg.hidden, cfg.bidirectional, cfg.genres, cfg.batch_size) == (2, 32, False, ["bach"], 16)
    assert cfg.eval_windows == ct.demo_config().eval_windows and cfg.progress is True
    # a run's own config.json works as --config
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    assert compose_config(parser.parse_args(["compose", "--config", str(tmp_path / "config.json")])) == cfg
    path.write_text("epoch: 3\n")
    with pytest.raises(UserError, match="unknown compose config key"):
        compose_config(parser.parse_args(["compose", "--config", str(path)]))
    with pytest.raises(UserError, match="config file not found"):
        compose_config(parser.parse_args(["compose", "--config", str(tmp_path / "missing.yaml")]))


def test_generation_path_and_codecs_import_without_torch():
    import subprocess
    import sys

    code = ("import sys; import seedlock.export.compose, seedlock.core.music_sampling, seedlock.core.music_metrics, "
            "seedlock.core.music_events; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
