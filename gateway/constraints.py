"""What the server checks in each request field, as JSON Schema: one table.

:mod:`gateway.schema` turns the protobuf request messages into JSON Schema;
the types alone say little (a wallet address is "a string"). This table adds
what the services and the gateway refuse — lengths, patterns, ranges,
required fields, "an email or a phone" — so the OpenAPI document (and every
client generated from it) states the rules the server applies:

- :data:`FIELDS`: ``"<message full name>.<proto field>"`` -> schema keywords
  merged into that field's schema (in bodies, query and path parameters).
- :data:`MESSAGES`: ``"<message full name>"`` -> keywords merged into the
  message's object schema (``required``, ``oneOf``, ``anyOf``).

Values shared with the gateway's own checks are imported from where those
checks live (:mod:`runtime`); the services' rules are named after the
constant each mirrors, and ``tests/unit/test_openapi_constraints.py``
compares every one with the service's own constant, so the two cannot drift.

Formats the JSON Schema vocabulary lacks are named (``evm-address``,
``phone``, ``currency-code``, ``referral-code``) and described; a validator that does not know
a format ignores it and still applies the pattern.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.idempotency import MAX_KEY_LENGTH
from runtime.idempotency import PATTERN as KEY_PATTERN

Schema = dict[str, Any]

# --- the rules, named after the services' constants they mirror ---------------
#: services.auth.validation: 3-32 letters, digits or underscores (after trimming).
USERNAME_PATTERN = r"^[A-Za-z0-9_]{3,32}$"
#: services.auth.validation: 8 of A-Z and 2-7 (read upper-cased).
REFERRAL_PATTERN = r"^[A-Za-z2-7]{8}$"
#: services.auth.telegram.MAX_INIT_DATA_LENGTH: longer initData is refused unread.
MAX_INIT_DATA_LENGTH = 8192
#: services.auth.siwe: a personal_sign signature, 65 bytes in hex.
SIGNATURE_PATTERN = r"^0x[0-9a-fA-F]{130}$"
#: services.mining.settings: MINING_MAX_TAPS_PER_REQUEST's default.
MAX_TAPS_PER_REQUEST = 500
#: services.quests.service.MAX_LEADERBOARD_LIMIT.
MAX_LEADERBOARD_LIMIT = 100
#: services.quests.service.MAX_AROUND_COUNT.
MAX_AROUND_COUNT = 50
#: services.quests.catalogue: QUEST_ID, MAX_NAME, MAX_DESCRIPTION, MAX_XP,
#: MAX_PREREQUISITES and the types it takes (TYPES).
QUEST_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_QUEST_NAME = 100
MAX_QUEST_DESCRIPTION = 2000
MAX_XP = 1_000_000
#: 0 to MAX_XP as the int64 string the JSON mapping uses.
XP_PATTERN = r"^(0|[1-9][0-9]{0,5}|1000000)$"
POSITIVE_XP_PATTERN = r"^([1-9][0-9]{0,5}|1000000)$"
MAX_PREREQUISITES = 20
QUEST_TYPES = ("QUEST_TYPE_SOCIAL", "QUEST_TYPE_ONCHAIN", "QUEST_TYPE_DAILY", "QUEST_TYPE_REFERRAL")
#: services.wallet.service.STATES: the states an admin lists withdrawals by.
WITHDRAWAL_STATES = (
    "WITHDRAWAL_STATE_PENDING",
    "WITHDRAWAL_STATE_COMPLETED",
    "WITHDRAWAL_STATE_REJECTED",
)
#: services.wallet.money: a currency code (read upper-cased) and a decimal amount.
CURRENCY_PATTERN = r"^[A-Za-z][A-Za-z0-9]{1,9}$"
DECIMAL_PATTERN = r"^[0-9]{1,40}(\.[0-9]{1,40})?$"
#: services.wallet.service.MAX_REASON_LENGTH.
MAX_REASON_LENGTH = 500
#: services.wallet.deposits.MAX_REFERENCE_LENGTH.
MAX_REFERENCE_LENGTH = 128
#: services.wallet.chains: EVM_CHAINS and TRON_CHAINS (read lower-cased).
EVM_CHAINS = ("arbitrum", "avalanche", "base", "bsc", "ethereum", "optimism", "polygon")
TRON_CHAINS = ("tron",)
#: services.wallet.chains: a Tron address (base58check, 34 characters, T first).
TRON_ADDRESS_PATTERN = r"^T[1-9A-HJ-NP-Za-km-z]{33}$"
#: runtime.addresses: an EVM address (mixed case must be a valid EIP-55 checksum).
EVM_ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
#: services.auth.validation: E.164 (a valid number, the + and country code).
PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"

EVM_ADDRESS: Schema = {
    "type": "string",
    "format": "evm-address",
    "pattern": EVM_ADDRESS_PATTERN,
    "description": "An EVM address: 0x and 40 hex digits; mixed case must be a valid "
    "EIP-55 checksum (answers carry the checksummed form).",
}
EMAIL: Schema = {"type": "string", "format": "email", "maxLength": 254}
PHONE: Schema = {
    "type": "string",
    "format": "phone",
    "pattern": PHONE_PATTERN,
    "description": "A valid phone number in E.164 form, e.g. +14155550123.",
}
CURRENCY: Schema = {
    "type": "string",
    "format": "currency-code",
    "pattern": CURRENCY_PATTERN,
    "description": "One of the deployment's currencies (WALLET_CURRENCIES, default MQC "
    "and USDT; read upper-cased); another is 400 unknown_currency.",
}
QUEST_ID: Schema = {"type": "string", "pattern": QUEST_ID_PATTERN}
IDEMPOTENCY_KEY: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_KEY_LENGTH,
    "pattern": KEY_PATTERN,
}

FIELDS: Mapping[str, Schema] = {
    # auth
    "minequest.auth.v1.RegisterRequest.wallet_address": EVM_ADDRESS,
    "minequest.auth.v1.RegisterRequest.email": EMAIL,
    "minequest.auth.v1.RegisterRequest.phone": PHONE,
    "minequest.auth.v1.RegisterRequest.username": {
        "pattern": USERNAME_PATTERN,
        "description": "Optional: 3-32 letters, digits or underscores.",
    },
    "minequest.auth.v1.RegisterRequest.referral_code": {
        "format": "referral-code",
        "pattern": REFERRAL_PATTERN,
        "description": "Optional: another user's code; an unknown one is 400.",
    },
    "minequest.auth.v1.RequestOtpRequest.email": EMAIL,
    "minequest.auth.v1.RequestOtpRequest.phone": PHONE,
    "minequest.auth.v1.VerifyOtpRequest.challenge_id": {"minLength": 1, "maxLength": 64},
    "minequest.auth.v1.VerifyOtpRequest.code": {"minLength": 1, "maxLength": 128},
    "minequest.auth.v1.RefreshTokenRequest.refresh_token": {"minLength": 1, "maxLength": 4096},
    "minequest.auth.v1.UpdateProfileRequest.username": {"pattern": USERNAME_PATTERN},
    "minequest.auth.v1.VerifyWalletRequest.message": {"minLength": 1, "maxLength": 4096},
    "minequest.auth.v1.TelegramLoginRequest.init_data": {
        "minLength": 1,
        "maxLength": MAX_INIT_DATA_LENGTH,
        "description": "Telegram.WebApp.initData exactly as the Mini App got it (a URL "
        "query string signed by Telegram for the deployment's bot).",
    },
    "minequest.auth.v1.RequestEmailLinkRequest.email": EMAIL,
    "minequest.auth.v1.VerifyEmailLinkRequest.challenge_id": {"minLength": 1, "maxLength": 64},
    "minequest.auth.v1.VerifyEmailLinkRequest.code": {"minLength": 1, "maxLength": 128},
    "minequest.auth.v1.CreateWalletChallengeRequest.wallet_address": {
        **EVM_ADDRESS,
        "pattern": f"^$|{EVM_ADDRESS_PATTERN}",
        "description": "Only for an account without a wallet (made by Telegram login): the "
        "wallet to prove, set once proved. " + EVM_ADDRESS["description"],
    },
    "minequest.auth.v1.VerifyWalletRequest.signature": {"pattern": SIGNATURE_PATTERN},
    # mining
    "minequest.mining.v1.SubmitClickRequest.count": {
        "minimum": 1,
        "maximum": MAX_TAPS_PER_REQUEST,
        "description": "Taps in this batch (absent: 1; over gRPC an unset 0 is read as 1, "
        "in JSON an explicit 0 is refused). At most the deployment's "
        f"MINING_MAX_TAPS_PER_REQUEST (default {MAX_TAPS_PER_REQUEST}).",
    },
    "minequest.mining.v1.SubmitClickRequest.first_tap_at": {
        "description": "When the batch's first tap was made; not in the future (a minute "
        "of clock skew is allowed), and not after lastTapAt."
    },
    "minequest.mining.v1.SubmitClickRequest.last_tap_at": {
        "description": "When the batch's last tap was made; not in the future, and not "
        "before firstTapAt."
    },
    "minequest.mining.v1.GetClickStatusRequest.key": IDEMPOTENCY_KEY,
    "minequest.mining.v1.PurchaseBoostRequest.level": {
        "description": "Optional: the level the caller means to buy (its level + 1); "
        "another is 412 boost_level_changed and nothing is bought."
    },
    # wallet
    "minequest.common.v1.Money.currency": CURRENCY,
    "minequest.common.v1.Money.amount": {
        "pattern": DECIMAL_PATTERN,
        "description": "A decimal amount in whole units, e.g. 12.5 (in a request: at most "
        "the currency's places, within the deployment's withdrawal limits; with units "
        "too, both must agree).",
    },
    "minequest.common.v1.PageRequest.page_size": {"minimum": 0, "maximum": 10_000},
    "minequest.wallet.v1.ListLedgerEntriesRequest.currency": {
        **CURRENCY,
        "description": "Only this currency (empty: every one). " + CURRENCY["description"],
        "pattern": f"^$|{CURRENCY_PATTERN}",
    },
    "minequest.wallet.v1.CreateWithdrawalRequest.chain": {
        "enum": sorted((*EVM_CHAINS, *TRON_CHAINS)),
        "description": "A chain the currency is paid out on (WALLET_WITHDRAWAL_CHAINS; "
        "another is 400 unknown_chain).",
    },
    "minequest.wallet.v1.CreateWithdrawalRequest.address": {
        "description": "An address on the chain: EVM chains take an EVM address (mixed case "
        "a valid EIP-55 checksum), tron a base58check address starting with T."
    },
    "minequest.wallet.v1.DecideWithdrawalRequest.reason": {"maxLength": MAX_REASON_LENGTH},
    "minequest.wallet.v1.RecordDepositRequest.deposit_reference": {
        "maxLength": MAX_REFERENCE_LENGTH
    },
    # quests
    "minequest.quests.v1.CompleteQuestRequest.quest_id": QUEST_ID,
    "minequest.quests.v1.CheckCompletionRequest.quest_id": QUEST_ID,
    "minequest.quests.v1.CheckCompletionRequest.address": EVM_ADDRESS,
    "minequest.quests.v1.GetInteractionRequest.wallet_address": EVM_ADDRESS,
    "minequest.quests.v1.ArchiveQuestRequest.quest_id": QUEST_ID,
    "minequest.quests.v1.UpsertQuestRequest.quest_id": QUEST_ID,
    "minequest.quests.v1.GetLeaderboardRequest.limit": {
        "minimum": 0,
        "maximum": MAX_LEADERBOARD_LIMIT,
        "description": f"1-{MAX_LEADERBOARD_LIMIT} entries (0 or absent: 10).",
    },
    # mining leaderboards (services.mining.oversight)
    "minequest.mining.v1.GetMinedLeaderboardRequest.limit": {
        "minimum": 0,
        "maximum": MAX_LEADERBOARD_LIMIT,
        "description": f"1-{MAX_LEADERBOARD_LIMIT} entries (0 or absent: 10).",
    },
    "minequest.mining.v1.GetMinedLeaderboardAroundRequest.count": {
        "minimum": 0,
        "maximum": MAX_AROUND_COUNT,
        "description": f"1-{MAX_AROUND_COUNT} players on each side (0 or absent: 5).",
    },
    "minequest.quests.v1.GetLeaderboardAroundRequest.count": {
        "minimum": 0,
        "maximum": MAX_AROUND_COUNT,
        "description": f"1-{MAX_AROUND_COUNT} players on each side (0 or absent: 5).",
    },
    "minequest.quests.v1.Quest.id": {
        "pattern": f"^$|{QUEST_ID_PATTERN}",
        "description": "On create: the id to give the quest (empty: one is made up); on "
        "replace: empty or the path's questId.",
    },
    "minequest.quests.v1.Quest.name": {
        "minLength": 1,
        "maxLength": MAX_QUEST_NAME,
        # Not only whitespace, as Python's str.strip() reads it (\s and U+001C-U+001F, U+0085).
        "pattern": r"[^\s\u001c-\u001f\u0085]",
        "description": f"1-{MAX_QUEST_NAME} characters, not only spaces.",
    },
    "minequest.quests.v1.Quest.description": {"maxLength": MAX_QUEST_DESCRIPTION},
    "minequest.quests.v1.Quest.type": {"enum": list(QUEST_TYPES)},
    "minequest.quests.v1.Quest.xp_reward": {
        "pattern": XP_PATTERN,
        "description": f"0-{MAX_XP}; a quest rewards XP, coins or both.",
    },
    "minequest.quests.v1.Quest.coin_reward": {
        "description": "A positive amount of one of the deployment's currencies, within its places."
    },
    "minequest.quests.v1.Quest.prerequisite_ids": {
        "maxItems": MAX_PREREQUISITES,
        "items": {"pattern": QUEST_ID_PATTERN},
        "description": "Ids of existing quests (not this one) to complete first; an "
        "unknown id is 400 prerequisite_not_found.",
    },
    "minequest.quests.v1.Quest.active_until": {"description": "After activeFrom."},
    "minequest.wallet.v1.ListWithdrawalsByStateRequest.state": {"enum": list(WITHDRAWAL_STATES)},
}

MESSAGES: Mapping[str, Schema] = {
    "minequest.common.v1.Money": {"required": ["currency"]},
    "minequest.auth.v1.RegisterRequest": {
        "required": ["walletAddress"],
        "anyOf": [{"required": ["email"]}, {"required": ["phone"]}],
    },
    # Exactly one of them. (Said as anyOf + not rather than oneOf: the same
    # set of bodies, and schemathesis' coverage phase trips on this oneOf.)
    "minequest.auth.v1.RequestOtpRequest": {
        "anyOf": [{"required": ["email"]}, {"required": ["phone"]}],
        "not": {"required": ["email", "phone"]},
    },
    "minequest.auth.v1.VerifyOtpRequest": {"required": ["challengeId", "code"]},
    "minequest.auth.v1.RefreshTokenRequest": {"required": ["refreshToken"]},
    "minequest.auth.v1.VerifyWalletRequest": {"required": ["message", "signature"]},
    "minequest.auth.v1.TelegramLoginRequest": {"required": ["initData"]},
    "minequest.auth.v1.RequestEmailLinkRequest": {"required": ["email"]},
    "minequest.auth.v1.VerifyEmailLinkRequest": {"required": ["challengeId", "code"]},
    "minequest.wallet.v1.CreateWithdrawalRequest": {
        "required": ["amount", "chain", "address"],
        "allOf": [
            {
                "if": {"properties": {"chain": {"enum": list(EVM_CHAINS)}}},
                "then": {"properties": {"address": {"pattern": EVM_ADDRESS_PATTERN}}},
            },
            {
                "if": {"properties": {"chain": {"enum": list(TRON_CHAINS)}}},
                "then": {"properties": {"address": {"pattern": TRON_ADDRESS_PATTERN}}},
            },
        ],
    },
    "minequest.mining.v1.GetClickStatusRequest": {"required": ["key"]},
    "minequest.quests.v1.CheckCompletionRequest": {"required": ["address"]},
    "minequest.quests.v1.UpsertQuestRequest": {"required": ["quest"]},
    "minequest.quests.v1.Quest": {
        "required": ["name", "type"],
        "anyOf": [
            {"required": ["coinReward"]},
            {
                "required": ["xpReward"],
                "properties": {"xpReward": {"pattern": POSITIVE_XP_PATTERN}},
            },
        ],
    },
    "minequest.wallet.v1.ListWithdrawalsByStateRequest": {"required": ["state"]},
}


def for_field(message: str, field: str) -> Schema:
    """The constraints on ``message.field`` (empty when the server checks none)."""
    return dict(FIELDS.get(f"{message}.{field}", {}))


def for_message(message: str) -> Schema:
    """Keywords for the object schema of ``message`` (``required``, ``oneOf``...)."""
    return dict(MESSAGES.get(message, {}))


def required_fields(message: str) -> tuple[str, ...]:
    """The JSON names ``message`` requires (for query and path parameters too)."""
    return tuple(MESSAGES.get(message, {}).get("required", ()))
