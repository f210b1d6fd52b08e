"""Per-model-version inference statistics, in the shape of Triton's
``ModelStatistics`` (``grpc_service.proto``): the ModelStatistics RPC and
the Prometheus metrics (Triton's ``nv_inference_*`` names) both read them.

Durations are (count, total nanoseconds). What each one covers here:

* ``success`` / ``fail``: a request from its admission to the model's queue
  until its answer (or error) is set; ``fail`` also counts requests whose
  deadline passed in the queue.
* ``queue``: admission until an instance takes the request.
* ``compute_input``: stacking a batch's rows into one call's tensors;
  ``compute_infer``: the runtime call (a whole pipeline for the captioner and
  composer); ``compute_output``: slicing each request's rows back out.

``inference_count`` counts rows (Triton: inferences, one per batch row);
``execution_count`` counts runtime calls (one per batch). Updated from the
event loop and the instance threads, under one lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns


@dataclass
class BatchStats:
    """Compute durations of the calls of one batch size."""

    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass
class ModelStats:
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0  # wall clock, ms since the epoch, of the last answered request
    batches: dict[int, BatchStats] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def queued(self, ns: int) -> None:
        with self.lock:
            self.queue.add(ns)

    def executed(self, rows: int, input_ns: int, infer_ns: int, output_ns: int) -> None:
        """One runtime call of ``rows`` rows."""
        with self.lock:
            self.execution_count += 1
            self.inference_count += rows
            batch = self.batches.setdefault(rows, BatchStats())
            for total, per_size, ns in (
                (self.compute_input, batch.compute_input, input_ns),
                (self.compute_infer, batch.compute_infer, infer_ns),
                (self.compute_output, batch.compute_output, output_ns),
            ):
                total.add(ns)
                per_size.add(ns)

    def finished(self, ok: bool, ns: int) -> None:
        """A request answered (``ok``) or failed, ``ns`` after its admission."""
        with self.lock:
            (self.success if ok else self.fail).add(ns)
            if ok:
                self.last_inference_ms = time.time_ns() // 1_000_000

    def snapshot(self) -> "ModelStats":
        """A consistent copy, for readers on other threads."""
        with self.lock:
            copy = ModelStats(
                success=Duration(**vars(self.success)), fail=Duration(**vars(self.fail)),
                queue=Duration(**vars(self.queue)), compute_input=Duration(**vars(self.compute_input)),
                compute_infer=Duration(**vars(self.compute_infer)), compute_output=Duration(**vars(self.compute_output)),
                inference_count=self.inference_count, execution_count=self.execution_count,
                last_inference_ms=self.last_inference_ms,
            )  # fmt: skip
            copy.batches = {
                n: BatchStats(Duration(**vars(b.compute_input)), Duration(**vars(b.compute_infer)), Duration(**vars(b.compute_output)))
                for n, b in self.batches.items()
            }
        return copy
