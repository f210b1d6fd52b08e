"""Hostile primers and out-of-range Compose parameters against a real
``seedlock serve`` process: refused with INVALID_ARGUMENT before music21 (or
the memory) sees them, read in worker processes that are killed at the
request's deadline, never blocking an unrelated Compose, and the server's
answers stay byte-identical throughout.

The server runs as a subprocess so its memory is read from /proc (VmHWM: the
peak, so a spike between two polls still counts)."""

from __future__ import annotations

import functools
import io
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import run_cli
from process_helpers import read_address, status_bytes

from seedlock.clients.base import NO_RETRY
from seedlock.clients.composition import CompositionClient
from seedlock.clients.errors import DeadlineExceeded, InvalidArgument
from seedlock.core import music_events as me
from seedlock.core import music_sampling as ms
from seedlock.core import primer_files as pf
from seedlock.protos.seedlock.v1 import composition_pb2

MIB = 1 << 20


# -- the model and the server ---------------------------------------------------------
@pytest.fixture(scope="session")
def composer_repo(composer_model) -> Path:
    """The session's tiny composer (tests/conftest.py), its repository."""
    return composer_model[1]


@pytest.fixture(scope="module")
def served(composer_repo, tmp_path_factory):
    """``seedlock serve`` on the composer, one model instance: (process, address)."""
    log = (tmp_path_factory.mktemp("primers-server") / "stderr.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "seedlock", "serve", "--repository", str(composer_repo), "--port", "0",
         "--threads", "1", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )
    try:
        yield proc, read_address(proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def client(served):
    with CompositionClient(served[1], timeout=60, retry=NO_RETRY) as c:
        yield c


@pytest.fixture(scope="module")
def reference(client):
    """Answers taken before anything hostile was sent: (requests, answers)."""
    requests = [
        client.request(genre="up", length=16, seed=3, request_id="ref"),
        client.request(genre="down", length=16, seed=4, primer=me.to_midi_bytes(melody(12)), strategy="sample"),
        client.request(genre="up", length=16, seed=5, primer=me.to_musicxml_bytes(melody(9)), strategy="greedy"),
    ]
    return requests, [_stable(client.compose_raw(r)) for r in requests]


def _stable(response: composition_pb2.ComposeResponse) -> bytes:
    response.ClearField("timing")
    return response.SerializeToString(deterministic=True)


# -- /proc -------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])  # utime + stime


def _poll(predicate, timeout: float = 30.0, pause: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(pause)
    return predicate()


def _workers_idle(server_pid: int) -> bool:
    """Every worker process of the server has stopped using CPU (started and waiting)."""
    before = {c: _cpu_ticks(c) for c in _children(server_pid)}
    time.sleep(0.3)
    return bool(before) and all(_cpu_ticks(c) == t for c, t in before.items())


# -- primers ------------------------------------------------------------------------------
def melody(n: int, base: int = 60) -> np.ndarray:
    return me.from_values([(base + (2 * k) % 12, 0.5) for k in range(n)])


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def midi_file(notes: list[tuple[int, int]], ticks_per_quarter: int = 480) -> bytes:
    """A one-track MIDI file of (pitch, length in ticks) notes, one after another."""
    track = b"".join(_vlq(0) + bytes([0x90, p, 64]) + _vlq(t) + bytes([0x80, p, 0]) for p, t in notes)
    track += _vlq(0) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks_per_quarter) + b"MTrk" + struct.pack(">I", len(track)) + track


def musicxml(body: str) -> bytes:
    return (f"<?xml version='1.0' encoding='UTF-8'?><score-partwise version='3.1'><part-list><score-part id='P1'>"
            f"<part-name>x</part-name></score-part></part-list><part id='P1'><measure number='1'><attributes>"
            f"<divisions>1</divisions></attributes>{body}</measure></part></score-partwise>").encode()


NOTE = "<note><pitch><step>C</step><octave>4</octave></pitch><duration>1</duration></note>"


def mxl_bomb(inflated: int, stated: int | None = None, members: int = 1) -> bytes:
    """An MXL whose score inflates to ``inflated`` bytes of whitespace; ``stated``:
    the size its directory (and local header) claims instead of the truth."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("score.xml", "w") as f:
            f.write(musicxml(NOTE)[:-len("</score-partwise>")])
            for _ in range(inflated // MIB):
                f.write(b" " * MIB)
            f.write(b"</score-partwise>")
        for i in range(members - 1):
            z.writestr(f"extra{i}.txt", b"x")
    data = bytearray(buf.getvalue())
    if stated is not None:
        central = data.index(b"PK\x01\x02")
        data[central + 24:central + 28] = struct.pack("<I", stated)
        local = data.index(b"PK\x03\x04")
        data[local + 22:local + 26] = struct.pack("<I", stated)
    return bytes(data)


def slow_musicxml(chords: int = 8000) -> bytes:
    """Within every limit (one note, 32k elements, 0.6 MB) and slow for music21:
    it realizes each chord symbol (seconds per few thousand)."""
    harmony = "<harmony><root><root-step>C</root-step></root><kind>major</kind></harmony>"
    return musicxml(harmony * chords + NOTE)


@functools.lru_cache(maxsize=1)
def hostile() -> dict[str, tuple[bytes, str]]:
    """label -> (primer file, what the refusal says); built once, on first use."""
    noise = np.random.default_rng(13).bytes
    return {
        "MIDI over the byte limit": (b"MThd" + b"\x00" * pf.MAX_PRIMER_BYTES, "a primer file may be at most 1048576 bytes"),
        "MusicXML over the byte limit": (musicxml(" " * pf.MAX_PRIMER_BYTES + NOTE), "a primer file may be at most"),
        "MXL bomb (64 MiB in 64 KB)": (mxl_bomb(64 * MIB), "the MXL archive unpacks to 6710"),
        "MXL bomb whose directory lies": (mxl_bomb(64 * MIB, stated=1000), "primer_file: could not read mxl data"),
        "MXL with too many entries": (mxl_bomb(0, members=pf.MAX_ZIP_MEMBERS + 1), "the MXL archive has 17 entries"),
        "MIDI time bomb (44 bytes, 100000 quarters)": (midi_file([(60, 1), (62, 100000)], ticks_per_quarter=1),
                                                        "lasts more than 2048 quarter notes"),
        "MIDI with too many notes": (midi_file([(60 + k % 12, 120) for k in range(pf.MAX_PRIMER_NOTES + 1)]),
                                     "has more than 2048 notes"),
        "MusicXML with too many notes": (musicxml(NOTE * (pf.MAX_PRIMER_NOTES + 1)), "has more than 2048 notes"),
        "MusicXML entity expansion": (b"<?xml version='1.0'?><!DOCTYPE score-partwise [<!ENTITY a '" + b"x" * 64
                                      + b"'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>]><score-partwise>&b;</score-partwise>",
                                      "entity declarations"),
        "garbage": (noise(4096).replace(b"<", b"."), "not MIDI"),
        "garbage after a MIDI header": (b"MThd\x00\x00\x00\x06" + noise(2048), "primer_file: "),
        "garbage after a zip header": (b"PK\x03\x04" + noise(2048), "could not read mxl data"),
        "XML that is not a score": (b"<?xml version='1.0'?><html><body>hi</body></html>", "could not read musicxml data"),
    }


def _raw(change: dict) -> composition_pb2.ComposeRequest:
    """A request built without the client library's checks (they would stop most of these)."""
    return composition_pb2.ComposeRequest(**{"genre": "up", "length": 8, "seed": 1, **change})


# -- the tests ----------------------------------------------------------------------------
def test_hostile_primers_are_refused_and_the_server_memory_stays_flat(served, client, reference):
    """Oversized files, zip bombs (also with a lying directory), a MIDI time
    bomb, note floods, entity expansion and garbage: INVALID_ARGUMENT naming the
    limit, while the server's peak RSS moves by far less than the +1.2 GB one
    200 KB MXL once cost."""
    proc, _ = served
    requests, answers = reference
    peak = status_bytes(proc.pid, "VmHWM")
    for label, (data, message) in hostile().items():
        with pytest.raises(InvalidArgument, match=message) as err:
            client.compose_raw(_raw({"primer_file": data}))
        assert err.value.message.startswith("primer_file"), (label, err.value.message)
        assert len(err.value.message) < 400, (label, err.value.message)
    grown = status_bytes(proc.pid, "VmHWM") - peak
    assert grown < 100 * MIB, f"the server's peak RSS grew by {grown / MIB:.0f} MiB"
    assert len(_children(proc.pid)) <= 2  # killed workers were reaped, none leaked
    assert [_stable(client.compose_raw(r)) for r in requests] == answers


BAD_NUMBERS = [
    ({"temperature": 5e-324}, r"temperature must be in \[0.001, 10\], got 5e-324; for the most likely event use strategy greedy"),
    ({"temperature": 1e-4}, r"temperature must be in \[0.001, 10\]"),
    ({"temperature": float("nan")}, r"temperature must be in \[0.001, 10\], got nan"),
    ({"temperature": float("inf")}, r"temperature must be in \[0.001, 10\], got inf"),
    ({"temperature": 10.5}, r"temperature must be in \[0.001, 10\]"),
    ({"top_k": 0}, r"top_k must be in \[1, 1024\], got 0"),
    ({"top_k": -5}, r"top_k must be in \[1, 1024\], got -5"),
    ({"top_k": 2**31 - 1}, r"top_k must be in \[1, 1024\]"),
    ({"length": 0}, "length must be 1 to 1024 events, got 0"),
    ({"length": 2**32 - 1}, "length must be 1 to 1024 events"),
]


@pytest.mark.parametrize("change,message", BAD_NUMBERS, ids=[str(c) for c, _ in BAD_NUMBERS])
def test_out_of_range_numbers_are_refused_the_same_by_server_and_client(served, client, change, message):
    """The server answers INVALID_ARGUMENT naming the range; the client library
    raises the same error before sending (it is pointed at a closed port here,
    so anything sent would fail UNAVAILABLE instead)."""
    with pytest.raises(InvalidArgument, match=message):
        client.compose_raw(_raw(change))
    with CompositionClient("127.0.0.1:1", timeout=5, retry=NO_RETRY) as offline:
        with pytest.raises(InvalidArgument, match=message):
            offline.compose(**{"genre": "up", "length": 8, "seed": 1, **change})


def test_the_temperature_floor_keeps_the_softmax_finite(client):
    """5e-324 turned every float32 logit into inf, the softmax into NaN and
    every draw into the last index (top pitch, longest duration). At the floor
    even float32's extreme logits divide to finite numbers: the largest wins."""
    extreme = np.array([-3.4e38, 3.4e38, 0.0, 3.3e38], dtype=np.float32)
    at_floor = ms.SamplingParams("temperature", ms.MIN_TEMPERATURE)
    assert {ms.sample_index(extreme, at_floor, u) for u in (0.0, 0.5, 0.999999)} == {1}
    song = client.compose(genre="down", length=24, seed=2, strategy="temperature", temperature=ms.MIN_TEMPERATURE)
    top = [me.NUM_PITCHES - 1, me.NUM_DURATIONS - 1]
    assert any(e != top for e in song.events.tolist())


def test_client_library_checks_primers_before_sending():
    with CompositionClient("127.0.0.1:1", timeout=5, retry=NO_RETRY) as offline:
        for data, message in (hostile()["MXL bomb (64 MiB in 64 KB)"], hostile()["MIDI over the byte limit"]):
            with pytest.raises(InvalidArgument, match=message):
                offline.compose(genre="up", length=8, primer=data)
        with pytest.raises(InvalidArgument, match="primer event 0: pitch 300"):
            offline.compose(genre="up", length=8, primer=[(300, 1.0)])


def test_a_slow_primer_blocks_no_other_compose_and_is_killed_at_its_deadline(served, client, reference):
    """A primer music21 needs many seconds for is read by a worker process:
    meanwhile a Compose without a primer and one with a small primer both
    finish; at the slow one's deadline its worker is killed (DEADLINE_EXCEEDED)
    and replaced; answers stay byte-identical."""
    proc, address = served
    requests, answers = reference  # the reference fixture started the primer workers
    assert _poll(lambda: _workers_idle(proc.pid)), "the primer workers did not settle"
    ticks = {c: _cpu_ticks(c) for c in _children(proc.pid)}

    slow: dict = {}

    def send_slow() -> None:
        with CompositionClient(address, timeout=3.0, retry=NO_RETRY) as c:
            try:
                slow["answer"] = c.compose(genre="up", length=8, seed=1, primer=slow_musicxml())
            except Exception as exc:  # noqa: BLE001 - inspected below
                slow["error"] = exc
        slow["done_at"] = time.monotonic()

    thread = threading.Thread(target=send_slow)
    thread.start()
    busy: list[int] = []

    def parsing() -> bool:  # a worker is burning CPU on the slow file
        busy[:] = [c for c in _children(proc.pid) if _cpu_ticks(c) >= ticks.get(c, 0) + 20]
        return bool(busy)

    assert _poll(parsing, timeout=10), "no primer worker started reading the slow file"
    plain = client.compose(genre="down", length=16, seed=8)
    small = client.compose(genre="up", length=16, seed=9, primer=me.to_midi_bytes(melody(10)))
    finished_at = time.monotonic()
    assert "done_at" not in slow, "the slow primer finished before the unrelated requests"
    assert len(plain.events) == 16 and small.primer_length == 10
    thread.join(timeout=30)
    assert isinstance(slow.get("error"), DeadlineExceeded), slow
    assert slow["done_at"] > finished_at
    assert _poll(lambda: busy[0] not in _children(proc.pid), timeout=10), "the slow file's worker was not killed"
    assert [_stable(client.compose_raw(r)) for r in requests] == answers  # a fresh worker reads primers the same


def test_cli_refuses_bad_numbers_and_files_in_one_line(served, tmp_path):
    bomb = tmp_path / "bomb.mxl"
    bomb.write_bytes(mxl_bomb(16 * MIB))
    out = str(tmp_path / "song.musicxml")
    for args, message in (
        (["--temperature", "5e-324"], "argument --temperature: must be from 0.001 to 10, got 5e-324"),
        (["--length", str(10**30)], "argument --length: must be from 1 to 1024"),
        (["--primer", str(bomb)], "the MXL archive unpacks to 16777"),
    ):
        proc = run_cli("client", "compose", "--server", served[1], "--genre", "up", "--out", out, *args, timeout=120)
        assert proc.returncode != 0, args
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()[-1]) < 300
    assert not Path(out).exists()
    usage = run_cli("client", "compose", "--help", timeout=120).stdout
    for text in ("0.001 to 10", "1 to 1024", "0 to 18446744073709551615", "at most 1 MiB"):
        assert text in " ".join(usage.split()), text


def test_inflating_stops_at_the_cap_whatever_the_directory_says():
    """In-process, with a 100-byte cap: an honest directory over the cap is
    refused before inflating; one that states less than the member holds gets
    an error, never more bytes than the cap."""
    limits = pf.PrimerLimits(max_inflated_bytes=100)
    honest = mxl_bomb(0)
    assert len(pf.unzip_musicxml(honest)) > 100  # no limits: a user's own file
    with pytest.raises(pf.PrimerTooLarge, match="unpacks to 3.. bytes"):
        pf.check_primer_file(honest, limits)
    with pytest.raises(me.MusicDecodeError, match="could not read mxl data|inflates past 100 bytes"):
        pf.unzip_musicxml(mxl_bomb(8 * MIB, stated=90), limits)


def test_worker_pool_rereads_after_a_kill_and_stops_cleanly():
    """The pool alone: a read killed at its deadline, the next one on a fresh
    worker gives the in-process answer, close() leaves no process behind."""
    from seedlock.serve.primer_workers import PrimerDeadline, PrimerWorkers

    pool = PrimerWorkers(size=1)
    data = me.to_midi_bytes(melody(14))
    try:
        np.testing.assert_array_equal(pool.read(data), pf.read_primer(data))  # started and warm
        (first,) = pool.pids()
        with pytest.raises(PrimerDeadline):
            pool.read(slow_musicxml(), deadline=time.monotonic() + 1.0)
        assert not Path(f"/proc/{first}").exists()  # killed and reaped
        np.testing.assert_array_equal(pool.read(data), pf.read_primer(data))
        pids = pool.pids()
        assert pool.started == 2 and len(pids) == 1
    finally:
        pool.close()
    assert not any(Path(f"/proc/{p}").exists() for p in pids)


def test_stopping_the_server_stops_its_workers(composer_repo):
    from seedlock.serve.server import start_server

    with start_server(composer_repo, threads=1, workers=2) as running:
        with CompositionClient(running.address, timeout=60, retry=NO_RETRY) as c:
            c.compose(genre="up", length=4, seed=1, primer=me.to_midi_bytes(melody(6)))
        pids = running.registry.extra_schedulers["Composition.primers"].workers.pids()
        assert pids
    assert all(not Path(f"/proc/{p}").exists() for p in pids)


def test_grpc_status_codes_are_invalid_argument_not_internal(served):
    """The raw stub: the status itself, not just the client's exception class."""
    from seedlock.protos.seedlock.v1 import composition_pb2_grpc

    with grpc.insecure_channel(served[1]) as channel:
        stub = composition_pb2_grpc.CompositionStub(channel)
        for change in ({"primer_file": hostile()["MXL bomb whose directory lies"][0]}, {"temperature": 5e-324}):
            with pytest.raises(grpc.RpcError) as err:
                stub.Compose(_raw(change), timeout=30)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.RpcError) as err:
                list(stub.ComposeStream(_raw(change), timeout=30))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
