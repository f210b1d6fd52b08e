"""Prometheus metrics on ``--metrics-port`` (``GET /metrics``), in Triton's
names and labels so existing Triton dashboards work, plus seedlock's own.

Read at scrape time from the schedulers' statistics
(:mod:`seedlock.serve.statistics`, the same numbers ModelStatistics answers),
on the server's event loop, where the registry changes: nothing is counted twice.

Triton's (counters, labels ``model``, ``version``; durations in microseconds):
``nv_inference_request_success``, ``nv_inference_request_failure``,
``nv_inference_count`` (rows), ``nv_inference_exec_count`` (model calls),
``nv_inference_request_duration_us`` (successful requests, admission to
answer), ``nv_inference_queue_duration_us``,
``nv_inference_compute_input_duration_us``,
``nv_inference_compute_infer_duration_us``,
``nv_inference_compute_output_duration_us``; and the gauge
``nv_inference_pending_request_count`` (requests waiting in the queue).

seedlock's (gauges): ``seedlock_model_ready{model,version}`` (1 ready, 0
refused), ``seedlock_model_refused{model,version}`` (1 per refused version;
the reason is in ListModels, not a label, to keep cardinality small;
version "" when the model folder itself was refused),
``seedlock_batching_proof{model,version,mode}`` (1 for the batching mode the
load-time proof chose: dynamic, padded or off),
``seedlock_bit_exact_with_export{model,version}`` (1 when the served graph
reproduced the export's reference outputs bit for bit),
``seedlock_queue_size{model,version}`` (requests queued now) and
``seedlock_max_queue_size{model,version}`` (its limit).
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from seedlock.serve.repository import Registry
from seedlock.serve.security import BearerTokenAuth
from seedlock.serve.statistics import ModelStats

LABELS = ("model", "version")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the format Triton answers in

# name -> (Triton's help text, the statistic it reads)
TRITON_COUNTERS: dict[str, tuple[str, object]] = {
    "nv_inference_request_success": ("Number of successful inference requests, all batch sizes", lambda s: s.success.count),
    "nv_inference_request_failure": ("Number of failed inference requests, all batch sizes", lambda s: s.fail.count),
    "nv_inference_count": ("Number of inferences performed (does not include cached requests)", lambda s: s.inference_count),
    "nv_inference_exec_count": ("Number of model executions performed (does not include cached requests)", lambda s: s.execution_count),
    "nv_inference_request_duration_us": ("Cumulative inference request duration in microseconds (includes cached requests)",
                                         lambda s: s.success.ns // 1000),
    "nv_inference_queue_duration_us": ("Cumulative inference queuing duration in microseconds (includes cached requests)",
                                       lambda s: s.queue.ns // 1000),
    "nv_inference_compute_input_duration_us": ("Cumulative compute input duration in microseconds (does not include cached requests)",
                                               lambda s: s.compute_input.ns // 1000),
    "nv_inference_compute_infer_duration_us": ("Cumulative compute inference duration in microseconds (does not include cached requests)",
                                               lambda s: s.compute_infer.ns // 1000),
    "nv_inference_compute_output_duration_us": ("Cumulative inference compute output duration in microseconds (does not include cached requests)",
                                                lambda s: s.compute_output.ns // 1000),
}  # fmt: skip


class ServerCollector:
    """A prometheus_client collector over the registry's live state."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        reg = self.registry
        schedulers = sorted(reg.schedulers.items())
        stats: list[tuple[list[str], ModelStats]] = [([name, str(v)], s.stats.snapshot()) for (name, v), s in schedulers]
        for name, (doc, read) in TRITON_COUNTERS.items():
            # Triton's sample names have no "_total": the family is built by hand, not with CounterMetricFamily.
            family = Metric(name, doc, "counter")
            for labels, snap in stats:
                family.add_sample(name, dict(zip(LABELS, labels)), read(snap))  # type: ignore[operator]
            yield family
        pending = GaugeMetricFamily("nv_inference_pending_request_count",
                                    "Instantaneous number of pending requests awaiting execution per-model.", labels=LABELS)  # fmt: skip
        queued = GaugeMetricFamily("seedlock_queue_size", "Requests waiting in a model version's queue now", labels=LABELS)
        queue = GaugeMetricFamily("seedlock_max_queue_size", "Requests a model version may queue before refusing more (max_queue_size)",
                                  labels=LABELS)  # fmt: skip
        proof = GaugeMetricFamily("seedlock_batching_proof", "1 for the batching mode the load-time proof chose for a model version",
                                  labels=(*LABELS, "mode"))  # fmt: skip
        exact = GaugeMetricFamily("seedlock_bit_exact_with_export",
                                  "1 when the served graph reproduced the export's reference outputs bit for bit", labels=LABELS)  # fmt: skip
        for (name, version), scheduler in schedulers:
            labels = [name, str(version)]
            pending.add_metric(labels, scheduler.queued)
            queued.add_metric(labels, scheduler.queued)
            serving = reg.serving.get((name, version))
            if serving is None:
                continue
            queue.add_metric(labels, serving.max_queue)
            proof.add_metric([*labels, serving.batching.mode], 1)
            exact.add_metric(labels, 1 if serving.bit_exact else 0)
        ready = GaugeMetricFamily("seedlock_model_ready", "1 for a model version that serves, 0 for one refused at load", labels=LABELS)
        refused = GaugeMetricFamily("seedlock_model_refused", "1 for each model version refused at load (the reason: seedlock.v1.Models/ListModels)",
                                    labels=LABELS)  # fmt: skip
        for name, versions in sorted(reg.runtimes.items()):
            for version in sorted(versions):
                ready.add_metric([name, str(version)], 1)
        for name, why in sorted(reg.refused.items()):
            for version in sorted(why, key=lambda v: -1 if v is None else v):
                label = "" if version is None else str(version)
                ready.add_metric([name, label], 0)
                refused.add_metric([name, label], 1)
        yield from (pending, queued, queue, proof, exact, ready, refused)


def _escape(text: str, quote: bool = False) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def exposition(metrics: Iterator[Metric]) -> bytes:
    """Prometheus' text format (0.0.4) as Triton writes it. prometheus_client's
    own writer names a counter's TYPE line ``<name>_total``, which would not
    match Triton's sample names (no ``_total``) and leave them untyped."""
    lines: list[str] = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {_escape(metric.documentation)}")
        lines.append(f"# TYPE {metric.name} {metric.type}")
        for sample in metric.samples:
            labels = ",".join(f'{k}="{_escape(str(v), quote=True)}"' for k, v in sample.labels.items())
            lines.append(f"{sample.name}{{{labels}}} {floatToGoString(sample.value)}" if labels else f"{sample.name} {floatToGoString(sample.value)}")
    return ("\n".join(lines) + "\n").encode()


def metrics_app(registry: Registry, auth: BearerTokenAuth | None = None) -> Starlette:
    """``GET /metrics`` in Prometheus' text format; with bearer tokens configured it needs one too."""
    collector = ServerCollector(registry)

    async def metrics(request: Request) -> Response:
        if auth is not None:
            why = auth.accepts([("authorization", v) for v in request.headers.getlist("authorization")])
            if why is not None:
                return JSONResponse({"error": why}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        # On the event loop: the registry is changed there only, so a scrape sees one consistent state.
        return Response(exposition(collector.collect()), media_type=CONTENT_TYPE)

    return Starlette(routes=[Route("/metrics", metrics)])
