"""Admission control: the one bound on how many requests a model (or the
model-free ``Fingerprints.Compare``) takes in, and how many compute at once."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from seedlock.serve.errors import deadline_exceeded, exhausted


class Admission:
    """``max_inflight`` requests admitted (over it: RESOURCE_EXHAUSTED at once,
    so load past the bound never piles up in an unbounded queue), of which
    ``concurrency`` compute at once (more threads than cores contending for the
    GIL and the ONNX Runtime thread pool lower throughput instead of raising it)."""

    def __init__(self, label: str, max_inflight: int, concurrency: int) -> None:
        self.label = label
        self.max_inflight = max_inflight
        self._slots = threading.BoundedSemaphore(max_inflight) if max_inflight > 0 else threading.Semaphore(0)
        self._gate = threading.BoundedSemaphore(max(1, concurrency))

    @contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[None]:
        """Admit one request, then wait up to ``timeout`` seconds (the request's
        deadline; None: no limit) for its turn to compute."""
        if not self._slots.acquire(blocking=False):
            raise exhausted(f"{self.label} already has {self.max_inflight} requests in flight (the server's limit); retry shortly")
        try:
            # No deadline means no limit, never an error: gRPC reports "no deadline"
            # as a time_remaining() past what a lock's timeout can hold.
            unbounded = timeout is None or timeout >= threading.TIMEOUT_MAX
            if not (self._gate.acquire() if unbounded else self._gate.acquire(timeout=max(0.0, timeout))):
                raise deadline_exceeded(f"the request's deadline passed while it waited for {self.label}")
            try:
                yield
            finally:
                self._gate.release()
        finally:
            self._slots.release()
