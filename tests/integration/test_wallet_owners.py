"""A withdrawal to the account's own registered wallet needs that wallet proved.

Real auth and wallet services over gRPC on the MongoDB-wire server: the
wallet asks auth whose wallet the destination is (GetPublicProfile), and the
auth side is proved with a real Sign-In with Ethereum signature.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2 as pb
from minequest.wallet.v1 import wallet_pb2_grpc
from runtime.embedded import free_port
from services.wallet.server import wallet_lifespan
from tests.integration.conftest import (
    companion_auth,
    credit_request,
    fails,
    served_address,
    wallet_settings,
)

pytestmark = pytest.mark.integration

OTHER_ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@dataclass
class Services:
    auth: Any
    wallet: Any


@pytest.fixture
async def services(mongodb_uri: str, database_name: str) -> AsyncIterator[Services]:
    async with companion_auth(mongodb_uri, database_name) as auth_addr:
        settings = dataclasses.replace(
            wallet_settings(mongodb_uri, database_name), auth_service_addr=auth_addr
        )
        async with (
            served_address(wallet_lifespan(settings)) as wallet_addr,
            grpc.aio.insecure_channel(auth_addr) as auth_channel,
            grpc.aio.insecure_channel(wallet_addr) as wallet_channel,
        ):
            yield Services(
                auth_pb2_grpc.AuthServiceStub(auth_channel),
                wallet_pb2_grpc.WalletServiceStub(wallet_channel),
            )


async def funded_user(services: Services, wallet_address: str) -> str:
    reply = await services.auth.Register(
        auth_pb2.RegisterRequest(
            wallet_address=wallet_address, email=f"u-{uuid.uuid4().hex[:8]}@example.com"
        )
    )
    user_id: str = reply.user.id
    await services.wallet.Credit(credit_request(user_id, "100"))
    return user_id


def withdrawal(user_id: str, address: str) -> pb.CreateWithdrawalRequest:
    return pb.CreateWithdrawalRequest(
        user_id=user_id,
        amount=common_pb2.Money(currency="MQC", amount="5"),
        chain="ethereum",
        address=address,
        idempotency_key=uuid.uuid4().hex,
    )


async def test_only_a_proved_own_wallet_may_receive_a_withdrawal(services: Services) -> None:
    owner = Account.create()
    user_id = await funded_user(services, owner.address)

    # to the account's own wallet while it is only registered: refused
    info = await fails(
        services.wallet.CreateWithdrawal(withdrawal(user_id, owner.address.lower())),
        grpc.StatusCode.FAILED_PRECONDITION,
        "wallet_not_verified",
    )
    assert info.field == "address"
    # to another address: judged as any typed address
    other = await services.wallet.CreateWithdrawal(withdrawal(user_id, OTHER_ADDRESS))
    assert other.withdrawal.address == OTHER_ADDRESS

    issued = await services.auth.CreateWalletChallenge(
        auth_pb2.CreateWalletChallengeRequest(user_id=user_id)
    )
    signature = owner.sign_message(encode_defunct(text=issued.message)).signature.hex()
    await services.auth.VerifyWallet(
        auth_pb2.VerifyWalletRequest(
            user_id=user_id, message=issued.message, signature="0x" + signature.removeprefix("0x")
        )
    )
    proved = await services.wallet.CreateWithdrawal(withdrawal(user_id, owner.address))
    assert proved.withdrawal.address == owner.address


async def test_a_squatted_address_is_still_someone_elses_destination(services: Services) -> None:
    """A squatter registered the victim's address; the victim withdrawing there
    is paying a foreign address, which the check does not stop."""
    victim_wallet = Account.create().address
    await funded_user(services, victim_wallet)  # the squatter
    payer = await funded_user(services, Account.create().address)
    reply = await services.wallet.CreateWithdrawal(withdrawal(payer, victim_wallet))
    assert reply.withdrawal.state == pb.WITHDRAWAL_STATE_PENDING


async def test_no_owner_check_no_withdrawal(mongodb_uri: str, database_name: str) -> None:
    """Auth unreachable: a withdrawal to an EVM address answers 503, nothing held."""
    settings = dataclasses.replace(
        wallet_settings(mongodb_uri, database_name), auth_service_addr=f"127.0.0.1:{free_port()}"
    )
    async with (
        served_address(wallet_lifespan(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        wallet = wallet_pb2_grpc.WalletServiceStub(channel)
        user_id = uuid.uuid4().hex
        info = await fails(
            wallet.CreateWithdrawal(withdrawal(user_id, OTHER_ADDRESS)),
            grpc.StatusCode.UNAVAILABLE,
            "owner_check_unavailable",
        )
        assert info.retry_after == 1
        listed = await wallet.ListWithdrawals(pb.ListWithdrawalsRequest(user_id=user_id))
        assert list(listed.withdrawals) == []
