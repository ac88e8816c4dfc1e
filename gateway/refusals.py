"""What each operation can refuse, by HTTP status and problem code: one table.

The OpenAPI document lists, for every operation, each problem+json status it
can answer and the stable codes (``error``) behind it, so a client can switch
on them. Codes the gateway answers itself follow from the row (its body, its
access level, its Idempotency-Key, its rate limits: :func:`gateway_codes`);
the services' codes per operation are :data:`SERVICE_CODES`, and
``tests/unit/test_openapi_constraints.py`` checks each against the service's
own error classes (the code exists and maps to that status).
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.errors import REASON_HTTP_STATUS

#: The answer to an Idempotency-Key reused with another body: a valid request's
#: documented refusal (schemathesis is told so, tests/e2e/test_schemathesis.py).
KEY_REUSED_STATUS = REASON_HTTP_STATUS["idempotency_key_reused"]

Codes = Mapping[int, tuple[str, ...]]

_PHONE_OR_EMAIL = ("invalid_email", "invalid_phone")

#: operation id -> {status: codes the services answer}.
SERVICE_CODES: Mapping[str, Codes] = {
    "register": {
        400: (
            "invalid_wallet_address",
            *_PHONE_OR_EMAIL,
            "invalid_username",
            "contact_required",
            "invalid_referral_code",
        ),
        409: ("wallet_taken", "email_taken", "phone_taken", "username_taken"),
    },
    "requestOtp": {
        400: ("invalid_otp_request", *_PHONE_OR_EMAIL),
        429: ("otp_cooldown", "too_many_codes"),
        503: ("delivery_unavailable",),
    },
    "verifyOtp": {
        401: ("invalid_code", "otp_expired"),
        404: ("challenge_not_found", "challenge_superseded"),
        429: ("otp_locked", "too_many_attempts"),
    },
    "refreshToken": {
        401: (
            "invalid_refresh_token",
            "refresh_token_reused",
            "session_revoked",
            "session_expired",
        ),
    },
    "logout": {},
    "getProfile": {404: ("user_not_found",)},
    "updateProfile": {
        400: ("invalid_username",),
        404: ("user_not_found",),
        409: ("username_taken",),
    },
    "createWalletChallenge": {
        400: ("invalid_wallet_address",),
        404: ("user_not_found",),
        409: ("wallet_taken",),
        412: ("wallet_mismatch",),
    },
    "telegramLogin": {
        400: ("invalid_init_data",),
        401: ("init_data_invalid_hash", "init_data_expired"),
        503: ("telegram_login_not_configured",),
    },
    "requestEmailLink": {
        400: ("invalid_email",),
        404: ("user_not_found",),
        409: ("email_taken",),
        412: ("email_already_linked",),
        429: ("otp_cooldown", "too_many_codes"),
        503: ("delivery_unavailable",),
    },
    "verifyEmailLink": {
        401: ("invalid_code", "otp_expired"),
        404: ("challenge_not_found", "challenge_superseded", "user_not_found"),
        409: ("email_taken",),
        412: ("email_already_linked",),
        429: ("otp_locked", "too_many_attempts"),
    },
    "getMyReferrals": {404: ("user_not_found",)},
    "listInvitees": {},
    "verifyWallet": {
        400: ("invalid_wallet_signature",),
        404: ("wallet_challenge_not_found", "user_not_found"),
        409: ("wallet_taken",),
        412: ("wallet_challenge_expired", "wallet_mismatch"),
    },
    "submitClick": {
        400: ("invalid_click",),
        429: ("energy_exhausted", "tap_rate_exceeded", "daily_cap_reached"),
        503: ("queue_full",),
    },
    "getClickStatus": {
        404: ("click_not_found",),
        409: ("failed",),
        429: ("energy_exhausted", "tap_rate_exceeded", "daily_cap_reached"),
    },
    "getMiningStatus": {},
    "listBoosts": {},
    "purchaseBoost": {
        404: ("boost_not_found",),
        409: ("boost_purchase_in_flight",),
        412: (
            "insufficient_funds",
            "boost_max_level",
            "boost_level_changed",
            "boost_purchase_refused",
        ),
        503: ("wallet_unavailable",),
    },
    "listDepositWallets": {},
    "getBalance": {},
    "listLedgerEntries": {400: ("unknown_currency",)},
    "getDepositReference": {},
    "createWithdrawal": {
        400: (
            "invalid_amount",
            "amount_not_positive",
            "amount_mismatch",
            "amount_too_large",
            "precision_exceeded",
            "amount_below_minimum",
            "amount_above_maximum",
            "unknown_currency",
            "unknown_chain",
            "invalid_address",
            "invalid_withdrawal",
        ),
        412: ("insufficient_funds", "wallet_not_verified"),
        429: ("daily_limit_exceeded",),
        503: ("ledger_busy", "owner_check_unavailable"),
    },
    "listWithdrawals": {},
    "getWithdrawal": {404: ("withdrawal_not_found",)},
    "recordDeposit": {
        400: ("invalid_deposit", "invalid_amount", "unknown_currency", "unknown_chain"),
        401: (
            "webhook_signature_missing",
            "webhook_signature_invalid",
            "webhook_timestamp_expired",
        ),
        503: ("webhook_not_configured", "ledger_busy"),
    },
    "adminListWithdrawals": {},
    "approveWithdrawal": {
        404: ("withdrawal_not_found",),
        412: ("withdrawal_not_pending",),
        503: ("ledger_busy",),
    },
    "rejectWithdrawal": {
        400: ("invalid_argument",),
        404: ("withdrawal_not_found",),
        412: ("withdrawal_not_pending",),
        503: ("ledger_busy",),
    },
    "listUnmatchedDeposits": {},
    "listQuests": {},
    "completeQuest": {
        404: ("quest_not_found",),
        409: ("already_completed", "quest_inactive"),
        412: ("prerequisite_missing",),
        503: ("progress_busy", "peer_unavailable"),
    },
    "getLeaderboard": {400: ("invalid_limit",), 503: ("leaderboard_rebuilding",)},
    # gateway/routes/mining_boards.py
    "getMinedLeaderboard": {400: ("invalid_argument",), 503: ("auth_unavailable",)},
    "getMinedLeaderboardAroundMe": {400: ("invalid_argument",), 503: ("auth_unavailable",)},
    "listMiningSuspects": {400: ("invalid_argument",)},
    "clearMiningSuspect": {400: ("invalid_argument",), 404: ("suspect_not_found",)},
    "getInteraction": {400: ("invalid_wallet_address",)},
    "getLeaderboardAroundMe": {400: ("invalid_count",), 503: ("leaderboard_rebuilding",)},
    "getDailyReward": {},
    "claimDailyReward": {409: ("already_claimed",), 503: ("progress_busy",)},
    "checkQuestEligibility": {400: ("invalid_wallet_address",), 404: ("quest_not_found",)},
    "createQuest": {
        400: ("invalid_quest", "unknown_currency", "prerequisite_not_found"),
        409: ("quest_exists",),
    },
    "updateQuest": {
        400: ("invalid_quest", "unknown_currency", "prerequisite_not_found"),
        404: ("quest_not_found",),
    },
    "archiveQuest": {400: ("invalid_quest",), 404: ("quest_not_found",)},
    # gateway/routes/admin_db.py: the gateway reads MongoDB itself.
    **{
        operation: {503: ("database_not_configured", "database_unavailable")}
        for operation in (
            "adminDbSlowQueries",
            "adminDbPoolStats",
            "adminDbSize",
            "adminDbTableSizes",
            "adminDbIndexUsage",
            "adminDbResetStats",
        )
    },
}


def gateway_codes(
    *, has_input: bool, has_body: bool, signed_in: bool, admin: bool, key: bool, key_required: bool
) -> dict[int, list[str]]:
    """The codes the gateway answers itself for a row of this shape."""
    codes: dict[int, list[str]] = {}
    if has_input:
        codes.setdefault(400, []).append("invalid_field")
    if has_body:
        codes.setdefault(400, []).append("invalid_json")
        codes[413] = ["payload_too_large"]
    if key:
        codes.setdefault(400, []).extend(
            ["invalid_idempotency_key", *(["idempotency_key_required"] if key_required else [])]
        )
        codes[409] = ["idempotency_key_in_flight"]
        codes[KEY_REUSED_STATUS] = ["idempotency_key_reused"]
    if signed_in:
        codes[401] = ["unauthenticated", "invalid_token", "token_expired"]
    if admin:
        codes[403] = ["forbidden"]
    codes[429] = ["rate_limited"]
    codes[503] = ["service_unavailable", "limits_unavailable"]
    return codes


def codes_for(operation_id: str, gateway: Mapping[int, list[str]]) -> dict[int, list[str]]:
    """Every (status, codes) an operation can answer, the gateway's first."""
    merged = {status: list(codes) for status, codes in gateway.items()}
    for status, codes in SERVICE_CODES.get(operation_id, {}).items():
        if not codes:
            continue
        merged.setdefault(status, [])
        merged[status].extend(code for code in codes if code not in merged[status])
    return dict(sorted(merged.items()))
