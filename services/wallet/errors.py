"""The wallet service's domain errors (each maps to gRPC status in runtime.errors).

DomainError
├── InvalidArgument
│   ├── InvalidAmount          invalid_amount | amount_not_positive | precision_exceeded
│   │                          | amount_too_large | amount_mismatch
│   │                          | amount_below_minimum | amount_above_maximum
│   ├── UnknownCurrency        unknown_currency
│   ├── UnknownChain           unknown_chain
│   ├── InvalidAddress         invalid_address
│   ├── InvalidCredit          invalid_credit | reserved_source
│   ├── InvalidDebit           invalid_debit | reserved_source
│   ├── InvalidDeposit         invalid_deposit
│   ├── InvalidWithdrawal      invalid_withdrawal
│   ├── InvalidPageToken       invalid_page_token (runtime.pages)
│   ├── IdempotencyKeyRequired  idempotency_key_required (runtime.idempotency)
│   └── InvalidIdempotencyKey   invalid_idempotency_key (runtime.idempotency)
├── NotFound
│   └── WithdrawalNotFound     withdrawal_not_found
├── AlreadyExists
│   └── IdempotencyKeyReused   idempotency_key_reused (also a debit's (source,
│                              source_id) with other contents)
├── FailedPrecondition
│   ├── InsufficientFunds      insufficient_funds (a hold or a debit the
│   │                          available balance does not cover)
│   ├── WithdrawalNotPending   withdrawal_not_pending
│   └── WalletNotVerified      wallet_not_verified (a withdrawal to the account's
│                              own, unproved wallet)
├── ResourceExhausted
│   └── DailyLimitExceeded     daily_limit_exceeded (retry_after: until 00:00 UTC)
├── Unavailable
│   ├── LedgerBusy             ledger_busy (retry_after: 1; write conflicts outlasted
│   │                          the transaction time limit, e.g. behind a crashed writer)
│   └── OwnerCheckUnavailable  owner_check_unavailable (the auth service did not answer)
└── LedgerInvariantBroken      ledger_invariant_broken (INTERNAL: held funds missing)
"""

from __future__ import annotations

from runtime.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)


class InvalidAmount(InvalidArgument):
    reason = "invalid_amount"


class UnknownCurrency(InvalidArgument):
    reason = "unknown_currency"


class UnknownChain(InvalidArgument):
    reason = "unknown_chain"


class InvalidAddress(InvalidArgument):
    reason = "invalid_address"


class InvalidCredit(InvalidArgument):
    reason = "invalid_credit"


class InvalidDebit(InvalidArgument):
    reason = "invalid_debit"


class InvalidDeposit(InvalidArgument):
    reason = "invalid_deposit"


class InvalidWithdrawal(InvalidArgument):
    reason = "invalid_withdrawal"


class WithdrawalNotFound(NotFound):
    reason = "withdrawal_not_found"


class IdempotencyKeyReused(AlreadyExists):
    reason = "idempotency_key_reused"


class LedgerBusy(Unavailable):
    reason = "ledger_busy"


class InsufficientFunds(FailedPrecondition):
    reason = "insufficient_funds"


class WithdrawalNotPending(FailedPrecondition):
    reason = "withdrawal_not_pending"


class WalletNotVerified(FailedPrecondition):
    reason = "wallet_not_verified"


class OwnerCheckUnavailable(Unavailable):
    reason = "owner_check_unavailable"


class DailyLimitExceeded(ResourceExhausted):
    reason = "daily_limit_exceeded"


class LedgerInvariantBroken(DomainError):
    reason = "ledger_invariant_broken"
