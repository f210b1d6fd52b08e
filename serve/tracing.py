"""OpenTelemetry tracing, optional: one server span per gRPC call.

Off unless an OTLP endpoint is configured (``--trace-endpoint`` or the
standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
variables); then the ``tracing`` extra (``pip install 'seedlock[tracing]'``)
must be installed, else ``seedlock serve`` stops with one line naming it.
Spans go over OTLP/gRPC in batches; the service name is ``seedlock`` unless
``OTEL_SERVICE_NAME`` says otherwise. Off, :func:`start` costs a function call.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import grpc

from seedlock.core.errors import UserError

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
EXTRA_HINT = "install them with: pip install 'seedlock[tracing]'"

_tracer: Any = None  # an opentelemetry Tracer while tracing is on
_provider: Any = None


def endpoint_from(flag: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The OTLP endpoint to export to: the flag, else the standard variables,
    else None (tracing off; also when OTEL_SDK_DISABLED=true)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if flag:
        return flag
    return next((environ[v] for v in ENDPOINT_VARIABLES if environ.get(v)), None)


def configure(endpoint: str | None) -> bool:
    """Export spans to ``endpoint`` (OTLP/gRPC); None leaves tracing off.
    Returns whether it is on. Missing packages are a :class:`UserError`."""
    if not endpoint:
        return False
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise UserError(f"tracing to {endpoint} needs the OpenTelemetry packages ({exc.name} is missing); {EXTRA_HINT}") from None
    use_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return True


def use_processor(processor: Any) -> None:
    """Trace every call through ``processor`` (an SDK SpanProcessor: the OTLP
    batcher, or an in-memory exporter's in tests)."""
    global _tracer, _provider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from seedlock.core.version import VERSION

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "seedlock"),
                                                        "service.version": VERSION}))  # fmt: skip
    provider.add_span_processor(processor)
    _provider, _tracer = provider, provider.get_tracer("seedlock.serve")


def shutdown() -> None:
    """Flush and stop exporting (the server's last step); tracing is off afterwards."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


def start(method: str, metadata: Any = None) -> Any:
    """A server span for a call of the gRPC ``method``, None when tracing is
    off; its parent is the call's ``traceparent`` metadata if it has one. Not
    made current: the call's work runs on other threads, and nothing here makes child spans."""
    if _tracer is None:
        return None
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    carrier = {str(k).lower(): v for k, v in (metadata or ()) if isinstance(v, str)}
    service, _, name = method.lstrip("/").partition("/")
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
    return _tracer.start_span(method.lstrip("/"), context=extract(carrier), kind=SpanKind.SERVER, attributes=attributes)


def finish(current: Any, code: grpc.StatusCode, model: str | None, request_id: str | None, error: str | None) -> None:
    """Record a call's outcome on its span and end it (no-op for None)."""
    if current is None:
        return
    from opentelemetry.trace import Status, StatusCode

    current.set_attribute("rpc.grpc.status_code", code.value[0])
    if model:
        current.set_attribute("seedlock.model", model)
    if request_id:
        current.set_attribute("seedlock.request_id", request_id)
    if code is not grpc.StatusCode.OK:
        current.set_status(Status(StatusCode.ERROR, f"{code.name}: {error}" if error else code.name))
    current.end()
