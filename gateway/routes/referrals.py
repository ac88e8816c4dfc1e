"""``/api/referrals/*``: the caller's referral code, invitees and earnings.

``GET /api/referrals/me`` answers ``{referralCode, invited,
secondLevelInvited, earned}``: the counts come from the auth service
(``GetReferralSummary``), ``earned`` (a Money) from the mining service
(``GetMiningStatus.referral_reward``: the shares of what invitees mined and
their join bonuses, credited by the click worker), asked at the same time.
``GET /api/referrals/me/invitees`` lists the accounts made with the caller's
code, newest first (``pageSize``, ``pageToken``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import JSONResponse, Response

from gateway import protojson
from gateway.routing import Access, Endpoint, Incoming, rpc
from minequest.auth.v1 import auth_pb2
from minequest.mining.v1 import mining_pb2

TAG = "referrals"
PRIVATE = {"Cache-Control": "private, no-cache"}

_MONEY: dict[str, Any] = {
    "type": "object",
    "required": ["currency", "units", "amount"],
    "properties": {
        "currency": {"type": "string"},
        "units": {"type": "string", "description": "minor units (int64 as a string)"},
        "amount": {"type": "string", "description": "decimal amount, e.g. 0.00100000"},
    },
}
SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["referralCode", "invited", "secondLevelInvited", "earned"],
    "properties": {
        "referralCode": {"type": "string", "description": "the caller's code to invite others"},
        "invited": {"type": "integer", "minimum": 0, "description": "accounts made with it"},
        "secondLevelInvited": {
            "type": "integer",
            "minimum": 0,
            "description": "accounts made with the codes of those",
        },
        "earned": {
            **_MONEY,
            "description": "credited so far from invitees' mining (shares and join bonuses)",
        },
    },
}


async def my_referrals(incoming: Incoming) -> Response:
    user_id = incoming.user.user_id
    gateway = incoming.gateway
    summary, mining = await asyncio.gather(
        gateway.auth.GetReferralSummary(auth_pb2.GetReferralSummaryRequest(user_id=user_id)),
        gateway.mining.GetMiningStatus(mining_pb2.GetMiningStatusRequest(user_id=user_id)),
    )
    earned = protojson.to_dict(mining.referral_reward)
    body = {
        "referralCode": summary.referral_code,
        "invited": summary.invited,
        "secondLevelInvited": summary.second_level_invited,
        "earned": {
            "currency": earned.get("currency", ""),
            "units": earned.get("units", "0"),
            "amount": earned.get("amount", ""),
        },
    }
    return JSONResponse(body, headers=PRIVATE)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/api/referrals/me",
        handler=my_referrals,
        response_schema=SUMMARY_SCHEMA,
        access=Access.USER,
        operation_id="getMyReferrals",
        summary="The caller's referral code, how many it invited (and they in turn), "
        "and what their mining earned the caller",
        tag=TAG,
        headers=PRIVATE,
    ),
    rpc(
        "GET",
        "/api/referrals/me/invitees",
        call=lambda g, m: g.auth.ListInvitees(m),
        request=auth_pb2.ListInviteesRequest,
        response=auth_pb2.ListInviteesResponse,
        access=Access.USER,
        server_fields=("user_id",),
        paged=True,
        operation_id="listInvitees",
        summary="The accounts made with the caller's referral code, newest first",
        tag=TAG,
        headers=PRIVATE,
    ),
)
