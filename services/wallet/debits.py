"""``Wallet.Debit``: spend available funds, once per ``(source, source_id)``.

A debit is one ledger entry of kind ``spend`` (available -x, held
unchanged), posted by :func:`services.wallet.ledger.post` in one transaction
with the account's balance, so the reconciliation sums it like any other
entry. The transaction also reads the balance it leaves and keeps it on the
entry (``balance_after``), so a replay answers exactly the first result:

1. Look the key up in the ledger: found with the same user, currency and
   amount → that entry, ``duplicate``; found with other contents →
   :class:`IdempotencyKeyReused`.
2. Post it. The account's cover is in the update's filter: funds that do not
   cover it abort the transaction with :class:`InsufficientFunds` and nothing
   is written (a later call with the same key may then succeed).
3. A concurrent call that posted the same key first makes our insert a
   duplicate key, which aborts ours: go back to 1, which now finds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.errors import PyMongoError

from minequest.wallet.v1 import wallet_pb2
from runtime.stores import is_duplicate_key
from services.wallet.credits import check_event
from services.wallet.errors import IdempotencyKeyReused, InsufficientFunds, InvalidDebit, LedgerBusy
from services.wallet.ledger import Kind, Posting, Session, account_id, post
from services.wallet.metrics import DEBITS
from services.wallet.money import Currency, read_money
from services.wallet.store import WalletStore

Doc = dict[str, Any]
MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class DebitOutcome:
    entry_id: str
    #: The available balance the debit left, in minor units.
    balance: int
    #: The key was posted before: this is its first answer.
    duplicate: bool


def read_debit(request: wallet_pb2.DebitRequest, currencies: Mapping[str, Currency]) -> Posting:
    """Validate a request into a ``spend`` posting."""
    check_event(request, error=InvalidDebit)
    currency, units = read_money(request.amount, currencies, "amount")
    return Posting(
        user_id=request.user_id,
        currency=currency.code,
        kind=Kind.SPEND,
        amount=units,
        source=request.source,
        source_id=request.source_id,
        memo=request.memo,
    )


def _replay(doc: Doc, posting: Posting) -> DebitOutcome:
    same = (doc["user_id"], doc["currency"], doc["kind"], doc["amount"]) == (
        posting.user_id,
        posting.currency,
        str(Kind.SPEND),
        posting.amount,
    )
    if not same:
        raise IdempotencyKeyReused(
            f"({posting.source}, {posting.source_id}) was posted with other contents",
            field="source_id",
        )
    DEBITS.labels("duplicate").inc()
    return DebitOutcome(str(doc["_id"]), int(doc.get("balance_after", 0)), duplicate=True)


async def debit(store: WalletStore, posting: Posting, now: datetime) -> DebitOutcome:
    """Post ``posting`` (a spend) unless its key is in the ledger already."""

    async def write(session: Session) -> int:
        await post(store.entries, store.accounts, [posting], now, session)
        account = await store.accounts.find_one(
            {"_id": account_id(posting.user_id, posting.currency)},
            {"available": 1},
            session=session,
        )
        assert account is not None  # post() just changed it
        balance = int(account["available"])
        await store.entries.update_one(
            {"_id": posting.entry_id}, {"$set": {"balance_after": balance}}, session=session
        )
        return balance

    for _ in range(MAX_ATTEMPTS):
        existing = await store.entry(posting.key)
        if existing is not None:
            return _replay(existing, posting)
        try:
            balance = await store.transaction(write)
        except InsufficientFunds:
            DEBITS.labels("insufficient_funds").inc()
            raise
        except PyMongoError as error:
            if not is_duplicate_key(error):
                raise
            continue  # a concurrent call posted this key: answer its entry
        DEBITS.labels("applied").inc()
        return DebitOutcome(posting.entry_id, balance, duplicate=False)
    raise LedgerBusy("concurrent debits kept colliding; retry the call", retry_after=1)
