"""Proof of wallet ownership: CreateWalletChallenge and VerifyWallet.

Registration takes any wallet address, so an address on an account proves
nothing. The owner proves it by signing a Sign-In with Ethereum message the
server wrote for that account's wallet (:mod:`services.auth.siwe`); then
``wallet_verified_at`` is set and ``User.wallet_verified`` /
``PublicProfile.wallet_verified`` say so. A challenge is single-use, expires
after ``SIWE_CHALLENGE_TTL_SECONDS`` and belongs to the user it was issued to.

An account made by TelegramLogin has no wallet: its challenge names the
wallet to prove (``wallet_address``), and a verified signature sets it, if
the account still has none and no other account holds it (``wallet_taken``,
checked when the challenge is issued and atomically when it is set). An
account with a wallet proves that one only (``wallet_mismatch``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from minequest.auth.v1 import auth_pb2
from runtime.errors import required
from runtime.timestamps import aware, to_timestamp
from services.auth import siwe, validation
from services.auth.errors import (
    ContactTaken,
    InvalidWalletAddress,
    InvalidWalletSignature,
    UserNotFound,
    WalletChallengeExpired,
    WalletChallengeNotFound,
    WalletMismatch,
)
from services.auth.settings import SiweSettings
from services.auth.store import AuthStore, Doc
from services.auth.users import Clock, user_message

log = logging.getLogger(__name__)


class WalletProofs:
    def __init__(self, settings: SiweSettings, store: AuthStore, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.now = clock

    async def _user(self, user_id: str) -> Doc:
        user = await self.store.user(required(user_id, "user_id"))
        if user is None:
            raise UserNotFound("no such user")
        return user

    async def _wallet_to_prove(self, user: Doc, asked: str) -> str:
        own: str | None = user.get("wallet_address")
        if not asked:
            if own is None:
                raise InvalidWalletAddress(
                    "this account has no wallet yet: give walletAddress", field="walletAddress"
                )
            return own
        wallet = validation.wallet_address(asked)
        if own is not None and own != wallet:
            raise WalletMismatch(
                f"this account's wallet is {own}; it cannot prove another",
                field="walletAddress",
            )
        if own is None and await self.store.user_by("wallet_address", wallet) is not None:
            raise ContactTaken(
                "wallet is already registered", reason="wallet_taken", field="walletAddress"
            )
        return wallet

    async def challenge(
        self, user_id: str, wallet_address: str = ""
    ) -> auth_pb2.CreateWalletChallengeResponse:
        user = await self._user(user_id)
        wallet = await self._wallet_to_prove(user, wallet_address)
        now = self.now()
        expires_at = now + timedelta(seconds=self.settings.challenge_ttl_seconds)
        nonce = siwe.new_nonce()
        message = siwe.message_text(
            self.settings,
            address=wallet,
            nonce=nonce,
            issued_at=now,
            expires_at=expires_at,
        )
        await self.store.insert_wallet_challenge(
            {
                "_id": siwe.message_hash(message),
                "nonce": nonce,
                "user_id": user["_id"],
                "wallet_address": wallet,
                "created_at": now,
                "expires_at": expires_at,
                "used_at": None,
            }
        )
        return auth_pb2.CreateWalletChallengeResponse(
            message=message, nonce=nonce, expires_at=to_timestamp(expires_at)
        )

    async def verify(
        self, user_id: str, message: str, signature: str
    ) -> auth_pb2.VerifyWalletResponse:
        user = await self._user(user_id)
        digest = siwe.message_hash(message)
        challenge = await self.store.wallet_challenge(digest, user["_id"]) if message else None
        if challenge is None or challenge["used_at"] is not None:
            raise WalletChallengeNotFound(
                "this message was not issued to you, or was already used; ask for a new one",
                field="message",
            )
        now = self.now()
        if aware(challenge["expires_at"]) <= now:
            raise WalletChallengeExpired("the message has expired; ask for a new one")
        wallet = challenge["wallet_address"]
        if siwe.signer(message, signature) != wallet:
            raise InvalidWalletSignature(
                "the signature was not made by this account's wallet", field="signature"
            )
        if not await self.store.use_wallet_challenge(digest, now):
            raise WalletChallengeNotFound("this message was already used", field="message")
        updated = await self.store.mark_wallet_verified(user["_id"], wallet, now)
        if updated is None:
            raise UserNotFound("the account no longer holds this wallet")
        log.info("wallet verified", extra={"user_id": user["_id"]})
        return auth_pb2.VerifyWalletResponse(user=user_message(updated))
