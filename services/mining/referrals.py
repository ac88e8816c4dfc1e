"""Referral rewards from mining: inviters' shares and the join bonus.

An inviter earns ``REFERRAL_MINING_SHARE_PERCENT`` (default 10) of what each
invitee mines, and ``REFERRAL_SECOND_LEVEL_SHARE_PERCENT`` (default 0: no
second level) of what their invitees' invitees mine; once per invitee, when
the invitee first earns from mining, ``REFERRAL_JOIN_BONUS`` (default 1 coin).

Who invited whom is the auth service's (``Auth.GetReferrers``); it is fixed
when an account is created, so the worker keeps every answer it gets in a
bounded in-process cache and asks only about users it has not seen.

The rewards ride on the batch's outbox document (:mod:`services.mining.outbox`)
as lines of their own, written in the same transaction as the clicks, so they
share the clicks' crash and replay guarantees:

- a share: source ``mining.referral``, source id ``<outbox id>:<inviter>``
  (one line per inviter per batch, both levels summed);
- a join bonus: source ``mining.referral_join``, source id ``<invitee>``, so
  the wallet posts it once per invitee ever; the transaction that first sets
  the invitee's ``earned_at`` is the one that owes it.

A share is rounded down per invitee per batch (``floor(units * percent /
100)``); an invitee whose clicks earn nothing (a shadowed account) earns its
inviter nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from minequest.auth.v1 import auth_pb2
from runtime.config import ConfigError, Env
from runtime.money import decimal_units

if TYPE_CHECKING:
    from minequest.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub

#: Ledger source of an inviter's share of a batch (source id ``<outbox>:<inviter>``).
SHARE_SOURCE = "mining.referral"
#: Ledger source of the bonus for an invitee's first earnings (source id ``<invitee>``).
JOIN_SOURCE = "mining.referral_join"
#: Users per ``Auth.GetReferrers`` call.
LOOKUP_MAX = 1000
#: Users whose inviters the worker remembers.
CACHE_MAX = 500_000


@dataclass(frozen=True, slots=True)
class ReferralSettings:
    share_percent: int = 10
    second_share_percent: int = 0
    join_bonus_units: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.share_percent or self.second_share_percent or self.join_bonus_units)

    @classmethod
    def from_env(cls, env: Env, decimals: int) -> ReferralSettings:
        first = env.integer("REFERRAL_MINING_SHARE_PERCENT", 10, minimum=0, maximum=100)
        second = env.integer("REFERRAL_SECOND_LEVEL_SHARE_PERCENT", 0, minimum=0, maximum=100)
        if second > first:
            raise ConfigError(
                "REFERRAL_SECOND_LEVEL_SHARE_PERCENT",
                f"must not exceed REFERRAL_MINING_SHARE_PERCENT ({first}), got {second}",
            )
        text = env.string("REFERRAL_JOIN_BONUS", "1")
        units = decimal_units(text, decimals)
        if units is None or units < 0:
            raise ConfigError(
                "REFERRAL_JOIN_BONUS",
                f"must be a non-negative amount with at most {decimals} decimals, got {text!r}",
            )
        return cls(first, second, units)


@dataclass(frozen=True, slots=True)
class Chain:
    """Who invited a user ('' when nobody), and who invited the inviter."""

    inviter: str = ""
    second: str = ""


NOBODY = Chain()
#: No referral rewards at all.
NO_REFERRALS = ReferralSettings(0, 0, 0)


def shares(
    earned: Mapping[str, int], chains: Mapping[str, Chain], settings: ReferralSettings
) -> dict[str, int]:
    """Inviter -> units owed for what ``earned`` (user -> units) says users
    mined, both levels summed; inviters owed nothing are left out."""
    owed: dict[str, int] = {}
    for user, units in earned.items():
        chain = chains.get(user, NOBODY)
        levels = (
            (chain.inviter, settings.share_percent),
            (chain.second, settings.second_share_percent),
        )
        for inviter, percent in levels:
            share = units * percent // 100
            if inviter and share > 0:
                owed[inviter] = owed.get(inviter, 0) + share
    return owed


class Inviters:
    """Users' inviter chains from ``Auth.GetReferrers``, remembered."""

    def __init__(self, auth: AuthServiceAsyncStub | None, timeout_seconds: float) -> None:
        self.auth = auth
        self.timeout = timeout_seconds
        self._known: dict[str, Chain] = {}

    async def chains(self, user_ids: Iterable[str]) -> dict[str, Chain]:
        """The chain of each user (:data:`NOBODY` when none). Raises the auth
        service's error: the batch is then retried, so no share is skipped."""
        wanted = set(user_ids)
        if self.auth is None:
            return dict.fromkeys(wanted, NOBODY)
        result = {user: self._known[user] for user in wanted if user in self._known}
        unknown = [user for user in wanted if user not in result]
        for start in range(0, len(unknown), LOOKUP_MAX):
            chunk = unknown[start : start + LOOKUP_MAX]
            reply = await self.auth.GetReferrers(
                auth_pb2.GetReferrersRequest(user_ids=chunk), timeout=self.timeout
            )
            found = {
                item.user_id: Chain(item.inviter_id, item.second_inviter_id)
                for item in reply.referrers
            }
            if len(self._known) + len(chunk) > CACHE_MAX:
                self._known.clear()
            for user in chunk:
                result[user] = self._known[user] = found.get(user, NOBODY)
        return result
