"""``/api/wallet/*``, ``/api/public/wallets``, the wallet's admin routes and the
signed deposit webhook. ``Wallet.Credit`` is internal and has no route.

Every user route takes the user from the verified token, never from the
request, so another user's withdrawal id answers 404 like an unknown one.
List routes page with the ``pageSize`` and ``pageToken`` query parameters
(newest first; the answer's ``page.nextPageToken`` is empty on the last page).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from gateway import protojson, webhooks
from gateway.errors import ApiError
from gateway.routing import Access, Endpoint, Incoming, rpc
from minequest.wallet.v1 import wallet_pb2 as pb

TAG = "wallet"
ADMIN_TAG = "admin"
PRIVATE = {"Cache-Control": "private, no-cache"}
NO_STORE = {"Cache-Control": "no-store"}
PUBLIC_WALLETS_CACHE = {"Cache-Control": "public, max-age=60"}


async def deposit_webhook(incoming: Incoming) -> Response:
    """Verify the provider's signature over the raw body, then record the deposit."""
    settings = incoming.gateway.settings
    if settings.deposit_webhook_secret is None:
        raise ApiError(
            503, "webhook_not_configured", "deposit webhooks are off (DEPOSIT_WEBHOOK_SECRET)"
        )
    headers = incoming.request.headers
    webhooks.verify(
        settings.deposit_webhook_secret,
        timestamp=headers.get(webhooks.TIMESTAMP_HEADER),
        signatures=headers.get(webhooks.SIGNATURE_HEADER),
        body=(await incoming.body()).raw,
        now=time.time(),
        tolerance_seconds=settings.deposit_webhook_tolerance_seconds,
    )
    message: Any = await incoming.message()
    reply = await incoming.gateway.wallet.RecordDeposit(message)
    return protojson.json_response(reply, headers=NO_STORE)


ENDPOINTS: tuple[Endpoint, ...] = (
    rpc(
        "GET",
        "/api/public/wallets",
        call=lambda g, m: g.wallet.ListDepositWallets(m),
        request=pb.ListDepositWalletsRequest,
        response=pb.ListDepositWalletsResponse,
        operation_id="listDepositWallets",
        summary="The deposit wallets, per currency and chain",
        tag=TAG,
        headers=PUBLIC_WALLETS_CACHE,
    ),
    rpc(
        "GET",
        "/api/wallet/balance",
        call=lambda g, m: g.wallet.GetBalance(m),
        request=pb.GetBalanceRequest,
        response=pb.GetBalanceResponse,
        access=Access.USER,
        server_fields=("user_id",),
        operation_id="getBalance",
        summary="The caller's balances, per currency",
        tag=TAG,
        headers=PRIVATE,
    ),
    rpc(
        "GET",
        "/api/wallet/history",
        call=lambda g, m: g.wallet.ListLedgerEntries(m),
        request=pb.ListLedgerEntriesRequest,
        response=pb.ListLedgerEntriesResponse,
        operation_id="listLedgerEntries",
        summary="The caller's ledger, newest first",
        access=Access.USER,
        server_fields=("user_id",),
        paged=True,
        headers=PRIVATE,
        tag=TAG,
    ),
    rpc(
        "GET",
        "/api/wallet/deposit-reference",
        call=lambda g, m: g.wallet.GetDepositReference(m),
        request=pb.GetDepositReferenceRequest,
        response=pb.GetDepositReferenceResponse,
        access=Access.USER,
        server_fields=("user_id",),
        operation_id="getDepositReference",
        summary="The caller's deposit reference and the wallets to deposit to",
        tag=TAG,
        headers=PRIVATE,
    ),
    rpc(
        "POST",
        "/api/wallet/withdrawals",
        call=lambda g, m: g.wallet.CreateWithdrawal(m),
        request=pb.CreateWithdrawalRequest,
        response=pb.CreateWithdrawalResponse,
        status=201,
        access=Access.USER,
        server_fields=("user_id", "idempotency_key"),
        idempotency_required=True,
        operation_id="createWithdrawal",
        summary="Withdraw: the amount is held until an admin decides",
        tag=TAG,
        headers=NO_STORE,
    ),
    rpc(
        "GET",
        "/api/wallet/withdrawals",
        call=lambda g, m: g.wallet.ListWithdrawals(m),
        request=pb.ListWithdrawalsRequest,
        response=pb.ListWithdrawalsResponse,
        operation_id="listWithdrawals",
        summary="The caller's withdrawals, newest first",
        access=Access.USER,
        server_fields=("user_id",),
        paged=True,
        headers=PRIVATE,
        tag=TAG,
    ),
    rpc(
        "GET",
        "/api/wallet/withdrawals/{withdrawalId}",
        call=lambda g, m: g.wallet.GetWithdrawal(m),
        request=pb.GetWithdrawalRequest,
        response=pb.GetWithdrawalResponse,
        access=Access.USER,
        server_fields=("user_id",),
        operation_id="getWithdrawal",
        summary="One of the caller's withdrawals",
        tag=TAG,
        headers=PRIVATE,
    ),
    Endpoint(
        "POST",
        "/api/webhooks/deposits",
        handler=deposit_webhook,
        request=pb.RecordDepositRequest,
        response=pb.RecordDepositResponse,
        operation_id="recordDeposit",
        summary="Deposit notification, signed by the provider (X-Webhook-Signature)",
        tag=TAG,
        headers=NO_STORE,
    ),
    rpc(
        "GET",
        "/api/admin/withdrawals",
        call=lambda g, m: g.wallet.ListWithdrawalsByState(m),
        request=pb.ListWithdrawalsByStateRequest,
        response=pb.ListWithdrawalsByStateResponse,
        access=Access.ADMIN,
        operation_id="adminListWithdrawals",
        summary="Every user's withdrawals in one state, newest first",
        tag=ADMIN_TAG,
        paged=True,
        headers=PRIVATE,
    ),
    rpc(
        "POST",
        "/api/admin/withdrawals/{withdrawalId}/approve",
        call=lambda g, m: g.wallet.DecideWithdrawal(m),
        request=pb.DecideWithdrawalRequest,
        response=pb.DecideWithdrawalResponse,
        access=Access.ADMIN,
        server_fields=("admin_id",),
        fixed={"decision": pb.DECISION_APPROVE},
        operation_id="approveWithdrawal",
        summary="Approve a pending withdrawal (its hold is debited)",
        tag=ADMIN_TAG,
        headers=NO_STORE,
    ),
    rpc(
        "POST",
        "/api/admin/withdrawals/{withdrawalId}/reject",
        call=lambda g, m: g.wallet.DecideWithdrawal(m),
        request=pb.DecideWithdrawalRequest,
        response=pb.DecideWithdrawalResponse,
        access=Access.ADMIN,
        server_fields=("admin_id",),
        fixed={"decision": pb.DECISION_REJECT},
        operation_id="rejectWithdrawal",
        summary="Reject a pending withdrawal (its hold is released)",
        tag=ADMIN_TAG,
        headers=NO_STORE,
    ),
    rpc(
        "GET",
        "/api/admin/deposits/unmatched",
        call=lambda g, m: g.wallet.ListUnmatchedDeposits(m),
        request=pb.ListUnmatchedDepositsRequest,
        response=pb.ListUnmatchedDepositsResponse,
        access=Access.ADMIN,
        operation_id="listUnmatchedDeposits",
        summary="Deposits whose reference matched no user, newest first",
        tag=ADMIN_TAG,
        paged=True,
        headers=PRIVATE,
    ),
)
