"""The captioning and composition precision gates and int8 calibration sets
(seedlock.export.precision_sequence) on a real tiny captioner (embedded scenes)
and a real tiny composer (a folder of MIDI files, so its config names its data):
fp32 against itself agrees exactly, OpenVINO fp32 within the gate; calibration
is deterministic and feeds the graphs what they take; int8 graphs gate to a
fraction; data that cannot be rebuilt from the config is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import COMPOSER_GENRES, synthetic_piece

from seedlock.core import music_events as me
from seedlock.core.captioning import CaptioningSpec
from seedlock.core.composition import CompositionSpec
from seedlock.core.manifest import Manifest
from seedlock.core.openvino_runtime import openvino_unavailable
from seedlock.export import precision_sequence as ps
from seedlock.export.errors import ExportError
from seedlock.export.quantize import quantize_int8

torch.set_num_threads(1)
OPENVINO = pytest.mark.skipif(bool(openvino_unavailable()), reason=f"{openvino_unavailable()}")
SEED, COUNT = 4321, 6


def _manifest_copy(manifest: Manifest, **config) -> Manifest:
    m = Manifest.from_dict(json.loads(manifest.to_json()))
    m.config.update(config)
    for key, value in config.items():
        if value is None:
            del m.config[key]
    return m


@pytest.fixture(scope="module")
def captioner(tmp_path_factory) -> tuple[Manifest, Path, dict]:
    """A tiny LSTM captioner trained on 12 scenes and exported: (manifest, version folder, fp32 sessions).
    Hidden 48: the exporter then keeps the LSTM's recurrent weights behind an Unsqueeze (constants over
    8192 elements are not folded), as in real-sized models; smaller ones are folded into initializers."""
    from seedlock.export.caption import export_captioner
    from seedlock.train.caption_train import CaptionConfig, train_captioner

    out = tmp_path_factory.mktemp("cap") / "run"
    cfg = CaptionConfig(out=str(out), size=32, n_train=12, n_val=20, min_count=1, width=4, embed_dim=8, hidden=48,
                        batch_size=4, steps=20, beam=2, max_length=8, threads=1, progress=False)  # fmt: skip
    train_captioner(cfg, log=lambda _: None)
    repo = tmp_path_factory.mktemp("caprepo")
    result = export_captioner(out, repo, log=lambda _: None)
    return result.manifest, result.folder, ps.fp32_sessions(result.manifest, result.folder)


@pytest.fixture(scope="module")
def composer(tmp_path_factory) -> tuple[Manifest, Path, dict]:
    """A tiny composer trained on a folder of MIDI files (two genres of synthetic melodies) and exported
    (hidden 56: GRU weights over the exporter's folding limit, as in real-sized models)."""
    from seedlock.export.compose import export_composer
    from seedlock.train import compose_train as ct

    music = tmp_path_factory.mktemp("music")
    for gi, genre in enumerate(COMPOSER_GENRES):
        (music / genre).mkdir()
        for i in range(6):
            (music / genre / f"{i}.mid").write_bytes(me.to_midi_bytes(synthetic_piece(gi, i)))
    out = tmp_path_factory.mktemp("comp") / "run"
    cfg = ct.ComposeConfig(out=str(out), data=str(music), window=8, horizon=8, hidden=56, epochs=2, batch_size=16,
                           stride=4, seed=5, split_seed=3, eval_windows=8, progress=False)  # fmt: skip
    ct.train_compose(cfg, log=lambda _: None)
    repo = tmp_path_factory.mktemp("comprepo")
    result = export_composer(out, repo, log=lambda _: None)
    return result.manifest, result.folder, ps.fp32_sessions(result.manifest, result.folder)


TASKS = {
    "captioning": ("captioner", ps.caption_gate, ps.caption_calibration),
    "composition": ("composer", ps.compose_gate, ps.compose_calibration),
}


@pytest.fixture(params=sorted(TASKS))
def model(request) -> tuple[str, Manifest, Path, dict]:
    fixture, _, _ = TASKS[request.param]
    manifest, folder, sessions = request.getfixturevalue(fixture)
    assert manifest.task == request.param  # the GATES key is the manifest's task
    return request.param, manifest, folder, sessions


def _openvino(manifest: Manifest, folder: Path, precision: str) -> dict:
    from seedlock.core.openvino_runtime import OpenVINOSession

    return {role: OpenVINOSession(folder / g.file, precision, manifest.intra_op_threads) for role, g in manifest.graphs.items()}


# -- the gates ---------------------------------------------------------------------------


def test_fp32_against_itself_agrees_exactly(model):
    task, manifest, _, sessions = model
    agreement = TASKS[task][1](manifest, sessions, sessions)
    assert agreement.value == 1.0 and agreement.passed and agreement.gate == 0.95
    assert agreement.detail.startswith(f"0 of {agreement.cases} ")
    if task == "captioning":
        assert agreement.cases == 20  # every validation scene
    else:
        assert 20 <= agreement.cases <= ps.MAX_PRIMERS


@OPENVINO
def test_openvino_fp32_passes_the_gate(model):
    task, manifest, folder, sessions = model
    agreement = TASKS[task][1](manifest, sessions, _openvino(manifest, folder, "fp32"))
    assert agreement.value >= 0.95 and agreement.passed, agreement.detail


def test_validation_primers_cover_every_genre(composer):
    manifest, _, _ = composer
    split = ps.compose_split(manifest)
    assert split.cfg.split_seed == 3 and split.cfg.data == manifest.config["data"]
    primers = ps.validation_primers(split)
    assert len(primers) >= ps.MIN_PRIMERS  # the config's stride gives 14 windows: every event's window is used
    assert {g for _, g in primers} == {0, 1}
    assert all(p.shape == (8, 2) and p.dtype == np.int64 for p, _ in primers)
    assert len(ps.validation_primers(split, limit=6)) == 6


def test_a_differing_candidate_is_counted(captioner):
    """A candidate whose decoder prefers <end> differs from fp32 on every caption that had words."""
    manifest, _, sessions = captioner
    spec = CaptioningSpec.from_manifest(manifest)

    class EndFirst:
        def __init__(self, session):
            self.session = session

        def get_inputs(self):
            return self.session.get_inputs()

        def get_outputs(self):
            return self.session.get_outputs()

        def run(self, names, feeds):
            out = self.session.run(names, feeds)
            i = [o.name for o in self.get_outputs()].index("log_probs") if names is None else list(names).index("log_probs")
            out[i] = out[i].copy()
            out[i][:, spec.decoder.end_id] = 0.0
            return out

    candidate = {**sessions, "decoder_step": EndFirst(sessions["decoder_step"])}
    agreement = ps.caption_gate(manifest, sessions, candidate)
    assert agreement.value < 1.0 and not agreement.passed
    assert agreement.detail.startswith(f"{round((1 - agreement.value) * agreement.cases)} of {agreement.cases} captions differ")


# -- calibration ---------------------------------------------------------------------------


def _identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        len(a[r]) == len(b[r]) and all(x.keys() == y.keys() and all(x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]) for k in x)
                                        for x, y in zip(a[r], b[r]))
        for r in a
    )  # fmt: skip


def test_calibration_is_deterministic_and_feeds_each_graph_its_inputs(model):
    task, manifest, folder, sessions = model
    calibrate = TASKS[task][2]
    feeds, source = calibrate(manifest, folder, COUNT, SEED)
    again, source_again = calibrate(manifest, folder, COUNT, SEED)
    assert _identical(feeds, again) and source == source_again
    other, _ = calibrate(manifest, folder, COUNT, SEED + 1)
    assert not _identical(feeds, other)
    assert "training split" in source
    assert set(feeds) == set(manifest.graphs)
    assert len(feeds["encoder"]) == COUNT  # one image / primer per encoder call
    assert 0 < len(feeds["decoder_step"]) <= ps.MAX_STEP_FEEDS
    for role, graph in manifest.graphs.items():
        declared = {t.name: t for t in graph.inputs}
        for feed in feeds[role]:
            assert set(feed) == set(declared), role
            for name, array in feed.items():
                assert array.dtype == np.dtype(declared[name].dtype), (role, name)
                assert len(array.shape) == len(declared[name].shape)
                assert all(d in (-1, n) for d, n in zip(declared[name].shape, array.shape)), (role, name, array.shape)
            sessions[role].run(None, feed)


def test_step_feeds_are_a_seeded_sample_in_recording_order():
    feeds = [{"x": np.array([i])} for i in range(1000)]
    kept = ps.sample_step_feeds(feeds, 7)
    order = [int(f["x"][0]) for f in kept]
    assert len(kept) == ps.MAX_STEP_FEEDS and order == sorted(order)
    assert order == [int(f["x"][0]) for f in ps.sample_step_feeds(feeds, 7)]
    assert order != [int(f["x"][0]) for f in ps.sample_step_feeds(feeds, 8)]
    assert ps.sample_step_feeds(feeds[:10], 7) == feeds[:10]


@OPENVINO
def test_int8_graphs_gate_to_a_fraction(model, tmp_path):
    task, manifest, folder, sessions = model
    _, gate, calibrate = TASKS[task]
    feeds, _ = calibrate(manifest, folder, COUNT, SEED)
    for role, graph in manifest.graphs.items():
        (tmp_path / graph.file).write_bytes(quantize_int8((folder / graph.file).read_bytes(), feeds[role]))
    # the recurrent op keeps float weights (OpenVINO compiles LSTM/GRU only with constant ones)
    candidate = _openvino(manifest, tmp_path, "int8")
    agreement = gate(manifest, sessions, candidate)
    assert 0.0 <= agreement.value <= 1.0 and agreement.cases > 0


# -- data that cannot be rebuilt ---------------------------------------------------------------


def test_a_missing_caption_file_is_an_export_error(captioner, tmp_path):
    manifest, folder, sessions = captioner
    moved = _manifest_copy(manifest, data=str(tmp_path / "gone" / "captions.txt"))
    with pytest.raises(ExportError, match="cannot rebuild the captioner's training data.*export in fp32"):
        ps.caption_gate(moved, sessions, sessions)
    with pytest.raises(ExportError, match="cannot rebuild"):
        ps.caption_calibration(moved, folder, COUNT, SEED)


def test_caption_folder_data_is_split_as_training_splits_it(captioner, tmp_path):
    """A Flickr8k-style token file: the same train/validation images as caption_train.load_data."""
    from seedlock.core.imaging import encode_png
    from seedlock.train.caption_train import CaptionConfig, load_data
    from seedlock.train.data.caption_scenes import make_caption_scene

    manifest, _, _ = captioner
    (tmp_path / "Images").mkdir()
    lines = []
    for i in range(7):
        image, captions = make_caption_scene(9, i, 48)
        (tmp_path / "Images" / f"{i}.png").write_bytes(encode_png(image))
        lines += [f"{i}.png#{k}\t{c}" for k, c in enumerate(captions)]
    (tmp_path / "tokens.txt").write_text("\n".join(lines) + "\n")
    folder_cfg = dict(data=str(tmp_path / "tokens.txt"), n_train=None, n_val=2, data_seed=4)
    data = load_data(CaptionConfig(**{**ps._known_fields(CaptionConfig, manifest.config), **folder_cfg}))
    m = _manifest_copy(manifest, **folder_cfg)
    m.labels = list(data.vocab.itos)
    split = ps.caption_split(m)
    assert split.train_count == len(data.train_images) == 5
    assert np.array_equal(np.stack(split.val_images()), data.val_images)
    assert np.array_equal(np.stack(split.train_images([4, 0])), data.train_images[[4, 0]])


def test_other_scenes_than_training_are_refused(captioner):
    manifest, _, sessions = captioner
    with pytest.raises(ExportError, match="vocabulary .* the model was trained on other data"):
        ps.caption_gate(_manifest_copy(manifest, data_seed=1), sessions, sessions)


def test_composer_whose_config_cannot_name_its_data_is_refused(composer, tmp_path):
    """conftest's composer is trained on pieces passed in memory: its config says the corpus (all genres)."""
    manifest, folder, sessions = composer
    in_memory = _manifest_copy(manifest, data="corpus", genres=None)
    with pytest.raises(ExportError, match=r"trained on other data \(pieces passed in memory\)"):
        ps.compose_gate(in_memory, sessions, sessions)
    with pytest.raises(ExportError, match="cannot rebuild the composer's training data.*music folder not found"):
        ps.compose_calibration(_manifest_copy(manifest, data=str(tmp_path / "gone")), folder, COUNT, SEED)
    with pytest.raises(ExportError, match="does not open with the primers training stored"):
        ps.compose_gate(_manifest_copy(manifest, split_seed=0), sessions, sessions)


def test_a_config_from_before_split_seed_is_split_by_its_seed(composer):
    """Before --split-seed the model seed split the data (the demo composer's config has no split_seed)."""
    manifest, _, _ = composer
    legacy = _manifest_copy(manifest, split_seed=None, seed=3)
    assert ps.compose_split(legacy).cfg.split_seed == 3
    assert CompositionSpec.from_manifest(legacy).genres == tuple(sorted(COMPOSER_GENRES))  # folder genres: sorted names


# -- the driver's fallback: reduce the encoder alone ---------------------------------------


def test_a_failing_decoder_step_falls_back_to_the_encoder_alone(captioner, tmp_path, monkeypatch):
    """Reducing every graph fails (the test's gate refuses a reduced decoder step);
    the driver retries with the encoder alone, measured by the real caption gate."""
    from dataclasses import replace

    from seedlock.core.sessions import graph_session
    from seedlock.export import precision as precision_mod
    from seedlock.export.caption import export_captioner

    manifest, _, _ = captioner
    seen: list[dict[str, str]] = []

    def gate(m, reference, candidate):
        seen.append(dict(m.session["graphs"]))
        real = ps.caption_gate(m, reference, candidate)
        if m.precision_of("decoder_step") != "fp32":
            return precision_mod.Agreement(real.measure, 0.0, real.gate, real.cases, "refused by the test")
        return precision_mod.Agreement(real.measure, real.value, 0.0, real.cases, real.detail)

    monkeypatch.setitem(precision_mod.GATES, "captioning", replace(precision_mod.GATES["captioning"], gate=gate))
    lines: list[str] = []
    result = precision_mod.export_precision(
        lambda scratch: export_captioner(manifest.config["out"], scratch, log=lambda _: None),
        tmp_path, "int8", overwrite=False, log=lines.append,
    )  # fmt: skip
    assert seen == [{"decoder_step": "int8", "encoder": "int8"}, {"decoder_step": "fp32", "encoder": "int8"}]
    assert any(line.startswith("retrying with only encoder in int8") for line in lines)
    written = Manifest.load(result.folder)
    assert written.session["graphs"] == {"decoder_step": "fp32", "encoder": "int8"}
    assert list(written.session["calibration"]) == ["encoder"]
    assert written.metrics["precision_agreement"]["graphs"] == ["encoder"]
    providers = {role: graph_session(written, result.folder / g.file).get_providers() for role, g in written.graphs.items()}
    assert providers == {"encoder": ["OpenVINO:int8"], "decoder_step": ["CPUExecutionProvider"]}  # fp32 graphs: ONNX Runtime
    assert b"QuantizeLinear" in (result.folder / written.graphs["encoder"].file).read_bytes()
    assert b"QuantizeLinear" not in (result.folder / written.graphs["decoder_step"].file).read_bytes()
