"""The mining-overload drill of docs/runbooks/mining-overload.md, for real and
bounded: Debian's prometheus and prometheus-alertmanager (``make
deploy-tools``) scrape a running suite and route to a webhook receiver
(``tools.alert_webhook``); with the workers stopped, clicks fill a small
queue until ``MiningQueueBackpressure`` fires and reaches the receiver; a
worker is started, the backlog drains and the alert resolves.

The rules are deploy/prometheus/alerts.yml as shipped, with only this alert's
``for:`` shortened; the routes are deploy/alertmanager/alertmanager.yml with
the receivers' URLs pointed at the test's receiver and shorter waits. It
prints what it saw (``pytest -s``), the figures the runbook quotes.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from runtime.embedded import free_port
from tests.e2e.conftest import Stack, start_stack
from tools import alert_webhook

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None,
        reason="prometheus / prometheus-alertmanager not installed: run make deploy-tools",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
ALERT = "MiningQueueBackpressure"
MAX_DEPTH = 40
USERS = 10
#: How long each step may take at most (the whole drill runs in well under a minute).
STEP_SECONDS = 60.0
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = STEP_SECONDS) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def drill_rules(target: Path) -> None:
    """The shipped rules, with the drilled alert's ``for:`` cut to 3 s."""
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    drilled = [
        rule for group in rules["groups"] for rule in group["rules"] if rule.get("alert") == ALERT
    ]
    assert len(drilled) == 1
    drilled[0]["for"] = "3s"
    target.write_text(yaml.safe_dump(rules))


def drill_routes(target: Path, receiver_url: str) -> None:
    """The shipped Alertmanager routes, sent to ``receiver_url``, waiting seconds not minutes."""
    config: dict[str, Any] = yaml.safe_load(
        (ROOT / "deploy/alertmanager/alertmanager.yml").read_text()
    )
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = receiver_url + "/" + receiver["name"]
    for route in (config["route"], *config["route"]["routes"]):
        route.update(group_wait="1s", group_interval="1s")
    target.write_text(yaml.safe_dump(config))


class Process:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@pytest.fixture
def receiver() -> Iterator[tuple[str, alert_webhook.Notifications]]:
    server, notifications = alert_webhook.start(echo=print)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", notifications
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def drill_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    overrides = {
        "MINING_QUEUE_MAX_DEPTH": str(MAX_DEPTH),
        "MINING_METRICS_PORT": str(free_port()),
        "MINING_WORKER_METRICS_PORT": str(free_port()),
        "MINING_RATE_LIMIT_USER_RATE": "1000",
        "MINING_RATE_LIMIT_USER_BURST": "1000",
        "MINING_RATE_LIMIT_IP_RATE": "100000",
        "MINING_RATE_LIMIT_IP_BURST": "100000",
    }
    yield from start_stack(request, tmp_path_factory, "drill", overrides)


def query(prometheus: str, expr: str) -> float | None:
    """One instant query's single value (None: no series)."""
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_the_backpressure_alert_fires_reaches_the_receiver_and_resolves(
    drill_stack: Stack,
    receiver: tuple[str, alert_webhook.Notifications],
    tmp_path: Path,
) -> None:
    stack = drill_stack
    receiver_url, notifications = receiver
    prom_port, am_port = free_port(), free_port()
    prometheus, alertmanager = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}"
    drill_rules(tmp_path / "alerts.yml")
    drill_routes(tmp_path / "alertmanager.yml", receiver_url)
    targets = {
        "gateway": stack.metrics_port,
        "mining": stack.env["MINING_METRICS_PORT"],
        "mining-worker": stack.env["MINING_WORKER_METRICS_PORT"],
    }
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["alerts.yml"],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                    for job, port in targets.items()
                ],
            }
        )
    )
    servers = [
        Process(
            [
                "prometheus-alertmanager",
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            tmp_path / "alertmanager.log",
        ),
        Process(
            [
                "prometheus",
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            tmp_path / "prometheus.log",
        ),
    ]
    try:
        for url in (alertmanager, prometheus):
            wait_for(f"{url} ready", lambda url=url: ready(url))  # type: ignore[misc]
        wait_for("every target up", lambda: query(prometheus, "sum(up)") == len(targets))
        assert query(prometheus, "max(mining_queue_max_depth)") == MAX_DEPTH

        # 1. No worker drains the stream; clicks fill it until the service refuses them.
        stack.child("mining-worker").stop()
        started = time.monotonic()
        statuses: dict[int, int] = {}
        keys: list[tuple[str, str]] = []
        with stack.client() as http:
            tokens = [stack.token_for(f"drill-{n}") for n in range(USERS)]
            for n in range(3 * MAX_DEPTH):
                token, key = tokens[n % USERS], str(uuid.uuid4())
                answer = http.post(
                    "/api/mining/click",
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                )
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                if answer.status_code == 202:
                    keys.append((token, key))
                if answer.status_code == 503:
                    assert answer.json()["error"] == "queue_full"
                    assert "retry-after" in answer.headers
        assert statuses.get(202, 0) >= MAX_DEPTH * 0.9, statuses
        assert statuses.get(503, 0) > 0, f"the queue never filled: {statuses}"

        # 2. The alert fires and Alertmanager delivers it to the warning receiver.
        [(path, firing)] = wait_for(
            "the firing notification", lambda: notifications.received(ALERT, "firing")[:1]
        )
        fired_after = time.monotonic() - started
        assert path == "/tickets"
        assert firing["labels"]["severity"] == "warning"
        assert "docs/runbooks/mining-overload.md" in firing["annotations"]["description"]

        # 3. Scale the workers back up: the backlog drains and the alert resolves.
        scaled = time.monotonic()
        stack.spawn("mining-worker-2", ["services.mining", "worker"])
        wait_for(
            "the backlog drained",
            lambda: query(prometheus, 'max(mining_click_queue_depth{job="mining-worker"})') == 0,
        )
        drained_after = time.monotonic() - scaled
        wait_for("the resolved notification", lambda: notifications.received(ALERT, "resolved"))
        resolved_after = time.monotonic() - scaled
        with stack.client() as http:
            token, key = keys[0]
            done = http.get(
                "/api/mining/click/status",
                params={"key": key},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert done.status_code == 200, done.text
        print(
            f"\ndrill: clicks {statuses}; MAX_DEPTH {MAX_DEPTH}; fired and delivered "
            f"{fired_after:.1f}s after the flood began; drained {drained_after:.1f}s and "
            f"resolved {resolved_after:.1f}s after a worker started"
        )
    finally:
        for server in servers:
            server.stop()


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
