"""Calls to the auth and wallet services, their failures made domain errors.

The quests service never reads another service's database: usernames and
wallet addresses come from ``AuthService.GetPublicProfile`` /
``ListPublicProfiles``, coin rewards go through ``WalletService.Credit``, and
the currencies an admin may reward (with their precision) come from the
wallet's ``GetBalance`` of an account nobody holds, which lists every
currency it keeps.

A peer that is down or slow is UNAVAILABLE ``auth_unavailable`` /
``wallet_unavailable`` (HTTP 503, retry), never a 500; a peer's refusal of
the caller's input keeps its reason (``invalid_wallet_address``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from minequest.auth.v1 import auth_pb2
from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2
from runtime.errors import decode_rpc_error
from services.quests.errors import InvalidWalletAddress, PeerUnavailable

if TYPE_CHECKING:
    from minequest.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub
    from minequest.wallet.v1.wallet_pb2_grpc import WalletServiceAsyncStub

#: An account id no user has: its balance lists every currency at zero.
CURRENCY_PROBE = "quests:currency-probe"
PROFILE_BATCH = 500
#: Deadline of calls made while a client waits.
CALL_TIMEOUT = 3.0


def _unavailable(peer: str, error: grpc.aio.AioRpcError) -> PeerUnavailable:
    return PeerUnavailable(
        f"the {peer} service is unavailable; retry shortly",
        reason=f"{peer}_unavailable",
        retry_after=1,
        metadata={"grpc_code": error.code().name},
    )


class Auth:
    def __init__(self, stub: AuthServiceAsyncStub) -> None:
        self.stub = stub

    async def profile_by_wallet(self, wallet_address: str) -> auth_pb2.PublicProfile | None:
        """The profile of the wallet's holder; None when nobody holds it."""
        try:
            reply = await self.stub.GetPublicProfile(
                auth_pb2.GetPublicProfileRequest(wallet_address=wallet_address),
                timeout=CALL_TIMEOUT,
            )
        except grpc.aio.AioRpcError as error:
            info = decode_rpc_error(error)
            if info.code == grpc.StatusCode.NOT_FOUND:
                return None
            if info.code == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidWalletAddress(info.message, field="wallet_address") from None
            raise _unavailable("auth", error) from None
        return reply.profile

    async def usernames(self, user_ids: Sequence[str]) -> Mapping[str, str]:
        names: dict[str, str] = {}
        for start in range(0, len(user_ids), PROFILE_BATCH):
            batch = list(user_ids[start : start + PROFILE_BATCH])
            try:
                reply = await self.stub.ListPublicProfiles(
                    auth_pb2.ListPublicProfilesRequest(user_ids=batch), timeout=CALL_TIMEOUT
                )
            except grpc.aio.AioRpcError as error:
                raise _unavailable("auth", error) from None
            names.update((p.user_id, p.username) for p in reply.profiles)
        return names


@dataclass(frozen=True, slots=True)
class Payment:
    """One ``Wallet.Credit`` entry, posted once per ``(source, source_id)``."""

    user_id: str
    currency: str
    units: int
    source: str
    source_id: str
    memo: str


class Wallet:
    def __init__(self, stub: WalletServiceAsyncStub) -> None:
        self.stub = stub

    async def precisions(self) -> dict[str, int]:
        """Every currency the wallet keeps, with its decimal places."""
        try:
            reply = await self.stub.GetBalance(
                wallet_pb2.GetBalanceRequest(user_id=CURRENCY_PROBE), timeout=CALL_TIMEOUT
            )
        except grpc.aio.AioRpcError as error:
            raise _unavailable("wallet", error) from None
        return {b.currency: b.precision for b in reply.balances}

    async def credit(
        self, payments: Sequence[Payment], deadline: float = CALL_TIMEOUT
    ) -> dict[tuple[str, str], str]:
        """Post ``payments``; the wallet entry id per ``(source, source_id)``.
        Raises ``grpc.aio.AioRpcError``."""
        request = wallet_pb2.CreditRequest(
            entries=[
                wallet_pb2.CreditEntry(
                    user_id=p.user_id,
                    amount=common_pb2.Money(currency=p.currency, units=p.units),
                    source=p.source,
                    source_id=p.source_id,
                    memo=p.memo,
                )
                for p in payments
            ]
        )
        reply = await self.stub.Credit(request, timeout=deadline)
        return {(r.source, r.source_id): r.entry_id for r in reply.results}
