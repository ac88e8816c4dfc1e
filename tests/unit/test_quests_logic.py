"""The quests service's pure rules: periods and the daily reset, activity
windows, prerequisites and cycles, quest and reward validation, the
leaderboard's tie-break encoding, progress arithmetic and its settings."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minequest.common.v1 import common_pb2
from minequest.quests.v1 import quests_pb2 as pb
from runtime.config import ConfigError, Env
from runtime.errors import DomainError
from runtime.money import format_units
from services.quests import catalogue
from services.quests.completions import completion_metadata, progress_change
from services.quests.leaderboard import member_of, parse_member
from services.quests.settings import QuestsSettings

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PRECISIONS = {"MQC": 8, "USDT": 6}


def test_one_time_quests_have_one_period_and_daily_ones_a_day() -> None:
    assert catalogue.period_of("social", NOON) == "once"
    assert catalogue.period_of("daily", NOON) == "2026-03-01"
    assert catalogue.period_of("daily", NOON.replace(hour=23, minute=59)) == "2026-03-01"
    assert catalogue.period_of("daily", NOON.replace(hour=0, minute=0)) == "2026-03-01"
    assert catalogue.period_of("daily", datetime(2026, 3, 2, tzinfo=UTC)) == "2026-03-02"


def test_the_daily_reset_hour_moves_the_day_boundary() -> None:
    before = datetime(2026, 3, 2, 5, 59, tzinfo=UTC)
    after = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    assert catalogue.period_of("daily", before, reset_hour=6) == "2026-03-01"
    assert catalogue.period_of("daily", after, reset_hour=6) == "2026-03-02"
    assert catalogue.resets_at(before, 6) == after
    assert catalogue.resets_at(NOON) == datetime(2026, 3, 2, tzinfo=UTC)


def test_activity_window_is_half_open_and_archiving_ends_it() -> None:
    quest = {"active_from": NOON, "active_until": NOON + timedelta(days=1)}
    assert not catalogue.is_active(quest, NOON - timedelta(milliseconds=1))
    assert catalogue.is_active(quest, NOON)
    assert not catalogue.is_active(quest, NOON + timedelta(days=1))
    assert not catalogue.is_active({**quest, "archived": True}, NOON)
    assert catalogue.is_active({}, NOON)


def test_missing_prerequisites_and_cycles() -> None:
    quest = {"prerequisite_ids": ["a", "b"]}
    assert catalogue.missing_prerequisites(quest, {"a": {}}) == ["b"]
    assert catalogue.missing_prerequisites(quest, {"a": {}, "b": {}}) == []
    graph = {"b": ["a"], "c": ["b"], "a": []}
    assert catalogue.creates_cycle("a", ["c"], graph)  # a -> c -> b -> a
    assert not catalogue.creates_cycle("d", ["c"], graph)
    assert catalogue.creates_cycle("a", ["a"], graph)


def quest(**fields: object) -> pb.Quest:
    values: dict[str, object] = {"name": "Follow", "type": pb.QUEST_TYPE_SOCIAL, "xp_reward": 5}
    return pb.Quest(**{**values, **fields})  # type: ignore[arg-type]


def reason(call: Callable[[], object]) -> tuple[str, str | None]:
    with pytest.raises(DomainError) as caught:
        call()
    return caught.value.reason, caught.value.field


def test_quest_validation_names_the_field() -> None:
    read = catalogue.read_quest
    assert read(quest(name="  Follow  "), "q", PRECISIONS)["name"] == "Follow"
    assert reason(lambda: read(quest(name=""), "q", {})) == ("invalid_quest", "quest.name")
    assert reason(lambda: read(quest(type=0), "q", {})) == ("invalid_quest", "quest.type")
    assert reason(lambda: read(quest(xp_reward=0), "q", {})) == ("invalid_quest", "quest.xp_reward")
    assert reason(lambda: read(quest(prerequisite_ids=["q"]), "q", {}))[1] == (
        "quest.prerequisite_ids"
    )
    late = quest()
    late.active_from.FromDatetime(NOON)
    late.active_until.FromDatetime(NOON)
    assert reason(lambda: read(late, "q", {})) == ("invalid_quest", "quest.active_until")
    assert reason(lambda: catalogue.check_quest_id("Has Space")) == ("invalid_quest", "quest.id")
    assert catalogue.check_quest_id("daily-checkin_2") == "daily-checkin_2"


def test_coin_rewards_in_minor_units() -> None:
    def coin(**money: object) -> catalogue.CoinReward:
        return catalogue.read_coin_reward(common_pb2.Money(**money), PRECISIONS)  # type: ignore[arg-type]

    assert coin(currency="mqc", amount="1.5") == catalogue.CoinReward("MQC", 150_000_000, 8)
    assert coin(currency="USDT", units=25) == catalogue.CoinReward("USDT", 25, 6)
    assert coin(currency="USDT", units=1_000_000, amount="1") == catalogue.CoinReward(
        "USDT", 1_000_000, 6
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"currency": "DOGE", "amount": "1"}, "unknown_currency"),
        ({"currency": "USDT", "amount": "0.0000001"}, "invalid_quest"),
        ({"currency": "USDT", "amount": "abc"}, "invalid_quest"),
        ({"currency": "USDT", "amount": "-1"}, "invalid_quest"),
        ({"currency": "USDT", "amount": "1", "units": 5}, "invalid_quest"),
        ({"currency": "USDT"}, "invalid_quest"),
    ]
    for money, expected in cases:
        assert reason(functools.partial(coin, **money))[0] == expected, money
    assert format_units(150_000_000, 8) == "1.50000000"


def test_wallet_addresses_follow_eip55() -> None:
    checksummed = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    assert catalogue.wallet_address(checksummed.lower()) == checksummed
    assert catalogue.wallet_address(f"  {checksummed}  ") == checksummed
    for bad in ("", "0x123", checksummed[2:], checksummed.replace("a", "A", 1), "0x" + "g" * 40):
        check = functools.partial(catalogue.wallet_address, bad)
        assert reason(check)[0] == "invalid_wallet_address"


millis = st.integers(min_value=0, max_value=10**13).map(
    lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
)


@given(millis, millis)
def test_an_earlier_score_sorts_first_among_equals(first: datetime, second: datetime) -> None:
    a, b = member_of("user-a", first), member_of("user-b", second)
    assert parse_member(a) == ("user-a", first)
    if first < second:
        assert a > b  # a reverse range lists the greater member first
    elif first > second:
        assert a < b


def test_progress_grows_once_per_completion() -> None:
    completion = {"xp_earned": 30}
    first = progress_change(None, completion, NOON)
    assert (first["xp"], first["quests_completed"], first["version"]) == (30, 1, 1)
    assert first["reached_at"] == NOON
    later = NOON + timedelta(hours=1)
    second = progress_change({**first, "done": {}}, {"xp_earned": 0}, later)
    assert (second["xp"], second["version"], second["reached_at"]) == (30, 2, NOON)
    assert second["lb_synced"] is False


def test_already_completed_names_the_original() -> None:
    doc = {
        "_id": "c1",
        "quest_id": "q",
        "period": "once",
        "completed_at": NOON,
        "xp_earned": 7,
    }
    assert completion_metadata(doc) == {
        "completion_id": "c1",
        "quest_id": "q",
        "period": "once",
        "completed_at": "2026-03-01T12:00:00Z",
        "xp_earned": "7",
    }


BASE = {"MONGODB_URI": "mongodb://127.0.0.1:1", "REDIS_URL": "redis://127.0.0.1:1"}


def test_settings_defaults_and_mistakes_name_the_variable() -> None:
    settings = QuestsSettings.from_env(Env(BASE))
    assert settings.service.grpc_port == 50054
    assert settings.service.metrics_port == 9104
    assert settings.auth_service_addr == "127.0.0.1:50051"
    assert settings.wallet_service_addr == "127.0.0.1:50053"
    assert (settings.daily_reset_hour, settings.leaderboard_cache_seconds) == (0, 10)
    for name, value in [
        ("QUESTS_DAILY_RESET_HOUR", "24"),
        ("QUESTS_LEADERBOARD_CACHE_SECONDS", "soon"),
        ("WALLET_SERVICE_ADDR", "nowhere"),
        ("QUESTS_COMPLETE_MAX_ATTEMPTS", "0"),
    ]:
        with pytest.raises(ConfigError) as caught:
            QuestsSettings.from_env(Env({**BASE, name: value}))
        assert caught.value.variable == name
    with pytest.raises(ConfigError) as missing:
        QuestsSettings.from_env(Env({"MONGODB_URI": BASE["MONGODB_URI"]}))
    assert missing.value.variable == "REDIS_URL"
