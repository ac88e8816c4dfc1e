"""``Wallet.Credit``: batches of credits, each posted at most once.

Each credit is idempotent on its ``(source, source_id)``. A batch is posted
in one transaction (entries plus one ``$inc`` per account), which is what
makes it fast: the embedded SecantusDB commits ~380 small transactions a
second, so per-entry transactions would cap mining rewards there.

:func:`credit` posts one batch:

1. Post it all in one transaction, assuming none of it is in the ledger yet
   (the common case: a mining batch's credits are new). A key already there
   makes the unique index refuse ours and aborts the whole transaction.
2. Then look up which keys are already in the ledger (answered ``applied:
   false`` with their entry id) and post the rest in one transaction.
3. If a concurrent writer posted some of them meanwhile, the same happens
   again: go back to 2, which now sees them. So 50 identical concurrent
   calls post exactly once.

:class:`GroupCommit` runs one such transaction at a time per process and
posts every call that arrived meanwhile together in the next one (group
commit): concurrent calls never conflict with each other on an account,
and the busier the service, the bigger (and cheaper per entry) each
transaction. A group still blocked after ``TIME_LIMIT`` (an account held by
the open transaction of a writer that crashed) is posted call by call, so
only the call touching that account fails (UNAVAILABLE ``ledger_busy``,
retried by its caller) and the others go through.

Sources ``deposit`` and ``withdrawal.*`` are the wallet's own and refused here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pymongo.errors import PyMongoError

from minequest.wallet.v1 import wallet_pb2
from runtime.errors import InvalidArgument
from runtime.stores import is_duplicate_key
from services.wallet.errors import InvalidCredit, LedgerBusy
from services.wallet.ledger import (
    Kind,
    Posting,
    Session,
    post,
)
from services.wallet.metrics import CREDIT_ENTRIES
from services.wallet.money import Currency, read_money
from services.wallet.store import WalletStore

RESERVED_SOURCES = ("deposit", "withdrawal")
Key = tuple[str, str]
MAX_ATTEMPTS = 8
#: Seconds a credit transaction keeps retrying write conflicts. Live writers
#: clear in milliseconds; longer means a crashed writer's transaction still
#: holds an account (until the server's 60 s transaction lifetime), and one
#: commit at a time must not wait for that.
TIME_LIMIT = 1.5
_SOURCE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_MAX_ID = 256
_MAX_MEMO = 512


@dataclass(frozen=True, slots=True)
class CreditOutcome:
    source: str
    source_id: str
    applied: bool
    entry_id: str


def reserved(source: str) -> bool:
    return any(source == name or source.startswith(name + ".") for name in RESERVED_SOURCES)


class Event(Protocol):
    """What a credit or a debit names: whose, which business event, a memo."""

    @property
    def user_id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def source_id(self) -> str: ...
    @property
    def memo(self) -> str: ...


def check_event(
    event: Event, prefix: str = "", error: type[InvalidArgument] = InvalidCredit
) -> None:
    """Refuse (``error``, naming ``<prefix><field>``) an event without a user, with
    a malformed or reserved source, a missing or too long source_id, a too long memo."""
    if not event.user_id or len(event.user_id) > 128:
        raise error(f"{prefix}user_id is required", field=f"{prefix}user_id")
    if not _SOURCE.match(event.source):
        raise error(
            f"{prefix}source must be 1-64 of a-z, 0-9, '.', '_', '-'", field=f"{prefix}source"
        )
    if reserved(event.source):
        raise error(
            f"{prefix}source {event.source!r} is reserved for the wallet itself",
            reason="reserved_source",
            field=f"{prefix}source",
        )
    if not event.source_id or len(event.source_id) > _MAX_ID:
        raise error(f"{prefix}source_id must be 1-{_MAX_ID} characters", field=f"{prefix}source_id")
    if len(event.memo) > _MAX_MEMO:
        raise error(f"{prefix}memo is too long", field=f"{prefix}memo")


def read_entries(
    entries: Sequence[wallet_pb2.CreditEntry],
    currencies: Mapping[str, Currency],
    max_batch: int,
) -> list[Posting]:
    """Validate a request's entries into credit postings (same order).

    A key may repeat (it posts once) but only with the same contents.
    """
    if len(entries) > max_batch:
        raise InvalidCredit(f"at most {max_batch} entries per call", field="entries")
    postings: list[Posting] = []
    for index, entry in enumerate(entries):
        field = f"entries[{index}]"
        check_event(entry, f"{field}.")
        currency, units = read_money(entry.amount, currencies, f"{field}.amount")
        postings.append(
            Posting(
                user_id=entry.user_id,
                currency=currency.code,
                kind=Kind.CREDIT,
                amount=units,
                source=entry.source,
                source_id=entry.source_id,
                memo=entry.memo,
            )
        )
    if _conflicts(postings):
        raise InvalidCredit("a (source, source_id) appears twice with different contents")
    return postings


def _conflicts(postings: Sequence[Posting], known: dict[Key, Posting] | None = None) -> bool:
    """Whether a key repeats with different contents (also against ``known``)."""
    first = dict(known or {})
    return any(first.setdefault(p.key, p) != p for p in postings)


async def credit(
    store: WalletStore,
    postings: Sequence[Posting],
    now: datetime,
    time_limit: float = TIME_LIMIT,
) -> list[CreditOutcome]:
    """Post every credit not yet in the ledger; one outcome per input, in order.

    A key repeated inside the batch is posted once (its first occurrence).
    """
    if _conflicts(postings):
        raise InvalidCredit("a (source, source_id) appears twice with different contents")
    unique: dict[Key, Posting] = {}
    for posting in postings:
        unique.setdefault(posting.key, posting)
    applied: set[Key] = set()
    existing: dict[Key, str] = {}
    for attempt in range(MAX_ATTEMPTS):
        # The first try skips the lookup (1000 new keys cost SecantusDB ~57 ms).
        existing = await store.existing_entries(unique) if attempt else {}
        fresh = [posting for key, posting in unique.items() if key not in existing]
        if not fresh:
            break

        async def write(session: Session, fresh: list[Posting] = fresh) -> None:
            await post(store.entries, store.accounts, fresh, now, session)

        try:
            await store.transaction(write, time_limit)
        except PyMongoError as error:
            if not is_duplicate_key(error):
                raise
            continue  # a concurrent call posted some of these: look again
        applied = {p.key for p in fresh}
        break
    else:
        raise LedgerBusy("concurrent credits kept colliding; retry the call", retry_after=1)
    CREDIT_ENTRIES.labels("applied").inc(len(applied))
    CREDIT_ENTRIES.labels("duplicate").inc(len(postings) - len(applied))
    outcomes = []
    seen: set[Key] = set()
    for posting in postings:
        key = posting.key
        entry_id = existing.get(key) or unique[key].entry_id
        outcomes.append(
            CreditOutcome(
                key[0], key[1], applied=key in applied and key not in seen, entry_id=entry_id
            )
        )
        seen.add(key)
    return outcomes


@dataclass(slots=True)
class _Call:
    postings: list[Posting]
    done: asyncio.Future[list[CreditOutcome]]


class GroupCommit:
    """One credit transaction at a time per process; calls that arrive while it
    runs are posted together in the next one (up to ``max_entries``, or one
    larger call alone). Each caller gets the outcomes of its own entries."""

    def __init__(self, store: WalletStore, clock: Callable[[], datetime], max_entries: int) -> None:
        self._store = store
        self._clock = clock
        self._max_entries = max_entries
        self._queue: list[_Call] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, postings: list[Posting]) -> list[CreditOutcome]:
        call = _Call(postings, asyncio.get_running_loop().create_future())
        self._queue.append(call)
        if self._runner is None or self._runner.done():
            # Not the caller's task: a cancelled caller cannot abort the others' commit.
            self._runner = asyncio.create_task(self._drain(), name="wallet-credit-commit")
        return await call.done

    def _next_group(self) -> list[_Call]:
        group: list[_Call] = []
        keys: dict[Key, Posting] = {}
        size = 0
        for call in self._queue:
            if group and size + len(call.postings) > self._max_entries:
                break
            if _conflicts(call.postings, keys):
                continue  # same key, other contents: the next transaction settles it
            group.append(call)
            size += len(call.postings)
            keys.update((p.key, p) for p in call.postings)
        self._queue = [call for call in self._queue if call not in group]
        return group

    async def _drain(self) -> None:
        while self._queue:
            group = self._next_group()
            postings = [p for call in group for p in call.postings]
            try:
                outcomes = await credit(self._store, postings, self._clock(), TIME_LIMIT)
            except LedgerBusy as busy:
                if len(group) == 1:
                    _settle(group[0], busy)
                    continue
                # One call may touch an account a crashed writer still holds:
                # post the calls separately, so only that call fails (and is retried).
                await asyncio.gather(*(self._alone(call) for call in group))
                continue
            except Exception as error:
                for call in group:
                    _settle(call, error)
                continue
            start = 0
            for call in group:
                _settle(call, outcomes[start : start + len(call.postings)])
                start += len(call.postings)

    async def _alone(self, call: _Call) -> None:
        try:
            _settle(call, await credit(self._store, call.postings, self._clock(), TIME_LIMIT))
        except Exception as error:
            _settle(call, error)


def _settle(call: _Call, result: list[CreditOutcome] | BaseException) -> None:
    """Hand a call its answer (unless its caller has gone: deadline, cancel)."""
    if call.done.done():
        return
    if isinstance(result, BaseException):
        call.done.set_exception(result)
    else:
        call.done.set_result(result)
