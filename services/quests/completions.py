"""Completing a quest exactly once per user (per day for daily quests).

:func:`complete` runs one transaction:

1. read the user's progress document (its ``version``);
2. refuse when the quest is already done in this period, or a prerequisite
   is missing;
3. insert the completion — **unique on (user_id, quest_id, period)**;
4. update the progress (``xp``, ``done``, ``quests_completed``) **only if its
   version is still the one read** (optimistic concurrency), or insert it.

A version conflict, a write conflict or a duplicate that is not visible yet
is retried, up to ``max_attempts`` times with jittered exponential backoff
(5 ms doubling, at most 200 ms), then UNAVAILABLE ``progress_busy`` (HTTP
503, so the client retries). A duplicate completion is looked up: with the
same idempotency key it is a retry of the same request and answers the
original completion; otherwise ALREADY_EXISTS ``already_completed`` carrying
the original. The completion and its XP commit together, so XP is granted
exactly when the completion exists, whatever crashes.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError, PyMongoError

from runtime.timestamps import to_timestamp
from services.quests import catalogue
from services.quests.errors import (
    AlreadyCompleted,
    PrerequisiteMissing,
    ProgressBusy,
    QuestInactive,
)
from services.quests.store import QuestsStore, Session

Doc = dict[str, Any]

_BACKOFF_FIRST, _BACKOFF_MAX = 0.005, 0.2


class _Conflict(Exception):
    """The progress document changed since it was read: run again."""


class _Done(Exception):
    """The progress says this quest is done in this period."""


@dataclass(frozen=True, slots=True)
class Outcome:
    completion: Doc
    #: The progress after the completion (None when this was a replay).
    progress: Doc | None

    @property
    def replayed(self) -> bool:
        return self.progress is None


def completion_metadata(doc: Doc) -> dict[str, str]:
    """What an ``already_completed`` error says about the original completion."""
    stamp = to_timestamp(doc["completed_at"])
    return {
        "completion_id": doc["_id"],
        "quest_id": doc["quest_id"],
        "period": doc["period"],
        # As the completion's JSON answer renders it (RFC 3339, UTC, "Z").
        "completed_at": stamp.ToJsonString() if stamp else "",
        "xp_earned": str(doc["xp_earned"]),
    }


def new_completion(quest: Doc, user_id: str, period: str, key: str, now: datetime) -> Doc:
    coin = quest.get("coin_reward")
    return {
        "_id": uuid.uuid4().hex,
        "user_id": user_id,
        "quest_id": quest["_id"],
        "quest_name": quest["name"],
        "quest_type": quest["type"],
        "period": period,
        "xp_earned": int(quest["xp_reward"]),
        "coin_reward": coin,
        "credit_pending": coin is not None,
        "idempotency_key": key,
        "completed_at": now,
    }


def progress_change(progress: Doc | None, completion: Doc, now: datetime) -> Doc:
    """The progress document after ``completion`` (pure; ``version`` + 1)."""
    before = progress or {"xp": 0, "quests_completed": 0, "done": {}, "version": 0}
    gained = int(completion["xp_earned"])
    return {
        "xp": int(before["xp"]) + gained,
        "quests_completed": int(before.get("quests_completed", 0)) + 1,
        # A completion worth no XP does not move the time the score was reached.
        "reached_at": now if gained > 0 or not before.get("reached_at") else before["reached_at"],
        "version": int(before.get("version", 0)) + 1,
        "lb_synced": False,
        "updated_at": now,
    }


async def complete(
    store: QuestsStore,
    quest: Doc,
    user_id: str,
    key: str,
    now: datetime,
    *,
    reset_hour: int = 0,
    max_attempts: int = 8,
) -> Outcome:
    """Complete ``quest`` for ``user_id`` once (see the module docstring)."""
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # what MongoDB keeps
    if not catalogue.is_active(quest, now):
        raise QuestInactive("this quest is not active", field="quest_id")
    quest_id = quest["_id"]
    period = catalogue.period_of(quest["type"], now, reset_hour)
    for attempt in range(1, max_attempts + 1):
        completion = new_completion(quest, user_id, period, key, now)

        async def write(session: Session, completion: Doc = completion) -> Doc:
            progress = await store.progress.find_one({"_id": user_id}, session=session)
            done: dict[str, Doc] = (progress or {}).get("done") or {}
            last = done.get(quest_id)
            if last is not None and last.get("period") == period:
                raise _Done
            missing = catalogue.missing_prerequisites(quest, done)
            if missing:
                raise PrerequisiteMissing(
                    "complete the prerequisite quests first: " + ", ".join(missing),
                    field="quest_id",
                    metadata={"missing": ",".join(missing)},
                )
            await store.completions.insert_one(completion, session=session)
            after = progress_change(progress, completion, now)
            mark = {"period": period, "at": now, "completion_id": completion["_id"]}
            if progress is None:
                try:
                    await store.progress.insert_one(
                        {"_id": user_id, **after, "done": {quest_id: mark}}, session=session
                    )
                except DuplicateKeyError:
                    raise _Conflict from None
            else:
                result = await store.progress.update_one(
                    {"_id": user_id, "version": progress["version"]},
                    {"$set": {**after, f"done.{quest_id}": mark}},
                    session=session,
                )
                if result.matched_count != 1:
                    raise _Conflict
            return {"_id": user_id, **after}

        try:
            progress_after = await store.transaction(write)
            return Outcome(completion, progress_after)
        except (_Done, DuplicateKeyError):
            original = await store.completion_of(user_id, quest_id, period)
            if original is not None:
                if original.get("idempotency_key") == key:
                    return Outcome(original, None)
                raise AlreadyCompleted(
                    "you have already completed this quest"
                    + (" today" if period != catalogue.ONCE else ""),
                    field="quest_id",
                    metadata=completion_metadata(original),
                ) from None
            # Not visible yet (a concurrent transaction is committing): look again.
        except _Conflict:
            pass
        except PyMongoError as error:
            if not error.has_error_label("TransientTransactionError"):
                raise
        if attempt < max_attempts:
            delay = random.uniform(0, min(_BACKOFF_MAX, _BACKOFF_FIRST * 2**attempt))  # noqa: S311
            await asyncio.sleep(delay)
    raise ProgressBusy("your progress is busy; retry shortly", retry_after=1)
