"""Primer files (MIDI, MusicXML, MXL) read within documented limits.

A client's primer is measured before music21 sees it, so the time and memory
it can cost are bounded by these limits, not by what its bytes unpack to:

- every file: at most ``max_bytes`` as sent;
- MXL (zipped MusicXML): at most ``max_zip_members`` entries whose sizes, as
  the zip's directory states them, add up to at most ``max_inflated_bytes``,
  checked before anything is inflated; the MusicXML is then inflated in chunks
  and refused as soon as it passes ``max_inflated_bytes``, so a directory that
  under-states a size gains nothing;
- MusicXML (sent plain or inflated): no entity declarations (``<!ENTITY``:
  entity expansion is how a small XML file grows large), at most
  ``max_xml_elements`` elements, ``max_notes`` notes and ``max_parts`` parts;
- MIDI: walked event by event first, without music21: at most ``max_parts``
  tracks, ``max_midi_events`` events, ``max_notes`` note-ons and
  ``max_midi_quarters`` quarter notes of time (summed over tracks). music21
  lays out measures for all of that time and re-slices a track's bytes at
  every event: a 44-byte MIDI whose second note comes 100000 quarters after
  its first keeps it busy for minutes.

:func:`check_primer_file` is the cheap part (size, format, the zip's
directory), run by the client and by the server before admission;
:func:`read_primer` is all of it and then music21, run by the server in a
worker process (:mod:`seedlock.serve.primer_workers`).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from seedlock.core import music_events as me

KIB, MIB = 1024, 1024 * 1024
MAX_PRIMER_BYTES = 1 * MIB
MAX_INFLATED_BYTES = 4 * MIB
MAX_ZIP_MEMBERS = 16
MAX_XML_ELEMENTS = 65536
MAX_PRIMER_NOTES = 2048
MAX_PRIMER_PARTS = 32
MAX_MIDI_EVENTS = 16384
MAX_MIDI_QUARTERS = 2048

EMPTY_PRIMER = "primer_file is empty; send MIDI or MusicXML bytes, or leave the primer unset"

_CHUNK = 64 * KIB
_MXL_SUFFIXES = (".musicxml", ".xml", ".mxl")


class PrimerTooLarge(me.MusicDecodeError):
    """A primer over one of the documented limits (INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class PrimerLimits:
    """The limits a primer file is held to (see the module docstring)."""

    max_bytes: int = MAX_PRIMER_BYTES
    max_inflated_bytes: int = MAX_INFLATED_BYTES
    max_zip_members: int = MAX_ZIP_MEMBERS
    max_xml_elements: int = MAX_XML_ELEMENTS
    max_notes: int = MAX_PRIMER_NOTES
    max_parts: int = MAX_PRIMER_PARTS
    max_midi_events: int = MAX_MIDI_EVENTS
    max_midi_quarters: int = MAX_MIDI_QUARTERS

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


PRIMER_LIMITS = PrimerLimits()


def size_text(n: int) -> str:
    """``n`` bytes as the limits are documented (4 MiB, 64 KiB, 1000 bytes)."""
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    if n >= KIB and n % KIB == 0:
        return f"{n // KIB} KiB"
    return f"{n} bytes"


def _too_many(what: str, unit: str, limit: int, count: int | None = None) -> PrimerTooLarge:
    """``count`` None: counting stopped past the limit, so the message says "more than"."""
    has = f"more than {limit}" if count is None else str(count)
    return PrimerTooLarge(f"{what} has {has} {unit}; a primer may have at most {limit}: send a shorter excerpt")


# -- the cheap part: size, format, the zip's directory ---------------------------------
def check_primer_file(data: bytes, limits: PrimerLimits = PRIMER_LIMITS) -> str:
    """The primer's format ('midi', 'mxl' or 'musicxml') once its size and, for
    MXL, its zip directory are within ``limits``; MusicDecodeError (or
    PrimerTooLarge) naming what is wrong. Reads nothing but the directory."""
    if len(data) > limits.max_bytes:
        raise PrimerTooLarge(f"the file is {len(data)} bytes; a primer file may be at most {limits.max_bytes} bytes "
                             f"({size_text(limits.max_bytes)}): send a shorter excerpt")
    fmt = me.sniff_format(data)
    if fmt == "mxl":
        with _open_zip(data) as zf:
            _mxl_root(zf, limits)
    return fmt


def _open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(bytes(data)))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise me.MusicDecodeError(f"could not read mxl data: {_first_line(exc)}") from None


def _mxl_root(zf: zipfile.ZipFile, limits: PrimerLimits | None) -> zipfile.ZipInfo:
    """The MusicXML member music21 would read (the first non-META-INF entry
    named *.musicxml, *.xml or *.mxl), after the directory's limits."""
    infos = zf.infolist()
    if limits is not None:
        if len(infos) > limits.max_zip_members:
            raise _too_many("the MXL archive", "entries", limits.max_zip_members, len(infos))
        stated = sum(i.file_size for i in infos)
        if stated > limits.max_inflated_bytes:
            raise PrimerTooLarge(f"the MXL archive unpacks to {stated} bytes (its directory says); at most "
                                 f"{limits.max_inflated_bytes} bytes ({size_text(limits.max_inflated_bytes)}) may be "
                                 "inflated: send a shorter excerpt")
    for info in infos:
        name = info.filename
        if "META-INF" in name:
            continue
        if name == ".xml" or any(name.endswith(s) and len(name) > len(s) for s in _MXL_SUFFIXES):
            return info
    raise me.MusicDecodeError("could not read mxl data: the archive holds no MusicXML file (*.musicxml or *.xml)")


def unzip_musicxml(data: bytes, limits: PrimerLimits | None = None) -> str:
    """The MusicXML text of MXL bytes, read as music21 reads it, inflated in
    chunks and refused past ``limits.max_inflated_bytes`` whatever the
    directory said (``limits`` None: no limits, for a user's own files)."""
    with _open_zip(data) as zf:
        info = _mxl_root(zf, limits)
        cap = None if limits is None else limits.max_inflated_bytes
        out = bytearray()
        try:
            with zf.open(info) as member:
                while chunk := member.read(_CHUNK):
                    out += chunk
                    if cap is not None and len(out) > cap:
                        raise PrimerTooLarge(f"the MXL archive's {info.filename[:80]!r} inflates past {cap} bytes "
                                             f"({size_text(cap)}), more than its directory said: send a shorter excerpt")
        except me.MusicDecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile/zlib/bz2/lzma each raise their own kind for bad data
            raise me.MusicDecodeError(f"could not read mxl data: {_first_line(exc)}") from None
    return _decode_like_music21(bytes(out))


def _decode_like_music21(raw: bytes) -> str:
    """music21's reading of an archive member (converter.ArchiveManager): UTF-8,
    else UTF-16-LE with its encoding declaration rewritten, so a primer sent as
    MXL reads as it always has."""
    try:
        found = re.match(rb"encoding=['\"](\S*?)['\"]", raw[:1000])
        encoding = found.group(1).decode("ascii") if found else "UTF-8"
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            text = raw.decode("utf-16-le")
            return re.sub(r"encoding=(['\"]\S*?['\"])", "encoding='UTF-8'", text)
    except (UnicodeDecodeError, LookupError) as exc:
        raise me.MusicDecodeError(f"could not read mxl data: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


# -- MusicXML: counted before parsing -------------------------------------------------
_START_TAG = re.compile(r"<[A-Za-z_]")
_NOTE = re.compile(r"<note[\s/>]")
_PART = re.compile(r"<part[\s/>]")


def check_musicxml(text: str, limits: PrimerLimits, fmt: str = "musicxml") -> None:
    """Refuse entity declarations and more elements, notes or parts than ``limits``."""
    if "<!ENTITY" in text:
        raise me.MusicDecodeError(f"could not read {fmt} data: entity declarations (<!ENTITY) are not accepted in a primer")
    for what, pattern, limit in (("elements", _START_TAG, limits.max_xml_elements),
                                 ("notes", _NOTE, limits.max_notes), ("parts", _PART, limits.max_parts)):
        if _count(pattern, text, limit) > limit:
            raise _too_many(f"the {fmt} file", what, limit)


def _count(pattern: re.Pattern, text: str, limit: int) -> int:
    """Matches of ``pattern`` in ``text``, counting no further than ``limit + 1``."""
    n = 0
    for _ in pattern.finditer(text):
        n += 1
        if n > limit:
            break
    return n


# -- MIDI: walked before parsing --------------------------------------------------------
@dataclass
class MidiCensus:
    """What a MIDI file holds, counted the way music21 walks it."""

    tracks: int = 0
    events: int = 0
    notes: int = 0
    quarters: float = 0.0


def midi_census(data: bytes, limits: PrimerLimits = PRIMER_LIMITS) -> MidiCensus:
    """Count tracks, events, note-ons and time, stopping as soon as a limit is
    passed (so the walk itself is bounded). Malformed structure is left for
    music21 to report: the census only needs to be an upper bound of the work."""
    census = MidiCensus()
    if len(data) < 14 or data[:4] != b"MThd":
        return census
    header_size = int.from_bytes(data[4:8], "big")
    declared = int.from_bytes(data[10:12], "big")  # music21 reads this many MTrk chunks, or fails
    division = int.from_bytes(data[12:14], "big")
    if division & 0x8000:  # SMPTE: ticks per second; count a quarter as half a second (120 bpm)
        ticks_per_quarter = max(1, (-((division >> 8) | -0x80)) * (division & 0xFF) // 2)
    else:
        ticks_per_quarter = max(1, division & 0x7FFF)
    pos = 8 + header_size
    ticks = 0
    for _ in range(declared):
        if data[pos:pos + 4] != b"MTrk":
            break
        census.tracks += 1
        if census.tracks > limits.max_parts:
            break
        size = int.from_bytes(data[pos + 4:pos + 8], "big")
        track = data[pos + 8:pos + 8 + size]
        pos += 8 + size
        ticks += _walk_track(track, census, limits)
        census.quarters = ticks / ticks_per_quarter
        if census.events > limits.max_midi_events or census.notes > limits.max_notes or census.quarters > limits.max_midi_quarters:
            break
    return census


def _walk_track(track: bytes, census: MidiCensus, limits: PrimerLimits) -> int:
    """Walk one track's events as music21's MidiTrack.processDataToEvents does;
    returns the track's length in ticks."""
    i, n, ticks, status = 0, len(track), 0, 0x90
    while i < n:
        census.events += 1
        if census.events > limits.max_midi_events:
            break
        delta, i = _vlq(track, i)
        if i >= n or n - i < 2:
            break
        byte0 = track[i]
        if byte0 == 0xFF:  # meta: FF type length data
            length, j = _vlq(track, i + 2)
            i = j + length
        elif byte0 in (0xF0, 0xF7):  # sysex: F0 length data
            length, j = _vlq(track, i + 1)
            i = j + length
        elif byte0 >= 0xF0:  # music21 skips what it cannot read and reads on from here
            i += 1
            continue
        else:
            if byte0 & 0x80:
                status, data_at = byte0, i + 1
            else:  # running status: the previous status byte applies
                data_at = i
            kind = status & 0xF0
            width = 1 if kind in (0xC0, 0xD0) else 2
            if kind == 0x90 and data_at + 1 < n and track[data_at + 1] > 0:
                census.notes += 1
            i = data_at + width
        ticks += delta
    return ticks


def _vlq(data: bytes, i: int) -> tuple[int, int]:
    """A MIDI variable-length number at ``i`` and the index after it."""
    value = 0
    while i < len(data):
        byte = data[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return value, i


def check_midi(data: bytes, limits: PrimerLimits) -> None:
    """Refuse a MIDI file over ``limits`` (see :func:`midi_census`)."""
    census = midi_census(data, limits)
    if census.tracks > limits.max_parts:
        raise _too_many("the MIDI file", "tracks", limits.max_parts)
    if census.events > limits.max_midi_events:
        raise _too_many("the MIDI file", "events", limits.max_midi_events)
    if census.notes > limits.max_notes:
        raise _too_many("the MIDI file", "notes", limits.max_notes)
    if census.quarters > limits.max_midi_quarters:
        raise PrimerTooLarge(f"the MIDI file lasts more than {limits.max_midi_quarters} quarter notes; a primer may last at "
                             "most that: send a shorter excerpt")


# -- all of it ----------------------------------------------------------------------------
def read_primer(data: bytes, limits: PrimerLimits = PRIMER_LIMITS) -> np.ndarray:
    """The melody of a primer file as an event array, every limit checked
    before music21 parses it; MusicDecodeError (PrimerTooLarge for a limit)
    with a message that says what to change."""
    fmt = check_primer_file(data, limits)
    score: Any
    if fmt == "midi":
        check_midi(data, limits)
        score = me.parse_midi(data)
    else:
        if fmt == "mxl":
            text = unzip_musicxml(data, limits)
        else:
            try:
                text = bytes(data).decode("utf-8", errors="strict")
            except UnicodeDecodeError as exc:
                raise me.MusicDecodeError(f"could not read musicxml data: {_first_line(exc)}") from None
        check_musicxml(text, limits, fmt)
        score = me.parse_musicxml(text, fmt)
    events = me.events_from_score(score)
    if len(events) == 0:
        raise me.MusicDecodeError("the file holds no notes")
    return events
