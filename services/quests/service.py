"""The QuestsService gRPC handlers: requests in, domain calls, messages out."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from grpc.aio import ServicerContext
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError
from redis.exceptions import RedisError

from minequest.common.v1 import common_pb2
from minequest.quests.v1 import quests_pb2, quests_pb2_grpc
from runtime.errors import DomainError, InvalidArgument, required
from runtime.idempotency import check_key
from runtime.money import to_money
from runtime.pages import bad_token, decode_token, encode_token, page_size
from runtime.timestamps import to_timestamp
from services.quests import catalogue, daily
from services.quests.completions import complete
from services.quests.credits import Credits
from services.quests.errors import (
    AlreadyCompleted,
    InvalidCount,
    InvalidQuest,
    PrerequisiteMissing,
    QuestExists,
    QuestInactive,
    QuestNotFound,
)
from services.quests.leaderboard import Leaderboard, Standing
from services.quests.metrics import COMPLETIONS, DAILY_CLAIMS
from services.quests.peers import Auth, Wallet
from services.quests.settings import QuestsSettings
from services.quests.store import QuestsStore

log = logging.getLogger(__name__)

Context = ServicerContext[Any, Any]
Clock = Callable[[], datetime]
Doc = dict[str, Any]

DEFAULT_LEADERBOARD_LIMIT, MAX_LEADERBOARD_LIMIT = 10, 100
#: Players on each side of the caller in the around-me leaderboard.
DEFAULT_AROUND_COUNT, MAX_AROUND_COUNT = 5, 50
_RESULTS: dict[type[DomainError], str] = {
    AlreadyCompleted: "already_completed",
    PrerequisiteMissing: "prerequisite_missing",
    QuestInactive: "inactive",
}


def utcnow() -> datetime:
    """Now, at millisecond precision (what MongoDB keeps, so a score's
    ``reached_at`` is the same in Redis and after a rebuild)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def money(coin: Doc | None) -> common_pb2.Money | None:
    if coin is None:
        return None
    return to_money(coin["currency"], int(coin["units"]), int(coin.get("precision", 0)))


def quest_message(doc: Doc, now: datetime) -> quests_pb2.Quest:
    return quests_pb2.Quest(
        id=doc["_id"],
        name=doc["name"],
        description=doc.get("description") or "",
        type=catalogue.TYPE_VALUES[doc["type"]],
        xp_reward=int(doc["xp_reward"]),
        coin_reward=money(doc.get("coin_reward")),
        prerequisite_ids=list(doc.get("prerequisite_ids") or []),
        active_from=to_timestamp(doc.get("active_from")),
        active_until=to_timestamp(doc.get("active_until")),
        archived=bool(doc.get("archived")),
        active=catalogue.is_active(doc, now),
        created_at=to_timestamp(doc.get("created_at")),
        updated_at=to_timestamp(doc.get("updated_at")),
    )


def completion_message(doc: Doc) -> quests_pb2.Completion:
    return quests_pb2.Completion(
        id=doc["_id"],
        quest_id=doc["quest_id"],
        user_id=doc["user_id"],
        xp_earned=int(doc["xp_earned"]),
        completed_at=to_timestamp(doc["completed_at"]),
        period=doc["period"],
        coin_reward=money(doc.get("coin_reward")),
        credit_pending=bool(doc.get("credit_pending")),
        quest_name=doc.get("quest_name") or "",
    )


def claim_message(doc: Doc) -> quests_pb2.DailyClaim:
    return quests_pb2.DailyClaim(
        id=doc["_id"],
        user_id=doc["user_id"],
        day=doc["day"],
        streak=int(doc["streak"]),
        reward=money(doc["coin_reward"]),
        claimed_at=to_timestamp(doc["claimed_at"]),
        credit_pending=bool(doc.get("credit_pending")),
    )


def entry_message(standing: Standing) -> quests_pb2.LeaderboardEntry:
    return quests_pb2.LeaderboardEntry(
        rank=standing.rank,
        user_id=standing.user_id,
        username=standing.username,
        total_xp=standing.xp,
        reached_at=to_timestamp(standing.reached_at),
    )


def _after(token: str) -> str | None:
    """The catalogue id a page token holds (the last id of the page before)."""
    if not token:
        return None
    try:
        return decode_token(token).decode()
    except UnicodeDecodeError:
        raise bad_token() from None


class QuestsService(quests_pb2_grpc.QuestsServiceServicer):
    def __init__(
        self,
        settings: QuestsSettings,
        store: QuestsStore,
        *,
        leaderboard: Leaderboard,
        credits: Credits,
        auth: Auth,
        wallet: Wallet,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.leaderboard = leaderboard
        self.credits = credits
        self.auth = auth
        self.wallet = wallet
        self.now = clock

    # the catalogue -------------------------------------------------------------

    async def ListQuests(
        self, request: quests_pb2.ListQuestsRequest, context: Context
    ) -> quests_pb2.ListQuestsResponse:
        user_id = required(request.user_id, "user_id")
        size = page_size(request.page)
        docs = await self.store.catalogue(_after(request.page.page_token), size + 1)
        page = common_pb2.PageResponse()
        if len(docs) > size:
            docs = docs[:size]
            page.next_page_token = encode_token(docs[-1]["_id"].encode())
        progress = await self.store.user_progress(user_id) or {}
        done: dict[str, Doc] = progress.get("done") or {}
        now = self.now()
        reset_hour = self.settings.daily_reset_hour
        rows = []
        for doc in docs:
            period = catalogue.period_of(doc["type"], now, reset_hour)
            last = done.get(doc["_id"])
            completed = last is not None and last.get("period") == period
            missing = catalogue.missing_prerequisites(doc, done)
            rows.append(
                quests_pb2.QuestProgress(
                    quest=quest_message(doc, now),
                    completed=completed,
                    completed_at=to_timestamp(last["at"]) if completed and last else None,
                    available=catalogue.is_active(doc, now) and not missing and not completed,
                    missing_prerequisite_ids=missing,
                    resets_at=to_timestamp(catalogue.resets_at(now, reset_hour))
                    if doc["type"] == "daily"
                    else None,
                )
            )
        return quests_pb2.ListQuestsResponse(
            quests=rows,
            page=page,
            total_xp=int(progress.get("xp", 0)),
            quests_completed=int(progress.get("quests_completed", 0)),
        )

    # completion ------------------------------------------------------------------

    async def CompleteQuest(
        self, request: quests_pb2.CompleteQuestRequest, context: Context
    ) -> quests_pb2.CompleteQuestResponse:
        user_id = required(request.user_id, "user_id")
        key = check_key(request.idempotency_key, "idempotency_key")
        quest = await self.store.quest(request.quest_id) if request.quest_id else None
        if quest is None:
            raise QuestNotFound("no such quest", field="quest_id")
        try:
            outcome = await complete(
                self.store,
                quest,
                user_id,
                key,
                self.now(),
                reset_hour=self.settings.daily_reset_hour,
                max_attempts=self.settings.complete_max_attempts,
            )
        except DomainError as error:
            result = next((r for t, r in _RESULTS.items() if isinstance(error, t)), "failed")
            COMPLETIONS.labels(quest["type"], result).inc()
            raise
        COMPLETIONS.labels(quest["type"], "replayed" if outcome.replayed else "completed").inc()
        completion = outcome.completion
        if outcome.progress is not None:
            await self._rank(outcome.progress)
            total_xp = int(outcome.progress["xp"])
        else:
            total_xp = int((await self.store.user_progress(user_id) or {}).get("xp", 0))
        if await self.credits.credit_now(self.store.completion_payouts, completion):
            completion = {**completion, "credit_pending": False}
        return quests_pb2.CompleteQuestResponse(
            completion=completion_message(completion), total_xp=total_xp
        )

    async def _rank(self, progress: Doc) -> None:
        """Put the new score on the leaderboard; when Redis fails, the progress
        stays unsynced and the sweeper puts it there later."""
        try:
            await self.leaderboard.record(progress["_id"], progress["xp"], progress["reached_at"])
        except RedisError as error:
            log.warning("leaderboard update deferred to the sweeper", extra={"error": str(error)})
            return
        await self.store.mark_synced(progress["_id"], progress["version"])

    # leaderboard and public lookups --------------------------------------------------

    async def GetLeaderboard(
        self, request: quests_pb2.GetLeaderboardRequest, context: Context
    ) -> quests_pb2.GetLeaderboardResponse:
        limit = request.limit or DEFAULT_LEADERBOARD_LIMIT
        if not 1 <= limit <= MAX_LEADERBOARD_LIMIT:
            raise InvalidArgument(
                f"limit must be 1-{MAX_LEADERBOARD_LIMIT}", reason="invalid_limit", field="limit"
            )
        top = await self.leaderboard.top(limit, self.auth.usernames)
        reply = quests_pb2.GetLeaderboardResponse(
            entries=[entry_message(s) for s in top.standings],
            cached=top.cached,
            max_age_seconds=self.settings.leaderboard_cache_seconds,
        )
        if request.user_id:
            own = await self.leaderboard.standing(request.user_id)
            if own is None:
                reply.own.CopyFrom(quests_pb2.LeaderboardEntry(user_id=request.user_id))
            else:
                try:
                    names = await self.auth.usernames([own.user_id])
                except DomainError:
                    names = {}
                reply.own.CopyFrom(entry_message(own))
                reply.own.username = names.get(own.user_id, "")
        return reply

    async def GetLeaderboardAround(
        self, request: quests_pb2.GetLeaderboardAroundRequest, context: Context
    ) -> quests_pb2.GetLeaderboardAroundResponse:
        user_id = required(request.user_id, "user_id")
        count = request.count or DEFAULT_AROUND_COUNT
        if not 1 <= count <= MAX_AROUND_COUNT:
            raise InvalidCount(f"count must be 1-{MAX_AROUND_COUNT}", field="count")
        standings = await self.leaderboard.around(user_id, count)
        if standings is None:
            return quests_pb2.GetLeaderboardAroundResponse()
        try:
            names = await self.auth.usernames([s.user_id for s in standings])
        except DomainError:
            names = {}  # the ranks still answer; the names come back with auth
        entries = [entry_message(s) for s in standings]
        for entry in entries:
            entry.username = names.get(entry.user_id, "")
        own = next(e for e in entries if e.user_id == user_id)
        return quests_pb2.GetLeaderboardAroundResponse(entries=entries, own=own)

    # daily rewards ----------------------------------------------------------------------

    def _coin(self, units: int) -> common_pb2.Money:
        rewards = self.settings.daily_reward
        return to_money(rewards.currency, units, rewards.decimals)

    async def _pay(self, claim: Doc) -> Doc:
        """Credit a claim still pending (a no-op once the wallet confirmed it)."""
        if await self.credits.credit_now(self.store.daily_payouts, claim):
            return {**claim, "credit_pending": False}
        return claim

    async def GetDailyReward(
        self, request: quests_pb2.GetDailyRewardRequest, context: Context
    ) -> quests_pb2.GetDailyRewardResponse:
        user_id = required(request.user_id, "user_id")
        rewards = self.settings.daily_reward
        status = await daily.status(self.store, rewards, user_id, self.now())
        reply = quests_pb2.GetDailyRewardResponse(
            streak=status.streak,
            claimed_today=status.claim is not None,
            today_reward=self._coin(status.today_units),
            next_reward=self._coin(status.next_units),
            next_claim_at=to_timestamp(status.next_claim_at),
            reward_table=[self._coin(units) for units in rewards.units],
            today=status.today.isoformat(),
        )
        if status.claim is not None:
            reply.claim.CopyFrom(claim_message(await self._pay(status.claim)))
        return reply

    async def ClaimDailyReward(
        self, request: quests_pb2.ClaimDailyRewardRequest, context: Context
    ) -> quests_pb2.ClaimDailyRewardResponse:
        user_id = required(request.user_id, "user_id")
        key = check_key(request.idempotency_key, "idempotency_key")
        rewards = self.settings.daily_reward
        try:
            outcome = await daily.claim(self.store, rewards, user_id, key, self.now())
        except daily.Taken as taken:
            DAILY_CLAIMS.labels("already_claimed").inc()
            await self._pay(taken.claim)  # a credit lost to a crash is retried here too
            raise
        DAILY_CLAIMS.labels("replayed" if outcome.replayed else "claimed").inc()
        claim = await self._pay(outcome.claim)
        day = date.fromisoformat(claim["day"])
        return quests_pb2.ClaimDailyRewardResponse(
            claim=claim_message(claim),
            next_reward=self._coin(daily.reward_units(rewards, int(claim["streak"]) + 1)),
            next_claim_at=to_timestamp(
                daily.day_start(day + timedelta(days=1), rewards.utc_offset_minutes)
            ),
        )

    async def GetInteraction(
        self, request: quests_pb2.GetInteractionRequest, context: Context
    ) -> quests_pb2.GetInteractionResponse:
        address = catalogue.wallet_address(request.wallet_address)
        profile = await self.auth.profile_by_wallet(address)
        if profile is None:
            return quests_pb2.GetInteractionResponse(has_interacted=False, wallet_address=address)
        history = await self.store.history(profile.user_id)
        progress = await self.store.user_progress(profile.user_id) or {}
        count = int(progress.get("quests_completed", len(history)))
        return quests_pb2.GetInteractionResponse(
            has_interacted=count > 0,
            wallet_address=address,
            username=profile.username,
            total_xp=int(progress.get("xp", 0)),
            completed_quests=[
                quests_pb2.CompletedQuest(
                    quest_id=doc["quest_id"],
                    quest_name=doc.get("quest_name") or "",
                    completed_at=to_timestamp(doc["completed_at"]),
                    xp_earned=int(doc["xp_earned"]),
                )
                for doc in history
            ],
            quests_completed=count,
        )

    async def CheckCompletion(
        self, request: quests_pb2.CheckCompletionRequest, context: Context
    ) -> quests_pb2.CheckCompletionResponse:
        address = catalogue.wallet_address(request.address, field="address")
        if not request.quest_id or await self.store.quest(request.quest_id) is None:
            raise QuestNotFound("no such quest", field="quest_id")
        profile = await self.auth.profile_by_wallet(address)
        if profile is None:
            return quests_pb2.CheckCompletionResponse(completed=False)
        done = await self.store.has_completed(profile.user_id, request.quest_id)
        return quests_pb2.CheckCompletionResponse(completed=done)

    # admin ------------------------------------------------------------------------------

    async def UpsertQuest(
        self, request: quests_pb2.UpsertQuestRequest, context: Context
    ) -> quests_pb2.UpsertQuestResponse:
        mode = request.mode
        given, path_id = request.quest.id.strip(), request.quest_id.strip()
        if given and path_id and given != path_id:
            raise InvalidQuest("quest.id differs from the quest in the path", field="quest.id")
        quest_id = given or path_id
        if mode == quests_pb2.UPSERT_MODE_UPDATE and not quest_id:
            raise QuestNotFound("no such quest", field="quest_id")
        quest_id = catalogue.check_quest_id(quest_id or uuid.uuid4().hex)
        precisions = await self.wallet.precisions() if request.quest.HasField("coin_reward") else {}
        fields = catalogue.read_quest(request.quest, quest_id, precisions)
        await self._check_prerequisites(quest_id, fields["prerequisite_ids"])
        now = self.now()
        if mode == quests_pb2.UPSERT_MODE_CREATE:
            doc = {
                "_id": quest_id,
                **fields,
                "archived": False,
                "created_at": now,
                "updated_at": now,
            }
            try:
                await self.store.quests.insert_one(doc)
            except DuplicateKeyError:
                raise QuestExists(f"quest {quest_id!r} exists", field="quest.id") from None
        elif mode == quests_pb2.UPSERT_MODE_UPDATE:
            found = await self.store.quests.find_one_and_update(
                {"_id": quest_id},
                {"$set": {**fields, "updated_at": now}},
                return_document=ReturnDocument.AFTER,
            )
            if found is None:
                raise QuestNotFound("no such quest", field="quest_id")
            doc = found
        else:
            upserted = await self.store.quests.find_one_and_update(
                {"_id": quest_id},
                {
                    "$set": {**fields, "updated_at": now},
                    "$setOnInsert": {"archived": False, "created_at": now},
                },
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            doc = upserted or {"_id": quest_id, **fields}
        log.info("quest saved", extra={"quest_id": quest_id, "mode": mode})
        return quests_pb2.UpsertQuestResponse(quest=quest_message(doc, now))

    async def _check_prerequisites(self, quest_id: str, prerequisites: list[str]) -> None:
        if not prerequisites:
            return
        found = await self.store.quests_by_ids(prerequisites)
        for prerequisite in prerequisites:
            doc = found.get(prerequisite)
            if doc is None:
                raise QuestNotFound(
                    f"prerequisite {prerequisite!r} is not a quest",
                    reason="prerequisite_not_found",
                    field="quest.prerequisite_ids",
                )
            if doc.get("archived"):
                raise InvalidQuest(
                    f"prerequisite {prerequisite!r} is archived", field="quest.prerequisite_ids"
                )
        if catalogue.creates_cycle(quest_id, prerequisites, await self.store.prerequisite_graph()):
            raise InvalidQuest(
                "these prerequisites would make the quest require itself",
                field="quest.prerequisite_ids",
            )

    async def ArchiveQuest(
        self, request: quests_pb2.ArchiveQuestRequest, context: Context
    ) -> quests_pb2.ArchiveQuestResponse:
        now = self.now()
        doc = (
            await self.store.quests.find_one_and_update(
                {"_id": request.quest_id},
                {"$set": {"archived": True, "updated_at": now}},
                return_document=ReturnDocument.AFTER,
            )
            if request.quest_id
            else None
        )
        if doc is None:
            raise QuestNotFound("no such quest", field="quest_id")
        log.info("quest archived", extra={"quest_id": request.quest_id})
        return quests_pb2.ArchiveQuestResponse(quest=quest_message(doc, now))
