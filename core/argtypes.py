"""argparse ``type=`` converters shared by every command, so a bad value is
rejected the same way everywhere (``usage: … error: argument --steps: must be >= 1``)."""

from __future__ import annotations

import argparse
import math
from typing import Callable


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


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


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def rgb_floats(text: str) -> list[float]:
    """``R,G,B``: three comma-separated numbers (normalization mean or std)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not three comma-separated numbers") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"need 3 comma-separated values (R,G,B), got {len(values)}")
    return values


def positive_int_list(text: str) -> list[int]:
    """``1,4,16`` -> [1, 4, 16]; every value >= 1, at least one."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants integers like 1,4,16, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"wants integers >= 1 like 1,4,16, got {text!r}")
    return values
