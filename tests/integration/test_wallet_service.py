"""The wallet service through a real gRPC channel, on the real MongoDB-wire server:
idempotent credits, holds that never overdraw, the withdrawal state machine
under races, deposits, pagination and reconciliation."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2 as pb
from minequest.wallet.v1 import wallet_pb2_grpc
from runtime.errors import decode_rpc_error
from runtime.stores import mongo_client
from services.wallet.reconcile import reconcile
from services.wallet.store import WalletStore
from tests.integration.conftest import fails, wallet_channel, wallet_settings

if TYPE_CHECKING:
    from minequest.wallet.v1.wallet_pb2_grpc import WalletServiceAsyncStub as Stub

pytestmark = pytest.mark.integration

ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.fixture
async def wallet(mongodb_uri: str, database_name: str) -> AsyncIterator[Stub]:
    async with wallet_channel(wallet_settings(mongodb_uri, database_name)) as channel:
        yield wallet_pb2_grpc.WalletServiceStub(channel)


def user() -> str:
    return uuid.uuid4().hex


def mqc(amount: str) -> common_pb2.Money:
    return common_pb2.Money(currency="MQC", amount=amount)


def entry(
    user_id: str, amount: str, source_id: str, source: str = "mining.click"
) -> pb.CreditEntry:
    return pb.CreditEntry(user_id=user_id, amount=mqc(amount), source=source, source_id=source_id)


async def balance(wallet: Stub, user_id: str, currency: str = "MQC") -> pb.Balance:
    reply = await wallet.GetBalance(pb.GetBalanceRequest(user_id=user_id))
    return next(b for b in reply.balances if b.currency == currency)


async def withdraw(wallet: Stub, user_id: str, amount: str, key: str | None = None) -> Any:
    return await wallet.CreateWithdrawal(
        pb.CreateWithdrawalRequest(
            user_id=user_id,
            amount=mqc(amount),
            chain="ethereum",
            address=ADDRESS.lower(),
            idempotency_key=uuid.uuid4().hex if key is None else key,
        )
    )


async def decide(wallet: Stub, withdrawal_id: str, decision: pb.Decision.ValueType) -> Any:
    return await wallet.DecideWithdrawal(
        pb.DecideWithdrawalRequest(withdrawal_id=withdrawal_id, decision=decision, admin_id="root")
    )


async def assert_reconciled(mongodb_uri: str, database_name: str) -> None:
    client = mongo_client(mongodb_uri, app_name="tests")
    try:
        report = await reconcile(WalletStore(client, database_name))
    finally:
        await client.close()
    assert report.differences == ()


async def test_credit_batch_posts_each_key_once(wallet: Stub) -> None:
    alice, bob = user(), user()
    batch = [entry(alice, "1.5", "k1"), entry(bob, "0.00000001", "k2"), entry(alice, "1.5", "k1")]
    first = await wallet.Credit(pb.CreditRequest(entries=batch))
    assert [r.applied for r in first.results] == [True, True, False]
    assert first.results[0].entry_id == first.results[2].entry_id
    again = await wallet.Credit(pb.CreditRequest(entries=[*batch, entry(bob, "2", "k3")]))
    assert [r.applied for r in again.results] == [False, False, False, True]
    assert again.results[0].entry_id == first.results[0].entry_id
    mine = await balance(wallet, alice)
    assert (mine.available_units, mine.available, mine.held, mine.precision) == (
        150_000_000,
        "1.50000000",
        "0.00000000",
        8,
    )
    assert (await balance(wallet, bob)).available == "2.00000001"
    usdt = await balance(wallet, alice, "USDT")
    assert (usdt.available, usdt.precision) == ("0.000000", 6)


@pytest.mark.parametrize(
    ("money", "reason", "field"),
    [
        (common_pb2.Money(currency="MQC", amount="-1"), "amount_not_positive", "amount"),
        (common_pb2.Money(currency="MQC", amount="0"), "amount_not_positive", "amount"),
        (common_pb2.Money(currency="MQC", units=-5), "amount_not_positive", "units"),
        (common_pb2.Money(currency="MQC", amount="0.000000001"), "precision_exceeded", "amount"),
        (common_pb2.Money(currency="MQC", amount="1e5"), "invalid_amount", "amount"),
        (common_pb2.Money(currency="MQC", amount="1", units=7), "amount_mismatch", "units"),
        (common_pb2.Money(currency="DOGE", amount="1"), "unknown_currency", "currency"),
        (common_pb2.Money(currency="MQC", amount="99999999999999"), "amount_too_large", "amount"),
    ],
)
async def test_bad_amounts_are_invalid_argument(
    wallet: Stub, money: common_pb2.Money, reason: str, field: str
) -> None:
    request = pb.CreditRequest(
        entries=[pb.CreditEntry(user_id=user(), amount=money, source="quests", source_id="q")]
    )
    blamed = await fails(wallet.Credit(request), grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert blamed.field == f"entries[0].amount.{field}"


async def test_wallet_sources_and_conflicting_duplicates_are_refused(wallet: Stub) -> None:
    alice = user()
    forged = pb.CreditRequest(entries=[entry(alice, "1", "0xabc:0", source="deposit")])
    await fails(wallet.Credit(forged), grpc.StatusCode.INVALID_ARGUMENT, "reserved_source")
    held = pb.CreditRequest(entries=[entry(alice, "1", "w", source="withdrawal.release")])
    await fails(wallet.Credit(held), grpc.StatusCode.INVALID_ARGUMENT, "reserved_source")
    twice = pb.CreditRequest(entries=[entry(alice, "1", "x"), entry(alice, "2", "x")])
    await fails(wallet.Credit(twice), grpc.StatusCode.INVALID_ARGUMENT, "invalid_credit")
    assert (await balance(wallet, alice)).available_units == 0


async def test_fifty_identical_concurrent_credits_post_once(
    wallet: Stub, mongodb_uri: str, database_name: str
) -> None:
    alice = user()
    request = pb.CreditRequest(entries=[entry(alice, "3", f"c{i}") for i in range(5)])
    replies = await asyncio.gather(*(wallet.Credit(request) for _ in range(50)))
    applied = Counter(r.source_id for reply in replies for r in reply.results if r.applied)
    assert applied == {f"c{i}": 1 for i in range(5)}
    assert len({r.results[0].entry_id for r in replies}) == 1
    assert (await balance(wallet, alice)).available == "15.00000000"
    await assert_reconciled(mongodb_uri, database_name)


@pytest.mark.parametrize("servers", [1, 3])
async def test_hundred_concurrent_withdrawals_hold_exactly_what_is_there(
    wallet: Stub, mongodb_uri: str, database_name: str, servers: int
) -> None:
    """One server lets one account's holds take turns; several servers on one
    database leave it to the transactions' conditional updates."""
    async with contextlib.AsyncExitStack() as others:
        stubs = [wallet]
        for _ in range(servers - 1):
            channel = await others.enter_async_context(
                wallet_channel(wallet_settings(mongodb_uri, database_name))
            )
            stubs.append(wallet_pb2_grpc.WalletServiceStub(channel))
        await withdraw_storm(stubs, mongodb_uri, database_name)


async def withdraw_storm(stubs: list[Stub], mongodb_uri: str, database_name: str) -> None:
    wallet = stubs[0]
    alice = user()
    await wallet.Credit(pb.CreditRequest(entries=[entry(alice, "100", f"funding-{alice}")]))
    lowest: list[int] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            seen = await balance(wallet, alice)
            lowest.append(min(seen.available_units, seen.held_units))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(
        *(withdraw(stubs[i % len(stubs)], alice, "10") for i in range(100)),
        return_exceptions=True,
    )
    done.set()
    await watcher
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [decode_rpc_error(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 10
    assert len(refused) == 90
    assert {(e.code, e.reason) for e in refused} == {
        (grpc.StatusCode.FAILED_PRECONDITION, "insufficient_funds")
    }
    assert lowest
    assert min(lowest) >= 0
    after = await balance(wallet, alice)
    assert (after.available_units, after.held) == (0, "100.00000000")
    listed = await wallet.ListWithdrawals(pb.ListWithdrawalsRequest(user_id=alice))
    states = Counter(w.state for w in listed.withdrawals)
    assert states == {pb.WITHDRAWAL_STATE_PENDING: 10}
    await assert_reconciled(mongodb_uri, database_name)


async def test_approve_and_reject_racing_exactly_one_wins(
    wallet: Stub, mongodb_uri: str, database_name: str
) -> None:
    alice = user()
    await wallet.Credit(pb.CreditRequest(entries=[entry(alice, "50", f"funding-{alice}")]))
    for _ in range(5):
        created = await withdraw(wallet, alice, "10")
        wid = created.withdrawal.id
        results = await asyncio.gather(
            decide(wallet, wid, pb.DECISION_APPROVE),
            decide(wallet, wid, pb.DECISION_REJECT),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [decode_rpc_error(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(won) == 1
        assert [(e.code, e.reason) for e in lost] == [
            (grpc.StatusCode.FAILED_PRECONDITION, "withdrawal_not_pending")
        ]
    after = await balance(wallet, alice)
    assert after.held_units == 0
    history = await wallet.ListLedgerEntries(pb.ListLedgerEntriesRequest(user_id=alice))
    kinds = Counter(e.kind for e in history.entries)
    assert kinds[pb.ENTRY_KIND_HOLD] == 5
    assert kinds[pb.ENTRY_KIND_DEBIT] + kinds[pb.ENTRY_KIND_RELEASE] == 5
    assert after.available_units == 10 * 10**8 * kinds[pb.ENTRY_KIND_RELEASE]
    await assert_reconciled(mongodb_uri, database_name)


async def test_state_machine_only_moves_forward(wallet: Stub) -> None:
    alice = user()
    await wallet.Credit(pb.CreditRequest(entries=[entry(alice, "30", f"funding-{alice}")]))
    approved = (await withdraw(wallet, alice, "10")).withdrawal
    done = await decide(wallet, approved.id, pb.DECISION_APPROVE)
    assert done.withdrawal.state == pb.WITHDRAWAL_STATE_COMPLETED
    assert done.withdrawal.decided_by == "root"
    again = await decide(wallet, approved.id, pb.DECISION_APPROVE)
    assert again.withdrawal == done.withdrawal  # a retried click changes nothing
    await fails(
        decide(wallet, approved.id, pb.DECISION_REJECT),
        grpc.StatusCode.FAILED_PRECONDITION,
        "withdrawal_not_pending",
    )
    rejected = (await withdraw(wallet, alice, "10")).withdrawal
    assert (await decide(wallet, rejected.id, pb.DECISION_REJECT)).withdrawal.state == (
        pb.WITHDRAWAL_STATE_REJECTED
    )
    await fails(
        decide(wallet, rejected.id, pb.DECISION_APPROVE),
        grpc.StatusCode.FAILED_PRECONDITION,
        "withdrawal_not_pending",
    )
    await fails(
        decide(wallet, "nope", pb.DECISION_APPROVE),
        grpc.StatusCode.NOT_FOUND,
        "withdrawal_not_found",
    )
    after = await balance(wallet, alice)
    assert (after.available, after.held) == ("20.00000000", "0.00000000")


async def test_idempotency_key_answers_the_same_withdrawal(wallet: Stub) -> None:
    alice = user()
    await wallet.Credit(pb.CreditRequest(entries=[entry(alice, "30", f"funding-{alice}")]))
    replies = await asyncio.gather(*(withdraw(wallet, alice, "10", key="k-1") for _ in range(10)))
    assert len({r.withdrawal.id for r in replies}) == 1
    assert (await balance(wallet, alice)).held == "10.00000000"
    await fails(
        withdraw(wallet, alice, "11", key="k-1"),
        grpc.StatusCode.ALREADY_EXISTS,
        "idempotency_key_reused",
    )
    await fails(
        withdraw(wallet, alice, "1", key=""),
        grpc.StatusCode.INVALID_ARGUMENT,
        "idempotency_key_required",
    )
    bob = user()
    await wallet.Credit(pb.CreditRequest(entries=[entry(bob, "30", f"funding-{bob}")]))
    theirs = await withdraw(wallet, bob, "10", key="k-1")  # keys are per user
    assert theirs.withdrawal.id != replies[0].withdrawal.id


async def test_another_users_withdrawal_is_not_found(wallet: Stub) -> None:
    alice, bob = user(), user()
    await wallet.Credit(pb.CreditRequest(entries=[entry(alice, "30", f"funding-{alice}")]))
    mine = (await withdraw(wallet, alice, "10")).withdrawal
    found = await wallet.GetWithdrawal(
        pb.GetWithdrawalRequest(user_id=alice, withdrawal_id=mine.id)
    )
    assert found.withdrawal == mine
    await fails(
        wallet.GetWithdrawal(pb.GetWithdrawalRequest(user_id=bob, withdrawal_id=mine.id)),
        grpc.StatusCode.NOT_FOUND,
        "withdrawal_not_found",
    )
    theirs = await wallet.ListWithdrawals(pb.ListWithdrawalsRequest(user_id=bob))
    assert list(theirs.withdrawals) == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"address": "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}, "invalid_address"),
        ({"address": "0x1234"}, "invalid_address"),
        ({"chain": "tron"}, "unknown_chain"),
        ({"chain": "dogechain"}, "unknown_chain"),
        ({"amount": mqc("0.5")}, "amount_below_minimum"),
        ({"amount": mqc("1000.00000001")}, "amount_above_maximum"),
    ],
)
async def test_withdrawal_validation(wallet: Stub, changes: dict[str, Any], reason: str) -> None:
    alice = user()
    await wallet.Credit(pb.CreditRequest(entries=[entry(alice, "3000", f"funding-{alice}")]))
    request = pb.CreateWithdrawalRequest(
        user_id=alice, amount=mqc("10"), chain="ethereum", address=ADDRESS, idempotency_key="k"
    )
    for name, value in changes.items():
        if name == "amount":
            request.amount.CopyFrom(value)
        else:
            setattr(request, name, value)
    await fails(wallet.CreateWithdrawal(request), grpc.StatusCode.INVALID_ARGUMENT, reason)


async def test_daily_limit_holds_under_concurrency_and_rejection_frees_it(
    mongodb_uri: str, database_name: str
) -> None:
    settings = wallet_settings(
        mongodb_uri, database_name, WALLET_WITHDRAWAL_LIMITS="MQC:1:100:50,USDT:5:1000:2000"
    )
    async with wallet_channel(settings) as channel:
        wallet = wallet_pb2_grpc.WalletServiceStub(channel)
        alice = user()
        await wallet.Credit(pb.CreditRequest(entries=[entry(alice, "1000", f"funding-{alice}")]))
        results = await asyncio.gather(
            *(withdraw(wallet, alice, "10") for _ in range(12)), return_exceptions=True
        )
        created = [r for r in results if not isinstance(r, BaseException)]
        refused = [decode_rpc_error(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(created) == 5
        assert {(e.code, e.reason) for e in refused} == {
            (grpc.StatusCode.RESOURCE_EXHAUSTED, "daily_limit_exceeded")
        }
        assert all(e.retry_after and 0 < e.retry_after <= 86400 for e in refused)
        await decide(wallet, created[0].withdrawal.id, pb.DECISION_REJECT)
        await withdraw(wallet, alice, "10")  # the rejected 10 count no more
        await fails(
            withdraw(wallet, alice, "1"), grpc.StatusCode.RESOURCE_EXHAUSTED, "daily_limit_exceeded"
        )
        await assert_reconciled(mongodb_uri, database_name)


async def test_history_pages_newest_first_and_stable_under_inserts(wallet: Stub) -> None:
    alice = user()
    for i in range(7):
        await wallet.Credit(pb.CreditRequest(entries=[entry(alice, "1", f"h{i}")]))
    seen: list[str] = []
    token = ""
    while True:
        reply = await wallet.ListLedgerEntries(
            pb.ListLedgerEntriesRequest(
                user_id=alice, page=common_pb2.PageRequest(page_size=3, page_token=token)
            )
        )
        seen += [e.source_id for e in reply.entries]
        # new entries arriving between pages never shift what comes next
        await wallet.Credit(pb.CreditRequest(entries=[entry(alice, "1", f"new{len(seen)}")]))
        token = reply.page.next_page_token
        if not token:
            break
    assert seen == [f"h{i}" for i in reversed(range(7))]
    mqc_only = await wallet.ListLedgerEntries(
        pb.ListLedgerEntriesRequest(user_id=alice, currency="USDT")
    )
    assert list(mqc_only.entries) == []
    bad = pb.ListLedgerEntriesRequest(user_id=alice, page=common_pb2.PageRequest(page_token="x!"))
    await fails(
        wallet.ListLedgerEntries(bad), grpc.StatusCode.INVALID_ARGUMENT, "invalid_page_token"
    )


async def test_deposits_match_once_and_unmatched_wait_for_an_admin(
    wallet: Stub, mongodb_uri: str, database_name: str
) -> None:
    alice = user()
    reference = await wallet.GetDepositReference(pb.GetDepositReferenceRequest(user_id=alice))
    assert reference.deposit_reference.startswith("MQ")
    assert {(w.currency, w.chain) for w in reference.wallets} == {
        ("USDT", "ethereum"),
        ("USDT", "tron"),
    }
    again = await wallet.GetDepositReference(pb.GetDepositReferenceRequest(user_id=alice))
    assert again.deposit_reference == reference.deposit_reference
    tx = "0x" + "ab" * 32
    deposit = pb.RecordDepositRequest(
        chain="ethereum",
        tx_hash=tx.upper().replace("0X", "0x"),
        log_index=3,
        deposit_reference=reference.deposit_reference,
        amount=common_pb2.Money(currency="USDT", amount="12.5"),
    )
    replies = await asyncio.gather(*(wallet.RecordDeposit(deposit) for _ in range(5)))
    assert sorted(r.applied for r in replies) == [False, False, False, False, True]
    assert all(r.matched for r in replies)
    assert replies[0].deposit.id == f"ethereum:{tx}:3"
    assert (await balance(wallet, alice, "USDT")).available == "12.500000"

    stray = pb.RecordDepositRequest(
        chain="tron",
        tx_hash="cd" * 32,
        log_index=0,
        deposit_reference="MQNOBODY",
        amount=common_pb2.Money(currency="USDT", units=5_000_000),
    )
    recorded = await wallet.RecordDeposit(stray)
    assert (recorded.applied, recorded.matched, recorded.deposit.user_id) == (True, False, "")
    unmatched = await wallet.ListUnmatchedDeposits(pb.ListUnmatchedDepositsRequest())
    assert [d.id for d in unmatched.deposits] == [f"tron:{'cd' * 32}:0"]
    assert unmatched.deposits[0].amount.amount == "5.000000"

    wrong_chain = pb.RecordDepositRequest()
    wrong_chain.CopyFrom(deposit)
    wrong_chain.chain = "bsc"
    await fails(
        wallet.RecordDeposit(wrong_chain), grpc.StatusCode.INVALID_ARGUMENT, "unknown_chain"
    )
    bad_hash = pb.RecordDepositRequest()
    bad_hash.CopyFrom(deposit)
    bad_hash.tx_hash = "0x1234"
    await fails(wallet.RecordDeposit(bad_hash), grpc.StatusCode.INVALID_ARGUMENT, "invalid_deposit")
    await assert_reconciled(mongodb_uri, database_name)


async def test_admin_lists_by_state_and_the_gauge_follows(wallet: Stub) -> None:
    alice = user()
    await wallet.Credit(pb.CreditRequest(entries=[entry(alice, "50", f"funding-{alice}")]))
    first = (await withdraw(wallet, alice, "10")).withdrawal
    await withdraw(wallet, alice, "10")
    await decide(wallet, first.id, pb.DECISION_APPROVE)
    pending = await wallet.ListWithdrawalsByState(
        pb.ListWithdrawalsByStateRequest(state=pb.WITHDRAWAL_STATE_PENDING)
    )
    assert len(pending.withdrawals) == 1
    completed = await wallet.ListWithdrawalsByState(
        pb.ListWithdrawalsByStateRequest(state=pb.WITHDRAWAL_STATE_COMPLETED)
    )
    assert [w.id for w in completed.withdrawals] == [first.id]
    await fails(
        wallet.ListWithdrawalsByState(pb.ListWithdrawalsByStateRequest()),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    for _ in range(50):
        if REGISTRY.get_sample_value("pending_withdrawals_total", {"currency": "MQC"}) == 1:
            break
        await asyncio.sleep(0.05)
    assert REGISTRY.get_sample_value("pending_withdrawals_total", {"currency": "MQC"}) == 1
    assert REGISTRY.get_sample_value("pending_withdrawals_total", {"currency": "USDT"}) == 0


async def test_reconcile_finds_a_corrupted_balance(
    wallet: Stub, mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    alice = user()
    await wallet.Credit(pb.CreditRequest(entries=[entry(alice, "5", f"funding-{alice}")]))
    store = WalletStore(mongo, database_name)
    assert (await reconcile(store)).differences == ()
    await store.accounts.update_one({"_id": f"MQC:{alice}"}, {"$inc": {"available": 1}})
    report = await reconcile(store)
    [difference] = report.differences
    assert (difference.available, difference.ledger_available) == (500_000_001, 500_000_000)
