"""The whole suite for a benchmark: the stores, then ``tools.dev``'s plan
(the one ``make dev`` and the e2e tests run) on ports and databases of its
own, with the benchmark's settings laid over it.

:func:`stores` starts embedded Redis and SecantusDB (a data folder and a
1 GB cache, as DESIGN.md says) unless ``REDIS_URL`` / ``MONGODB_URI`` are
set; :class:`Suite` runs every process of the plan, each as its own identity
of a PKI of its own (internal gRPC is mutual TLS, as shipped, so the figures
include what it costs), logs in files, and stops them in reverse order.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness.processes import Child, base_env, scrape, wait_for_http, wait_for_port
from bench.harness.redis_stats import redis_with_db
from runtime.config import Env
from tools import pki
from tools.dev import DevPlan, check_ports, dev_plan, isolated_env

_OUTCOME = re.compile(r'outcome="([^"]*)"')
#: What every benchmark stack adds to the plan's environment.
BENCH_SETTINGS = {
    "ENABLE_DEV_OTP_FALLBACK": "true",
    "WALLET_DEPOSIT_WALLETS": "USDT:ethereum:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "DEPOSIT_WEBHOOK_SECRET": "bench-webhook-secret-0123456789",
}


@dataclass(slots=True)
class Stores:
    urls: dict[str, str]
    #: Embedded servers started here, by name (``redis``, ``mongodb``): their pids.
    pids: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def stores(folder: Path, settings: Mapping[str, str] | None = None) -> Iterator[Stores]:
    """REDIS_URL / MONGODB_URI from the environment, or embedded servers
    launched with ``settings`` over it (e.g. a variant's MONGODB_EMBEDDED_NICE)."""
    from runtime.embedded import embedded_servers

    with embedded_servers(folder, {**os.environ, **(settings or {})}) as (urls, started):
        yield Stores(urls, {server.name: server.pid for server in started})


class Suite:
    """Every process of the plan for ``urls`` and ``settings``, as children."""

    def __init__(
        self,
        urls: Mapping[str, str],
        work: Path,
        settings: Mapping[str, str],
        *,
        redis_db: int = 3,
        tag: str = "bench",
        skip: frozenset[str] = frozenset(),
    ) -> None:
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env: dict[str, str] = {
            **base_env(),
            **isolated_env(tag, metrics=("mining", "mining-worker")),
            **BENCH_SETTINGS,
            "MINEQUEST_DATA_DIR": str(work),
            "REDIS_URL": redis_with_db(urls["REDIS_URL"], redis_db),
            "MONGODB_URI": urls["MONGODB_URI"],
            **settings,
        }
        self.plan: DevPlan = dev_plan(Env(self.env))
        self.specs = [spec for spec in self.plan.processes if spec.name not in skip]
        check_ports(self.specs)
        pki.ensure(self.plan.pki_dir, sorted(set(self.plan.identities.values())))
        self.children: dict[str, Child] = {}

    def start(self) -> None:
        """Each process once the one before it is ready (port, or the gateway's health)."""
        try:
            for spec in self.specs:
                child = Child(spec.name, spec.argv, {**self.env, **spec.env}, self.logs)
                self.children[spec.name] = child
                if spec.ready is not None and spec.ready.http_path is not None:
                    wait_for_http(child, spec.ready.port, spec.ready.http_path)
                elif spec.ready is not None:
                    wait_for_port(child, spec.ready.port)
            for spec in self.plan.workers:
                port = int(spec.env["MINING_WORKER_METRICS_PORT"])
                if port and spec.name in self.children:
                    wait_for_port(self.children[spec.name], port)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            child.stop()
        self.children.clear()

    def check_alive(self) -> None:
        for child in self.children.values():
            child.check_alive()

    @property
    def gateway_port(self) -> int:
        return int(self.env["GATEWAY_PORT"])

    @property
    def key_file(self) -> Path:
        return Path(self.plan.spec("auth").env["AUTH_JWT_PRIVATE_KEY_FILE"])

    @property
    def database(self) -> dict[str, str]:
        """Each service's MongoDB database."""
        return {
            name: self.env[f"{name.upper()}_MONGODB_DATABASE"]
            for name in ("auth", "wallet", "mining", "quests")
        }

    @property
    def worker_metrics_ports(self) -> list[int]:
        ports = [int(spec.env["MINING_WORKER_METRICS_PORT"]) for spec in self.plan.workers]
        return [port for port in ports if port]

    def pids(self) -> dict[str, int]:
        return {name: child.pid for name, child in self.children.items()}

    def outcomes(self) -> dict[str, float]:
        """Clicks the mining service answered so far, by outcome (``queued``,
        ``energy_exhausted``, ...: its ``mining_click_requests_total``)."""
        metrics = scrape(int(self.env["MINING_METRICS_PORT"]))
        found: dict[str, float] = {}
        for name, value in metrics.items():
            if name.startswith("mining_click_requests_total{"):
                match = _OUTCOME.search(name)
                outcome = match.group(1) if match else "?"
                found[outcome] = found.get(outcome, 0.0) + value
        return found

    def queued(self) -> float:
        """Clicks the mining service queued so far."""
        return self.outcomes().get("queued", 0.0)

    def processed(self) -> float:
        """Stream entries the workers finished so far."""
        return sum(
            scrape(port).get("mining_worker_processed_total", 0.0)
            for port in self.worker_metrics_ports
        )
