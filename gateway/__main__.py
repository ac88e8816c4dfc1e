"""``python -m gateway``: serve the HTTP gateway with uvicorn until SIGTERM.

Settings are read once (a bad value: one line on stderr, exit 2), JSON
logging and tracing are set up, and uvicorn serves the app (uvloop,
httptools, no access log). On SIGTERM or SIGINT uvicorn stops accepting,
lets in-flight requests finish within ``SHUTDOWN_GRACE_SECONDS``, runs the
lifespan shutdown (closing every client), and the process exits 0.
"""

from __future__ import annotations

import signal

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from runtime.config import load_or_exit
from runtime.log import configure_logging
from runtime.tracing import setup_tracing


def main() -> None:
    settings = load_or_exit(GatewaySettings.from_env)
    configure_logging("gateway", settings.log_level)
    shutdown_tracing = setup_tracing("gateway", settings.otlp_endpoint)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=True,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)),
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal
    # again so that its default action ends the process. The shutdown is done
    # by then: make that repeat a no-op, so a requested stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        uvicorn.Server(config).run()
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
