"""Reading a model repository's files without hanging on them.

Only regular files are read: a FIFO where a manifest should be would block
the read forever, a device or a socket would never end or fail late. The
file is checked before it is opened (``stat``), opened without blocking
(``O_NONBLOCK``), and checked again on the opened descriptor. Every read
runs on a helper thread and has a stall timeout, so a hung network mount
fails the one model that lives there, with the reason, instead of start-up.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
from pathlib import Path
from typing import Callable, Iterator

READ_STALL_S = 30.0  # a read that returns nothing for this long has hung
CHUNK_BYTES = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


class UnreadableFile(OSError):
    """A file that is not a regular file, is too large, or stalled while read."""


def describe(path: str | Path, exc: OSError) -> str:
    """Why ``path`` could not be read, for a refusal: the file's own words for
    :class:`UnreadableFile`, else the system's (Permission denied, …)."""
    if isinstance(exc, UnreadableFile):
        return str(exc)
    return f"{path}: cannot be read ({exc.strerror or exc})"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):  # fmt: skip
        if test(mode):
            return name
    return "special file"


def open_regular(path: str | Path) -> int:
    """A descriptor on ``path``, which must be a regular file (a symbolic link to one is fine)."""
    before = os.stat(path)
    if not stat.S_ISREG(before.st_mode):
        raise UnreadableFile(f"{path} is a {_kind(before.st_mode)}, not a regular file")
    fd = os.open(path, _OPEN_FLAGS)
    after = os.fstat(fd)
    if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise UnreadableFile(f"{path} changed while it was opened")
    return fd


def chunks(path: str | Path, stall_s: float = READ_STALL_S, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The bytes of the regular file ``path`` (:func:`open_regular`), read
    ahead on a helper thread (:func:`read_ahead`)."""
    return read_ahead(lambda: open_regular(path), str(path), stall_s, size)


def read_ahead(open_fd: Callable[[], int], what: str, stall_s: float = READ_STALL_S,
               size: int = CHUNK_BYTES) -> Iterator[bytes]:  # fmt: skip
    """The bytes of the descriptor ``open_fd()`` returns (opened, read and
    closed on a helper thread). A step that stalls for ``stall_s`` raises
    :class:`UnreadableFile` naming ``what``; the helper is left to its
    read (a daemon thread) and stops when the read returns."""
    blocks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def put(item: bytes | BaseException) -> bool:
        while not stop.is_set():
            try:
                blocks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            fd = open_fd()
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            put(exc)
            return
        try:
            while put(block := os.read(fd, size)) and block:
                pass
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            put(exc)
        finally:
            os.close(fd)

    threading.Thread(target=read, name="seedlock-read", daemon=True).start()
    try:
        while True:
            try:
                item = blocks.get(timeout=stall_s)
            except queue.Empty:
                raise UnreadableFile(f"{what}: no data for {stall_s:g} s (a hung mount?)") from None
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()


def read_bytes(path: str | Path, limit: int, stall_s: float = READ_STALL_S) -> bytes:
    """The whole regular file ``path``, refused when over ``limit`` bytes."""
    data = bytearray()
    for block in chunks(path, stall_s):
        data += block
        if len(data) > limit:
            raise UnreadableFile(f"{path} is over {limit} bytes")
    return bytes(data)


def read_text(path: str | Path, limit: int, stall_s: float = READ_STALL_S) -> str:
    """``path`` as UTF-8 text (:func:`read_bytes`); ``UnicodeDecodeError`` when it is not."""
    return read_bytes(path, limit, stall_s).decode("utf-8")
