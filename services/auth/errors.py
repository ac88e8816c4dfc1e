"""The auth service's domain errors (each maps to gRPC status in runtime.errors).

DomainError
├── InvalidArgument
│   ├── InvalidWalletAddress   invalid_wallet_address
│   ├── InvalidEmail           invalid_email
│   ├── InvalidPhone           invalid_phone
│   ├── InvalidUsername        invalid_username
│   ├── ContactRequired        contact_required
│   ├── InvalidReferralCode    invalid_referral_code
│   └── InvalidOtpRequest      invalid_otp_request
├── AlreadyExists
│   └── ContactTaken           wallet_taken | email_taken | phone_taken | username_taken
├── NotFound
│   ├── AccountNotFound        account_not_found
│   ├── ChallengeNotFound      challenge_not_found
│   └── UserNotFound           user_not_found
├── Unauthenticated
│   ├── InvalidCode            invalid_code
│   ├── OtpExpired             otp_expired
│   ├── InvalidRefreshToken    invalid_refresh_token
│   ├── RefreshTokenReused     refresh_token_reused
│   └── SessionRevoked         session_revoked
├── ResourceExhausted
│   ├── OtpCooldown            otp_cooldown (with retry_after)
│   └── TooManyAttempts        too_many_attempts
└── Unavailable
    └── DeliveryUnavailable    delivery_unavailable | delivery_failed
"""

from __future__ import annotations

from runtime.errors import (
    AlreadyExists,
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


class ContactTaken(AlreadyExists):
    """``reason`` is ``<field>_taken``; ``field`` names the JSON field."""


class AccountNotFound(NotFound):
    reason = "account_not_found"


class ChallengeNotFound(NotFound):
    reason = "challenge_not_found"


class UserNotFound(NotFound):
    reason = "user_not_found"


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


class OtpCooldown(ResourceExhausted):
    reason = "otp_cooldown"


class TooManyAttempts(ResourceExhausted):
    reason = "too_many_attempts"


class DeliveryUnavailable(Unavailable):
    reason = "delivery_unavailable"
