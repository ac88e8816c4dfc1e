"""OpenTelemetry tracing, switched on by ``OTEL_EXPORTER_OTLP_ENDPOINT``.

When the endpoint is set, spans are exported over OTLP — gRPC by default, or
HTTP with ``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`` (the endpoint is then
the collector's base URL, ``/v1/traces`` is added) — and every grpc.aio server
and client and every redis-py client in the process is instrumented. MongoDB
spans come from :class:`runtime.store_monitoring.CommandMonitor`, the
gateway's HTTP server spans from :mod:`gateway.middleware.tracing`. When the
endpoint is unset this module does nothing and costs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from runtime.config import Env, load_or_exit

log = logging.getLogger(__name__)

#: ``OTEL_EXPORTER_OTLP_PROTOCOL`` values this process can export with.
PROTOCOLS = frozenset({"grpc", "http/protobuf"})
HTTP_TRACES_PATH = "/v1/traces"


#: Set once this process exports spans (read by :func:`consumer_span`).
_ON = threading.Event()


def otlp_protocol(env: Env | None = None) -> str:
    """``OTEL_EXPORTER_OTLP_PROTOCOL``: ``grpc`` (default) or ``http/protobuf``."""
    return (env or Env()).choice("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", PROTOCOLS)


def span_exporter(endpoint: str, protocol: str) -> Any:
    """The OTLP span exporter for ``protocol``, sending to ``endpoint``."""
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        url = endpoint.rstrip("/")
        if not url.endswith(HTTP_TRACES_PATH):
            url += HTTP_TRACES_PATH
        return HttpExporter(endpoint=url)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


def setup_tracing(service: str, endpoint: str | None) -> Callable[[], None]:
    """Instrument gRPC and Redis and export spans; returns a shutdown function.

    Call before creating servers, channels or Redis clients. A bad
    ``OTEL_EXPORTER_OTLP_PROTOCOL`` stops the process with one line naming it.
    """
    if not endpoint:
        return lambda: None
    protocol = load_or_exit(otlp_protocol)
    from opentelemetry import trace
    from opentelemetry.instrumentation.grpc import (
        GrpcAioInstrumentorClient,
        GrpcAioInstrumentorServer,
    )
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"minequest-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter(endpoint, protocol)))
    trace.set_tracer_provider(provider)
    GrpcAioInstrumentorServer().instrument()  # type: ignore[no-untyped-call]
    GrpcAioInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument(tracer_provider=provider)
    _ON.set()
    log.info("tracing on", extra={"otlp_endpoint": endpoint, "otlp_protocol": protocol})
    return provider.shutdown


def current_traceparent() -> str:
    """The W3C ``traceparent`` of the current span ("" when none is recording),
    to carry a trace across a queue. Every click asks, so a process that does
    not trace answers at once."""
    if not _ON.is_set():
        return ""
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent", "")


@contextlib.contextmanager
def consumer_span(name: str, trace_parents: Iterable[str]) -> Iterator[None]:
    """A CONSUMER span around work taken off a queue (nothing when tracing is
    off). One message's work continues that message's trace; a batch of
    several is its own trace, linked to each message's (OpenTelemetry's
    messaging convention), and what it calls (MongoDB, the wallet) are its
    children."""
    if not _ON.is_set():
        yield
        return
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    contexts = [extract({"traceparent": parent}) for parent in set(trace_parents) if parent]
    spans = [trace.get_current_span(context).get_span_context() for context in contexts]
    valid = [(ctx, span) for ctx, span in zip(contexts, spans, strict=True) if span.is_valid]
    parent = valid[0][0] if len(valid) == 1 else None
    tracer = trace.get_tracer("minequest")
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        links=[trace.Link(span) for _, span in valid],
        attributes={"messaging.batch.message_count": len(valid)},
    ):
        yield
