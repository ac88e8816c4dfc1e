"""The gateway's rate limits and idempotency, in process, on a real Redis.

The routes here are the gateway's own test rows (a handler that counts the
calls that reach it, standing in for a service), so every answer checked is
the gateway's doing. Per-user scopes, a killed gateway and a Redis stopped
under a running gateway are covered end to end in tests/e2e/test_protection.py.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.responses import JSONResponse, Response

from gateway.app import create_app
from gateway.protection import metrics as protection_metrics
from gateway.routing import Endpoint, Incoming
from gateway.settings import GatewaySettings
from runtime.config import Env
from runtime.embedded import EmbeddedRedis, free_port
from runtime.log import Throttle

POLICIES = """
[[policy]]
name = "tiny"
routes = ["GET /t/limited"]
tiers = [
  { name = "ip", key = "ip", rate = 3, period = "1m" },
  { name = "everyone", key = "global", rate = 100, period = "1m" },
]

[[policy]]
name = "probe"
routes = ["GET /t/shadowed"]
shadow = true
tiers = [{ name = "ip", key = "ip", rate = 1, period = "1m" }]

[[policy]]
name = "strict"
routes = ["POST /t/pay"]
fail = "closed"
tiers = [{ name = "ip", key = "ip", rate = 1000, period = "1s" }]

[[policy]]
name = "lenient"
routes = ["GET /t/open"]
tiers = [{ name = "ip", key = "ip", rate = 1000, period = "1s" }]
"""


class Calls:
    """What reached the 'service' behind the test routes."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.statuses: dict[str, list[int]] = {}


def rows(calls: Calls) -> tuple[Endpoint, ...]:
    async def pay(incoming: Incoming) -> Response:
        body = (await incoming.body()).json()  # 400 for JSON it cannot take
        calls.count["pay"] += 1
        await asyncio.sleep(0.05)  # a slow service widens the race window
        return JSONResponse(
            {"n": calls.count["pay"], "echo": body},
            status_code=201,
            headers={"Location": f"/t/pay/{calls.count['pay']}"},
        )

    def scripted(name: str) -> Callable[[Incoming], Any]:
        async def handler(incoming: Incoming) -> Response:
            calls.count[name] += 1
            status = calls.statuses[name].pop(0)
            return JSONResponse({"n": calls.count[name]}, status_code=status)

        return handler

    async def echo_key(incoming: Incoming) -> Response:
        return JSONResponse({"key": incoming.idempotency_key})

    async def plain(incoming: Incoming) -> Response:
        calls.count[incoming.request.url.path] += 1
        return JSONResponse({"ok": True})

    async def act(incoming: Incoming) -> Response:
        item = incoming.request.path_params["item"]
        calls.count[item] += 1
        return JSONResponse({"acted_on": item, "n": calls.count[item]})

    def row(method: str, path: str, handler: Any, **extra: Any) -> Endpoint:
        return Endpoint(
            method, path, operation_id=path, summary=path, handler=handler, tag="t", **extra
        )

    return (
        row("POST", "/t/pay", pay, idempotency_required=True),
        row("POST", "/t/scripted", scripted("scripted")),
        row("GET", "/t/limited", plain),
        row("GET", "/t/shadowed", plain),
        row("GET", "/t/open", plain),
        row("POST", "/t/plain", plain),
        row("POST", "/t/echo-key", echo_key),
        row("POST", "/t/items/{item}/act", act, idempotency_required=True),
    )


@asynccontextmanager
async def gateway(
    tmp_path: Path, redis_url: str | None, calls: Calls, **environ: str
) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(textwrap.dedent(POLICIES))
    env = {
        "AUTH_SERVICE_ADDR": f"127.0.0.1:{free_port()}",
        "RATE_LIMIT_POLICY_FILE": str(policy_file),
        # 200 requests at once on a 2-core machine wait for the event loop
        # longer than the production 50 ms; the timeout tests set their own.
        "GUARD_REDIS_TIMEOUT_MS": "2000",
        **({"REDIS_URL": redis_url} if redis_url else {}),
        **environ,
    }
    app = create_app(GatewaySettings.from_env(Env(env)), rows(calls))
    async with app.router.lifespan_context(app) as state:

        def client(ip: str = "192.0.2.10") -> httpx.AsyncClient:
            async def with_state(scope: Any, receive: Any, send: Any) -> None:
                scope["state"] = dict(state or {})
                await app(scope, receive, send)

            transport = httpx.ASGITransport(app=with_state, client=(ip, 40000))
            return httpx.AsyncClient(transport=transport, base_url="http://gateway")

        yield client


@pytest.fixture
async def http(
    tmp_path: Path, redis_url: str, redis: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Calls]]:
    calls = Calls()
    async with gateway(tmp_path, redis_url, calls) as client, client() as each:
        yield each, calls


def problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    return body


# --- idempotency ------------------------------------------------------------


async def test_a_required_key_is_required(http: tuple[httpx.AsyncClient, Calls]) -> None:
    client, calls = http
    body = problem(await client.post("/t/pay", json={}), 400, "idempotency_key_required")
    assert body["field"] == "Idempotency-Key"
    assert calls.count["pay"] == 0


@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "has space", "tab\tinside", "caf\u00e9", '"unterminated\\x"', '"a"b"'],
)
async def test_a_malformed_key_is_a_400(http: tuple[httpx.AsyncClient, Calls], key: str) -> None:
    client, calls = http
    headers = {b"Idempotency-Key": key.encode()}
    problem(await client.post("/t/pay", json={}, headers=headers), 400, "invalid_idempotency_key")
    assert calls.count["pay"] == 0


async def test_first_answer_then_replay(http: tuple[httpx.AsyncClient, Calls]) -> None:
    client, calls = http
    first = await client.post("/t/pay", json={"amount": "5"}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    assert first.headers["x-idempotency"] == "MISS"
    # the same object serialised differently is the same request
    again = await client.post(
        "/t/pay",
        content=b'{ "amount" : "5" }',
        headers={"Idempotency-Key": '"k-1"', "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["x-idempotency"] == "HIT"
    assert again.json() == first.json() == {"n": 1, "echo": {"amount": "5"}}
    assert again.headers["location"] == first.headers["location"] == "/t/pay/1"
    assert again.headers["content-type"] == "application/json"
    assert calls.count["pay"] == 1


async def test_200_concurrent_requests_with_one_key_reach_the_service_once(
    http: tuple[httpx.AsyncClient, Calls],
) -> None:
    client, calls = http
    headers = {"Idempotency-Key": "launch-day"}
    answers = await asyncio.gather(
        *(client.post("/t/pay", json={"amount": "1"}, headers=headers) for _ in range(200))
    )
    assert calls.count["pay"] == 1
    statuses = Counter(
        (a.status_code, a.headers.get("x-idempotency"), a.json().get("error")) for a in answers
    )
    assert statuses[(201, "MISS", None)] == 1
    assert set(statuses) <= {
        (201, "MISS", None),
        (201, "HIT", None),
        (409, None, "idempotency_key_in_flight"),
    }
    for answer in answers:
        if answer.status_code == 409:
            assert answer.headers["retry-after"] == "1"
    # once it is finished, every retry is a replay of the one answer
    replay = await client.post("/t/pay", json={"amount": "1"}, headers=headers)
    assert (replay.status_code, replay.headers["x-idempotency"]) == (201, "HIT")
    assert replay.json()["n"] == 1


async def test_the_same_key_with_another_body_is_a_422(
    http: tuple[httpx.AsyncClient, Calls],
) -> None:
    client, calls = http
    headers = {"Idempotency-Key": "k-2"}
    assert (await client.post("/t/pay", json={"amount": "1"}, headers=headers)).status_code == 201
    body = problem(
        await client.post("/t/pay", json={"amount": "2"}, headers=headers),
        422,
        "idempotency_key_reused",
    )
    assert "different request" in body["detail"]
    assert calls.count["pay"] == 1


async def test_keys_are_scoped_to_the_caller(tmp_path: Path, redis_url: str, redis: Any) -> None:
    calls = Calls()
    async with (
        gateway(tmp_path, redis_url, calls) as client,
        client("192.0.2.1") as alice,
        client("192.0.2.2") as bob,
    ):
        headers = {"Idempotency-Key": "shared"}
        a = await alice.post("/t/pay", json={"amount": "1"}, headers=headers)
        b = await bob.post("/t/pay", json={"amount": "9"}, headers=headers)
    assert (a.headers["x-idempotency"], b.headers["x-idempotency"]) == ("MISS", "MISS")
    assert calls.count["pay"] == 2


async def test_server_errors_are_not_kept_so_a_retry_runs_again(
    http: tuple[httpx.AsyncClient, Calls],
) -> None:
    client, calls = http
    calls.statuses["scripted"] = [503, 200, 500]
    headers = {"Idempotency-Key": "k-3"}
    assert (await client.post("/t/scripted", json={}, headers=headers)).status_code == 503
    retry = await client.post("/t/scripted", json={}, headers=headers)
    assert (retry.status_code, retry.headers["x-idempotency"]) == (200, "MISS")
    replay = await client.post("/t/scripted", json={}, headers=headers)
    assert (replay.status_code, replay.headers["x-idempotency"]) == (200, "HIT")
    assert calls.count["scripted"] == 2


@pytest.mark.parametrize(
    ("status", "kept"),
    [(201, True), (400, False), (401, False), (404, False), (409, False), (429, False)],
)
async def test_an_anonymous_callers_failures_are_not_kept(
    http: tuple[httpx.AsyncClient, Calls], status: int, kept: bool
) -> None:
    client, calls = http
    calls.statuses["scripted"] = [status, 200]
    headers = {"Idempotency-Key": f"k-{status}"}
    await client.post("/t/scripted", json={}, headers=headers)
    second = await client.post("/t/scripted", json={}, headers=headers)
    assert second.status_code == (status if kept else 200)
    assert second.headers["x-idempotency"] == ("HIT" if kept else "MISS")
    assert calls.count["scripted"] == (1 if kept else 2)
    # what a signed-in caller's 4xx keeps is checked through the real services,
    # tests/e2e/test_attacks.py


async def test_a_key_is_honoured_on_any_post_and_ignored_on_get(
    http: tuple[httpx.AsyncClient, Calls],
) -> None:
    client, calls = http
    headers = {"Idempotency-Key": "k-4"}
    await client.post("/t/plain", json={}, headers=headers)
    replay = await client.post("/t/plain", json={}, headers=headers)
    assert replay.headers["x-idempotency"] == "HIT"
    assert calls.count["/t/plain"] == 1
    got = await client.get("/t/open", headers=headers)
    assert "x-idempotency" not in got.headers
    # without a key, a plain POST is simply not deduplicated
    await client.post("/t/plain", json={})
    assert calls.count["/t/plain"] == 2


# --- rate limits ------------------------------------------------------------


async def test_limits_answer_headers_then_429(http: tuple[httpx.AsyncClient, Calls]) -> None:
    client, calls = http
    answers = [await client.get("/t/limited") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    first = answers[0].headers
    # the tightest tier is the per-IP one (3 a minute), not the global one
    assert (first["ratelimit-limit"], first["ratelimit-remaining"]) == ("3", "2")
    assert first["x-ratelimit-limit"] == "3"
    assert first["x-ratelimit-remaining"] == "2"
    assert 0 < int(first["ratelimit-reset"]) <= 60
    assert int(first["x-ratelimit-reset"]) > 1_700_000_000
    assert first["ratelimit-policy"] == "3;w=60, 100;w=60"
    body = problem(answers[3], 429, "rate_limited")
    assert "'ip'" in body["detail"]
    assert "'tiny'" in body["detail"]
    refused = answers[3].headers
    assert refused["ratelimit-remaining"] == "0"
    assert 1 <= int(refused["retry-after"]) <= 20
    assert calls.count["/t/limited"] == 3


async def test_each_client_ip_has_its_own_bucket(
    tmp_path: Path, redis_url: str, redis: Any
) -> None:
    calls = Calls()
    async with (
        gateway(tmp_path, redis_url, calls) as client,
        client("192.0.2.1") as one,
        client("192.0.2.2") as two,
    ):
        for _ in range(3):
            await one.get("/t/limited")
        assert (await one.get("/t/limited")).status_code == 429
        assert (await two.get("/t/limited")).status_code == 200


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    tmp_path: Path, redis_url: str, redis: Any
) -> None:
    calls = Calls()
    async with (
        gateway(tmp_path, redis_url, calls, TRUSTED_PROXIES="10.0.0.0/8") as client,
        client("10.1.2.3") as proxy,
        client("198.51.100.7") as direct,
    ):
        # through the trusted proxy: each forwarded client has its own bucket
        for _ in range(3):
            await proxy.get("/t/limited", headers={"X-Forwarded-For": "203.0.113.5"})
        forwarded = await proxy.get(
            "/t/limited", headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.5"}
        )
        assert forwarded.status_code == 429  # the spoofable left entry is ignored
        other = await proxy.get("/t/limited", headers={"X-Forwarded-For": "203.0.113.6"})
        assert other.status_code == 200
        # from an untrusted peer the header is ignored: its own address counts
        for n in range(4):
            answer = await direct.get(
                "/t/limited", headers={"X-Forwarded-For": f"203.0.113.{100 + n}"}
            )
        assert answer.status_code == 429


async def test_shadow_policies_count_but_never_refuse(
    http: tuple[httpx.AsyncClient, Calls],
) -> None:
    client, calls = http

    def shadowed() -> float:
        return (
            REGISTRY.get_sample_value(
                "ratelimit_decisions_total",
                {"policy": "probe", "tier": "ip", "outcome": "shadow_limited"},
            )
            or 0.0
        )

    before = shadowed()
    answers = [await client.get("/t/shadowed") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert calls.count["/t/shadowed"] == 3
    assert shadowed() - before == 2


async def test_one_key_on_two_items_acts_on_both(http: tuple[httpx.AsyncClient, Calls]) -> None:
    """The record is the concrete path's: the same key used to complete quest a
    then quest b (or approve two withdrawals) must not replay a's answer for b."""
    client, calls = http
    headers = {"Idempotency-Key": "one-key"}
    a = await client.post("/t/items/a/act", headers=headers)
    b = await client.post("/t/items/b/act", headers=headers)
    assert (a.json(), a.headers["x-idempotency"]) == ({"acted_on": "a", "n": 1}, "MISS")
    assert (b.json(), b.headers["x-idempotency"]) == ({"acted_on": "b", "n": 1}, "MISS")
    replay = await client.post("/t/items/a/act", headers=headers)
    assert (replay.json(), replay.headers["x-idempotency"]) == (a.json(), "HIT")
    # the query string is part of what was asked
    problem(
        await client.post("/t/items/a/act?force=1", headers=headers), 422, "idempotency_key_reused"
    )
    assert (calls.count["a"], calls.count["b"]) == (1, 1)


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 40 + b"1" + b"}" * 40, b"\xff\xfe{}"],
    ids=["deeper-than-the-recursion-limit", "deeper-than-32", "not-utf-8"],
)
async def test_hostile_json_is_a_400_with_or_without_a_key(
    http: tuple[httpx.AsyncClient, Calls], body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    client, calls = http
    for key in ({"Idempotency-Key": f"deep-{len(body)}"}, {}):
        answer = await client.post(
            "/t/pay", content=body, headers={"Content-Type": "application/json", **key}
        )
        problem(answer, 400, "invalid_json") if key else problem(
            answer, 400, "idempotency_key_required"
        )
    assert calls.count["pay"] == 0
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    tmp_path: Path, redis_url: str, redis: Any
) -> None:
    """A client cannot pick its own bucket by sending X-Forwarded-For."""
    calls = Calls()
    async with gateway(tmp_path, redis_url, calls) as client, client("192.0.2.77") as direct:
        forged = [
            await direct.get("/t/limited", headers={"X-Forwarded-For": f"198.51.100.{n}"})
            for n in range(4)
        ]
    assert [answer.status_code for answer in forged] == [200, 200, 200, 429]


async def test_ipv6_clients_behind_a_proxy_share_their_64s_bucket(
    tmp_path: Path, redis_url: str, redis: Any
) -> None:
    calls = Calls()
    async with (
        gateway(tmp_path, redis_url, calls, TRUSTED_PROXIES="192.0.2.10") as client,
        client() as proxy,
    ):

        async def via(address: str) -> int:
            answer = await proxy.get("/t/limited", headers={"X-Forwarded-For": address})
            return answer.status_code

        same_64 = [await via(f"2001:db8:1:2::{n:x}") for n in range(1, 5)]
        other_64 = await via("2001:db8:1:3::1")
    assert same_64 == [200, 200, 200, 429]
    assert other_64 == 200


# --- Redis down or slow -----------------------------------------------------


async def test_without_redis_open_routes_pass_and_closed_routes_answer_503(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protection_metrics, "LOG_THROTTLE", Throttle(5.0))
    calls = Calls()
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with gateway(tmp_path, dead, calls) as client, client() as http:
        opened = [await http.get("/t/open") for _ in range(20)]
        closed = await http.post("/t/pay", json={}, headers={"Idempotency-Key": "k"})
    assert [answer.status_code for answer in opened] == [200] * 20
    # an outage is one warning per route every few seconds, not one per request
    warnings = [r for r in caplog.records if "failing open" in r.getMessage()]
    assert len(warnings) == 1
    body = problem(closed, 503, "limits_unavailable")
    assert closed.headers["retry-after"] == "1"
    assert "retry" in body["detail"]
    assert calls.count["pay"] == 0


async def test_the_route_sees_the_parsed_key_even_when_failing_open(tmp_path: Path) -> None:
    """A route that passes the key on (a withdrawal does) gets it unquoted,
    with or without Redis."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with gateway(tmp_path, dead, Calls()) as client, client() as http:
        answer = await http.post("/t/echo-key", json={}, headers={"Idempotency-Key": '"k-7"'})
    assert answer.json() == {"key": "k-7"}


async def test_a_stopped_redis_fails_fast_and_recovery_follows(tmp_path: Path) -> None:
    calls = Calls()
    port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", port)
    server.start()
    try:
        async with (
            gateway(tmp_path, server.url, calls, GUARD_REDIS_TIMEOUT_MS="50") as client,
            client() as http,
        ):
            assert (await http.get("/t/open")).status_code == 200
            server.stop()
            loop = asyncio.get_running_loop()
            started = loop.time()
            opened = await http.get("/t/open")
            closed = await http.post("/t/pay", json={}, headers={"Idempotency-Key": "k"})
            assert loop.time() - started < 2  # never a hang on a dead Redis
            assert opened.status_code == 200
            problem(closed, 503, "limits_unavailable")
            server.start()
            # reconnecting is retried at most every 0.25 s: recovery follows within it
            for _ in range(20):
                recovered = await http.post("/t/pay", json={}, headers={"Idempotency-Key": "k"})
                if recovered.status_code != 503:
                    break
                await asyncio.sleep(0.1)
            assert recovered.status_code == 201
            assert recovered.headers["x-idempotency"] == "MISS"
    finally:
        server.stop()


async def test_a_slow_redis_is_given_up_on_after_the_timeout(
    tmp_path: Path, redis_url: str, redis: Any
) -> None:
    calls = Calls()
    async with (
        gateway(tmp_path, redis_url, calls, GUARD_REDIS_TIMEOUT_MS="50") as client,
        client() as http,
    ):
        await http.get("/t/open")  # pool warm
        stall = asyncio.create_task(redis.execute_command("DEBUG", "SLEEP", "1.5"))
        await asyncio.sleep(0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        opened = await http.get("/t/open")
        closed = await http.post("/t/pay", json={}, headers={"Idempotency-Key": "slow"})
        waited = loop.time() - started
        await stall
    assert opened.status_code == 200
    problem(closed, 503, "limits_unavailable")
    assert waited < 1.2, f"waited {waited:.2f}s on a stalled Redis (asleep for 1.5 s)"
