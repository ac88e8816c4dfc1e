"""``python -m gateway``: serve the HTTP gateway with uvicorn until SIGTERM.

With ``GATEWAY_WORKERS`` above 1 (default: the core count) this process
runs that many gateway processes on the port and keeps them running
(:mod:`gateway.workers`); each of them is what follows.

Settings are read once (a bad value: one line on stderr, exit 2), JSON
logging, tracing and the internal metrics port (``GATEWAY_METRICS_PORT``) are
set up, and uvicorn serves the app (uvloop, httptools with a bounded request
head, no access log). uvicorn's own proxy-header handling is off: only
``TRUSTED_PROXIES`` decides who the client is (see
:mod:`gateway.protection.clientip`). On SIGTERM or SIGINT uvicorn stops accepting,
lets in-flight requests finish within ``SHUTDOWN_GRACE_SECONDS``, runs the
lifespan shutdown (closing every client), and the process exits 0.
"""

from __future__ import annotations

import signal

import uvicorn

from gateway import workers
from gateway.app import create_app
from gateway.http_server import limited_protocol
from gateway.settings import GatewaySettings
from runtime.config import load_or_exit
from runtime.log import configure_logging
from runtime.process import MetricsPortUnavailable, start_process


def main() -> None:
    settings = load_or_exit(GatewaySettings.from_env)
    worker = workers.is_worker()
    if settings.workers > 1 and not worker:
        configure_logging("gateway", settings.log_level)
        raise SystemExit(workers.supervise(settings))
    if worker:
        workers.die_with_parent()
    try:
        shutdown_tracing = start_process(
            "gateway",
            log_level=settings.log_level,
            # The parent serves every worker's metrics (multiprocess mode).
            metrics_port=None if worker else settings.metrics_port,
            metrics_host=settings.metrics_host,
            metrics_variable="GATEWAY_METRICS_PORT",
            otlp_endpoint=settings.otlp_endpoint,
            gc_threshold=settings.gc_threshold,
        )
    except MetricsPortUnavailable as error:
        raise SystemExit(str(error)) from None
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=limited_protocol(settings.max_header_bytes, settings.max_header_count),
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)),
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal
    # again so that its default action ends the process. The shutdown is done
    # by then: make that repeat a no-op, so a requested stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        server = uvicorn.Server(config)
        if worker:
            server.run(sockets=[workers.listening_socket(settings.host, settings.port)])
        else:
            server.run()
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
