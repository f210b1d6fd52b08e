"""seedlock.v1.Composition through CompositionClient on a tiny composer trained on
synthetic melodies (no corpus): served == in-process ORT == torch melody for a
seed, streaming == unary, byte-identical answers, bad input -> INVALID_ARGUMENT."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import COMPOSER_GENRES as GENRES
from conftest import run_cli, synthetic_piece

from seedlock.clients.base import NO_RETRY
from seedlock.clients.composition import ComposeResult, CompositionClient, StreamedEvent
from seedlock.clients.errors import InvalidArgument, NotFound
from seedlock.core import music_events as me
from seedlock.core import music_sampling as ms
from seedlock.serve.composition import OrtComposer
from seedlock.serve.server import start_server

torch.set_num_threads(1)
LENGTH = 24


@pytest.fixture(scope="module")
def server(composer_model):
    running = start_server(composer_model[1], threads=1, workers=4)
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def client(server):
    with CompositionClient(server.address, timeout=60, retry=NO_RETRY) as c:
        yield c


@pytest.fixture(scope="module")
def local(composer_model):
    return OrtComposer.from_folder(composer_model[2])


def torch_melody(checkpoint, genre: str, primer: np.ndarray, params: ms.SamplingParams, seed: int) -> np.ndarray:
    from seedlock.train import composer as comp
    from seedlock.train.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint).model.eval()
    g = GENRES.index(genre)
    state = comp.torch_initial_state(model, ms.prepare_primer(primer, 8), g)
    return ms.generate(comp.torch_step(model, g), primer[-1], state, LENGTH, params, seed)


@pytest.mark.parametrize("params", [ms.SamplingParams("greedy"), ms.SamplingParams("top_k", 1.2, 5)], ids=["greedy", "top_k"])
def test_served_equals_in_process_equals_torch(composer_model, client, local, params):
    served = client.compose(genre="down", length=LENGTH, seed=7, strategy=params.strategy,
                            temperature=params.temperature, top_k=params.top_k)
    in_process = local.compose("down", LENGTH, params, seed=7)
    reference = torch_melody(composer_model[0], "down", local.primer_for("down"), params, seed=7)
    np.testing.assert_array_equal(served.events, in_process)
    np.testing.assert_array_equal(in_process, reference)
    assert (served.seed, served.genre, served.strategy, served.top_k) == (7, "down", params.strategy, params.top_k)
    assert served.model_digest == local.manifest.digest and served.primer_length == len(local.primer_for("down"))


def test_primer_file_and_event_list(client, local):
    primer = synthetic_piece(0, 2, n=12)
    params = ms.SamplingParams("temperature", 0.8)
    want = local.compose("up", LENGTH, params, seed=3, primer=primer)
    by_midi = client.compose(genre="up", length=LENGTH, seed=3, primer=me.to_midi_bytes(primer), strategy="sample", temperature=0.8)
    by_xml = client.compose(genre="up", length=LENGTH, seed=3, primer=me.to_musicxml_bytes(primer), strategy="temperature", temperature=0.8)
    by_list = client.compose(genre="up", length=LENGTH, seed=3, primer=me.to_values(primer), strategy="temperature", temperature=0.8)
    for result in (by_midi, by_xml, by_list):
        np.testing.assert_array_equal(result.events, want)
        assert result.primer_length == len(primer)


def test_stream_yields_the_unary_events(client):
    unary = client.compose(genre="up", length=LENGTH, seed=11)
    items = list(client.compose_stream(genre="up", length=LENGTH, seed=11))
    events, final = items[:-1], items[-1]
    assert all(isinstance(e, StreamedEvent) for e in events) and isinstance(final, ComposeResult)
    assert [e.index for e in events] == list(range(LENGTH))
    assert [(e.pitch, e.duration) for e in events] == unary.notes == final.notes
    assert final.musicxml == unary.musicxml and final.midi == unary.midi


def test_repeated_requests_are_byte_identical(client):
    request = client.request(genre="down", length=LENGTH, seed=5, request_id="r1")
    answers = [client.compose_raw(request) for _ in range(3)]
    answers.append(list(client.compose_stream_raw(request))[-1].result)
    for a in answers:
        a.ClearField("timing")
    assert len({a.SerializeToString(deterministic=True) for a in answers}) == 1
    assert answers[0].request_id == "r1" and answers[0].seed == 5


def test_concurrent_requests_on_several_instances_match_sequential_answers(composer_model, client):
    """Melodies composed at once on three instances (and streams among them)
    are the ones composed one at a time on one."""
    from concurrent.futures import ThreadPoolExecutor

    asks = [("up", 21), ("down", 22), ("up", 23), ("down", 24)]
    alone = [client.compose(genre=g, length=LENGTH, seed=s, strategy="sample").events for g, s in asks]
    with start_server(composer_model[1], threads=1, instances=3, workers=4) as busy:
        with CompositionClient(busy.address, timeout=60, retry=NO_RETRY) as c:

            def unary(ask):
                return c.compose(genre=ask[0], length=LENGTH, seed=ask[1], strategy="sample").events

            def streamed(ask):
                final = list(c.compose_stream(genre=ask[0], length=LENGTH, seed=ask[1], strategy="sample"))[-1]
                return final.events

            with ThreadPoolExecutor(8) as pool:
                together = list(pool.map(lambda i: (unary, streamed)[i % 2](asks[i % 4]), range(8)))
        assert busy.registry.scheduler(busy.registry.get("composer")).instances == 3
    for i, events in enumerate(together):
        np.testing.assert_array_equal(events, alone[i % 4])


def test_unset_seed_is_drawn_and_echoed(client):
    first = client.compose(genre="up", length=8)
    again = client.compose(genre="up", length=8, seed=first.seed)
    np.testing.assert_array_equal(first.events, again.events)


def test_files_read_back(client):
    result = client.compose(genre="down", length=LENGTH, seed=9)
    want = me.merge_rests(result.events)
    np.testing.assert_array_equal(me.events_from_bytes(result.musicxml), want)
    assert_midi_reads_back(result.midi, want)


def assert_midi_reads_back(data: bytes, want: np.ndarray) -> None:
    """MIDI has no note values: music21 re-quantizes its ticks (to sixteenths and
    eighth triplets), so a triplet may come back one duration token off."""
    back = me.events_from_bytes(data)
    assert back.shape == want.shape
    np.testing.assert_array_equal(back[:, 0], want[:, 0])
    assert np.abs(back[:, 1] - want[:, 1]).max() <= 1


BAD = [
    ("corrupt MIDI", {"primer": b"MThd\x00\x00\x00\x06garbage"}, "primer_file: could not read midi"),
    ("corrupt MusicXML", {"primer": b"<?xml version='1.0'?><score-partwise><part"}, "primer_file: could not read musicxml"),
    ("not music", {"primer": b"hello"}, "not MIDI"),
    ("unknown genre", {"genre": "polka"}, "unknown genre 'polka'; this model knows: up, down"),
    ("no genre", {"genre": ""}, "genre is required"),
    ("length 0", {"length": 0}, "length must be 1 to 1024"),
    ("length over the limit", {"length": 1025}, "length must be 1 to 1024"),
    ("temperature 0", {"temperature": 0.0}, r"temperature must be in \[0.001, 10\], got 0.0; for the most likely event use strategy greedy"),
    ("temperature negative", {"temperature": -1.0, "strategy": "greedy"}, "temperature must be"),
    ("top_k 0", {"top_k": 0}, r"top_k must be in \[1, 1024\], got 0"),
    ("unknown strategy", {"strategy": "beam"}, "unknown sampling strategy 'beam'"),
    ("bad primer pitch", {"primer": [(200, 1.0)]}, "primer event 0: pitch 200"),
    ("bad primer duration", {"primer": [(60, 0.0)]}, "primer event 0: duration"),
]


@pytest.mark.parametrize("label,change,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_invalid_argument_then_the_server_still_works(client, label, change, message):
    good = {"genre": "up", "length": 8, "seed": 1}
    with pytest.raises(InvalidArgument, match=message):
        client.compose(**{**good, **change})
    with pytest.raises(InvalidArgument, match=message):
        list(client.compose_stream(**{**good, **change}))
    first = client.compose(**good)
    np.testing.assert_array_equal(first.events, client.compose(**good).events)


def test_unknown_model_is_not_found(client):
    with pytest.raises(NotFound, match="unknown model 'nope'"):
        client.compose(genre="up", length=8, seed=1, model="nope")
    with pytest.raises(NotFound):
        client.compose(genre="up", length=8, seed=1, version=9)


def test_cli_writes_files_music21_reads(server, client, tmp_path):
    from music21 import converter

    xml, mid, events = tmp_path / "song.musicxml", tmp_path / "song.mid", tmp_path / "events.json"
    proc = run_cli("client", "compose", "--server", server.address, "--genre", "down", "--length", str(LENGTH),
                   "--seed", "7", "--strategy", "topk", "--top-k", "4", "--out", str(xml), "--midi", str(mid),
                   "--events", str(events), "--stream", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {xml}" in proc.stdout and f"wrote {mid}" in proc.stdout
    want = client.compose(genre="down", length=LENGTH, seed=7, strategy="top_k", top_k=4)
    assert json.loads(events.read_text())["tokens"] == want.events.tolist()
    for path in (xml, mid):
        assert len(converter.parse(str(path)).recurse().notesAndRests) > 0
    np.testing.assert_array_equal(me.events_from_bytes(xml.read_bytes()), me.merge_rests(want.events))
    assert_midi_reads_back(mid.read_bytes(), me.merge_rests(want.events))

    bad = run_cli("client", "compose", "--server", server.address, "--genre", "polka", "--out", str(tmp_path / "x.xml"))
    assert bad.returncode != 0 and "INVALID_ARGUMENT: unknown genre 'polka'" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = run_cli("client", "compose", "--server", server.address, "--primer", str(tmp_path / "none.mid"), "--out", str(xml))
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_server_refuses_a_composer_its_spec_refuses(composer_model, tmp_path):
    """Start-up checks a composition model with the one core spec: a manifest
    whose genre has no stored primer is refused with the spec's message, and a
    good one next to it is served."""
    import shutil

    from seedlock.core.sessions import SessionConfig
    from seedlock.serve.repository import load_repository

    repo = tmp_path / "repo"
    shutil.copytree(composer_model[1], repo)
    shutil.copytree(repo / "composer", repo / "broken")
    path = repo / "broken" / "1" / "manifest.json"
    data = json.loads(path.read_text())
    data["name"] = "broken"
    del data["preprocess"]["primers"]["down"]
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    registry = load_repository(repo, SessionConfig(intra_op_threads=1))
    assert "genre 'down' has no stored primer" in registry.refused["broken"][1]
    assert registry.refused["broken"][1].startswith("composition model 'broken' v1: ")
    # The good one serves, and so does each of its graphs as a Triton model of its own.
    assert sorted(registry.runtimes) == ["composer", "composer.decoder_step", "composer.encoder"]
