"""Giving memory back to the operating system after large requests.

ONNX Runtime's CPU sessions run without their memory arena
(:func:`seedlock.core.sessions.session_options`), so what a large request
allocates is freed into glibc's malloc when the request ends. ``seedlock
serve`` sets malloc up for a server (:func:`configure_malloc`): one heap
(``M_ARENA_MAX`` 1; ``malloc_trim`` cannot return the top of a thread's own
heap), and no giving memory back on every ``free`` (a fixed 32 MB
``M_MMAP_THRESHOLD``, a 1 GB ``M_TRIM_THRESHOLD``), so back-to-back large
calls reuse their pages instead of faulting them in again (a third of a
large batch's time otherwise). :class:`MemoryTrimmer` asks malloc to return it (``malloc_trim``) once
calls pause and the process is ``threshold`` bytes over its size after
loading: on a thread of its own, never on the event loop, when no call has
been in flight for ``quiet_s`` (or after ``max_wait_s`` of calls without a
pause), at most once every ``interval_s``. Without glibc (musl, macOS) it
does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from typing import Callable

log = logging.getLogger("seedlock.serve")

DEFAULT_THRESHOLD_BYTES = 64 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident set size (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)``, or None on a C library without it."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
_TUNABLES = ("MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def configure_malloc() -> bool:
    """Set glibc's malloc up as the module's docstring says, unless the
    environment already tunes it (``MALLOC_ARENA_MAX`` and the like win).
    Call it first thing in a server process, before threads start: a thread
    keeps the heap it first allocated from. True when applied."""
    if any(name in os.environ for name in _TUNABLES) or _malloc_trim() is None:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30))
    return all(mallopt(param, value) == 1 for param, value in settings)


class MemoryTrimmer:
    """Returns freed heap memory once calls end (see the module's docstring).
    Calls report to it through :meth:`started` and :meth:`ended` (cheap,
    from any thread); a stream that stays open (a health Watch) reports only
    its end, so it never keeps memory from being returned."""

    def __init__(self, threshold_bytes: int = DEFAULT_THRESHOLD_BYTES, quiet_s: float = 0.2,
                 max_wait_s: float = 30.0, interval_s: float = 1.0, rounds: int = 5) -> None:  # fmt: skip
        self.threshold = threshold_bytes
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self.interval_s = interval_s
        self.rounds = rounds
        self.baseline = 0
        self.trims = 0  # how many times memory was trimmed
        self._trim = _malloc_trim()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._trim is None:
            log.info("this C library has no malloc_trim; freed memory is returned as malloc sees fit")
            return
        self.baseline = resident_bytes()
        self._thread = threading.Thread(target=self._run, name="seedlock-memory", daemon=True)
        self._thread.start()

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def ended(self, counted: bool = True) -> None:
        """A call ended (``counted``: one that reported :meth:`started`)."""
        if counted:
            with self._lock:
                self._in_flight -= 1
        self._ended.set()

    def close(self) -> None:
        self._closed.set()
        self._ended.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            self._ended.wait()
            if self._closed.is_set():
                return
            first = time.monotonic()
            # Trim when calls pause (none in flight, none ended for quiet_s):
            # trimming between back-to-back large calls would only make the
            # next one fault its pages in again. Under load without a pause,
            # trim every max_wait_s all the same.
            while True:
                self._ended.clear()
                if self._closed.wait(self.quiet_s):
                    return
                busy = self._ended.is_set() or self._in_flight > 0
                if not busy or time.monotonic() - first >= self.max_wait_s:
                    break
            # What the last calls freed may still be on its way out (an answer
            # being sent after its handler returned): while the process stays
            # over the threshold, trim again a few times, unless calls resume.
            for _ in range(self.rounds):
                trimmed = self.trim_if_grown()
                if self._closed.wait(self.interval_s):
                    return
                if not trimmed or self._ended.is_set():
                    break

    def trim_if_grown(self) -> bool:
        """Trim when the process is over its size after loading by the threshold."""
        before = resident_bytes()
        if self._trim is None or before - self.baseline <= self.threshold:
            return False
        started = time.perf_counter()
        self._trim()
        self.trims += 1
        log.debug("malloc_trim: resident %d MB -> %d MB in %.1f ms (%d MB after loading)", before >> 20,
                  resident_bytes() >> 20, (time.perf_counter() - started) * 1e3, self.baseline >> 20)  # fmt: skip
        return True
