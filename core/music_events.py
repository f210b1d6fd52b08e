"""Melodies as event arrays, and their codecs (music21 scores, MusicXML, MIDI).

A melody is a sequence of *events*; each event is a pitch (a MIDI number, or a
rest) and a duration in quarter lengths. Training, export checks and the
server share this module, so a primer is tokenized the same way everywhere.

Vocabulary (``VOCAB_VERSION`` names it; caches and manifests record it):

- pitch tokens: ``0`` = rest, ``1 .. 61`` = MIDI 36 (C2) .. 96 (C7).
  Notes outside the range are moved by whole octaves into it.
- duration tokens: index into :data:`DURATIONS` (quarter lengths, sixteenth
  to two whole notes, with eighth/quarter triplets). Other lengths snap to the
  nearest value in log space; anything longer than 8 becomes 8, anything
  shorter than a sixteenth becomes a sixteenth.

Extraction from a score (:func:`events_from_score`) keeps one melody:

- the *top part*: the part with the highest mean pitch (Humdrum files list
  voices bottom-up, MusicXML top-down, so "first part" is not reliable);
- within it a skyline: at each onset the highest note (chords → top note,
  overlapping voices → highest), a note is cut short where the next onset
  begins, gaps become rests, consecutive rests merge, leading and trailing
  rests are dropped;
- tied notes merge into one event (their durations add);
- grace notes (zero duration) are dropped; dynamics, lyrics, articulation,
  tempo, key and meter are not kept.

An event array is ``int64`` of shape ``(N, 2)``: column 0 pitch token,
column 1 duration token. music21 is imported lazily (only the codecs need it).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

VOCAB_VERSION = "events/1"
PITCH_LOW = 36
PITCH_HIGH = 96
REST = 0
NUM_PITCHES = PITCH_HIGH - PITCH_LOW + 2  # + rest
DURATIONS: tuple[float, ...] = (
    0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0,
)
NUM_DURATIONS = len(DURATIONS)
_LOG_DURATIONS = np.log(np.array(DURATIONS))
# Between pieces concatenated into one training stream (a whole-note rest).
SEPARATOR = (REST, DURATIONS.index(4.0))


class MusicDecodeError(ValueError):
    """Bytes that are not a readable MusicXML or MIDI melody."""


# -- tokens -------------------------------------------------------------------
def pitch_token(midi: int | None) -> int:
    """Token for a MIDI number (None = rest), octave-folded into the range."""
    if midi is None:
        return REST
    m = int(midi)
    while m < PITCH_LOW:
        m += 12
    while m > PITCH_HIGH:
        m -= 12
    return m - PITCH_LOW + 1


def token_midi(token: int) -> int | None:
    """MIDI number of a pitch token (None for rest)."""
    t = int(token)
    if not 0 <= t < NUM_PITCHES:
        raise ValueError(f"pitch token {t} outside 0..{NUM_PITCHES - 1}")
    return None if t == REST else PITCH_LOW + t - 1


def duration_token(quarter_length: float) -> int:
    """Nearest duration token in log space (clamped to the vocabulary's ends)."""
    q = float(quarter_length)
    if not q > 0 or not math.isfinite(q):
        raise ValueError(f"duration must be a positive finite quarter length, got {quarter_length!r}")
    return int(np.argmin(np.abs(_LOG_DURATIONS - math.log(q))))


def token_duration(token: int) -> float:
    return DURATIONS[int(token)]


# An event-list primer longer than this is refused: the encoder reads only its
# last `window` events, so a longer one is a mistake, not music.
MAX_PRIMER_EVENTS = 65536


def check_primer_event(index: int, pitch: int, duration: float) -> None:
    """One event of an event-list primer as the protocol carries it (pitch -1
    for a rest); ValueError naming it. The server and the client check the same."""
    if not (pitch == -1 or 0 <= pitch <= 127):
        raise ValueError(f"primer event {index}: pitch {pitch} is not a MIDI note number (0..127) or -1 for a rest")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"primer event {index}: duration {duration!r} must be a positive number of quarter notes")


def from_values(values: Iterable[tuple[int | None, float]]) -> np.ndarray:
    """Event array from ``(midi or None, quarter_length)`` pairs."""
    rows = [(pitch_token(p), duration_token(d)) for p, d in values]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def to_values(events: np.ndarray) -> list[tuple[int | None, float]]:
    """``(midi or None, quarter_length)`` pairs of an event array."""
    return [(token_midi(p), token_duration(d)) for p, d in validate(events)]


def validate(events: Any) -> np.ndarray:
    """An ``(N, 2)`` int64 array whose tokens are in range, or ValueError."""
    arr = np.asarray(events)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"events must be an integer array of shape (N, 2), got {arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64)
    if arr[:, 0].min() < 0 or arr[:, 0].max() >= NUM_PITCHES:
        raise ValueError(f"pitch tokens must be in 0..{NUM_PITCHES - 1}")
    if arr[:, 1].min() < 0 or arr[:, 1].max() >= NUM_DURATIONS:
        raise ValueError(f"duration tokens must be in 0..{NUM_DURATIONS - 1}")
    return arr


def merge_rests(events: np.ndarray) -> np.ndarray:
    """Merge consecutive rests (re-quantizing their summed length) and drop leading/trailing rests."""
    out: list[list[int]] = []
    for p, d in validate(events):
        if p == REST and out and out[-1][0] == REST:
            out[-1][1] = duration_token(token_duration(out[-1][1]) + token_duration(d))
        else:
            out.append([int(p), int(d)])
    while out and out[0][0] == REST:
        out.pop(0)
    while out and out[-1][0] == REST:
        out.pop()
    return np.array(out, dtype=np.int64).reshape(-1, 2)


# -- music21 scores -> events -------------------------------------------------
def _top_part(score: Any) -> Any:
    parts = list(getattr(score, "parts", []) or [])
    if len(parts) <= 1:
        return parts[0] if parts else score
    best, best_mean = parts[0], -1.0
    for part in parts:
        pitches = [n.pitches[-1].midi for n in part.recurse().notes if n.pitches]
        if pitches and float(np.mean(pitches)) > best_mean:
            best, best_mean = part, float(np.mean(pitches))
    return best


def _skyline(part: Any) -> list[tuple[float, float, int, str | None]]:
    """(onset, length, midi, tie type) of the highest note at each onset, in order."""
    by_onset: dict[float, tuple[float, int, str | None]] = {}
    for n in part.flatten().notes:
        ql = float(n.quarterLength)
        if ql <= 0 or n.duration.isGrace or not n.pitches:
            continue  # grace notes carry no time
        midi = max(p.midi for p in n.pitches)  # chord -> top note
        onset = round(float(n.offset), 6)
        tie = n.tie.type if n.tie is not None else None
        if onset not in by_onset or midi > by_onset[onset][1]:
            by_onset[onset] = (ql, midi, tie)
    return [(o, *by_onset[o]) for o in sorted(by_onset)]


def events_from_score(score: Any) -> np.ndarray:
    """The melody of a music21 Score/Part/Stream as an event array (see module doc)."""
    notes = _skyline(_top_part(score))
    values: list[list[Any]] = []  # [midi or None, quarter length]
    prev_end: float | None = None
    for i, (onset, ql, midi, tie) in enumerate(notes):
        if i + 1 < len(notes):
            ql = min(ql, notes[i + 1][0] - onset)  # monophonic: cut at the next onset
        if prev_end is not None and onset - prev_end > 1e-6:
            values.append([None, onset - prev_end])
        elif (
            tie in ("stop", "continue")
            and values
            and values[-1][0] == midi
            and prev_end is not None
            and abs(onset - prev_end) <= 1e-6
        ):
            values[-1][1] += ql  # tied continuation: lengthen the held note
            prev_end = onset + ql
            continue
        values.append([midi, ql])
        prev_end = onset + ql
    return merge_rests(from_values((p, d) for p, d in values if d > 1e-6))


def events_to_score(events: np.ndarray, title: str | None = None) -> Any:
    """A one-part music21 Score of the melody (4/4, no key; MIDI numbers spelled by music21)."""
    from music21 import meter, note, stream

    part = stream.Part()
    part.append(meter.TimeSignature("4/4"))
    for midi, ql in to_values(events):
        el = note.Rest(quarterLength=ql) if midi is None else note.Note(midi, quarterLength=ql)
        part.append(el)
    score = stream.Score()
    if title:
        from music21 import metadata

        score.metadata = metadata.Metadata(title=title)
    score.insert(0, part)
    return score


# -- bytes --------------------------------------------------------------------
def to_musicxml_bytes(events: np.ndarray, title: str | None = None) -> bytes:
    """Uncompressed MusicXML (UTF-8) of the melody."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    score = events_to_score(events, title)
    return GeneralObjectExporter(score).parse()


def to_midi_bytes(events: np.ndarray) -> bytes:
    """A standard MIDI file (type 1) of the melody."""
    from music21.midi import translate

    mf = translate.streamToMidiFile(events_to_score(events))
    return mf.writestr()


def sniff_format(data: bytes) -> str:
    """'midi', 'mxl' (zipped MusicXML) or 'musicxml', from the leading bytes."""
    head = bytes(data[:512])
    if head.startswith(b"MThd"):
        return "midi"
    if head.startswith(b"PK\x03\x04"):
        return "mxl"
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<") and (b"score-partwise" in data[:4096] or b"score-timewise" in data[:4096] or b"<?xml" in text[:6]):
        return "musicxml"
    raise MusicDecodeError("not MIDI (no MThd header) or MusicXML (no XML score root)")


def parse_bytes(data: bytes) -> Any:
    """A music21 stream from MIDI, MusicXML or compressed MusicXML bytes, with
    no size limits (a user's own files); the server reads primers through
    :func:`seedlock.core.primer_files.read_primer`, which bounds them first."""
    fmt = sniff_format(data)
    if fmt == "midi":
        return parse_midi(data)
    if fmt == "mxl":
        from seedlock.core.primer_files import unzip_musicxml

        return parse_musicxml(unzip_musicxml(data), "mxl")
    return parse_musicxml(data)


@contextlib.contextmanager
def _music21_errors(fmt: str) -> Iterator[None]:
    """music21 raises many kinds of exception for bad bytes: one kind, one line."""
    try:
        yield
    except (MusicDecodeError, MemoryError):  # out of memory is the caller's to report
        raise
    except Exception as exc:  # noqa: BLE001 - whatever music21 raised, the bytes were bad
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise MusicDecodeError(f"could not read {fmt} data: {first}") from None


def parse_midi(data: bytes) -> Any:
    """A music21 stream from standard MIDI file bytes."""
    with _music21_errors("midi"):
        from music21.midi import MidiFile, translate

        mf = MidiFile()
        mf.readstr(bytes(data))
        return translate.midiFileToStream(mf)


def parse_musicxml(xml: bytes | str, fmt: str = "musicxml") -> Any:
    """A music21 stream from MusicXML text (bytes are read as UTF-8)."""
    with _music21_errors(fmt):
        from music21 import converter

        text = xml if isinstance(xml, str) else bytes(xml).decode("utf-8", errors="strict")
        return converter.parseData(text, format="musicxml")


def events_from_bytes(data: bytes) -> np.ndarray:
    """Melody event array of MIDI/MusicXML bytes; MusicDecodeError if unreadable or empty."""
    events = events_from_score(parse_bytes(data))
    if len(events) == 0:
        raise MusicDecodeError("the file holds no notes")
    return events


def events_from_list(items: Sequence[Any]) -> np.ndarray:
    """Event array from ``[(midi or None, quarter_length), ...]`` (JSON-friendly primers)."""
    try:
        pairs = [(None if p is None or int(p) < 0 else int(p), float(d)) for p, d in items]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"events must be (midi or null, quarter_length) pairs: {exc}") from None
    return from_values(pairs)
