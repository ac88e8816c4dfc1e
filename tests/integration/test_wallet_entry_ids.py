"""Ledger entry ids are their ``(source, source_id)``: one index keeps an event
from posting twice, on a new database and on one whose older entries have
random ids (it keeps its unique ``(source, source_id)`` index, and keys are
looked up both ways). Real wallet service over gRPC, real MongoDB-wire server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from pymongo import ASCENDING

from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2 as pb
from minequest.wallet.v1 import wallet_pb2_grpc
from runtime.stores import mongo_client
from services.wallet.ledger import account_id, entry_id_of
from services.wallet.store import LEGACY_KEY_INDEX
from tests.integration.conftest import wallet_channel, wallet_settings
from tests.integration.test_wallet_debit import debit_request
from tests.integration.test_wallet_service import assert_reconciled, balance

pytestmark = pytest.mark.integration


def credit(user_id: str, amount: str, source_id: str) -> pb.CreditRequest:
    return pb.CreditRequest(
        entries=[
            pb.CreditEntry(
                user_id=user_id,
                amount=common_pb2.Money(currency="MQC", amount=amount),
                source="quests.completion",
                source_id=source_id,
            )
        ]
    )


async def test_a_new_ledger_keys_entries_by_their_event_and_posts_each_once(
    mongodb_uri: str, database_name: str
) -> None:
    user, key = uuid.uuid4().hex, uuid.uuid4().hex
    async with wallet_channel(wallet_settings(mongodb_uri, database_name)) as channel:
        wallet = wallet_pb2_grpc.WalletServiceStub(channel)
        answers = await asyncio.gather(*(wallet.Credit(credit(user, "2", key)) for _ in range(6)))
        outcomes = [answer.results[0] for answer in answers]
        assert sum(o.applied for o in outcomes) == 1
        assert {o.entry_id for o in outcomes} == {entry_id_of("quests.completion", key)}
        assert (await balance(wallet, user)).available == "2.00000000"
        spent = await wallet.Debit(debit_request(user, "0.5", source_id=key))
        again = await wallet.Debit(debit_request(user, "0.5", source_id=key))
        assert spent.entry_id == again.entry_id == entry_id_of("mining.boost", key)
        assert (spent.duplicate, again.duplicate) == (False, True)
        assert (await balance(wallet, user)).available == "1.50000000"
    client = mongo_client(mongodb_uri, app_name="tests")
    try:
        indexes = await client[database_name]["entries"].index_information()
    finally:
        await client.close()
    assert LEGACY_KEY_INDEX not in indexes
    await assert_reconciled(mongodb_uri, database_name)


async def test_a_ledger_from_before_keeps_its_random_ids_and_never_posts_them_again(
    mongodb_uri: str, database_name: str
) -> None:
    user, credited, spent = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    now = datetime.now(UTC)
    client = mongo_client(mongodb_uri, app_name="tests")
    try:
        db = client[database_name]
        await db["entries"].create_index(
            [("source", ASCENDING), ("source_id", ASCENDING)], unique=True
        )
        old = {"user_id": user, "currency": "MQC", "memo": "", "created_at": now}
        await db["entries"].insert_many(
            [
                {
                    **old,
                    "_id": "old-credit",
                    "kind": "credit",
                    "amount": 500_000_000,
                    "source": "quests.completion",
                    "source_id": credited,
                },
                {
                    **old,
                    "_id": "old-spend",
                    "kind": "spend",
                    "amount": 100_000_000,
                    "source": "mining.boost",
                    "source_id": spent,
                    "balance_after": 400_000_000,
                },
            ]
        )
        await db["accounts"].insert_one(
            {
                "_id": account_id(user, "MQC"),
                "user_id": user,
                "currency": "MQC",
                "available": 400_000_000,
                "held": 0,
                "version": 2,
                "created_at": now,
                "updated_at": now,
            }
        )
    finally:
        await client.close()
    async with wallet_channel(wallet_settings(mongodb_uri, database_name)) as channel:
        wallet = wallet_pb2_grpc.WalletServiceStub(channel)
        replayed = await wallet.Credit(credit(user, "5", credited))
        assert (replayed.results[0].applied, replayed.results[0].entry_id) == (
            False,
            "old-credit",
        )
        debit = await wallet.Debit(debit_request(user, "1", source_id=spent))
        assert (debit.duplicate, debit.entry_id) == (True, "old-spend")
        fresh = await wallet.Credit(credit(user, "1", uuid.uuid4().hex))
        assert fresh.results[0].applied
        assert (await balance(wallet, user)).available == "5.00000000"
    await assert_reconciled(mongodb_uri, database_name)
