"""Withdrawals: hold the funds, then an admin approves (debit) or rejects (release).

The state machine, enforced by conditional updates inside transactions::

    pending ──approve──▶ completed   (the hold is debited)
        └────reject───▶ rejected    (the hold is released, the day's limit freed)

Nothing else moves: a decided withdrawal never changes again. Repeating the
decision it already has answers it unchanged (a retried admin click);
the other decision is :class:`WithdrawalNotPending`. Two racing decisions
update the same document with ``state: pending`` in the filter, so the
database lets exactly one of them through.

Creating one, in one transaction: insert the withdrawal (unique on the
user's Idempotency-Key, so a retry finds it instead), hold the amount
(``available >= amount`` or :class:`InsufficientFunds`), and add it to the
user's total for the UTC day (``used <= daily - amount`` or
:class:`DailyLimitExceeded`).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.wallet.errors import (
    DailyLimitExceeded,
    IdempotencyKeyReused,
    InvalidAmount,
    LedgerBusy,
    WithdrawalNotFound,
    WithdrawalNotPending,
)
from services.wallet.ledger import Kind, Posting, Session, new_id, post
from services.wallet.metrics import WITHDRAWALS
from services.wallet.money import Currency, format_units
from services.wallet.settings import WithdrawalLimits
from services.wallet.store import WalletStore

log = logging.getLogger(__name__)

Doc = dict[str, Any]


class State(enum.StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    REJECTED = "rejected"


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


#: The only transitions there are.
TRANSITIONS: dict[tuple[State, Decision], State] = {
    (State.PENDING, Decision.APPROVE): State.COMPLETED,
    (State.PENDING, Decision.REJECT): State.REJECTED,
}
OUTCOME = {Decision.APPROVE: State.COMPLETED, Decision.REJECT: State.REJECTED}


def transition(state: State, decision: Decision) -> State | None:
    """The next state, ``None`` when ``state`` already is the decision's outcome
    (nothing to do), or :class:`WithdrawalNotPending`."""
    target = TRANSITIONS.get((state, decision))
    if target is not None:
        return target
    if OUTCOME[decision] is state:
        return None
    raise WithdrawalNotPending(f"the withdrawal is {state}; it cannot be {decision}d")


def check_amount(units: int, currency: Currency, limits: WithdrawalLimits) -> None:
    if units < limits.minimum:
        raise InvalidAmount(
            f"the minimum withdrawal is {format_units(limits.minimum, currency)} {currency.code}",
            reason="amount_below_minimum",
            field="amount",
        )
    if units > limits.maximum:
        raise InvalidAmount(
            f"the maximum withdrawal is {format_units(limits.maximum, currency)} {currency.code}",
            reason="amount_above_maximum",
            field="amount",
        )


def day_of(moment: datetime) -> str:
    return moment.date().isoformat()


def seconds_to_next_day(moment: datetime) -> float:
    midnight = datetime.combine(
        moment.date() + timedelta(days=1), datetime.min.time(), moment.tzinfo
    )
    return (midnight - moment).total_seconds()


@dataclass(frozen=True, slots=True)
class NewWithdrawal:
    user_id: str
    currency: Currency
    units: int
    chain: str
    address: str
    idempotency_key: str


def _same_request(doc: Doc, request: NewWithdrawal) -> bool:
    return (doc["currency"], doc["amount"], doc["chain"], doc["address"]) == (
        request.currency.code,
        request.units,
        request.chain,
        request.address,
    )


async def create(
    store: WalletStore, request: NewWithdrawal, limits: WithdrawalLimits, now: datetime
) -> tuple[Doc, bool]:
    """Hold the funds of a new pending withdrawal; ``(withdrawal, created)``.

    The same Idempotency-Key again answers the first withdrawal; with
    different contents, :class:`IdempotencyKeyReused`.
    """
    for _ in range(5):
        existing = await store.withdrawal_by_key(request.user_id, request.idempotency_key)
        if existing is not None:
            if not _same_request(existing, request):
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used for a different withdrawal",
                    field="idempotencyKey",
                )
            return existing, False
        try:
            doc = await store.transaction(
                lambda session: _create(store, request, limits, now, session)
            )
        except DuplicateKeyError as error:
            if "idempotency_key" in ((error.details or {}).get("keyPattern") or {}):
                continue  # a concurrent retry with the same key won: answer its withdrawal
            raise
        except DailyLimitExceeded:
            if await _day_has_room(store, request, limits, now):
                continue  # two first withdrawals of the day raced to create the counter
            raise
        WITHDRAWALS.labels("created").inc()
        log.info(
            "withdrawal created",
            extra={
                "withdrawal_id": doc["_id"],
                "user_id": request.user_id,
                "amount": request.units,
            },
        )
        return doc, True
    raise LedgerBusy("concurrent withdrawals kept colliding; retry", retry_after=1)


def _day_key(currency: str, user_id: str, day: str) -> str:
    return f"{currency}:{user_id}:{day}"


async def _day_has_room(
    store: WalletStore, request: NewWithdrawal, limits: WithdrawalLimits, now: datetime
) -> bool:
    key = _day_key(request.currency.code, request.user_id, day_of(now))
    day = await store.withdrawal_days.find_one({"_id": key})
    used = 0 if day is None else int(day["used"])
    return used + request.units <= limits.daily


async def _create(
    store: WalletStore,
    request: NewWithdrawal,
    limits: WithdrawalLimits,
    now: datetime,
    session: Session,
) -> Doc:
    code, day = request.currency.code, day_of(now)
    doc: Doc = {
        "_id": new_id(),
        "user_id": request.user_id,
        "idempotency_key": request.idempotency_key,
        "currency": code,
        "amount": request.units,
        "chain": request.chain,
        "address": request.address,
        "state": str(State.PENDING),
        "day": day,
        "created_at": now,
        "decided_at": None,
        "decided_by": "",
        "decision_reason": "",
    }
    await store.withdrawals.insert_one(doc, session=session)
    hold = Posting(request.user_id, code, Kind.HOLD, request.units, "withdrawal.hold", doc["_id"])
    await post(store.entries, store.accounts, [hold], now, session)
    counter = _day_key(code, request.user_id, day)
    try:
        await store.withdrawal_days.update_one(
            {"_id": counter, "used": {"$lte": limits.daily - request.units}},
            {
                "$inc": {"used": request.units},
                "$setOnInsert": {"expires_at": now + timedelta(days=2)},
            },
            upsert=True,
            session=session,
        )
    except DuplicateKeyError:
        # The day's document exists and has no room left (the filter missed it).
        raise DailyLimitExceeded(
            f"the daily withdrawal limit of {format_units(limits.daily, request.currency)} {code} "
            "would be exceeded",
            field="amount",
            retry_after=seconds_to_next_day(now),
        ) from None
    return doc


async def decide(
    store: WalletStore,
    withdrawal_id: str,
    *,
    decision: Decision,
    admin_id: str,
    reason: str,
    now: datetime,
) -> Doc:
    """Approve or reject a pending withdrawal; the withdrawal as it is after."""

    async def run(session: Session) -> tuple[Doc, bool]:
        doc = await store.withdrawals.find_one({"_id": withdrawal_id}, session=session)
        if doc is None:
            raise WithdrawalNotFound("no such withdrawal", field="withdrawalId")
        target = transition(State(doc["state"]), decision)
        if target is None:
            return doc, False
        changes = {
            "state": str(target),
            "decided_at": now,
            "decided_by": admin_id,
            "decision_reason": reason,
        }
        result = await store.withdrawals.update_one(
            {"_id": withdrawal_id, "state": str(State.PENDING)}, {"$set": changes}, session=session
        )
        if result.modified_count != 1:  # decided since our read (a write conflict retries us)
            raise WithdrawalNotPending("the withdrawal was decided meanwhile")
        user_id, code, units = doc["user_id"], doc["currency"], doc["amount"]
        kind, source = (
            (Kind.DEBIT, "withdrawal.debit")
            if target is State.COMPLETED
            else (Kind.RELEASE, "withdrawal.release")
        )
        await post(
            store.entries,
            store.accounts,
            [Posting(user_id, code, kind, units, source, withdrawal_id)],
            now,
            session,
        )
        if target is State.REJECTED:
            await store.withdrawal_days.update_one(
                {"_id": _day_key(code, user_id, doc["day"])},
                {"$inc": {"used": -units}},
                session=session,
            )
        return {**doc, **changes}, True

    doc, changed = await store.transaction(run)
    if changed:
        WITHDRAWALS.labels(doc["state"]).inc()
        log.info(
            "withdrawal decided",
            extra={"withdrawal_id": withdrawal_id, "state": doc["state"], "admin_id": admin_id},
        )
    return doc
