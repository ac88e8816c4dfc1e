"""Who may call what: the per-method authorisation of internal gRPC, as data.

Each service's table maps every one of its methods to the identities
(certificate common names, see ``tools/pki.py``) allowed to call it. With
mutual TLS on, the server interceptor checks the verified peer against the
table before the handler runs; a method missing from the table, or a
service without one, is refused to everyone. A unit test holds each table
to its service's descriptor, so a new RPC cannot ship without a line here.

Admin methods also need the end user the gateway authenticated: the gateway
forwards the caller's user id and role (``runtime.context.user_id`` /
``role``, sent as ``x-minequest-user-id`` / ``x-minequest-role``), only the
``gateway`` identity is believed when it does, and the role must be
``admin``. Where the request names the deciding admin (``admin_id``), it
must be that user.

The standard health service answers any verified peer (and reflection,
when ``GRPC_REFLECTION=true`` turns it on). Without TLS there is no
identity and nothing here applies: every caller may call everything.

Refusals are PERMISSION_DENIED with an ``ErrorInfo`` reason:
``caller_not_allowed``, ``admin_required`` or ``principal_mismatch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

GATEWAY = "gateway"
AUTH = "auth"
WALLET = "wallet"
MINING = "mining"
MINING_WORKER = "mining-worker"
QUESTS = "quests"
ADMIN_ROLE = "admin"


@dataclass(frozen=True, slots=True)
class Rule:
    """Who may call one method."""

    callers: frozenset[str]
    #: The gateway must assert an admin end user.
    admin: bool = False
    #: A request field that must equal the asserted user id (the deciding admin).
    principal_field: str | None = None


def allow(*callers: str) -> Rule:
    return Rule(frozenset(callers))


def admin_only(principal_field: str | None = None) -> Rule:
    """Only the gateway, on behalf of an admin."""
    return Rule(frozenset({GATEWAY}), admin=True, principal_field=principal_field)


#: Full service name -> method -> rule. Every method of every service, nothing else.
ACCESS: Mapping[str, Mapping[str, Rule]] = {
    "minequest.auth.v1.AuthService": {
        "Register": allow(GATEWAY),
        "RequestOtp": allow(GATEWAY),
        "VerifyOtp": allow(GATEWAY),
        "RefreshToken": allow(GATEWAY),
        "Logout": allow(GATEWAY),
        "GetProfile": allow(GATEWAY),
        "UpdateProfile": allow(GATEWAY),
        "GetJwks": allow(GATEWAY),
        # Sign-In with Ethereum: proving the account's wallet.
        "CreateWalletChallenge": allow(GATEWAY),
        "VerifyWallet": allow(GATEWAY),
        # Usernames on the leaderboard, wallet lookups; the wallet's withdrawal check.
        "GetPublicProfile": allow(QUESTS, WALLET),
        # ... and the usernames on the mined-coin leaderboards.
        "ListPublicProfiles": allow(QUESTS, MINING),
        # Telegram Mini App login, linking an email later, the caller's referrals.
        "TelegramLogin": allow(GATEWAY),
        "RequestEmailLink": allow(GATEWAY),
        "VerifyEmailLink": allow(GATEWAY),
        "GetReferralSummary": allow(GATEWAY),
        "ListInvitees": allow(GATEWAY),
        # The click worker credits inviters their share of what invitees mine.
        "GetReferrers": allow(MINING_WORKER),
    },
    "minequest.wallet.v1.WalletService": {
        # Mints coins: the click worker (mining rewards, source mining.batch, and
        # mining.click for clicks recorded before the outbox) and quests (coin rewards).
        "Credit": allow(MINING_WORKER, QUESTS),
        # Spends mined coins: the mining service's boost purchases (source mining.boost).
        "Debit": allow(MINING),
        # Quests reads the currencies (and their precision) from a balance.
        "GetBalance": allow(GATEWAY, QUESTS),
        "ListLedgerEntries": allow(GATEWAY),
        "ListDepositWallets": allow(GATEWAY),
        # The gateway checks the provider's webhook signature first.
        "RecordDeposit": allow(GATEWAY),
        "CreateWithdrawal": allow(GATEWAY),
        "ListWithdrawals": allow(GATEWAY),
        "GetWithdrawal": allow(GATEWAY),
        "GetDepositReference": allow(GATEWAY),
        "DecideWithdrawal": admin_only(principal_field="admin_id"),
        "ListWithdrawalsByState": admin_only(),
        "ListUnmatchedDeposits": admin_only(),
    },
    "minequest.mining.v1.MiningService": {
        "SubmitClick": allow(GATEWAY),
        "SubmitClicks": allow(GATEWAY),
        "GetClickStatus": allow(GATEWAY),
        "GetMiningStatus": allow(GATEWAY),
        "ListBoosts": allow(GATEWAY),
        "PurchaseBoost": allow(GATEWAY),
        "GetMinedLeaderboard": allow(GATEWAY),
        "ListSuspects": admin_only(),
        "ClearSuspect": admin_only(),
    },
    "minequest.quests.v1.QuestsService": {
        "ListQuests": allow(GATEWAY),
        "CompleteQuest": allow(GATEWAY),
        "GetLeaderboard": allow(GATEWAY),
        "GetInteraction": allow(GATEWAY),
        "CheckCompletion": allow(GATEWAY),
        # Daily streaks and the around-me leaderboard (issue 16).
        "GetLeaderboardAround": allow(GATEWAY),
        "GetDailyReward": allow(GATEWAY),
        "ClaimDailyReward": allow(GATEWAY),
        "UpsertQuest": admin_only(),
        "ArchiveQuest": admin_only(),
    },
}

#: What an unlisted method gets: nobody.
DENY = Rule(frozenset())


def is_open(service: str) -> bool:
    """gRPC's own services (health; reflection when it is on): any verified peer."""
    return service.startswith("grpc.")


def rule_for(table: Mapping[str, Mapping[str, Rule]], service: str, method: str) -> Rule:
    """The rule of ``service/method``: :data:`DENY` when it is not in ``table``."""
    return table.get(service, {}).get(method, DENY)
