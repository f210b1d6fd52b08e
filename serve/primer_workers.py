"""Primer files read in worker processes, so one hostile file costs the
server neither its memory nor a lock other requests wait on.

music21 is pure Python with module-level state: in the server's threads it
would hold the GIL and needs a lock, so one slow file stalls every request
that touches it. Here each file goes to a small pool of ``python -m
seedlock.serve.primer_workers`` processes:

- a worker runs :func:`~seedlock.core.primer_files.read_primer` (every limit
  checked before music21 parses) under an address-space cap
  (``RLIMIT_AS``, :data:`WORKER_MEMORY_BYTES`), and answers the event array;
- the caller waits until the request's deadline, or :data:`PARSE_TIMEOUT_S`
  when the request has none, and kills the worker when that passes or when the
  caller goes away; a killed or crashed worker is replaced by a fresh one;
- one idle worker is kept warm while the pool is under its size, so a small
  primer does not wait for a worker to start behind a big one.

The pool holds no grpc: :mod:`seedlock.serve.composition` maps its errors to
statuses, and admits each read to a bounded queue of its own first.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import warnings
from typing import IO, Any

import numpy as np

from seedlock.core import music_events as me
from seedlock.core import primer_files as pf

PRIMER_WORKERS = 2  # files read at once; more wait in the primer queue
PARSE_TIMEOUT_S = 10.0  # longest read of one file when the request sets no deadline
WORKER_MEMORY_BYTES = 1 << 30  # address space of a worker (RLIMIT_AS)
RETIRE_RSS_BYTES = 384 << 20  # a worker grown past this after a read is replaced
START_TIMEOUT_S = 60.0  # a worker that is not ready by then is broken
_FRAME_HEADER = 4


class PrimerReadTimeout(Exception):
    """The file took longer than :data:`PARSE_TIMEOUT_S` to read (its worker was killed)."""


class PrimerDeadline(Exception):
    """The request's deadline passed before its file was read (a worker reading it was killed)."""


class PrimerCancelled(Exception):
    """The caller went away (or the server is stopping) while its file was read."""


class PrimerWorkerDied(Exception):
    """The worker died while reading the file (a crash, or killed for memory)."""


class PrimerWorkerUnavailable(Exception):
    """No worker could be started."""


class PrimerWorkerFailed(RuntimeError):
    """The worker failed in a way that is a bug (reported with the exception it raised)."""


class _TimeUp(Exception):
    pass


# -- framing: 4-byte length, a JSON header line, then raw bytes -------------------------
def _frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    body = json.dumps(header).encode() + b"\n" + payload
    return len(body).to_bytes(_FRAME_HEADER, "big") + body


def _split(body: bytes) -> tuple[dict[str, Any], bytes]:
    line, _, payload = body.partition(b"\n")
    return json.loads(line), payload


# -- the parent side ------------------------------------------------------------------
class _Worker:
    """One worker process and its pipes (used by one thread at a time)."""

    def __init__(self, memory_bytes: int) -> None:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "seedlock.serve.primer_workers", str(memory_bytes)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True,
            )
        except OSError as exc:
            raise PrimerWorkerUnavailable(f"could not start a primer worker: {exc.strerror or exc}") from None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        self._buffer = bytearray()
        self.ready = False
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll_ready(self) -> bool:
        """Whether the worker has said it is ready, reading what it sent without waiting."""
        if not self.ready:
            try:
                self.wait_ready(time.monotonic(), None, None)
            except (_TimeUp, PrimerWorkerDied, PrimerWorkerFailed):
                pass
        return self.ready

    def wait_ready(self, until: float, stop: threading.Event | None, closing: threading.Event | None) -> None:
        if not self.ready:
            header, _ = self._receive(until, stop, closing)
            if not header.get("ready"):
                raise PrimerWorkerFailed(f"primer worker {self.pid} sent {str(header)[:200]} instead of ready")
            self.ready = True

    def exchange(self, data: bytes, limits: pf.PrimerLimits, until: float,
                 stop: threading.Event | None, closing: threading.Event | None) -> tuple[dict[str, Any], bytes]:
        """Send one file; its reply, waited for until ``until`` (``time.monotonic()``)."""
        view = memoryview(_frame({"limits": limits.to_dict()}, bytes(data)))
        with selectors.DefaultSelector() as sel:
            sel.register(self._in, selectors.EVENT_WRITE)
            while view:
                _check(until, stop, closing)
                if not sel.select(_slice(until)):
                    continue
                try:
                    view = view[os.write(self._in, view):]
                except BlockingIOError:
                    continue
                except OSError:  # a broken pipe: it died
                    raise PrimerWorkerDied(self._death()) from None
        return self._receive(until, stop, closing)

    def _receive(self, until: float, stop: threading.Event | None, closing: threading.Event | None) -> tuple[dict[str, Any], bytes]:
        with selectors.DefaultSelector() as sel:
            sel.register(self._out, selectors.EVENT_READ)
            while True:
                if len(self._buffer) >= _FRAME_HEADER:
                    end = _FRAME_HEADER + int.from_bytes(self._buffer[:_FRAME_HEADER], "big")
                    if len(self._buffer) >= end:
                        body = bytes(self._buffer[_FRAME_HEADER:end])
                        del self._buffer[:end]
                        return _split(body)
                if sel.select(_slice(until)):
                    try:
                        chunk = os.read(self._out, 1 << 16)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise PrimerWorkerDied(self._death())
                    self._buffer += chunk
                    continue
                _check(until, stop, closing)

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "its reader closed the pipe"
        if code == -signal.SIGKILL:
            return "its reader was killed (out of memory?)"
        return f"its reader stopped with status {code}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5.0)  # reap it: no zombie left behind
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
            pass
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass


def _slice(until: float) -> float:
    """How long one wait may block: short, so cancellation is noticed."""
    return min(0.05, max(0.0, until - time.monotonic()))


def _check(until: float, stop: threading.Event | None, closing: threading.Event | None) -> None:
    if (stop is not None and stop.is_set()) or (closing is not None and closing.is_set()):
        raise PrimerCancelled("the request was cancelled while its primer was read")
    if time.monotonic() >= until:
        raise _TimeUp


class PrimerWorkers:
    """A pool of at most ``size`` worker processes, started on first use.

    :meth:`read` is called from a thread (the primer queue's instance) and
    blocks until the events come back or the time is up.
    """

    def __init__(self, size: int = PRIMER_WORKERS, limits: pf.PrimerLimits = pf.PRIMER_LIMITS,
                 timeout_s: float = PARSE_TIMEOUT_S, memory_bytes: int = WORKER_MEMORY_BYTES) -> None:
        if size < 1:
            raise ValueError(f"a primer pool needs at least one worker, got {size}")
        self.size, self.limits, self.timeout_s, self.memory_bytes = size, limits, timeout_s, memory_bytes
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closing = threading.Event()
        self.started = 0  # workers started so far

    def pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in (*self._idle, *self._busy)]

    def _spawn(self) -> _Worker:
        worker = _Worker(self.memory_bytes)
        self.started += 1
        return worker

    def _take(self) -> _Worker:
        with self._lock:
            if self._closing.is_set():
                raise PrimerCancelled("the server is stopping")
            for gone in [w for w in self._idle if w.proc.poll() is not None]:  # died while idle (OOM killer...)
                self._idle.remove(gone)
                gone.kill()
            ready = [w for w in self._idle if w.poll_ready()]
            worker = ready[0] if ready else (self._idle[0] if self._idle else self._spawn())
            if worker in self._idle:
                self._idle.remove(worker)
            self._busy.add(worker)
            if not self._idle and len(self._busy) < self.size:  # a warm spare for the next file
                try:
                    self._idle.append(self._spawn())
                except PrimerWorkerUnavailable:
                    pass  # the next file tries again
            return worker

    def _give_back(self, worker: _Worker, keep: bool) -> None:
        with self._lock:
            self._busy.discard(worker)
            if keep and not self._closing.is_set() and len(self._idle) + len(self._busy) < self.size:
                self._idle.append(worker)
                return
        worker.kill()

    def read(self, data: bytes, deadline: float | None = None, stop: threading.Event | None = None) -> np.ndarray:
        """The melody of a primer file, read by a worker within ``deadline``
        (``time.monotonic()``; None: :attr:`timeout_s` after the worker starts
        reading). Raises MusicDecodeError (PrimerTooLarge for a limit),
        PrimerDeadline, PrimerReadTimeout, PrimerCancelled, PrimerWorkerDied,
        PrimerWorkerUnavailable or PrimerWorkerFailed."""
        worker = self._take()
        keep = False
        try:
            # A worker still starting costs the request's deadline, not the read's timeout.
            ready_by = worker.started + START_TIMEOUT_S
            try:
                worker.wait_ready(ready_by if deadline is None else min(deadline, ready_by), stop, self._closing)
            except PrimerWorkerDied as exc:  # not the file's doing: it was never sent
                raise PrimerWorkerUnavailable(f"a primer reader failed to start ({exc})") from None
            except _TimeUp:
                if deadline is not None and deadline < ready_by:
                    keep = True  # it is only slow to start: the next file gets it
                    raise PrimerDeadline("the request's deadline passed before a primer reader was ready") from None
                raise PrimerWorkerUnavailable(f"a primer reader did not start within {START_TIMEOUT_S:g} s") from None
            until = time.monotonic() + self.timeout_s
            by_deadline = deadline is not None and deadline < until
            try:
                header, payload = worker.exchange(data, self.limits, deadline if by_deadline else until, stop, self._closing)
            except _TimeUp:
                if by_deadline:
                    raise PrimerDeadline("the request's deadline passed while its primer was read") from None
                raise PrimerReadTimeout(f"the file took longer than {self.timeout_s:g} s to read: "
                                        "send a shorter or simpler excerpt") from None
            kind = header.get("kind")
            keep = kind in (None, "decode", "limit") and int(header.get("rss", 0)) <= RETIRE_RSS_BYTES
            if kind is None:
                return me.validate(np.frombuffer(payload, dtype="<i8").reshape(-1, 2))
            message = str(header.get("message", ""))
            if kind == "limit":
                raise pf.PrimerTooLarge(message)
            if kind == "decode":
                raise me.MusicDecodeError(message)
            if kind == "memory":
                raise pf.PrimerTooLarge(f"reading it needs more than the {self.memory_bytes >> 20} MiB a primer may use: "
                                        "send a shorter excerpt")
            raise PrimerWorkerFailed(f"the primer reader failed: {message}")
        finally:
            self._give_back(worker, keep)

    def close(self) -> None:
        """Stop every worker (a read in progress ends with PrimerCancelled)."""
        self._closing.set()
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


# -- the worker process ---------------------------------------------------------------
def _read_exactly(stream: IO[bytes], n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _serve_one(data: bytes, limits: pf.PrimerLimits) -> bytes:
    try:
        events = pf.read_primer(data, limits)
    except pf.PrimerTooLarge as exc:
        return _frame({"kind": "limit", "message": str(exc), "rss": _rss_bytes()})
    except me.MusicDecodeError as exc:
        return _frame({"kind": "decode", "message": str(exc), "rss": _rss_bytes()})
    except MemoryError:
        return _frame({"kind": "memory", "message": "out of memory", "rss": _rss_bytes()})
    except Exception as exc:  # noqa: BLE001 - reported to the server, which logs it
        return _frame({"kind": "bug", "message": f"{type(exc).__name__}: {exc}"[:500], "rss": _rss_bytes()})
    payload = np.ascontiguousarray(events, dtype="<i8").tobytes()
    return _frame({"rss": _rss_bytes()}, payload)


def _warm_up() -> None:
    """Import music21's readers now, not on the first request."""
    events = me.from_values([(60, 1.0), (62, 0.5), (None, 1.0), (64, 2.0)])
    for data in (me.to_midi_bytes(events), me.to_musicxml_bytes(events)):
        pf.read_primer(data)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    out = os.fdopen(os.dup(1), "wb", buffering=0)  # the reply channel
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # whatever music21 prints goes nowhere
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    warnings.simplefilter("ignore")
    if args:
        import resource

        limit = int(args[0])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _warm_up()
    out.write(_frame({"ready": True, "pid": os.getpid()}))
    stdin = sys.stdin.buffer
    while True:
        size = _read_exactly(stdin, _FRAME_HEADER)
        if size is None:
            return  # the server closed the pipe (stopped, or killed)
        body = _read_exactly(stdin, int.from_bytes(size, "big"))
        if body is None:
            return
        header, data = _split(body)
        out.write(_serve_one(data, pf.PrimerLimits(**header["limits"])))


if __name__ == "__main__":
    main()
