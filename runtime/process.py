"""What every long-running process sets up first: JSON logging, its Prometheus
port, tracing and its garbage collector (:mod:`runtime.heap`); gRPC servers
through ``runtime.grpc_server.serve``, and workers that serve no gRPC, such as
the mining worker."""

from __future__ import annotations

from collections.abc import Callable

from runtime.heap import tune_gc
from runtime.log import configure_logging
from runtime.metrics import start_metrics_server
from runtime.tracing import setup_tracing

__all__ = ["MetricsPortUnavailable", "start_process"]


class MetricsPortUnavailable(Exception):
    """The metrics port cannot be bound; the message names the variable."""


def start_process(
    name: str,
    *,
    log_level: str,
    metrics_port: int | None,
    metrics_host: str,
    metrics_variable: str,
    otlp_endpoint: str | None,
    gc_threshold: int,
) -> Callable[[], None]:
    """Configure logging, serve ``/metrics`` (``None``: off), start tracing and
    tune the garbage collector (``gc_threshold``: ``PYTHON_GC_THRESHOLD``);
    returns the function that shuts tracing down. Call before creating
    servers or channels, so they are instrumented."""
    configure_logging(name, log_level)
    tune_gc(gc_threshold)
    try:
        start_metrics_server(metrics_port, metrics_host)
    except OSError as error:
        raise MetricsPortUnavailable(
            f"{metrics_variable}: cannot listen on {metrics_port}: {error.strerror}"
        ) from None
    return setup_tracing(name, otlp_endpoint)
