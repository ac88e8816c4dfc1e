"""``python -m services.wallet reconcile``: recompute every balance from the ledger.

For each account, the ledger says::

    available = credits - holds + releases
    held      = holds - releases - debits

1. One aggregation sums the entries per (user, currency, kind); every
   account document is compared with those sums (an account without
   entries must be zero; entries without an account are a difference too).
2. Each account that differs is checked again inside one snapshot
   transaction that reads its document and its entries together, so a
   posting committed between the two reads of step 1 is not reported.

Whatever still differs is reported; the command exits 1 if anything does.
A negative balance is always a difference.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from services.wallet.ledger import EFFECTS, Kind, Session, account_id
from services.wallet.store import WalletStore

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Difference:
    account: str
    user_id: str
    currency: str
    available: int
    held: int
    ledger_available: int
    ledger_held: int


@dataclass(frozen=True, slots=True)
class Report:
    accounts: int
    entries: int
    differences: tuple[Difference, ...]


def expected(sums: Iterable[tuple[str, int]]) -> tuple[int, int]:
    """(available, held) from ``(kind, total)`` pairs."""
    available = held = 0
    for kind, total in sums:
        to_available, to_held = EFFECTS[Kind(kind)]
        available += to_available * total
        held += to_held * total
    return available, held


def _differs(available: int, held: int, ledger: tuple[int, int]) -> bool:
    return (available, held) != ledger or available < 0 or held < 0


async def _ledger_sums(
    store: WalletStore,
) -> tuple[dict[tuple[str, str], list[tuple[str, int]]], int]:
    cursor = await store.entries.aggregate(
        [
            {
                "$group": {
                    "_id": {"user_id": "$user_id", "currency": "$currency", "kind": "$kind"},
                    "total": {"$sum": "$amount"},
                    "count": {"$sum": 1},
                }
            }
        ]
    )
    sums: dict[tuple[str, str], list[tuple[str, int]]] = {}
    count = 0
    async for row in cursor:
        key = row["_id"]
        sums.setdefault((key["user_id"], key["currency"]), []).append(
            (key["kind"], int(row["total"]))
        )
        count += int(row["count"])
    return sums, count


async def _confirm(store: WalletStore, user_id: str, currency: str) -> Difference | None:
    """Compare one account with its entries inside one snapshot."""

    async def read(session: Session) -> Difference | None:
        doc = await store.accounts.find_one({"_id": account_id(user_id, currency)}, session=session)
        totals: dict[str, int] = {}
        async for entry in store.entries.find(
            {"user_id": user_id, "currency": currency}, {"kind": 1, "amount": 1}, session=session
        ):
            totals[entry["kind"]] = totals.get(entry["kind"], 0) + int(entry["amount"])
        ledger = expected(totals.items())
        available = int(doc["available"]) if doc else 0
        held = int(doc["held"]) if doc else 0
        if not _differs(available, held, ledger):
            return None
        return Difference(
            account_id(user_id, currency), user_id, currency, available, held, *ledger
        )

    return await store.transaction(read)


async def reconcile(store: WalletStore) -> Report:
    sums, entry_count = await _ledger_sums(store)
    suspects: set[tuple[str, str]] = set()
    account_count = 0
    async for doc in store.accounts.find(
        {}, {"user_id": 1, "currency": 1, "available": 1, "held": 1}
    ):
        account_count += 1
        key = (doc["user_id"], doc["currency"])
        ledger = expected(sums.pop(key, []))
        if _differs(int(doc["available"]), int(doc["held"]), ledger):
            suspects.add(key)
    suspects.update(key for key, rows in sums.items() if expected(rows) != (0, 0))
    differences = []
    for user_id, currency in sorted(suspects):
        difference = await _confirm(store, user_id, currency)
        if difference is not None:
            differences.append(difference)
    return Report(account_count, entry_count, tuple(differences))
