"""One scheduler per model, between the RPC handlers and the runtime, as in Triton.

A request is admitted to the model's bounded queue or refused at once
(RESOURCE_EXHAUSTED); it waits there as an asyncio future, holding no thread.
``instances`` workers take requests off the queue and run them on the model's
own threads, one call at a time each:

* :meth:`ModelScheduler.infer` — rows for the ``model`` graph. With batching
  on, queued requests of the same tensor shapes are stacked on the batch axis
  into one call of at most ``max_batch_size`` rows ("dynamic"), or padded to
  exactly ``max_batch_size`` rows ("padded"); the load-time proof
  (:mod:`seedlock.serve.proofs`) decided which, if either, keeps every row's
  bytes what they are alone.
* :meth:`ModelScheduler.call` — a whole pipeline (a melody, a beam search)
  that occupies one instance.

A request whose deadline has passed is answered DEADLINE_EXCEEDED when it
reaches the front and never runs; one whose caller has gone is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import numpy as np

from seedlock.serve.errors import deadline_exceeded, exhausted, invalid, unavailable
from seedlock.serve.statistics import ModelStats

log = logging.getLogger("seedlock.serve")
T = TypeVar("T")
RunGraph = Callable[[dict[str, np.ndarray], list[str]], list[np.ndarray]]
MODES = ("dynamic", "padded", "off")


@dataclass(frozen=True)
class Batching:
    """How a model's requests are grouped (see the module docstring)."""

    mode: str = "off"
    max_batch_size: int = 0  # rows per call; 0: no limit (a model without a batch axis)
    max_queue_delay_s: float = 0.0
    preferred: tuple[int, ...] = ()
    # The row shapes (see row_shapes) the proof covered: requests of other
    # shapes run alone, since kernels may split work differently by shape.
    shapes: frozenset = frozenset()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"batching mode {self.mode!r} is not one of {MODES}")

    def check_rows(self, rows: int, label: str) -> None:
        """INVALID_ARGUMENT for a request of more rows than one call may run."""
        if self.max_batch_size and rows > self.max_batch_size:
            limit = self.max_batch_size
            raise invalid(f"a batch of {rows} is over {label}'s max_batch_size of {limit} (config.pbtxt); send at most {limit} per request")


@dataclass
class Counters:
    """What the scheduler has done, for ListModels and statistics."""

    requests: int = 0
    calls: int = 0
    rows: int = 0
    refused: int = 0
    expired: int = 0
    cancelled: int = 0
    failed: int = 0
    largest_call: int = 0


@dataclass(eq=False)
class _Request:
    future: asyncio.Future
    deadline: float | None  # time.monotonic(); None: no limit
    feeds: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    rows: int = 0
    key: tuple = ()
    job: Callable[[threading.Event], Any] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    admitted_ns: int = field(default_factory=time.perf_counter_ns)


def row_shapes(feeds: dict[str, np.ndarray]) -> tuple:
    """What must match for requests to share a call: each input's name, dtype
    and shape without the batch axis."""
    return tuple((name, a.dtype.str, a.shape[1:]) for name, a in sorted(feeds.items()))


def deadline_from(remaining: float | None) -> float | None:
    """An absolute ``time.monotonic()`` deadline from gRPC's ``time_remaining()``
    (None, or a huge value, when the caller set none: no limit, never an error)."""
    if remaining is None or remaining >= threading.TIMEOUT_MAX:
        return None
    return time.monotonic() + remaining


def expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


class ModelScheduler:
    """The queue and instances of one model (or of the model-free Compare)."""

    def __init__(self, label: str, run: RunGraph | None, batching: Batching, instances: int, max_queue: int) -> None:
        if instances < 1:
            raise ValueError(f"{label}: instances must be at least 1, got {instances}")
        self.label = label
        self.run = run
        self.batching = batching
        self.instances = instances
        self.max_queue = max(1, max_queue)
        self.counters = Counters()
        self.stats = ModelStats()  # Triton's statistics (ModelStatistics, metrics)
        self._queue: deque[_Request] = deque()
        self._pool = ThreadPoolExecutor(max_workers=instances, thread_name_prefix="seedlock-instance")
        self._workers: list[asyncio.Task] = []
        self._wakeup: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._busy = 0
        self._running: set[_Request] = set()
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Start the instance workers on the running event loop."""
        self._wakeup, self._idle = asyncio.Event(), asyncio.Event()
        self._idle.set()
        self._workers = [asyncio.create_task(self._worker(), name=f"{self.label}#{i}") for i in range(self.instances)]

    async def drain(self, timeout: float | None) -> bool:
        """Admit nothing more; let queued and running requests finish (up to
        ``timeout`` seconds), then stop the workers. True when all finished.
        Past the grace period, what still waits or runs is answered
        UNAVAILABLE and a running job is told to stop at its next step."""
        self._closing = True
        assert self._wakeup is not None and self._idle is not None
        self._wakeup.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            finished = True
        except asyncio.TimeoutError:
            finished = False
        for request in (*self._queue, *self._running):
            request.stop.set()
            if not request.future.done():
                request.future.set_exception(unavailable(f"the server stopped before {self.label} could finish this request"))
        self._queue.clear()
        if not finished:  # a worker awaiting a long call would otherwise hold shutdown
            for worker in self._workers:
                worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        return finished

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- admission -----------------------------------------------------------------
    def _admit(self, request: _Request) -> None:
        if self._closing:
            raise unavailable("the server is shutting down; retry on another replica")
        if len(self._queue) >= self.max_queue:
            self.counters.refused += 1
            raise exhausted(f"{self.label} already has {len(self._queue)} requests queued (its max_queue_size); retry shortly")
        self.counters.requests += 1
        self._queue.append(request)
        assert self._wakeup is not None and self._idle is not None
        self._idle.clear()
        self._wakeup.set()

    async def _wait(self, request: _Request) -> Any:
        try:
            return await request.future
        except asyncio.CancelledError:  # the caller went away (or its deadline passed)
            request.stop.set()  # a running job stops at its next step
            if request in self._queue:  # a queued one frees its place at once
                self._queue.remove(request)
                self.counters.cancelled += 1
                if not self._queue and not self._busy and self._idle is not None:
                    self._idle.set()
            raise

    async def infer(self, feeds: dict[str, np.ndarray], outputs: list[str], deadline: float | None) -> list[np.ndarray]:
        """Run the ``model`` graph on ``feeds`` (rows on axis 0), batched with
        other queued requests when the model's batching allows it."""
        rows = {int(a.shape[0]) for a in feeds.values() if a.ndim}
        if len(rows) != 1:
            raise invalid(f"every input of {self.label} must have the same batch size (axis 0); got {sorted(rows)}")
        (n,) = rows
        self.batching.check_rows(n, self.label)
        key = (tuple(outputs), row_shapes(feeds))
        request = _Request(asyncio.get_running_loop().create_future(), deadline, feeds, list(outputs), n, key)
        self._admit(request)
        return await self._wait(request)

    async def call(self, job: Callable[[threading.Event], T], deadline: float | None) -> T:
        """Run ``job(stop)`` on one instance. ``stop`` is set when the caller
        has gone; a long job checks it (and its deadline) between steps."""
        request = _Request(asyncio.get_running_loop().create_future(), deadline, job=job)
        self._admit(request)
        return await self._wait(request)

    # -- the instances -------------------------------------------------------------
    async def _next(self) -> _Request | None:
        assert self._wakeup is not None
        while not self._queue:
            if self._closing:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._queue.popleft()

    def _batchable(self, request: _Request) -> bool:
        b = self.batching
        return request.job is None and b.mode != "off" and b.max_batch_size > 1 and request.key[1] in b.shapes

    async def _gather(self, group: list[_Request]) -> None:
        """Add to ``group`` (its first request taken) the queued requests that
        fit one call with it (same tensor shapes, rows up to max_batch_size),
        waiting up to the queue delay for more while the batch is under its
        largest preferred size."""
        first, limit = group[0], self.batching.max_batch_size
        rows = first.rows
        want = max(self.batching.preferred, default=limit)
        waited_until = time.monotonic() + self.batching.max_queue_delay_s
        while True:
            for request in list(self._queue):
                if rows >= limit:
                    break
                if request.job is None and request.key == first.key and rows + request.rows <= limit:
                    self._queue.remove(request)
                    self._running.add(request)
                    group.append(request)
                    rows += request.rows
            left = waited_until - time.monotonic()
            if rows >= want or left <= 0 or self._closing:
                return
            assert self._wakeup is not None
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except asyncio.TimeoutError:
                pass

    def _live(self, request: _Request) -> bool:
        if request.future.done():  # cancelled by its caller
            self.counters.cancelled += 1
            return False
        if expired(request.deadline):
            self.counters.expired += 1
            self.stats.finished(False, time.perf_counter_ns() - request.admitted_ns)
            request.future.set_exception(deadline_exceeded(f"the request's deadline passed while it was queued for {self.label}; it was not run"))
            return False
        return True

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._idle is not None
        while True:
            # An idle worker must not keep its last call's tensors alive (a
            # large batch's inputs and outputs) until the next request comes.
            first = group = live = results = r = result = None  # type: ignore[assignment]
            first = await self._next()
            if first is None:
                return
            self._busy += 1
            group = [first]
            self._running.add(first)
            try:
                if self._batchable(first):
                    await self._gather(group)
                live = [r for r in group if self._live(r)]
                if not live:
                    continue
                taken = time.perf_counter_ns()
                for r in live:
                    self.stats.queued(taken - r.admitted_ns)
                try:
                    if first.job is not None:
                        results = [await loop.run_in_executor(self._pool, self._run_job, first)]
                    else:
                        results = await loop.run_in_executor(self._pool, self._run_rows, live)
                except Exception as exc:  # noqa: BLE001 - each caller maps it to a status
                    self.counters.failed += len(live)
                    for r in live:
                        self.stats.finished(False, time.perf_counter_ns() - r.admitted_ns)
                        if not r.future.done():
                            r.future.set_exception(exc)
                    continue
                for r, result in zip(live, results):
                    self.stats.finished(True, time.perf_counter_ns() - r.admitted_ns)
                    if not r.future.done():
                        r.future.set_result(result)
            finally:
                self._running.difference_update(group)
                self._busy -= 1
                if not self._queue and not self._busy:
                    self._idle.set()

    def _run_job(self, request: _Request) -> Any:
        """A whole pipeline (on an instance thread): one execution of one inference."""
        assert request.job is not None
        start = time.perf_counter_ns()
        result = request.job(request.stop)
        self.stats.executed(1, 0, time.perf_counter_ns() - start, 0)
        return result

    def _run_rows(self, group: list[_Request]) -> list[list[np.ndarray]]:
        """One graph call for the group (on an instance thread); each request's rows back."""
        assert self.run is not None
        started = time.perf_counter_ns()
        first = group[0]
        total = sum(r.rows for r in group)
        pad = self.batching.max_batch_size - total if self.batching.mode == "padded" and self._batchable(first) else 0
        if len(group) == 1 and not pad:
            feeds = first.feeds
        else:
            feeds = {}
            for name in first.feeds:
                parts = [r.feeds[name] for r in group]
                if pad > 0:
                    parts.append(np.zeros((pad, *parts[0].shape[1:]), parts[0].dtype))
                feeds[name] = np.concatenate(parts)
        stacked = time.perf_counter_ns()
        outputs = self.run(feeds, first.outputs)
        ran = time.perf_counter_ns()
        self.counters.calls += 1
        self.counters.rows += total
        self.counters.largest_call = max(self.counters.largest_call, total)
        if len(group) == 1 and not pad:
            results = [list(outputs)]
        else:
            results, start = [], 0
            for r in group:
                results.append([np.asarray(o)[start:start + r.rows] for o in outputs])
                start += r.rows
        self.stats.executed(total, stacked - started, ran - stacked, time.perf_counter_ns() - ran)
        return results
