"""JSON-lines logging, configured once at a process's entry point.

Every record carries ``service`` and, where known, ``request_id``,
``user_id`` and ``idempotency_key`` from :mod:`runtime.context`. Modules use
``logging.getLogger(__name__)`` and pass structured fields with ``extra=``.
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
import traceback
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any

from runtime import context

# Standard LogRecord attributes, plus uvicorn's terminal-coloured duplicate message.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service
        self._second = -1
        self._second_text = ""

    def timestamp(self, created: float) -> str:
        """``created`` as ISO 8601 UTC with milliseconds (``…T19:21:00.123+00:00``);
        the text of the second is kept, since many lines share it."""
        second, millis = divmod(int(created * 1000), 1000)
        if second != self._second:
            self._second = second
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._second_text}.{millis:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.timestamp(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, var in (
            ("request_id", context.request_id),
            ("user_id", context.user_id),
            ("idempotency_key", context.idempotency_key),
        ):
            value = var.get()
            if value is not None:
                payload[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(payload, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Install JSON logging on the root logger (call once, at the entry point).

    The lines carry no source file, thread or process fields, so the record
    does not collect them (the logging HOWTO's "Optimization" switches): a
    caller lookup walks the stack on every line, an access line per request.
    """
    logging._srcfile = None  # documented: no findCaller()
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": JsonFormatter, "service": service}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
            "root": {"level": level, "handlers": ["stderr"]},
            "loggers": {
                "uvicorn.access": {"level": "WARNING"},
                "pymongo": {"level": "WARNING"},
            },
        }
    )


class Throttle:
    """Lets a repeated log line through at most once per ``interval`` seconds
    per key, so an outage at thousands of requests a second logs a line every
    few seconds (saying how many it held back), not thousands."""

    def __init__(self, interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def allow(self, key: Hashable) -> int | None:
        """``None``: hold this one back. Otherwise log it: the number held back since."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)
