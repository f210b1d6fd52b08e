"""Signals while ``seedlock serve`` starts: SIGTERM exits 0 at once.

Until the server listens no request is in flight, so there is nothing to
drain: loading the rest of the repository would only delay the stop that
was asked for (for good, if a read hangs). ``python -m seedlock`` and the
``seedlock`` command install :func:`exit_while_starting` before anything
heavy is imported; ``seedlock serve`` swaps in its draining handler once
the server is up. Imports nothing beyond the standard library.
"""

from __future__ import annotations

import os
import signal
from typing import Sequence

# Exit statuses: SIGTERM is the orchestrator's ordinary "stop"; Ctrl-C is an interruption (128 + SIGINT).
_EXIT = {signal.SIGTERM: 0, signal.SIGINT: 130}


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand of a ``seedlock`` command line (its first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _exit_now(signum: int, _frame: object) -> None:
    name = signal.Signals(signum).name
    try:  # a bare write: the signal may have come in the middle of a logging call
        os.write(2, f"seedlock serve: {name} during start-up; exiting before serving\n".encode())
    except OSError:
        pass
    os._exit(_EXIT.get(signal.Signals(signum), 0))


def exit_while_starting() -> None:
    """SIGTERM (exit 0) and SIGINT (exit 130) end the process at once, without a traceback."""
    signal.signal(signal.SIGTERM, _exit_now)
    signal.signal(signal.SIGINT, _exit_now)
