"""Pure parts of request protection: key parsing, fingerprints, which answers
are kept, client IPs behind proxies (IPv6 per /64), and the rate-limit headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protection.buckets import RequestFacts, charges_for, rate_limit_headers
from gateway.protection.clientip import TrustedProxies, parse_networks
from gateway.protection.idempotency import StoredAnswer, fingerprint, is_kept, record_key
from gateway.protection.policy import KeyKind, Policy, RoutePattern, Tier
from gateway.protection.store import ClaimOutcome, TierState, Verdict, retry_after_header
from gateway.protojson import RequestBody
from runtime import clients
from runtime.clients import client_key
from runtime.errors import InvalidArgument
from runtime.idempotency import check_key
from runtime.idempotency import from_header as parse_key
from runtime.log import Throttle


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("abc-123", "abc-123"),
        ('"abc-123"', "abc-123"),
        ('"with\\"quote\\"and\\\\"', 'with"quote"and\\'),
        ("  padded\t", "padded"),
        ("x" * 255, "x" * 255),
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
    ],
)
def test_keys_bare_or_quoted(raw: str, key: str) -> None:
    assert parse_key(raw) == key


@pytest.mark.parametrize(
    "raw", ["", '""', "x" * 256, "two words", "ctl\x01", "caf\u00e9", '"bad\\n"', '"a"b"']
)
def test_bad_keys(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_key(raw)
    assert caught.value.reason == "invalid_idempotency_key"


@pytest.mark.parametrize("key", ["two words", "x" * 256, "caf\u00e9", " lead", "tab\t"])
def test_the_services_hold_a_passed_on_key_to_the_same_rule(key: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_key(key, "idempotency_key")
    assert (caught.value.reason, caught.value.field) == (
        "invalid_idempotency_key",
        "idempotency_key",
    )
    with pytest.raises(InvalidArgument) as missing:
        check_key("", "idempotency_key")
    assert missing.value.reason == "idempotency_key_required"
    assert check_key("abc-123", "idempotency_key") == "abc-123"


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1))
def test_every_visible_ascii_key_survives_quoting(key: str) -> None:
    quoted = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if len(key) <= 255:
        assert parse_key(quoted) == key


def print_of(method: str, path: str, body: bytes, query: bytes = b"") -> str:
    return fingerprint(method, path, query, RequestBody(body))


def test_fingerprint_ignores_json_layout_but_not_content() -> None:
    one = print_of("POST", "/r", b'{"a": 1, "b": [1, 2]}')
    assert one == print_of("POST", "/r", b'{"b":[1,2],"a":1}')
    assert one != print_of("POST", "/r", b'{"a": 2, "b": [1, 2]}')
    assert one != print_of("PATCH", "/r", b'{"a": 1, "b": [1, 2]}')
    assert one != print_of("POST", "/other", b'{"a": 1, "b": [1, 2]}')
    assert print_of("POST", "/r", b"not json") != print_of("POST", "/r", b"not  json")


def test_fingerprint_covers_the_concrete_path_and_the_query() -> None:
    """One key on /quests/a/complete then /quests/b/complete is not the same request."""
    a = print_of("POST", "/api/quests/a/complete", b"")
    assert a != print_of("POST", "/api/quests/b/complete", b"")
    assert print_of("GET", "/r", b"", b"x=1") != print_of("GET", "/r", b"", b"x=2")
    deep = b"[" * 5000 + b"]" * 5000  # not acceptable JSON: hashed as sent, no RecursionError
    assert print_of("POST", "/r", deep) != print_of("POST", "/r", b"[]")


def test_record_keys_separate_callers_routes_and_keys() -> None:
    base = record_key("u:1", "POST", "/r", "k")
    assert (
        len(
            {
                base,
                record_key("u:2", "POST", "/r", "k"),
                record_key("u:1", "PATCH", "/r", "k"),
                record_key("u:1", "POST", "/s", "k"),
                record_key("u:1", "POST", "/r", "k2"),
                # no ambiguity from concatenation
                record_key("u:1P", "OST", "/r", "k"),
            }
        )
        == 6
    )
    assert base.startswith("mq:idem:")
    assert len(record_key("u:1", "POST", "/r", "x" * 255)) == len(base)


@pytest.mark.parametrize(
    ("status", "kept"),
    [(200, True), (201, True), (204, True), (400, True), (404, True), (422, True),
     (401, False), (408, False), (409, False), (429, False), (500, False), (503, False),
     (302, False)],
)  # fmt: skip
def test_kept_answers(status: int, kept: bool) -> None:
    assert is_kept(status, anonymous=False) is kept


@pytest.mark.parametrize(("status", "kept"), [(200, True), (201, True), (400, False), (404, False)])
def test_an_anonymous_callers_failures_are_not_kept(status: int, kept: bool) -> None:
    assert is_kept(status, anonymous=True) is kept


def test_stored_answers_keep_only_replayable_headers() -> None:
    answer = StoredAnswer.capture(
        201,
        [
            (b"content-type", b"application/json"),
            (b"Location", b"/x/1"),
            (b"x-request-id", b"abc"),
            (b"ratelimit-remaining", b"3"),
            (b"set-cookie", b"s=1"),
        ],
        b'{"id":"1"}',
    )
    assert answer.headers == (("content-type", "application/json"), ("location", "/x/1"))
    assert StoredAnswer.decode(answer.encode()) == answer
    binary = StoredAnswer(200, (("content-type", "application/octet-stream"),), b"\xff\n\n:\x00")
    assert StoredAnswer.decode(binary.encode()) == binary
    assert StoredAnswer.decode(StoredAnswer(204, (), b"").encode()) == StoredAnswer(204, (), b"")


def scope(peer: str, forwarded: str | None = None) -> dict[str, object]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"client": (peer, 1234), "headers": headers}


def test_client_ip_trusts_forwarded_for_only_from_proxies() -> None:
    proxies = TrustedProxies(parse_networks(["10.0.0.0/8", "fd00::/8"]))
    assert proxies.client_ip(scope("203.0.113.9", "1.1.1.1")) == "203.0.113.9"
    assert proxies.client_ip(scope("10.0.0.2", "1.1.1.1, 203.0.113.9")) == "203.0.113.9"
    assert proxies.client_ip(scope("10.0.0.2", "203.0.113.9, 10.0.0.7")) == "203.0.113.9"
    assert proxies.client_ip(scope("10.0.0.2")) == "10.0.0.2"
    assert proxies.client_ip(scope("10.0.0.2", "garbage")) == "10.0.0.2"
    assert TrustedProxies().client_ip(scope("10.0.0.2", "1.1.1.1")) == "10.0.0.2"
    assert proxies.client_ip(scope("::ffff:203.0.113.9")) == "203.0.113.9"
    with pytest.raises(ValueError, match="not an IP network"):
        parse_networks(["10.0.0.0/33"])


def test_ipv6_clients_are_counted_per_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert client_key("203.0.113.9") == "203.0.113.9"
    assert client_key("::ffff:203.0.113.9") == "203.0.113.9"


def test_long_junk_in_an_address_header_is_no_address_and_is_not_cached() -> None:
    junk = "9" * 10_000
    before = clients._parsed.cache_info().currsize, clients._client_key.cache_info().currsize
    assert clients.ip_address(junk) is None
    assert client_key(junk) == junk
    proxies = TrustedProxies(parse_networks(["10.0.0.0/8"]))
    assert proxies.client_ip(scope("10.0.0.2", junk)) == "10.0.0.2"
    after = clients._parsed.cache_info().currsize, clients._client_key.cache_info().currsize
    assert after == before
    assert clients.ip_address("fe80::1%eth0") is not None, "a zoned IPv6 address still parses"


POLICY = Policy(
    name="p",
    routes=(RoutePattern("POST", "/r"),),
    tiers=(
        Tier("global", KeyKind.GLOBAL, 100, 1.0, 200),
        Tier("user", KeyKind.USER, 5, 1.0, 10),
        Tier("wallet", KeyKind.WALLET, 10, 86400.0, 10, "walletAddress"),
        Tier("app", KeyKind.HEADER, 50, 60.0, 50, "x-app-id"),
    ),
)


def test_each_key_kind_reads_its_value() -> None:
    facts = RequestFacts(
        user_id="u1",
        client="192.0.2.1",
        headers={"x-app-id": "ios"},
        body=RequestBody(b'{"walletAddress": "0xAbC"}'),
    )
    assert [c.key for c in charges_for(POLICY, facts)] == [
        "mq:rl:p:global:*",
        "mq:rl:p:user:u:u1",
        "mq:rl:p:wallet:0xabc",
        "mq:rl:p:app:ios",
    ]
    anonymous = RequestFacts(user_id=None, client="192.0.2.1", headers={}, body=RequestBody(b"[]"))
    assert [c.key for c in charges_for(POLICY, anonymous)] == [
        "mq:rl:p:global:*",
        "mq:rl:p:user:ip:192.0.2.1",
    ]


def test_headers_follow_the_tightest_tier() -> None:
    tiers = POLICY.tiers
    verdict = Verdict(
        passed=True,
        limited_by=None,
        retry_after_seconds=0,
        tiers=(TierState(tiers[0], 150, 0.5), TierState(tiers[1], 3, 1.4)),
        claim=ClaimOutcome.NONE,
    )
    headers = dict(rate_limit_headers(POLICY, verdict))
    assert headers[b"ratelimit-limit"] == b"10"
    assert headers[b"ratelimit-remaining"] == b"3"
    assert headers[b"ratelimit-reset"] == b"2"
    assert headers[b"ratelimit-policy"] == b"100;w=1;burst=200, 5;w=1;burst=10"
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(2.2) == "3"


def test_a_throttled_log_line_passes_once_per_interval_and_counts_the_rest() -> None:
    now = [100.0]
    throttle = Throttle(5.0, clock=lambda: now[0])
    assert throttle.allow("outage") == 0
    assert [throttle.allow("outage") for _ in range(3)] == [None, None, None]
    assert throttle.allow("other") == 0  # keys are separate
    now[0] += 5.0
    assert throttle.allow("outage") == 3
    assert throttle.allow("outage") is None
