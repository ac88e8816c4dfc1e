"""Deposits reported by the provider's signed webhook (verified by the gateway).

A deposit is unique on ``(chain, tx_hash, log_index)``: its ``_id`` is
``<chain>:<tx_hash>:<log_index>`` with the hash in one canonical spelling,
so a repeated notification answers ``applied: false`` and credits nothing.
When the deposit reference names a user, the deposit record and a ``credit``
entry (source ``deposit``, the same id) commit in one transaction. When it
names nobody, the deposit is stored unmatched for an admin and credited to
no one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.wallet.errors import InvalidDeposit, UnknownChain
from services.wallet.ledger import Kind, Posting, Session, entry_id_of, post
from services.wallet.metrics import DEPOSITS
from services.wallet.money import Currency
from services.wallet.store import WalletStore

log = logging.getLogger(__name__)

Doc = dict[str, Any]
#: The ledger source of a matched deposit (its source_id is the deposit id).
DEPOSIT_SOURCE = "deposit"
MAX_REFERENCE_LENGTH = 128


@dataclass(frozen=True, slots=True)
class DepositReport:
    chain: str
    tx_hash: str
    log_index: int
    reference: str
    currency: Currency
    units: int

    @property
    def id(self) -> str:
        return f"{self.chain}:{self.tx_hash}:{self.log_index}"


def check_report(report: DepositReport, deposit_chains: frozenset[str]) -> DepositReport:
    if report.chain not in deposit_chains:
        raise UnknownChain(
            f"{report.currency.code} is not deposited on {report.chain}", field="chain"
        )
    if report.log_index < 0:
        raise InvalidDeposit("logIndex must not be negative", field="logIndex")
    if len(report.reference) > MAX_REFERENCE_LENGTH:
        raise InvalidDeposit("depositReference is too long", field="depositReference")
    return report


async def record(store: WalletStore, report: DepositReport, now: datetime) -> tuple[Doc, bool]:
    """Record (and credit, when matched) a deposit; ``(deposit, applied)``."""
    existing = await store.deposit(report.id)
    if existing is not None:
        _repeated(existing, report)
        return existing, False
    user_id = await store.user_of_reference(report.reference) if report.reference else None
    doc: Doc = {
        "_id": report.id,
        "chain": report.chain,
        "tx_hash": report.tx_hash,
        "log_index": report.log_index,
        "deposit_reference": report.reference,
        "currency": report.currency.code,
        "amount": report.units,
        "matched": user_id is not None,
        "user_id": user_id or "",
        "entry_id": entry_id_of(DEPOSIT_SOURCE, report.id) if user_id else "",
        "created_at": now,
    }

    async def write(session: Session) -> None:
        await store.deposits.insert_one(doc, session=session)
        if user_id is not None:
            credit = Posting(
                user_id,
                report.currency.code,
                Kind.CREDIT,
                report.units,
                DEPOSIT_SOURCE,
                report.id,
                memo=f"deposit {report.tx_hash}",
            )
            await post(store.entries, store.accounts, [credit], now, session)

    try:
        await store.transaction(write)
    except DuplicateKeyError:
        first = await store.deposit(report.id)  # a concurrent notification recorded it
        if first is None:
            raise
        _repeated(first, report)
        return first, False
    DEPOSITS.labels("matched" if user_id else "unmatched").inc()
    if user_id is None:
        log.warning(
            "unmatched deposit kept for an admin",
            extra={"deposit_id": report.id, "deposit_reference": report.reference},
        )
    return doc, True


def _repeated(first: Doc, report: DepositReport) -> None:
    DEPOSITS.labels("duplicate").inc()
    if (first["currency"], first["amount"], first["deposit_reference"]) != (
        report.currency.code,
        report.units,
        report.reference,
    ):
        log.warning(
            "a repeated deposit notification differs from the first; the first stands",
            extra={"deposit_id": report.id},
        )
