"""The WalletService gRPC handlers: requests in, domain calls, messages out.

Ownership is part of every query (``user_id`` with the id), so another
user's withdrawal answers NOT_FOUND exactly like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from grpc.aio import ServicerContext

from minequest.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from runtime.errors import InvalidArgument, required
from runtime.idempotency import check_key
from runtime.timestamps import to_timestamp
from services.wallet import chains, credits, debits, deposits, withdrawals
from services.wallet.errors import InvalidWithdrawal, WithdrawalNotFound
from services.wallet.ledger import KeyedLock, Kind, account_id
from services.wallet.metrics import COINS_MINED, MINING_SOURCE, PendingGauge
from services.wallet.money import Currency, currency_of, read_money, to_money
from services.wallet.owners import WalletOwners
from services.wallet.pages import millis
from services.wallet.settings import WalletSettings
from services.wallet.store import WalletStore

Context = ServicerContext[Any, Any]
Clock = Callable[[], datetime]
Doc = dict[str, Any]

KINDS = {
    Kind.CREDIT: wallet_pb2.ENTRY_KIND_CREDIT,
    Kind.DEBIT: wallet_pb2.ENTRY_KIND_DEBIT,
    Kind.HOLD: wallet_pb2.ENTRY_KIND_HOLD,
    Kind.RELEASE: wallet_pb2.ENTRY_KIND_RELEASE,
    Kind.SPEND: wallet_pb2.ENTRY_KIND_SPEND,
}
STATES = {
    withdrawals.State.PENDING: wallet_pb2.WITHDRAWAL_STATE_PENDING,
    withdrawals.State.COMPLETED: wallet_pb2.WITHDRAWAL_STATE_COMPLETED,
    withdrawals.State.REJECTED: wallet_pb2.WITHDRAWAL_STATE_REJECTED,
}
STATE_NAMES = {value: key for key, value in STATES.items()}
DECISIONS = {
    wallet_pb2.DECISION_APPROVE: withdrawals.Decision.APPROVE,
    wallet_pb2.DECISION_REJECT: withdrawals.Decision.REJECT,
}
MAX_REASON_LENGTH = 500


def utcnow() -> datetime:
    return millis(datetime.now(UTC))


class WalletService(wallet_pb2_grpc.WalletServiceServicer):
    def __init__(
        self,
        settings: WalletSettings,
        store: WalletStore,
        owners: WalletOwners,
        gauge: PendingGauge | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.owners = owners
        self.gauge = gauge
        self.now = clock
        self.currencies = settings.currencies
        self.credits = credits.GroupCommit(store, clock, settings.credit_max_batch)
        #: Holds on one account from this process take turns (see KeyedLock).
        self.holds = KeyedLock()

    def _currency(self, code: str) -> Currency:
        return self.currencies[code]

    def _withdrawal(self, doc: Doc) -> wallet_pb2.Withdrawal:
        return wallet_pb2.Withdrawal(
            id=doc["_id"],
            user_id=doc["user_id"],
            amount=to_money(self._currency(doc["currency"]), doc["amount"]),
            chain=doc["chain"],
            address=doc["address"],
            state=STATES[withdrawals.State(doc["state"])],
            created_at=to_timestamp(doc["created_at"]),
            decided_at=to_timestamp(doc.get("decided_at")),
            decided_by=doc.get("decided_by") or "",
            decision_reason=doc.get("decision_reason") or "",
        )

    def _deposit(self, doc: Doc) -> wallet_pb2.Deposit:
        return wallet_pb2.Deposit(
            id=doc["_id"],
            chain=doc["chain"],
            tx_hash=doc["tx_hash"],
            log_index=doc["log_index"],
            deposit_reference=doc["deposit_reference"],
            amount=to_money(self._currency(doc["currency"]), doc["amount"]),
            matched=doc["matched"],
            user_id=doc["user_id"],
            entry_id=doc["entry_id"],
            created_at=to_timestamp(doc["created_at"]),
        )

    def _poke(self) -> None:
        if self.gauge is not None:
            self.gauge.poke()

    # credits and balances ------------------------------------------------------

    async def Credit(
        self, request: wallet_pb2.CreditRequest, context: Context
    ) -> wallet_pb2.CreditResponse:
        postings = credits.read_entries(
            request.entries, self.currencies, self.settings.credit_max_batch
        )
        outcomes = await self.credits.submit(postings)
        for posting, outcome in zip(postings, outcomes, strict=True):
            if outcome.applied and posting.source.startswith(MINING_SOURCE):
                precision = self.currencies[posting.currency].precision
                COINS_MINED.labels(posting.currency).inc(posting.amount / 10**precision)
        return wallet_pb2.CreditResponse(
            results=[
                wallet_pb2.CreditResult(
                    source=o.source, source_id=o.source_id, applied=o.applied, entry_id=o.entry_id
                )
                for o in outcomes
            ]
        )

    async def Debit(
        self, request: wallet_pb2.DebitRequest, context: Context
    ) -> wallet_pb2.DebitResponse:
        posting = debits.read_debit(request, self.currencies)
        # Debits of one account from this process take turns (as holds do).
        async with self.holds.hold(account_id(posting.user_id, posting.currency)):
            outcome = await debits.debit(self.store, posting, self.now())
        return wallet_pb2.DebitResponse(
            entry_id=outcome.entry_id,
            balance=to_money(self._currency(posting.currency), outcome.balance),
            duplicate=outcome.duplicate,
        )

    async def GetBalance(
        self, request: wallet_pb2.GetBalanceRequest, context: Context
    ) -> wallet_pb2.GetBalanceResponse:
        found = await self.store.balances(required(request.user_id, "user_id"), self.currencies)
        balances = []
        for code, currency in self.currencies.items():
            doc = found.get(code) or {}
            available, held = int(doc.get("available", 0)), int(doc.get("held", 0))
            balances.append(
                wallet_pb2.Balance(
                    currency=code,
                    available_units=available,
                    held_units=held,
                    precision=currency.precision,
                    available=to_money(currency, available).amount,
                    held=to_money(currency, held).amount,
                )
            )
        return wallet_pb2.GetBalanceResponse(balances=balances)

    async def ListLedgerEntries(
        self, request: wallet_pb2.ListLedgerEntriesRequest, context: Context
    ) -> wallet_pb2.ListLedgerEntriesResponse:
        query: Doc = {"user_id": required(request.user_id, "user_id")}
        if request.currency:
            query["currency"] = currency_of(self.currencies, request.currency, "currency").code
        docs, page = await self.store.page(self.store.entries, query, request.page)
        return wallet_pb2.ListLedgerEntriesResponse(
            entries=[
                wallet_pb2.LedgerEntry(
                    id=doc["_id"],
                    kind=KINDS[Kind(doc["kind"])],
                    amount=to_money(self._currency(doc["currency"]), doc["amount"]),
                    source=doc["source"],
                    source_id=doc["source_id"],
                    memo=doc.get("memo", ""),
                    created_at=to_timestamp(doc["created_at"]),
                )
                for doc in docs
            ],
            page=page,
        )

    # deposits --------------------------------------------------------------------

    async def ListDepositWallets(
        self, request: wallet_pb2.ListDepositWalletsRequest, context: Context
    ) -> wallet_pb2.ListDepositWalletsResponse:
        return wallet_pb2.ListDepositWalletsResponse(wallets=self._wallets())

    def _wallets(self) -> list[wallet_pb2.DepositWallet]:
        return [
            wallet_pb2.DepositWallet(currency=w.currency, chain=w.chain, address=w.address)
            for w in self.settings.deposit_wallets
        ]

    async def GetDepositReference(
        self, request: wallet_pb2.GetDepositReferenceRequest, context: Context
    ) -> wallet_pb2.GetDepositReferenceResponse:
        reference = await self.store.reference_of(required(request.user_id, "user_id"), self.now())
        return wallet_pb2.GetDepositReferenceResponse(
            deposit_reference=reference, wallets=self._wallets()
        )

    async def RecordDeposit(
        self, request: wallet_pb2.RecordDepositRequest, context: Context
    ) -> wallet_pb2.RecordDepositResponse:
        currency, units = read_money(request.amount, self.currencies, "amount")
        chain = chains.known_chain(request.chain)
        report = deposits.check_report(
            deposits.DepositReport(
                chain=chain,
                tx_hash=chains.normalize_tx_hash(chain, request.tx_hash),
                log_index=request.log_index,
                reference=request.deposit_reference.strip(),
                currency=currency,
                units=units,
            ),
            self.settings.deposit_chains(currency.code),
        )
        doc, applied = await deposits.record(self.store, report, self.now())
        return wallet_pb2.RecordDepositResponse(
            applied=applied, matched=doc["matched"], deposit=self._deposit(doc)
        )

    async def ListUnmatchedDeposits(
        self, request: wallet_pb2.ListUnmatchedDepositsRequest, context: Context
    ) -> wallet_pb2.ListUnmatchedDepositsResponse:
        docs, page = await self.store.page(self.store.deposits, {"matched": False}, request.page)
        return wallet_pb2.ListUnmatchedDepositsResponse(
            deposits=[self._deposit(doc) for doc in docs], page=page
        )

    # withdrawals ----------------------------------------------------------------

    async def CreateWithdrawal(
        self, request: wallet_pb2.CreateWithdrawalRequest, context: Context
    ) -> wallet_pb2.CreateWithdrawalResponse:
        user_id = required(request.user_id, "user_id")
        key = check_key(request.idempotency_key, "idempotency_key")
        currency, units = read_money(request.amount, self.currencies, "amount")
        limits = self.settings.withdrawal_limits.get(currency.code)
        allowed = self.settings.withdrawal_chains.get(currency.code, frozenset())
        chain = chains.known_chain(request.chain)
        if limits is None or chain not in allowed:
            raise InvalidWithdrawal(
                f"{currency.code} cannot be withdrawn on {chain}; "
                f"chains: {', '.join(sorted(allowed)) or 'none'}",
                reason="unknown_chain",
                field="chain",
            )
        address = chains.normalize_address(chain, request.address)
        withdrawals.check_amount(units, currency, limits)
        await self.owners.check_destination(user_id, chain, address)
        async with self.holds.hold(account_id(user_id, currency.code)):
            doc, created = await withdrawals.create(
                self.store,
                withdrawals.NewWithdrawal(user_id, currency, units, chain, address, key),
                limits,
                self.now(),
            )
        if created:
            self._poke()
        return wallet_pb2.CreateWithdrawalResponse(withdrawal=self._withdrawal(doc))

    async def GetWithdrawal(
        self, request: wallet_pb2.GetWithdrawalRequest, context: Context
    ) -> wallet_pb2.GetWithdrawalResponse:
        user_id = required(request.user_id, "user_id")
        doc = await self.store.withdrawal(request.withdrawal_id, user_id)
        if doc is None:
            raise WithdrawalNotFound("no such withdrawal", field="withdrawalId")
        return wallet_pb2.GetWithdrawalResponse(withdrawal=self._withdrawal(doc))

    async def ListWithdrawals(
        self, request: wallet_pb2.ListWithdrawalsRequest, context: Context
    ) -> wallet_pb2.ListWithdrawalsResponse:
        query = {"user_id": required(request.user_id, "user_id")}
        docs, page = await self.store.page(self.store.withdrawals, query, request.page)
        return wallet_pb2.ListWithdrawalsResponse(
            withdrawals=[self._withdrawal(doc) for doc in docs], page=page
        )

    async def ListWithdrawalsByState(
        self, request: wallet_pb2.ListWithdrawalsByStateRequest, context: Context
    ) -> wallet_pb2.ListWithdrawalsByStateResponse:
        state = STATE_NAMES.get(request.state)
        if state is None:
            raise InvalidArgument("state must be pending, completed or rejected", field="state")
        docs, page = await self.store.page(
            self.store.withdrawals, {"state": str(state)}, request.page
        )
        return wallet_pb2.ListWithdrawalsByStateResponse(
            withdrawals=[self._withdrawal(doc) for doc in docs], page=page
        )

    async def DecideWithdrawal(
        self, request: wallet_pb2.DecideWithdrawalRequest, context: Context
    ) -> wallet_pb2.DecideWithdrawalResponse:
        decision = DECISIONS.get(request.decision)
        if decision is None:
            raise InvalidArgument("decision must be approve or reject", field="decision")
        required(request.admin_id, "admin_id")
        if len(request.reason) > MAX_REASON_LENGTH:
            raise InvalidArgument(
                f"reason is longer than {MAX_REASON_LENGTH} characters", field="reason"
            )
        if not request.withdrawal_id:
            raise WithdrawalNotFound("no such withdrawal", field="withdrawalId")
        doc = await withdrawals.decide(
            self.store,
            request.withdrawal_id,
            decision=decision,
            admin_id=request.admin_id,
            reason=request.reason.strip(),
            now=self.now(),
        )
        self._poke()
        return wallet_pb2.DecideWithdrawalResponse(withdrawal=self._withdrawal(doc))
