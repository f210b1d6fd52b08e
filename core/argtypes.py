"""argparse ``type=`` converters shared by every command, so a bad value is
rejected the same way everywhere (``usage: … error: argument --steps: must be >= 1``).

Integer ranges name the wire format's limits where the server's own limit is
per model (the server then answers INVALID_ARGUMENT with the model's limit):
no value a converter accepts can fail to encode, and none is silently wrapped.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Callable

# Ranges of the protobuf fields the clients fill.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
MAX_PORT = 65535


def _shown(text: str, limit: int = 40, quote: bool = True) -> str:
    """``text`` for a message, quoted and cut to a short prefix (a pasted file stays one line)."""
    shown = repr(text[:limit]) if quote else text[:limit]
    return shown if len(text) <= limit else f"{shown}… ({len(text)} characters)"


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not an integer") from None


def int_range(minimum: int, maximum: int) -> Callable[[str], int]:
    """A converter accepting integers from ``minimum`` to ``maximum``, both included."""

    def parse(text: str) -> int:
        value = _integer(text)
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be from {minimum} to {maximum}, got {_shown(str(value), 24, quote=False)}")
        return value

    return parse


def int_at_least(minimum: int) -> Callable[[str], int]:
    """A converter accepting integers >= ``minimum``."""

    def parse(text: str) -> int:
        value = _integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
# A model version as the task services carry it (int64); 0 means the latest.
model_version = int_range(0, INT64_MAX)
# A request seed (uint64 on the wire).
seed = int_range(0, UINT64_MAX)
# A TCP port; 0 lets the system pick a free one.
port = int_range(0, MAX_PORT)


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a number") from None
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {_shown(text)}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a number") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {_shown(text)}")
    return value


def rgb_floats(text: str) -> list[float]:
    """``R,G,B``: three comma-separated numbers (normalization mean or std)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not three comma-separated numbers") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"need 3 comma-separated values (R,G,B), got {len(values)}")
    return values


def positive_int_list(text: str) -> list[int]:
    """``1,4,16`` -> [1, 4, 16]; every value >= 1, at least one."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants integers like 1,4,16, got {_shown(text)}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"wants integers >= 1 like 1,4,16, got {_shown(text)}")
    return values


def seed_list(text: str) -> list[int]:
    """``999,500,1`` -> [999, 500, 1]: distinct seeds from 0 to 2**32 - 1, at least one."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants seeds like 999,500,1, got {_shown(text)}") from None
    if not values or min(values) < 0 or max(values) > 2**32 - 1:
        raise argparse.ArgumentTypeError(f"wants seeds from 0 to {2**32 - 1} like 999,500,1, got {_shown(text)}")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"names a seed twice: {_shown(text)}")
    return values


# -- output paths: checked when the command line is read, before any work ------
def _creatable_in(folder: Path, shown: str) -> None:
    """The nearest existing folder above (or at) ``folder`` must be a folder we
    may create entries in; the missing folders below it are created on write."""
    probe = folder.absolute()
    try:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        is_dir = probe.is_dir()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot check {shown}: {exc.strerror or exc}") from None
    if not is_dir:
        raise argparse.ArgumentTypeError(f"cannot write {shown}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {shown}: no permission to create files in {probe}")


def output_file(text: str) -> str:
    """A file the command will write (created with its missing parent folders):
    refused when it names a folder, sits under a file, or may not be written."""
    if not text:
        raise argparse.ArgumentTypeError("needs a file name")
    path, shown = Path(text), _shown(text, 200)
    try:
        is_dir, exists = path.is_dir(), path.exists()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot check {shown}: {exc.strerror or exc}") from None
    if is_dir:
        raise argparse.ArgumentTypeError(f"{shown} is a folder; name the file to write")
    if exists:
        if not os.access(path, os.W_OK):
            raise argparse.ArgumentTypeError(f"cannot write {shown}: permission denied")
        return text
    _creatable_in(path.parent, shown)
    return text


def output_dir(text: str) -> str:
    """A folder the command will write files into (created if missing)."""
    if not text:
        raise argparse.ArgumentTypeError("needs a folder name")
    path, shown = Path(text), _shown(text, 200)
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot check {shown}: {exc.strerror or exc}") from None
    if exists and not is_dir:
        raise argparse.ArgumentTypeError(f"{shown} is a file; name a folder to write into")
    if is_dir:
        if not os.access(path, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"cannot write into {shown}: permission denied")
        return text
    _creatable_in(path.parent, shown)
    return text


def float_range(minimum: float, maximum: float) -> Callable[[str], float]:
    """A converter accepting finite numbers from ``minimum`` to ``maximum``, both included."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{_shown(text)} is not a number") from None
        if not (math.isfinite(value) and minimum <= value <= maximum):
            raise argparse.ArgumentTypeError(f"must be from {minimum:g} to {maximum:g}, got {_shown(text, 24, quote=False)}")
        return value

    return parse
