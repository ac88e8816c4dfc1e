"""OpenTelemetry tracing, switched on by ``OTEL_EXPORTER_OTLP_ENDPOINT``.

When the endpoint is set, spans are exported over OTLP/gRPC and every
grpc.aio server and client in the process is instrumented. When it is unset
this module does nothing and costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def setup_tracing(service: str, endpoint: str | None) -> Callable[[], None]:
    """Instrument gRPC and export spans; returns a shutdown function.

    Call before creating servers or channels.
    """
    if not endpoint:
        return lambda: None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.grpc import (
        GrpcAioInstrumentorClient,
        GrpcAioInstrumentorServer,
    )
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"minequest-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    GrpcAioInstrumentorServer().instrument()  # type: ignore[no-untyped-call]
    GrpcAioInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
    log.info("tracing on", extra={"otlp_endpoint": endpoint})
    return provider.shutdown
