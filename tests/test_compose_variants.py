"""The composer's data seed apart from its model seed (``split_seed``), the ablation
models of ``seedlock reproduce music`` (no decoder, the scheme in the encoder),
and the experiment's small helpers. Fast: tiny synthetic melodies."""

import argparse
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import synthetic_piece

from seedlock.core import music_events as me
from seedlock.train import compose_train as ct
from seedlock.train.composer import Composer, ComposerConfig
from seedlock.train.data import music_corpus as mc

torch.set_num_threads(1)


def _write_folder(root):
    root.mkdir()
    for gi, genre in enumerate(("reels", "airs")):
        (root / genre).mkdir()
        for i in range(8):
            (root / genre / f"{i}.mid").write_bytes(me.to_midi_bytes(synthetic_piece(gi, i, 24)))
    return root


def _sources(data: mc.MusicData) -> dict[str, list[str]]:
    return {s: sorted(p.source for p in getattr(data, s)) for s in ("train", "validation", "test")}


def test_split_follows_split_seed_not_the_model_seed(tmp_path):
    folder = _write_folder(tmp_path / "songs")
    base = ct.ComposeConfig(data=str(folder), progress=False)
    a = ct.load_data(replace(base, seed=1, split_seed=0))
    b = ct.load_data(replace(base, seed=2, split_seed=0))
    assert _sources(a) == _sources(b)  # another model seed: the same music
    others = [_sources(ct.load_data(replace(base, seed=1, split_seed=k))) for k in (1, 2, 3)]
    assert any(o != _sources(a) for o in others)  # the split seed moves the split


def test_load_corpus_gets_the_split_seed(monkeypatch):
    seen = {}
    monkeypatch.setattr(mc, "load_corpus", lambda genres, per_genre, seed, progress: seen.setdefault("seed", seed))
    ct.load_data(ct.ComposeConfig(seed=77, split_seed=5, progress=False))
    assert seen["seed"] == 5


def test_window_subset_follows_split_seed_only():
    pieces = [mc.Piece("up", f"up/{i}", synthetic_piece(0, i, 60)) for i in range(4)]
    w = ct.make_windows(pieces, ["up"], 8, 8, 2)
    cfg = ct.ComposeConfig(max_train_windows=20)
    a = ct.cap_windows(w, replace(cfg, seed=1, split_seed=0))
    b = ct.cap_windows(w, replace(cfg, seed=2, split_seed=0))
    c = ct.cap_windows(w, replace(cfg, seed=1, split_seed=1))
    assert len(a) == 20 and np.array_equal(a.src, b.src)
    assert not np.array_equal(a.src, c.src)
    assert ct.cap_windows(w, replace(cfg, max_train_windows=0)) is w


def test_cli_split_seed_and_encoder_flags():
    from seedlock.train.compose_cli import compose_config, register_train

    parser = argparse.ArgumentParser()
    register_train(parser.add_subparsers())
    cfg = compose_config(parser.parse_args(["compose", "--seed", "9", "--split-seed", "3", "--encoder", "multiway", "--decoder", "none"]))
    assert (cfg.seed, cfg.split_seed, cfg.encoder, cfg.decoder) == (9, 3, "multiway", "none")
    assert compose_config(parser.parse_args(["compose", "--seed", "9"])).split_seed == 0  # the model seed leaves the data alone
    with pytest.raises(SystemExit):
        parser.parse_args(["compose", "--split-seed", "-1"])
    from seedlock.core.errors import UserError

    with pytest.raises(UserError):
        compose_config(parser.parse_args(["compose", "--encoder", "triple"]))
    with pytest.raises(UserError):  # no decoder: one target per input event
        compose_config(parser.parse_args(["compose", "--decoder", "none", "--window", "16", "--horizon", "8"]))


def _tokens(b, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, me.NUM_PITCHES, (b, t), generator=g), torch.randint(0, me.NUM_DURATIONS, (b, t), generator=g)], -1)


SMALL = dict(window=6, horizon=6, hidden=16, norm_channels=4, norm_groups=2, num_genres=2)


@pytest.mark.parametrize("encoder", ["plain", "multiway"])
def test_no_decoder_predicts_one_target_per_input_position(encoder):
    torch.manual_seed(0)
    model = Composer(ComposerConfig(**SMALL, decoder="none", encoder=encoder)).eval()
    src, genre = _tokens(3, 6), torch.tensor([0, 1, 0])
    p, d = model(src, src, genre)
    assert p.shape == (3, 6, me.NUM_PITCHES) and d.shape == (3, 6, me.NUM_DURATIONS)
    greedy = model.greedy(src, genre, 6)
    assert torch.equal(greedy, torch.stack([p.argmax(-1), d.argmax(-1)], -1))
    with pytest.raises(ValueError, match="no step decoder"):
        model.encode(src, genre)
    with pytest.raises(ValueError, match="horizon must equal window"):
        ComposerConfig(**{**SMALL, "horizon": 5}, decoder="none")


@pytest.mark.parametrize("decoder, cell", [("multiway", "gru"), ("vanilla", "lstm"), ("multiway", "lstm")])
def test_scheme_in_the_encoder_step_decoding_matches_teacher_forcing(decoder, cell):
    torch.manual_seed(0)
    model = Composer(ComposerConfig(**SMALL, decoder=decoder, cell=cell, encoder="multiway")).eval()
    src, tgt, genre = _tokens(2, 6, 1), _tokens(2, 6, 2), torch.tensor([1, 0])
    prev = torch.cat([src[:, -1:], tgt[:, :-1]], 1)
    p_tf, d_tf = model(src, prev, genre)
    h, c, memory = model.encode(src, genre)
    for t in range(6):
        p, d, h, c = model.decode(prev[:, t : t + 1], genre, h, c, memory)
        torch.testing.assert_close(p[:, 0], p_tf[:, t])
        torch.testing.assert_close(d[:, 0], d_tf[:, t])


def test_default_model_keeps_its_parameters_and_initialization():
    """The new options leave the exported default composer as it was: same parameter names, same draws."""
    torch.manual_seed(3)
    model = Composer(ComposerConfig(**SMALL))
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith(("encoder_uni", "enc_", "proj")) for n in names)
    assert names.index("init_h.weight") < names.index("decoder.weight_ih_l0") < names.index("norm_a.instance.weight")


def _synthetic() -> mc.MusicData:
    pieces = [mc.Piece(g, f"{g}/{i}", synthetic_piece(gi, i)) for gi, g in enumerate(("up", "down")) for i in range(6)]
    return mc.split_pieces(pieces, ["up", "down"], seed=3)


def test_per_genre_variants_give_genre_means_and_seeded_rows(tmp_path):
    cfg = ct.ComposeConfig(out=str(tmp_path), window=8, horizon=8, hidden=16, epochs=2, batch_size=16, stride=4, seed=5,
                           eval_windows=4, progress=False, per_genre_training=True, conditioning=False)  # fmt: skip
    variants = [("rnn", {"decoder": "none", "l2": "none"}), ("scheme", {"decoder": "none", "encoder": "multiway"})]
    rows = ct.run_variants(cfg, _synthetic(), variants, [5, 6], log=lambda s: None)
    assert [(r["variant"], r["seed"]) for r in rows] == [("rnn", 5), ("rnn", 6), ("scheme", 5), ("scheme", 6)]
    for r in rows:
        assert set(r["per_genre"]) == {"up", "down"} and len(r["history"]) == 2
        assert r["pitch_total_error"] == pytest.approx(np.mean([g["pitch_total_error"] for g in r["per_genre"].values()]))
        assert 0.0 <= r["train_top1_error_pitch"] <= 1.0
    again = ct.variant_row(cfg, _synthetic(), "rnn", variants[0][1], 6, log=lambda s: None)
    assert again["pitch_total_error"] == rows[1]["pitch_total_error"] and again["history"] == rows[1]["history"]
    assert not (tmp_path / "metrics.json").exists()  # variants write nothing


def test_no_decoder_run_writes_its_artifacts(tmp_path):
    cfg = ct.ComposeConfig(out=str(tmp_path), window=8, horizon=8, hidden=16, epochs=1, batch_size=16, stride=4, seed=5,
                           eval_windows=4, progress=False, decoder="none")  # fmt: skip
    result = ct.train_compose(cfg, _synthetic(), log=lambda s: None)
    assert (tmp_path / "pianoroll.png").is_file() and np.isfinite(result.metrics["test"]["pitch_total_error"])


def test_music_thesis_direction_and_verdicts():
    from seedlock.reproduce import music
    from seedlock.reproduce.report import Measured

    assert music._direction("140", "190") is False and music._direction("0.455", "-0.017") is True
    assert music._direction("0.998", "0.998") is None
    low, high = Measured((1.0, 1.1, 0.9)), Measured((2.0, 2.1, 1.9))
    assert music._verdict(low, high, "140", "190").result == "yes"  # the thesis's lower, seedlock's lower
    assert music._verdict(low, high, "0.5", "0.4").result == "no"
    assert music._verdict(low, high, "0.998", "0.998") is None
    quick = music.budget_config(True, split_seed=4)
    assert quick.per_genre_training and not quick.conditioning and quick.split_seed == 4 and (quick.window, quick.horizon) == (48, 48)
    assert music.budget_config(False).genres is None  # the full run trains all nine genres
    for _label, override in music.VARIANTS.values():
        ComposerConfig(**replace(quick, **override).model_config(0).to_dict())  # every variant is a valid model


def test_export_refuses_a_composer_with_no_decoder_in_one_line(tmp_path):
    from seedlock.export.compose import export_composer
    from seedlock.export.errors import ExportError
    from seedlock.train.checkpoint import save_checkpoint

    cfg = ComposerConfig(**SMALL, decoder="none")
    path = save_checkpoint(tmp_path / "checkpoint.pt", task="composition", model=Composer(cfg), model_config=cfg.__dict__,
                           config={}, labels=["reels", "airs"], metrics={}, seed=0, preprocess={})  # fmt: skip
    with pytest.raises(ExportError, match="no decoder"):
        export_composer(path, tmp_path / "repo", log=lambda _: None)
    assert not (tmp_path / "repo" / "composer").exists()
