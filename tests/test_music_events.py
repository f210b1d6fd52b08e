"""Event codecs: tokens, quantization, melody extraction, MusicXML/MIDI round trips."""

import numpy as np
import pytest

from seedlock.core import music_events as me

MELODY = [(60, 1 / 3), (62, 1 / 3), (64, 1 / 3), (None, 0.5), (67, 1.25), (72, 8.0), (None, 2.0), (40, 0.75), (88, 6.0), (65, 0.25)]


def test_pitch_tokens_fold_octaves_into_range():
    assert me.pitch_token(None) == me.REST
    assert me.token_midi(me.pitch_token(60)) == 60
    assert me.token_midi(me.pitch_token(100)) == 88  # one octave down
    assert me.token_midi(me.pitch_token(30)) == 42
    assert me.token_midi(me.pitch_token(me.PITCH_HIGH)) == me.PITCH_HIGH
    with pytest.raises(ValueError):
        me.token_midi(me.NUM_PITCHES)


@pytest.mark.parametrize("ql,expected", [(0.3, 1 / 3), (0.1, 0.25), (20.0, 8.0), (1.0, 1.0), (0.7, 2 / 3), (5.0, 6.0)])
def test_duration_quantization_nearest_in_log_space(ql, expected):
    assert me.token_duration(me.duration_token(ql)) == pytest.approx(expected)


def test_duration_must_be_positive():
    with pytest.raises(ValueError):
        me.duration_token(0.0)


@pytest.mark.parametrize("codec", [me.to_musicxml_bytes, me.to_midi_bytes])
def test_round_trip_through_bytes(codec):
    events = me.from_values(MELODY)
    data = codec(events)
    back = me.events_from_bytes(data)
    np.testing.assert_array_equal(back, events)


def test_sniff_format():
    events = me.from_values(MELODY)
    assert me.sniff_format(me.to_midi_bytes(events)) == "midi"
    assert me.sniff_format(me.to_musicxml_bytes(events)) == "musicxml"
    with pytest.raises(me.MusicDecodeError):
        me.sniff_format(b"hello world")


@pytest.mark.parametrize("data", [b"", b"\x00\x01garbage", b"MThd\x00\x00\x00\x06\x00\x01\x00", b"<?xml version='1.0'?><score-partwise><part"])
def test_corrupt_bytes_raise_decode_error(data):
    with pytest.raises(me.MusicDecodeError):
        me.events_from_bytes(data)


def test_chords_take_top_note_ties_merge_grace_notes_drop():
    from music21 import chord, note, stream, tie

    part = stream.Part()
    part.append(chord.Chord(["C4", "E4", "G4"], quarterLength=1.0))
    a = note.Note("A4", quarterLength=1.0)
    a.tie = tie.Tie("start")
    b = note.Note("A4", quarterLength=1.0)
    b.tie = tie.Tie("stop")
    part.append(a)
    part.append(b)
    grace = note.Note("B4").getGrace()
    part.append(grace)
    part.append(note.Note("C5", quarterLength=0.5))
    part.append(note.Rest(quarterLength=1.0))
    part.append(note.Rest(quarterLength=1.0))  # consecutive rests merge
    part.append(note.Note("D5", quarterLength=1.0))
    ev = me.events_from_score(part)
    assert me.to_values(ev) == [(67, 1.0), (69, 2.0), (72, 0.5), (None, 2.0), (74, 1.0)]


def test_top_part_is_the_highest_and_voices_are_a_skyline():
    from music21 import note, stream

    score = stream.Score()
    low, high = stream.Part(), stream.Part()
    for n in ("C3", "D3"):
        low.append(note.Note(n, quarterLength=2.0))
    high.insert(0, note.Note("E5", quarterLength=2.0))
    high.insert(1, note.Note("G4", quarterLength=1.0))  # overlapping voice: cuts the held note
    high.insert(2, note.Note("F5", quarterLength=2.0))
    score.insert(0, low)
    score.insert(0, high)
    assert me.to_values(me.events_from_score(score)) == [(76, 1.0), (67, 1.0), (77, 2.0)]


def test_bach_chorale_soprano():
    from music21 import corpus

    ev = me.events_from_score(corpus.parse("bach/bwv66.6"))
    values = me.to_values(ev)
    assert len(values) > 20
    assert values[0] == (73, 0.5)  # C#5 pickup
    assert all(p is None or 60 <= p <= 81 for p, _ in values)


def test_events_from_list_and_validate():
    ev = me.events_from_list([[60, 1.0], [None, 0.5], [-1, 1.0], [64, 2]])
    assert me.to_values(ev) == [(60, 1.0), (None, 0.5), (None, 1.0), (64, 2.0)]
    with pytest.raises(ValueError):
        me.events_from_list([["x", 1.0]])
    with pytest.raises(ValueError):
        me.validate(np.array([[me.NUM_PITCHES, 0]]))
    with pytest.raises(ValueError):
        me.validate(np.zeros((3, 3), dtype=np.int64))
