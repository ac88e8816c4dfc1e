"""The auth service's domain errors (each maps to gRPC status in runtime.errors).

DomainError
├── InvalidArgument
│   ├── InvalidWalletAddress   invalid_wallet_address
│   ├── InvalidEmail           invalid_email
│   ├── InvalidPhone           invalid_phone
│   ├── InvalidUsername        invalid_username
│   ├── ContactRequired        contact_required
│   ├── InvalidReferralCode    invalid_referral_code
│   ├── InvalidOtpRequest      invalid_otp_request
│   ├── InvalidInitData        invalid_init_data (Telegram initData not well formed)
│   ├── TooManyUserIds         too_many_user_ids
│   └── InvalidWalletSignature invalid_wallet_signature (malformed, or another signer)
├── AlreadyExists
│   └── ContactTaken           wallet_taken | email_taken | phone_taken | username_taken
│                              | telegram_taken (a concurrent first Telegram login)
├── NotFound
│   ├── AccountNotFound        account_not_found (create-admin only; OTP requests
│   │                          never say whether an account exists)
│   ├── ChallengeNotFound      challenge_not_found
│   ├── ChallengeSuperseded    challenge_superseded (a newer code was sent)
│   ├── WalletChallengeNotFound wallet_challenge_not_found (never issued, or used)
│   └── UserNotFound           user_not_found
├── FailedPrecondition
│   ├── WalletChallengeExpired wallet_challenge_expired
│   ├── WalletMismatch         wallet_mismatch (create-admin --wallet; a wallet
│   │                          challenge for another wallet than the account's)
│   ├── EmailAlreadyLinked     email_already_linked
│   └── WalletNotVerified      wallet_not_verified (create-admin)
├── Unauthenticated
│   ├── InvalidCode            invalid_code
│   ├── OtpExpired             otp_expired
│   ├── InvalidRefreshToken    invalid_refresh_token
│   ├── RefreshTokenReused     refresh_token_reused
│   ├── SessionRevoked         session_revoked | session_expired
│   ├── InitDataInvalidHash    init_data_invalid_hash (not signed with the bot's token)
│   └── InitDataExpired        init_data_expired (auth_date too old)
├── ResourceExhausted
│   ├── OtpCooldown            otp_cooldown (with retry_after)
│   ├── TooManyCodes           too_many_codes (the contact's hourly cap; retry_after)
│   ├── OtpLocked              otp_locked (short codes locked; retry_after)
│   └── TooManyAttempts        too_many_attempts
└── Unavailable
    ├── DeliveryUnavailable    delivery_unavailable
    └── TelegramNotConfigured  telegram_login_not_configured (no TELEGRAM_BOT_TOKEN)
"""

from __future__ import annotations

from runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)


class InvalidWalletAddress(InvalidArgument):
    reason = "invalid_wallet_address"


class InvalidEmail(InvalidArgument):
    reason = "invalid_email"


class InvalidPhone(InvalidArgument):
    reason = "invalid_phone"


class InvalidUsername(InvalidArgument):
    reason = "invalid_username"


class ContactRequired(InvalidArgument):
    reason = "contact_required"


class InvalidReferralCode(InvalidArgument):
    reason = "invalid_referral_code"


class InvalidOtpRequest(InvalidArgument):
    reason = "invalid_otp_request"


class InvalidWalletSignature(InvalidArgument):
    reason = "invalid_wallet_signature"


class InvalidInitData(InvalidArgument):
    reason = "invalid_init_data"


class TooManyUserIds(InvalidArgument):
    reason = "too_many_user_ids"


class ContactTaken(AlreadyExists):
    """``reason`` is ``<field>_taken``; ``field`` names the JSON field."""


class AccountNotFound(NotFound):
    reason = "account_not_found"


class ChallengeNotFound(NotFound):
    reason = "challenge_not_found"


class ChallengeSuperseded(NotFound):
    reason = "challenge_superseded"


class WalletChallengeNotFound(NotFound):
    reason = "wallet_challenge_not_found"


class UserNotFound(NotFound):
    reason = "user_not_found"


class WalletChallengeExpired(FailedPrecondition):
    reason = "wallet_challenge_expired"


class WalletMismatch(FailedPrecondition):
    reason = "wallet_mismatch"


class WalletNotVerified(FailedPrecondition):
    reason = "wallet_not_verified"


class EmailAlreadyLinked(FailedPrecondition):
    reason = "email_already_linked"


class InvalidCode(Unauthenticated):
    reason = "invalid_code"


class OtpExpired(Unauthenticated):
    reason = "otp_expired"


class InvalidRefreshToken(Unauthenticated):
    reason = "invalid_refresh_token"


class RefreshTokenReused(Unauthenticated):
    reason = "refresh_token_reused"


class SessionRevoked(Unauthenticated):
    reason = "session_revoked"


class InitDataInvalidHash(Unauthenticated):
    reason = "init_data_invalid_hash"


class InitDataExpired(Unauthenticated):
    reason = "init_data_expired"


class OtpCooldown(ResourceExhausted):
    reason = "otp_cooldown"


class TooManyCodes(ResourceExhausted):
    reason = "too_many_codes"


class OtpLocked(ResourceExhausted):
    reason = "otp_locked"


class TooManyAttempts(ResourceExhausted):
    reason = "too_many_attempts"


class DeliveryUnavailable(Unavailable):
    reason = "delivery_unavailable"


class TelegramNotConfigured(Unavailable):
    reason = "telegram_login_not_configured"
