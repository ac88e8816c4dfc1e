"""Property: any sequence of credits, holds, releases, debits and spends, posted one
transaction at a time on the real MongoDB-wire server, keeps the account
equal to its ledger and never negative. A posting that would overdraw is
refused whole: no entry, no balance change."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.errors import DomainError
from runtime.stores import mongo_client
from services.wallet.ledger import EFFECTS, Kind, Posting, Session, account_id, post
from services.wallet.reconcile import expected
from services.wallet.store import WalletStore

pytestmark = pytest.mark.integration

#: One transaction: one to three postings of (kind, amount) on the same account.
BATCH = st.lists(st.tuples(st.sampled_from(list(Kind)), st.integers(1, 40)), min_size=1, max_size=3)


async def run_sequence(store: WalletStore, batches: list[list[tuple[Kind, int]]]) -> None:
    user_id = uuid.uuid4().hex
    model = (0, 0)
    for number, batch in enumerate(batches):
        postings = [
            Posting(user_id, "MQC", kind, amount, "property", f"{user_id}:{number}:{i}")
            for i, (kind, amount) in enumerate(batch)
        ]
        after = model
        for kind, amount in batch:
            to_available, to_held = EFFECTS[kind]
            after = (after[0] + to_available * amount, after[1] + to_held * amount)
        allowed = min(after) >= 0

        async def write(session: Session, postings: list[Posting] = postings) -> None:
            await post(store.entries, store.accounts, postings, datetime.now(UTC), session)

        try:
            await store.transaction(write)
            posted = True
        except DomainError:
            posted = False
        assert posted == allowed, f"{batch} on {model}: posted={posted}"
        if posted:
            model = after
        account = await store.accounts.find_one({"_id": account_id(user_id, "MQC")})
        balance = (account["available"], account["held"]) if account else (0, 0)
        totals: dict[str, int] = {}
        async for entry in store.entries.find({"user_id": user_id}):
            totals[entry["kind"]] = totals.get(entry["kind"], 0) + entry["amount"]
        assert balance == model == expected(totals.items())
        assert min(balance) >= 0
        ledger_sum = totals.get("credit", 0) - totals.get("debit", 0) - totals.get("spend", 0)
        assert balance[0] + balance[1] == ledger_sum


def test_any_sequence_keeps_balances_equal_to_the_ledger(
    mongodb_uri: str, database_name: str
) -> None:
    with asyncio.Runner() as runner:
        client = mongo_client(mongodb_uri, app_name="tests-property")
        store = WalletStore(client, database_name)
        runner.run(store.ensure_indexes())

        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        )
        @given(batches=st.lists(BATCH, max_size=10))
        def check(batches: list[list[tuple[Kind, int]]]) -> None:
            runner.run(run_sequence(store, batches))

        try:
            check()
        finally:
            runner.run(client.close())
