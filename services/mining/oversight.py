"""The mining service's reads and admin actions around bot signals and the
mined-coin leaderboards: ``ListSuspects``, ``ClearSuspect``,
``GetMinedLeaderboard`` (the handlers in :mod:`services.mining.service`
delegate here), and the ``mining_suspect_accounts`` gauge's refresher.

Usernames come from ``AuthService.ListPublicProfiles`` (the mining identity
may call it); auth down or slow is UNAVAILABLE ``auth_unavailable`` (HTTP
503, retry), never a 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import grpc
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp
from redis.exceptions import RedisError

from minequest.auth.v1 import auth_pb2
from minequest.common.v1 import common_pb2
from minequest.mining.v1 import mining_pb2
from runtime.errors import InvalidArgument, required
from runtime.money import to_money
from services.mining import leaderboards, metrics, suspects
from services.mining.errors import AuthUnavailable, SuspectNotFound
from services.mining.leaderboards import Period, Row
from services.mining.settings import BotSignals, LeaderboardSettings, Reward

if TYPE_CHECKING:
    from minequest.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub

log = logging.getLogger(__name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_LIMIT = 100
DEFAULT_LIMIT = 10
MAX_AROUND = 50
#: Deadline of the username lookup.
AUTH_TIMEOUT = 3.0

PERIODS = {
    mining_pb2.LEADERBOARD_PERIOD_UNSPECIFIED: Period.DAY,
    mining_pb2.LEADERBOARD_PERIOD_DAY: Period.DAY,
    mining_pb2.LEADERBOARD_PERIOD_WEEK: Period.WEEK,
}


def _timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def _offset(token: str) -> int:
    if not token:
        return 0
    if not token.isascii() or not token.isdigit() or len(token) > 9:
        raise InvalidArgument("pageToken is not one this list gave", field="page_token")
    return int(token)


class Oversight:
    def __init__(
        self,
        redis: aioredis.Redis,
        signals: BotSignals,
        boards: LeaderboardSettings,
        reward: Reward,
        *,
        auth: AuthServiceAsyncStub | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.redis = redis
        self.signals = signals
        self.boards = boards
        self.reward = reward
        self.auth = auth
        self.clock = clock

    # suspects ------------------------------------------------------------------

    def _suspect(self, suspect: suspects.Suspect) -> mining_pb2.Suspect:
        return mining_pb2.Suspect(
            user_id=suspect.user_id,
            flagged_at=_timestamp(suspect.flagged_at),
            reasons=[
                mining_pb2.SuspectReason(code=r.code, text=r.text, flagged_at=_timestamp(r.at))
                for r in suspect.reasons
            ],
            shadowed=self.signals.shadow_mode,
        )

    async def list_suspects(
        self, request: mining_pb2.ListSuspectsRequest
    ) -> mining_pb2.ListSuspectsResponse:
        offset = _offset(request.page.page_token)
        size = request.page.page_size or DEFAULT_PAGE
        size = max(1, min(size, MAX_PAGE))
        rows, total = await suspects.page(self.redis, offset, size)
        metrics.SUSPECT_ACCOUNTS.set(total)
        more = offset + len(rows) < total
        return mining_pb2.ListSuspectsResponse(
            suspects=[self._suspect(row) for row in rows],
            page=common_pb2.PageResponse(next_page_token=str(offset + len(rows)) if more else ""),
            total=total,
        )

    async def clear_suspect(
        self, request: mining_pb2.ClearSuspectRequest
    ) -> mining_pb2.ClearSuspectResponse:
        user = required(request.suspect_id, "suspect_id")
        cleared = await suspects.clear(self.redis, user)
        if cleared is None:
            raise SuspectNotFound(f"account {user!r} is not flagged", field="suspect_id")
        log.info("suspect cleared", extra={"suspect": user})
        metrics.SUSPECT_ACCOUNTS.set(await suspects.count(self.redis))
        return mining_pb2.ClearSuspectResponse(suspect=self._suspect(cleared))

    async def refresh_gauge(self, every_seconds: float) -> None:
        """Keep ``mining_suspect_accounts`` current (the worker flags in another process)."""
        while True:
            try:
                metrics.SUSPECT_ACCOUNTS.set(await suspects.count(self.redis))
            except RedisError as error:
                log.warning("suspect gauge: Redis is unreachable (%s)", error)
            await asyncio.sleep(every_seconds)

    # leaderboards --------------------------------------------------------------

    async def leaderboard(
        self, request: mining_pb2.GetMinedLeaderboardRequest
    ) -> mining_pb2.GetMinedLeaderboardResponse:
        period = PERIODS.get(request.period)
        if period is None:
            raise InvalidArgument("period must be day or week", field="period")
        if not 0 <= request.limit <= MAX_LIMIT:
            raise InvalidArgument(f"limit must be 0-{MAX_LIMIT}", field="limit")
        if not 0 <= request.around <= MAX_AROUND:
            raise InvalidArgument(f"around must be 0-{MAX_AROUND}", field="around")
        if request.around and not request.user_id:
            raise InvalidArgument("around needs user_id", field="user_id")
        limit = request.limit or (0 if request.around else DEFAULT_LIMIT)
        now = self.clock()
        offset = self.boards.utc_offset_minutes
        standing = await leaderboards.read(
            self.redis,
            period,
            now,
            limit=limit,
            user_id=request.user_id,
            around=request.around,
            offset_minutes=offset,
        )
        rows = [*standing.top, *standing.around, *([standing.own] if standing.own else [])]
        names = await self._usernames(sorted({row.user_id for row in rows}))
        reply = mining_pb2.GetMinedLeaderboardResponse(
            period=mining_pb2.LEADERBOARD_PERIOD_WEEK
            if period is Period.WEEK
            else mining_pb2.LEADERBOARD_PERIOD_DAY,
            period_key=leaderboards.period_id(period, now, offset),
            entries=[self._entry(row, names) for row in standing.top],
            around=[self._entry(row, names) for row in standing.around],
            max_age_seconds=self.boards.cache_seconds,
        )
        if standing.own is not None:
            reply.own.CopyFrom(self._entry(standing.own, names))
        return reply

    def _entry(self, row: Row, names: Mapping[str, str]) -> mining_pb2.MinedLeaderboardEntry:
        return mining_pb2.MinedLeaderboardEntry(
            rank=row.rank,
            user_id=row.user_id,
            username=names.get(row.user_id, ""),
            units=row.units,
            mined=to_money(self.reward.currency, row.units, self.reward.decimals),
        )

    async def _usernames(self, user_ids: Sequence[str]) -> Mapping[str, str]:
        if not user_ids or self.auth is None:
            return {}
        try:
            reply = await self.auth.ListPublicProfiles(
                auth_pb2.ListPublicProfilesRequest(user_ids=list(user_ids)), timeout=AUTH_TIMEOUT
            )
        except grpc.aio.AioRpcError as error:
            raise AuthUnavailable(
                "the auth service is unavailable; retry shortly",
                retry_after=1,
                metadata={"grpc_code": error.code().name},
            ) from None
        return {profile.user_id: profile.username for profile in reply.profiles}
