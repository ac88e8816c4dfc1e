"""The OpenAPI document's rules are the server's: each value in the gateway's
tables (gateway/constraints.py, gateway/refusals.py) against the service's own."""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import pytest

from gateway import constraints, refusals
from gateway.errors import REASON_HTTP_STATUS, http_status
from gateway.openapi import build_openapi
from gateway.routes import ENDPOINTS
from minequest.quests.v1 import quests_pb2
from minequest.wallet.v1 import wallet_pb2
from runtime.addresses import InvalidEvmAddress, eip55
from runtime.config import Env
from runtime.errors import DomainError, status_code_of
from services.auth import validation
from services.mining.settings import MiningSettings
from services.quests import catalogue
from services.quests.service import MAX_LEADERBOARD_LIMIT
from services.wallet import chains, money
from services.wallet.deposits import MAX_REFERENCE_LENGTH
from services.wallet.service import MAX_REASON_LENGTH, STATE_NAMES

SERVICES = ("auth", "mining", "quests", "wallet")


def test_numbers_are_the_services_own() -> None:
    assert constraints.MAX_LEADERBOARD_LIMIT == MAX_LEADERBOARD_LIMIT
    assert constraints.MAX_QUEST_NAME == catalogue.MAX_NAME
    assert constraints.MAX_QUEST_DESCRIPTION == catalogue.MAX_DESCRIPTION
    assert catalogue.QUEST_ID.pattern == constraints.QUEST_ID_PATTERN
    assert constraints.MAX_REASON_LENGTH == MAX_REASON_LENGTH
    assert constraints.MAX_REFERENCE_LENGTH == MAX_REFERENCE_LENGTH
    assert money._DECIMAL.pattern == constraints.DECIMAL_PATTERN
    assert validation._USERNAME.pattern == constraints.USERNAME_PATTERN
    assert constraints.MAX_XP == catalogue.MAX_XP
    assert constraints.MAX_PREREQUISITES == catalogue.MAX_PREREQUISITES
    quest_types = quests_pb2.DESCRIPTOR.enum_types_by_name["QuestType"].values_by_number
    assert {quest_types[kind].name for kind in catalogue.TYPES} == set(constraints.QUEST_TYPES)
    states = wallet_pb2.DESCRIPTOR.enum_types_by_name["WithdrawalState"].values_by_number
    assert {states[state].name for state in STATE_NAMES} == set(constraints.WITHDRAWAL_STATES)
    assert set(constraints.EVM_CHAINS) == chains.EVM_CHAINS
    assert set(constraints.TRON_CHAINS) == chains.TRON_CHAINS
    settings = MiningSettings.from_env(
        Env({"MONGODB_URI": "mongodb://x", "REDIS_URL": "redis://x"})
    )
    assert settings.rules.max_taps_per_request == constraints.MAX_TAPS_PER_REQUEST


@pytest.mark.parametrize(
    ("pattern", "accepted", "refused"),
    [
        # The services read these upper-cased, so the document admits either case.
        (constraints.REFERRAL_PATTERN, ["ABCDEFG2", "abcdefg2"], ["ABCDEFG1", "ABCDEFG"]),
        (constraints.CURRENCY_PATTERN, ["MQC", "usdt"], ["1X", "M", "TOOLONGCODE"]),
        (constraints.SIGNATURE_PATTERN, ["0x" + "ab" * 65], ["0x" + "ab" * 64, "ab" * 65]),
        (constraints.XP_PATTERN, ["0", "1", "999999", "1000000"], ["-1", "1000001", "01"]),
        (constraints.POSITIVE_XP_PATTERN, ["1", "1000000"], ["0", "1000001"]),
    ],
)
def test_patterns_admit_what_the_services_read(
    pattern: str, accepted: list[str], refused: list[str]
) -> None:
    for value in accepted:
        assert re.fullmatch(pattern, value), value
    for value in refused:
        assert not re.fullmatch(pattern, value), value


def test_the_referral_and_currency_patterns_match_the_services_upper_cased() -> None:
    assert validation.referral_code("abcdefg2") == "ABCDEFG2"
    assert money.valid_code("MQC")
    for code in ("MQC", "USDT", "A1"):
        assert re.fullmatch(constraints.CURRENCY_PATTERN, code)
        assert money.valid_code(code)


@pytest.mark.parametrize(
    "address",
    [
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        "0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    ],
)
def test_every_address_the_service_takes_matches_the_pattern(address: str) -> None:
    eip55(address)
    assert re.fullmatch(constraints.EVM_ADDRESS_PATTERN, address)


def test_an_address_the_pattern_refuses_the_service_refuses() -> None:
    for address in ("0x123", "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "0x" + "g" * 40):
        assert not re.fullmatch(constraints.EVM_ADDRESS_PATTERN, address)
        with pytest.raises(InvalidEvmAddress):
            eip55(address)


def _service_reasons() -> dict[str, int]:
    """Every reason a service raises, with the HTTP status the gateway answers it."""
    found: dict[str, int] = {}
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.errors")
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, DomainError):
                status = REASON_HTTP_STATUS.get(cls.reason) or http_status(
                    status_code_of(cls.__new__(cls))
                )
                found[cls.reason] = status
    return found


#: Reasons raised with an explicit ``reason=`` rather than a class of their own,
#: and the gateway's own codes: (status, code).
EXPLICIT = {
    (400, code)
    for code in (
        "amount_above_maximum",
        "amount_below_minimum",
        "amount_mismatch",
        "amount_not_positive",
        "amount_too_large",
        "precision_exceeded",
        "prerequisite_not_found",
        "invalid_limit",
        "invalid_argument",
    )
} | {
    (401, "session_expired"),
    (409, "wallet_taken"),
    (409, "email_taken"),
    (409, "phone_taken"),
    (409, "username_taken"),
    (429, "tap_rate_exceeded"),
    (429, "daily_cap_reached"),
    # GET /api/mining/click/status answers the click's own state as a problem
    (409, "failed"),
    (401, "webhook_signature_missing"),
    (401, "webhook_signature_invalid"),
    (401, "webhook_timestamp_expired"),
    (503, "webhook_not_configured"),
    (503, "database_not_configured"),
    (503, "database_unavailable"),
}


def test_every_documented_service_code_is_raised_with_that_status() -> None:
    reasons = _service_reasons()
    for operation, codes in refusals.SERVICE_CODES.items():
        for status, names in codes.items():
            for code in names:
                if (status, code) in EXPLICIT:
                    continue
                assert code in reasons, f"{operation}: no service raises {code!r}"
                assert reasons[code] == status, f"{operation}: {code} is {reasons[code]}"


def test_every_operation_documents_its_refusals() -> None:
    assert set(refusals.SERVICE_CODES) >= {row.operation_id for row in ENDPOINTS} - {
        "getJwks",
        "getHealth",
        "getOpenApi",
    }


def test_the_document_states_the_rules() -> None:
    doc: dict[str, Any] = build_openapi(ENDPOINTS, version="0")
    schemas = doc["components"]["schemas"]
    register = schemas["minequest.auth.v1.RegisterRequest"]
    assert register["required"] == ["walletAddress"]
    assert register["anyOf"] == [{"required": ["email"]}, {"required": ["phone"]}]
    assert register["properties"]["walletAddress"]["pattern"] == constraints.EVM_ADDRESS_PATTERN
    otp = doc["paths"]["/api/auth/otp/request"]["post"]["requestBody"]
    assert otp["required"] is True
    otp_schema = otp["content"]["application/json"]["schema"]
    assert otp_schema["anyOf"] == [{"required": ["email"]}, {"required": ["phone"]}]
    assert otp_schema["not"] == {"required": ["email", "phone"]}
    click = doc["paths"]["/api/mining/click"]["post"]["requestBody"]["content"]
    count = click["application/json"]["schema"]["properties"]["count"]
    assert (count["minimum"], count["maximum"]) == (1, constraints.MAX_TAPS_PER_REQUEST)
    status = {p["name"]: p for p in doc["paths"]["/api/mining/click/status"]["get"]["parameters"]}
    assert status["key"]["required"] is True
    board = {p["name"]: p for p in doc["paths"]["/api/quests/leaderboard"]["get"]["parameters"]}
    assert board["limit"]["schema"]["maximum"] == MAX_LEADERBOARD_LIMIT
    withdrawal = doc["paths"]["/api/wallet/withdrawals"]["post"]["responses"]
    assert withdrawal["412"]["x-problem-codes"] == ["insufficient_funds", "wallet_not_verified"]
    assert "idempotency_key_reused" in withdrawal["422"]["x-problem-codes"]


def test_null_is_refused_where_the_document_does_not_allow_it() -> None:
    from gateway.errors import ApiError
    from gateway.protojson import parse_body
    from minequest.auth.v1 import auth_pb2
    from minequest.mining.v1 import mining_pb2

    with pytest.raises(ApiError) as caught:
        parse_body(b'{"count": null}', mining_pb2.SubmitClickRequest)
    assert (caught.value.status, caught.value.field) == (400, "count")
    # a proto3 optional field may be null: "leave it unchanged"
    assert not parse_body(b'{"username": null}', auth_pb2.UpdateProfileRequest).HasField("username")
