"""Whose wallet a withdrawal goes to, asked of the auth service.

Registration proves nothing about a wallet address: anyone can register
someone else's public address. So a withdrawal to the address *the account
registered* needs that wallet proved first (Sign-In with Ethereum, in the
auth service): otherwise an admin approving "a withdrawal to the user's own
wallet" would be misled by a squatter. A withdrawal to any other address is
what it says, an address the user typed, and is judged as such.

The wallet service never reads the auth database: it asks
``AuthService.GetPublicProfile`` by address (its access table allows the
wallet that one call). No answer in time is a 503 ``owner_check_unavailable``:
money does not move on a guess.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from minequest.auth.v1 import auth_pb2
from services.wallet.chains import EVM_CHAINS
from services.wallet.errors import OwnerCheckUnavailable, WalletNotVerified

if TYPE_CHECKING:
    from minequest.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub

__all__ = ["WalletOwners"]

#: How long the owner check may take before the withdrawal is refused (503).
TIMEOUT_SECONDS = 2.0


class WalletOwners:
    def __init__(self, auth: AuthServiceAsyncStub) -> None:
        self.auth = auth

    async def check_destination(self, user_id: str, chain: str, address: str) -> None:
        """Refuse a withdrawal to the caller's own registered wallet unless it is proved."""
        if chain not in EVM_CHAINS:
            return  # an account's wallet is an EVM address
        try:
            reply = await self.auth.GetPublicProfile(
                auth_pb2.GetPublicProfileRequest(wallet_address=address), timeout=TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return  # no account holds this address
            raise OwnerCheckUnavailable(
                "could not check whose wallet this is; retry shortly", retry_after=1
            ) from None
        profile = reply.profile
        if profile.user_id == user_id and not profile.wallet_verified:
            raise WalletNotVerified(
                "this is your account's wallet, and it is not proved yet: sign in with "
                "Ethereum first (POST /api/auth/wallet/challenge, then /verify)",
                field="address",
            )
