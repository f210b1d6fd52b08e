"""Triton's system shared-memory extension: a client on the same host
registers a POSIX shared-memory object (``shm_open``'s key, under
``/dev/shm``) as a named region, then names the region (and an offset and
size in it) on an input or output instead of sending the bytes over gRPC.

Everything a client sends here is hostile input: region names and keys are
checked (a key is one file name under ``/dev/shm``: no ``/`` past the
leading one, no ``..``), offsets and sizes are checked against the region
and the region against the object's size. The server reads and writes
regions with ``pread``/``pwrite`` on the object's descriptor, not through
a mapping: a client that truncates or unlinks its object makes a later
request fail with INVALID_ARGUMENT (a short read, a size check) instead of
taking the server down with SIGBUS, as an access past the end of a shrunk
mapping would. Reading into the request's own array costs one copy, the one
a mapping would need anyway to hand the model its own tensor.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from dataclasses import dataclass

import grpc
import numpy as np

from seedlock.serve.errors import ServeError, echo, invalid, not_found

SHM_ROOT = "/dev/shm"
MAX_REGIONS = 1024  # each holds a file descriptor
MAX_NAME_CHARS = 128
_KEY = re.compile(r"^/?[^/\x00]{1,255}$")


@dataclass(frozen=True)
class Region:
    name: str
    key: str
    offset: int
    byte_size: int
    fd: int


def _check_name(name: str) -> None:
    if not name:
        raise invalid("the shared-memory region name is empty; name the region")
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise invalid(f"shared-memory region name {echo(name)} must be at most {MAX_NAME_CHARS} printable characters")


def _path_of(key: str) -> str:
    """The file under /dev/shm a POSIX shared-memory key names; INVALID_ARGUMENT
    for a key that is not one plain file name there."""
    if not _KEY.match(key) or key.lstrip("/") in (".", ".."):
        raise invalid(
            f"shared-memory key {echo(key)} is not a POSIX shared-memory name: one name of up to 255 characters, "
            "optionally after a leading '/', with no other '/' (as shm_open takes it)"
        )
    return os.path.join(SHM_ROOT, key.lstrip("/"))


class SystemSharedMemory:
    """The registered regions of this server (shared by every connection, as in Triton)."""

    def __init__(self) -> None:
        self._regions: dict[str, Region] = {}
        self._lock = threading.Lock()

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        _check_name(name)
        path = _path_of(key)
        if byte_size <= 0:
            raise invalid(f"shared-memory region {name!r}: byte_size must be positive, got {byte_size}")
        with self._lock:
            if name in self._regions:
                raise ServeError(grpc.StatusCode.ALREADY_EXISTS,
                                 f"shared-memory region {name!r} is already registered; unregister it first")  # fmt: skip
            if len(self._regions) >= MAX_REGIONS:
                raise ServeError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"this server already has {MAX_REGIONS} shared-memory regions; unregister some")  # fmt: skip
            try:
                fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError as exc:
                raise invalid(f"cannot open shared-memory key {echo(key)}: {exc.strerror}; create it with shm_open first") from None
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise invalid(f"shared-memory key {echo(key)} is not a shared-memory object")
                if offset + byte_size > info.st_size:
                    raise invalid(
                        f"shared-memory region {name!r}: offset {offset} + byte_size {byte_size} is past the end of "
                        f"key {echo(key)} ({info.st_size} bytes)"
                    )
            except BaseException:
                os.close(fd)
                raise
            self._regions[name] = Region(name, key, offset, byte_size, fd)

    def status(self, name: str = "") -> list[Region]:
        with self._lock:
            if not name:
                return list(self._regions.values())
            region = self._regions.get(name)
        if region is None:
            raise not_found(f"no shared-memory region {echo(name)} is registered")
        return [region]

    def unregister(self, name: str = "") -> None:
        """Drop one region (every one when ``name`` is empty); an unknown name is not an error (Triton)."""
        with self._lock:
            names = [name] if name else list(self._regions)
            dropped = [self._regions.pop(n) for n in names if n in self._regions]
        for region in dropped:
            os.close(region.fd)  # a read still running on it holds its own duplicate (see _span)

    def close(self) -> None:
        self.unregister("")

    def _span(self, name: str, offset: int, byte_size: int, what: str) -> tuple[int, int]:
        """A duplicate descriptor of the region ``name`` and the absolute file
        offset of ``byte_size`` bytes at ``offset`` in it, checked to lie in the
        region and in the object as it is now."""
        with self._lock:
            region = self._regions.get(name)
            if region is None:
                raise invalid(f"{what}: no shared-memory region {echo(name)} is registered")
            fd = os.dup(region.fd)  # stays valid if the region is unregistered meanwhile
        try:
            if offset < 0 or byte_size < 0 or offset + byte_size > region.byte_size:
                raise invalid(
                    f"{what}: offset {offset} + byte_size {byte_size} is outside shared-memory region {name!r} "
                    f"({region.byte_size} bytes)"
                )
            start = region.offset + offset
            if os.fstat(fd).st_size < start + byte_size:
                raise invalid(f"{what}: shared-memory region {name!r} shrank below its registered size; register it again")
        except BaseException:
            os.close(fd)
            raise
        return fd, start

    def check(self, name: str, offset: int, byte_size: int, what: str) -> None:
        """INVALID_ARGUMENT unless ``byte_size`` bytes at ``offset`` lie in region ``name``."""
        fd, _ = self._span(name, offset, byte_size, what)
        os.close(fd)

    def read(self, name: str, offset: int, byte_size: int, dtype: np.dtype, shape: list[int], what: str) -> np.ndarray:
        """The tensor at ``offset`` in region ``name`` (a copy; the client may reuse the region at once)."""
        want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if want != byte_size:
            raise invalid(f"{what}: shape {shape} of {dtype.name} needs {want} bytes; shared_memory_byte_size is {byte_size}")
        fd, start = self._span(name, offset, byte_size, what)
        try:
            array = np.empty(shape, dtype=dtype)
            got = os.preadv(fd, [memoryview(array).cast("B")], start) if byte_size else 0
        finally:
            os.close(fd)
        if got != byte_size:
            raise invalid(f"{what}: shared-memory region {name!r} shrank while being read; register it again")
        return array

    def write(self, name: str, offset: int, byte_size: int, data: np.ndarray, what: str) -> None:
        """Write ``data`` (little-endian, row-major) at ``offset`` in region ``name``."""
        if data.nbytes > byte_size:
            raise invalid(
                f"{what}: the output is {data.nbytes} bytes; shared_memory_byte_size {byte_size} is too small to hold it"
            )
        fd, start = self._span(name, offset, data.nbytes, what)
        try:
            buffer = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<"), copy=False)
            wrote = os.pwrite(fd, memoryview(buffer).cast("B"), start) if data.nbytes else 0
        finally:
            os.close(fd)
        if wrote != data.nbytes:
            raise invalid(f"{what}: could not write the whole output to shared-memory region {name!r}")


def shm_parameters(parameters, what: str) -> tuple[str, int, int] | None:  # noqa: ANN001 - a protobuf map
    """(region, offset, byte_size) from a tensor's Triton parameters
    (``shared_memory_region``, ``shared_memory_offset``, ``shared_memory_byte_size``), or None."""
    region = parameters.get("shared_memory_region")
    if region is None:
        return None
    if region.WhichOneof("parameter_choice") != "string_param":
        raise invalid(f"{what}: shared_memory_region must be a string parameter")
    values = []
    for key, required in (("shared_memory_offset", False), ("shared_memory_byte_size", True)):
        p = parameters.get(key)
        if p is None:
            if required:
                raise invalid(f"{what}: shared_memory_region is given without {key}")
            values.append(0)
            continue
        kind = p.WhichOneof("parameter_choice")
        if kind not in ("int64_param", "uint64_param"):
            raise invalid(f"{what}: {key} must be an integer parameter")
        value = getattr(p, kind)
        if value < 0:
            raise invalid(f"{what}: {key} {value} is negative")
        values.append(int(value))
    return region.string_param, values[0], values[1]
