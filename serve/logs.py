"""Log formats for ``seedlock serve`` and its access log.

``--log-format json`` writes one JSON object per line on stderr: ``ts`` (UTC,
ISO 8601), ``level``, ``logger``, ``message``, and any fields the record
carries (``extra=``), so a log shipper needs no parsing rules. ``text`` is the
classic one-line format with the extra fields appended as ``key=value``.

The access log (logger ``seedlock.access``, INFO) gets one line per call,
written by :mod:`seedlock.serve.handlers` when the call ends: method, model,
status, duration_ms, request_id, peer, and for a failed call its message.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Mapping

ACCESS = logging.getLogger("seedlock.access")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, the extra fields, and exc_info as ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic line, with a record's extra fields appended as ``key=value``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        shown = getattr(record, "_in_message", ())  # fields the message already says
        fields = {k: v for k, v in extra_fields(record).items() if k not in shown}
        if not fields:
            return line
        return line + " " + " ".join(f"{k}={json.dumps(v, default=str) if isinstance(v, str) and (' ' in v or not v) else v}"
                                     for k, v in fields.items())


def configure(log_format: str = "text", access_log: bool = True) -> None:
    """Format every handler of the root logger (``seedlock.cli`` installed
    them) as ``log_format``; silence the access log unless ``access_log``."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING)
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    for handler in root.handlers:
        handler.setFormatter(formatter)
    ACCESS.setLevel(logging.INFO if access_log else logging.WARNING)


def log_access(method: str, status: str, duration_ms: float, model: str | None, request_id: str | None,
               peer: str | None, error: str | None = None) -> None:  # fmt: skip
    """The access line of one finished call (INFO on ``seedlock.access``)."""
    fields: Mapping[str, Any] = {
        "method": method, "model": model, "status": status, "duration_ms": round(duration_ms, 3),
        "request_id": request_id, "peer": peer,
    }  # fmt: skip
    if error:
        fields = {**fields, "error": error}
    extra = {**fields, "_in_message": ("method", "status", "duration_ms")}
    # makeRecord + handle: Logger.info's search of the stack for the caller costs as much as the rest
    ACCESS.handle(ACCESS.makeRecord(ACCESS.name, logging.INFO, __file__, 0, "%s %s %.1f ms", (method, status, duration_ms),
                                    None, "log_access", extra))  # fmt: skip
