"""``python -m tools.alert_webhook [--host H] [--port P]``: a webhook receiver
for Alertmanager that logs what it is sent.

Each notification (Alertmanager's webhook JSON, version 4) becomes one JSON
line per alert on stdout: receiver path, status (firing or resolved),
alertname, severity, summary and when it started or ended. It is what
compose's ``alert-webhook`` container runs, what the runbook's drill watches,
and what the drill test (``tests/e2e/test_ops_drill.py``) starts in-process
with :func:`start`. Replace it with a pager or chat bridge in production.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Notifications", "main", "start"]

#: The largest notification read (Alertmanager batches alerts per group).
MAX_BODY_BYTES = 4 * 1024 * 1024


class Notifications:
    """Every alert received so far, as ``(path, alert)`` pairs, thread-safe."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._alerts: list[tuple[str, dict[str, Any]]] = []
        self._echo = echo

    def add(self, path: str, payload: dict[str, Any]) -> None:
        alerts = [each for each in payload.get("alerts", []) if isinstance(each, dict)]
        with self._lock:
            self._alerts.extend((path, alert) for alert in alerts)
        if self._echo is not None:
            for alert in alerts:
                labels, notes = alert.get("labels", {}), alert.get("annotations", {})
                line = {
                    "receiver": path,
                    "status": alert.get("status"),
                    "alertname": labels.get("alertname"),
                    "severity": labels.get("severity"),
                    "summary": notes.get("summary"),
                    "startsAt": alert.get("startsAt"),
                    "endsAt": alert.get("endsAt"),
                }
                self._echo(json.dumps(line))

    def received(self, alertname: str, status: str) -> list[tuple[str, dict[str, Any]]]:
        """The ``(path, alert)`` pairs of one alert in one status."""
        with self._lock:
            return [
                (path, alert)
                for path, alert in self._alerts
                if alert.get("labels", {}).get("alertname") == alertname
                and alert.get("status") == status
            ]


def _handler(notifications: Notifications) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY_BYTES:
                self.send_error(413 if length else 411)
                return
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                self.send_error(400, "not JSON")
                return
            if not isinstance(payload, dict):
                self.send_error(400, "not a JSON object")
                return
            notifications.add(self.path, payload)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per alert is printed instead

    return Handler


def start(
    host: str = "127.0.0.1", port: int = 0, echo: Callable[[str], None] | None = None
) -> tuple[ThreadingHTTPServer, Notifications]:
    """Serve in a background thread; returns the server (``server_address`` has
    the bound port; ``shutdown()`` stops it) and what it receives."""
    notifications = Notifications(echo)
    server = ThreadingHTTPServer((host, port), _handler(notifications))
    threading.Thread(target=server.serve_forever, name="alert-webhook", daemon=True).start()
    return server, notifications


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.alert_webhook")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=9095, help="port to bind")
    args = parser.parse_args(argv)
    try:
        server = ThreadingHTTPServer(
            (args.host, args.port), _handler(Notifications(lambda line: print(line, flush=True)))
        )
    except OSError as error:
        print(f"alert_webhook: cannot listen on {args.port}: {error.strerror}", file=sys.stderr)
        return 2
    print(f"alert_webhook: listening on {args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
