"""``Wallet.Debit`` through a real gRPC channel on the real MongoDB-wire server:
once per (source, source_id), never past the available balance, reconciled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2 as pb
from minequest.wallet.v1 import wallet_pb2_grpc
from tests.integration.conftest import credit_request, fails, wallet_channel, wallet_settings
from tests.integration.test_internal_auth import served_wallet, stub_as
from tests.integration.test_wallet_service import assert_reconciled, balance

if TYPE_CHECKING:
    from minequest.wallet.v1.wallet_pb2_grpc import WalletServiceAsyncStub as Stub

pytestmark = pytest.mark.integration


@pytest.fixture
async def wallet(mongodb_uri: str, database_name: str) -> AsyncIterator[Stub]:
    async with wallet_channel(wallet_settings(mongodb_uri, database_name)) as channel:
        yield wallet_pb2_grpc.WalletServiceStub(channel)


def debit_request(
    user_id: str, amount: str, source_id: str | None = None, source: str = "mining.boost"
) -> pb.DebitRequest:
    return pb.DebitRequest(
        user_id=user_id,
        amount=common_pb2.Money(currency="MQC", amount=amount),
        source=source,
        source_id=source_id or uuid.uuid4().hex,
        memo="boost tap level 1",
    )


async def funded(wallet: Stub, amount: str = "50") -> str:
    user = uuid.uuid4().hex
    await wallet.Credit(credit_request(user, amount))
    return user


async def test_a_debit_spends_available_funds_once_and_a_replay_answers_the_first_debit(
    wallet: Stub, mongodb_uri: str, database_name: str
) -> None:
    user = await funded(wallet)
    request = debit_request(user, "12.5")
    first = await wallet.Debit(request)
    assert (first.duplicate, first.balance.amount, first.balance.currency) == (
        False,
        "37.50000000",
        "MQC",
    )
    await wallet.Credit(credit_request(user, "1"))
    replay = await wallet.Debit(request)
    assert (replay.entry_id, replay.balance.units, replay.duplicate) == (
        first.entry_id,
        first.balance.units,
        True,
    )
    mine = await balance(wallet, user)
    assert (mine.available, mine.held) == ("38.50000000", "0.00000000")
    history = await wallet.ListLedgerEntries(pb.ListLedgerEntriesRequest(user_id=user))
    spends = [e for e in history.entries if e.kind == pb.ENTRY_KIND_SPEND]
    assert [(e.id, e.source, e.amount.amount) for e in spends] == [
        (first.entry_id, "mining.boost", "12.50000000")
    ]
    await assert_reconciled(mongodb_uri, database_name)


async def test_the_same_key_with_other_contents_is_refused(wallet: Stub) -> None:
    user = await funded(wallet)
    key = uuid.uuid4().hex
    await wallet.Debit(debit_request(user, "1", key))
    await fails(
        wallet.Debit(debit_request(user, "2", key)),
        grpc.StatusCode.ALREADY_EXISTS,
        "idempotency_key_reused",
    )
    await fails(
        wallet.Debit(debit_request(await funded(wallet), "1", key)),
        grpc.StatusCode.ALREADY_EXISTS,
        "idempotency_key_reused",
    )
    assert (await balance(wallet, user)).available == "49.00000000"


async def test_funds_that_do_not_cover_a_debit_refuse_it_and_change_nothing(
    wallet: Stub, mongodb_uri: str, database_name: str
) -> None:
    user = await funded(wallet, "5")
    key = uuid.uuid4().hex
    info = await fails(
        wallet.Debit(debit_request(user, "5.00000001", key)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "insufficient_funds",
    )
    assert info.field == "amount"
    await fails(
        wallet.Debit(debit_request(uuid.uuid4().hex, "1")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "insufficient_funds",
    )
    assert (await balance(wallet, user)).available == "5.00000000"
    # Nothing was written under the key: once covered, it debits.
    await wallet.Credit(credit_request(user, "1"))
    later = await wallet.Debit(debit_request(user, "5.00000001", key))
    assert (later.duplicate, later.balance.amount) == (False, "0.99999999")
    await assert_reconciled(mongodb_uri, database_name)


async def test_held_funds_are_not_available_to_a_debit(wallet: Stub) -> None:
    user = await funded(wallet, "20")
    await wallet.CreateWithdrawal(
        pb.CreateWithdrawalRequest(
            user_id=user,
            amount=common_pb2.Money(currency="MQC", amount="15"),
            chain="ethereum",
            address="0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            idempotency_key=uuid.uuid4().hex,
        )
    )
    await fails(
        wallet.Debit(debit_request(user, "6")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "insufficient_funds",
    )
    assert (await wallet.Debit(debit_request(user, "5"))).balance.units == 0


@pytest.mark.parametrize(
    ("field", "request_"),
    [
        ("user_id", pb.DebitRequest(source="mining.boost", source_id="x")),
        ("source", debit_request("u", "1", source="Not A Source")),
        ("source_id", pb.DebitRequest(user_id="u", source="mining.boost")),
        ("amount.units", debit_request("u", "0")),
    ],
)
async def test_a_malformed_debit_is_invalid_naming_the_field(
    wallet: Stub, field: str, request_: pb.DebitRequest
) -> None:
    if field == "amount.units":
        request_.amount.amount = ""
    info = await fails(wallet.Debit(request_), grpc.StatusCode.INVALID_ARGUMENT)
    assert info.field == field, info


async def test_the_wallets_own_sources_are_reserved(wallet: Stub) -> None:
    user = await funded(wallet)
    await fails(
        wallet.Debit(debit_request(user, "1", source="withdrawal.debit")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "reserved_source",
    )


async def test_concurrent_debits_never_overdraw_and_each_key_posts_once(
    wallet: Stub, mongodb_uri: str, database_name: str
) -> None:
    user = await funded(wallet, "10")
    keys = [uuid.uuid4().hex for _ in range(8)]
    # 8 different debits of 3 (only 3 fit), each sent twice at once.
    calls = [wallet.Debit(debit_request(user, "3", key)) for key in keys for _ in range(2)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    answered = [r for r in results if isinstance(r, pb.DebitResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(answered) + len(refused) == len(calls)
    assert all(r.code() == grpc.StatusCode.FAILED_PRECONDITION for r in refused)
    entries = {r.entry_id for r in answered}
    assert len(entries) == 3
    assert (await balance(wallet, user)).available == "1.00000000"
    await assert_reconciled(mongodb_uri, database_name)


async def test_only_the_mining_service_may_debit(
    mongodb_uri: str, database_name: str, pki_dir: Path
) -> None:
    async with served_wallet(mongodb_uri, database_name, pki_dir) as address:
        user = uuid.uuid4().hex
        async with stub_as(address, "quests", pki_dir) as quests:
            await quests.Credit(credit_request(user, "5"))
        for identity in ("gateway", "quests", "mining-worker", "auth"):
            async with stub_as(address, identity, pki_dir) as stub:
                info = await fails(
                    stub.Debit(debit_request(user, "1"), timeout=5),
                    grpc.StatusCode.PERMISSION_DENIED,
                    "caller_not_allowed",
                )
                assert info
        async with stub_as(address, "mining", pki_dir) as mining:
            reply = await mining.Debit(debit_request(user, "1"), timeout=5)
    assert reply.balance.amount == "4.00000000"
