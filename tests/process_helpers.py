"""Helpers for tests that run ``seedlock serve`` as a subprocess: its address
once it listens, and its memory from /proc."""

from __future__ import annotations

import selectors
import subprocess
import time
from pathlib import Path
from typing import IO


def read_address(proc: subprocess.Popen, log: IO[str] | Path | None = None, timeout: float = 120.0) -> str:
    """The ``host:port`` of the server's "listening on" line (stdout must be a
    text pipe). On failure the error shows the end of ``log`` (its stderr) if given."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
            if "listening on" in line:
                return line.rsplit(" ", 1)[-1].strip()
    if isinstance(log, Path):
        said = log.read_text()
    elif log is not None:
        log.seek(0)
        said = log.read()
    elif proc.poll() is not None and proc.stderr is not None:
        said = proc.stderr.read()
    else:
        said = ""
    raise AssertionError(f"server did not start (exit {proc.poll()}): {said[-3000:] or 'timeout'}")


def status_bytes(pid: int, field: str) -> int:
    """A size field of /proc/PID/status in bytes (VmRSS, VmHWM: the peak, VmSize)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def reset_peak(pid: int) -> int:
    """Reset the process's peak RSS (VmHWM) to its RSS now; returns that RSS in bytes."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return status_bytes(pid, "VmRSS")
