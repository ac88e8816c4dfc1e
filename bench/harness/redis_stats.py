"""Redis as the benchmarks see it: another database on the same server,
``INFO commandstats`` counts, and ``MONITOR`` to tell round trips (commands a
client sends) from commands run inside Lua scripts."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter

#: Commands a client sends when it opens a connection, not per request.
CONNECTION_SETUP = frozenset({"hello", "select", "client", "auth", "ping"})


def redis_with_db(url: str, db: int) -> str:
    """``url`` pointing at database ``db`` (same server)."""
    head, _, tail = url.partition("://")
    hostpart, _, rest = tail.partition("/")
    query = ""
    if "?" in rest:
        query = "?" + rest.split("?", 1)[1]
    elif "?" in hostpart:
        hostpart, query = hostpart.split("?", 1)
        query = "?" + query
    return f"{head}://{hostpart}/{db}{query}"


class RedisAdmin:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, decode_responses=True)
        pool_kwargs = self.client.connection_pool.connection_kwargs
        self.host = str(pool_kwargs.get("host", "127.0.0.1"))
        self.port = int(pool_kwargs.get("port", 6379))
        self.password = pool_kwargs.get("password")

    def version(self) -> str:
        return str(self.client.info("server").get("redis_version", "?"))

    def commandstats(self) -> Counter[str]:
        stats = self.client.info("commandstats")
        return Counter(
            {
                name.removeprefix("cmdstat_"): int(values["calls"])
                for name, values in stats.items()
                if name.startswith("cmdstat_") and name != "cmdstat_info"
            }
        )


class MonitorCounter:
    """Counts what Redis runs, per database, told apart: sent by a client (a
    round trip) or run inside a Lua script. Uses MONITOR, which slows Redis, so
    only during warm-ups."""

    LINE = re.compile(rb'^\+[0-9.]+ \[(\d+) ([^\]]+)\] "([^"]*)"')

    def __init__(self, admin: RedisAdmin) -> None:
        self.sock = socket.create_connection((admin.host, admin.port), timeout=5)
        if admin.password:
            self.sock.sendall(f"AUTH {admin.password}\r\n".encode())
            self._expect_ok()
        self.sock.sendall(b"MONITOR\r\n")
        self._expect_ok()
        self.sock.settimeout(0.2)
        self.counts: Counter[tuple[int, bool, str]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _expect_ok(self) -> None:
        reply = self.sock.recv(64)
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"Redis answered {reply!r} to MONITOR")

    def _read(self) -> None:
        pending = b""
        while not self._stop.is_set():
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            lines = (pending + chunk).split(b"\r\n")
            pending = lines.pop()
            for line in lines:
                match = self.LINE.match(line)
                if match:
                    db, origin, command = match.groups()
                    self.counts[(int(db), origin == b"lua", command.decode().lower())] += 1

    def stop(self) -> Counter[tuple[int, bool, str]]:
        time.sleep(0.2)  # let the last lines arrive
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        return self.counts
