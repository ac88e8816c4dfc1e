"""Pure rules of the catalogue: what a valid quest is, when it is active, which
period a completion belongs to, and which prerequisites a user still lacks.

A quest's ``_id`` is a slug (``follow-x``, ``daily-checkin``) an admin may
choose, or a generated hex id. Daily quests complete once per *day*, a day
running from ``QUESTS_DAILY_RESET_HOUR`` (UTC) to the same hour the next
day; every other type completes once. Prerequisites are quest ids the user
must have completed (at least once) first; they must exist and may not form
a cycle, so a series always completes in order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from minequest.common.v1 import common_pb2
from minequest.quests.v1 import quests_pb2
from runtime.addresses import InvalidEvmAddress, eip55
from services.quests.errors import InvalidQuest, InvalidWalletAddress

Doc = dict[str, Any]

#: The period of a quest that completes once.
ONCE = "once"
QUEST_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_NAME, MAX_DESCRIPTION = 100, 2000
MAX_XP = 1_000_000
MAX_PREREQUISITES = 20
MAX_COIN_UNITS = 10**15

TYPES: Mapping[int, str] = {
    quests_pb2.QUEST_TYPE_SOCIAL: "social",
    quests_pb2.QUEST_TYPE_ONCHAIN: "onchain",
    quests_pb2.QUEST_TYPE_DAILY: "daily",
    quests_pb2.QUEST_TYPE_REFERRAL: "referral",
}
TYPE_VALUES: Mapping[str, quests_pb2.QuestType.ValueType] = {
    "social": quests_pb2.QUEST_TYPE_SOCIAL,
    "onchain": quests_pb2.QUEST_TYPE_ONCHAIN,
    "daily": quests_pb2.QUEST_TYPE_DAILY,
    "referral": quests_pb2.QUEST_TYPE_REFERRAL,
}


def period_of(quest_type: str, now: datetime, reset_hour: int = 0) -> str:
    """``once``, or for a daily quest the day ``now`` falls in (``YYYY-MM-DD``,
    days starting at ``reset_hour`` UTC)."""
    if quest_type != "daily":
        return ONCE
    return (now.astimezone(UTC) - timedelta(hours=reset_hour)).date().isoformat()


def resets_at(now: datetime, reset_hour: int = 0) -> datetime:
    """When the daily period containing ``now`` ends."""
    day = (now.astimezone(UTC) - timedelta(hours=reset_hour)).date()
    start = datetime(day.year, day.month, day.day, reset_hour, tzinfo=UTC)
    return start + timedelta(days=1)


def is_active(quest: Doc, now: datetime) -> bool:
    """Not archived, and ``now`` inside ``[active_from, active_until)``."""
    if quest.get("archived"):
        return False
    start, end = quest.get("active_from"), quest.get("active_until")
    if start is not None and now < _utc(start):
        return False
    return end is None or now < _utc(end)


def missing_prerequisites(quest: Doc, done: Mapping[str, Any]) -> list[str]:
    """The quest's prerequisites not in ``done`` (the user's completed quest ids)."""
    return [qid for qid in quest.get("prerequisite_ids") or [] if qid not in done]


def creates_cycle(
    quest_id: str, prerequisites: Sequence[str], graph: Mapping[str, Sequence[str]]
) -> bool:
    """Whether giving ``quest_id`` these prerequisites makes a chain lead back to it."""
    seen: set[str] = set()
    stack = list(prerequisites)
    while stack:
        current = stack.pop()
        if current == quest_id:
            return True
        if current in seen:
            continue
        seen.add(current)
        stack.extend(graph.get(current, ()))
    return False


@dataclass(frozen=True, slots=True)
class CoinReward:
    currency: str
    units: int
    precision: int


def read_coin_reward(money: common_pb2.Money, precisions: Mapping[str, int]) -> CoinReward:
    """A quest's coin reward in minor units (``amount`` and/or ``units``; they must agree)."""
    field = "quest.coin_reward"
    code = money.currency.strip().upper()
    if code not in precisions:
        known = ", ".join(sorted(precisions)) or "none"
        raise InvalidQuest(
            f"unknown currency {code!r} (the wallet knows {known})",
            reason="unknown_currency",
            field=f"{field}.currency",
        )
    precision = precisions[code]
    units: int | None = money.units or None
    if money.amount:
        try:
            value = Decimal(money.amount.strip())
        except InvalidOperation:
            raise InvalidQuest("amount must be a decimal number", field=f"{field}.amount") from None
        scaled = value.scaleb(precision)
        if not value.is_finite() or scaled != scaled.to_integral_value():
            raise InvalidQuest(
                f"amount has more than {precision} decimals", field=f"{field}.amount"
            )
        from_amount = int(scaled)
        if units is not None and units != from_amount:
            raise InvalidQuest("amount and units disagree", field=f"{field}.units")
        units = from_amount
    if units is None or units <= 0 or units > MAX_COIN_UNITS:
        raise InvalidQuest("a coin reward must be positive", field=f"{field}.amount")
    return CoinReward(code, units, precision)


def read_quest(
    quest: quests_pb2.Quest,
    quest_id: str,
    precisions: Mapping[str, int],
) -> Doc:
    """Validate an admin's quest into the stored fields (without ids and stamps)."""
    name = quest.name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidQuest(f"name must be 1-{MAX_NAME} characters", field="quest.name")
    description = quest.description.strip()
    if len(description) > MAX_DESCRIPTION:
        raise InvalidQuest(
            f"description must be at most {MAX_DESCRIPTION} characters",
            field="quest.description",
        )
    kind = TYPES.get(quest.type)
    if kind is None:
        raise InvalidQuest(
            "type must be QUEST_TYPE_SOCIAL, _ONCHAIN, _DAILY or _REFERRAL", field="quest.type"
        )
    if not 0 <= quest.xp_reward <= MAX_XP:
        raise InvalidQuest(f"xpReward must be 0-{MAX_XP}", field="quest.xp_reward")
    coin = (
        read_coin_reward(quest.coin_reward, precisions) if quest.HasField("coin_reward") else None
    )
    if quest.xp_reward == 0 and coin is None:
        raise InvalidQuest("a quest must reward XP or coins", field="quest.xp_reward")
    prerequisites = list(dict.fromkeys(p.strip() for p in quest.prerequisite_ids))
    if len(prerequisites) > MAX_PREREQUISITES:
        raise InvalidQuest(
            f"at most {MAX_PREREQUISITES} prerequisites", field="quest.prerequisite_ids"
        )
    for prerequisite in prerequisites:
        if not QUEST_ID.match(prerequisite):
            raise InvalidQuest(
                f"prerequisite {prerequisite!r} is not a quest id", field="quest.prerequisite_ids"
            )
    if quest_id in prerequisites:
        raise InvalidQuest("a quest cannot require itself", field="quest.prerequisite_ids")
    start = quest.active_from.ToDatetime(UTC) if quest.HasField("active_from") else None
    end = quest.active_until.ToDatetime(UTC) if quest.HasField("active_until") else None
    if start is not None and end is not None and end <= start:
        raise InvalidQuest("activeUntil must be after activeFrom", field="quest.active_until")
    return {
        "name": name,
        "description": description,
        "type": kind,
        "xp_reward": int(quest.xp_reward),
        "coin_reward": None
        if coin is None
        else {"currency": coin.currency, "units": coin.units, "precision": coin.precision},
        "prerequisite_ids": prerequisites,
        "active_from": start,
        "active_until": end,
    }


def wallet_address(value: str, field: str = "wallet_address") -> str:
    """The EIP-55 form of an EVM address, by the auth service's rule: all-lowercase
    (or all-uppercase) hex is accepted and checksummed; mixed case must be a
    valid checksum."""
    try:
        return eip55(value)
    except InvalidEvmAddress as error:
        raise InvalidWalletAddress(f"wallet address {error}", field=field) from None


def check_quest_id(quest_id: str, field: str = "quest.id") -> str:
    if not QUEST_ID.match(quest_id):
        raise InvalidQuest(
            "a quest id is 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit",
            field=field,
        )
    return quest_id


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
