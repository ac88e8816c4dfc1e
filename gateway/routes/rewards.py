"""``/api/rewards/daily``: the daily reward and its streak.

``GET`` says where the caller's streak stands (``streak``, ``claimedToday``,
``todayReward``, ``nextReward``, ``nextClaimAt``, the ``rewardTable``).
``POST`` claims today's reward; it needs an ``Idempotency-Key``, as completing
a quest does: a retry with the same key answers the same claim, any other
claim the same day is 409 ``already_claimed`` with today's claim under
``claim``. The quests service pays the coins through ``Wallet.Credit``
exactly once (services/quests/daily.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from starlette.responses import Response

from gateway import errors, protojson
from gateway.routing import Access, Endpoint, Incoming, rpc
from minequest.quests.v1 import quests_pb2 as pb
from runtime.errors import decode_rpc_error

TAG = "rewards"
NO_STORE = {"Cache-Control": "no-store"}
PRIVATE = {"Cache-Control": "private, no-cache"}
ALREADY_CLAIMED = "already_claimed"


def claim_of(metadata: Mapping[str, str]) -> dict[str, Any]:
    """Today's claim, from the quests service's ``already_claimed`` metadata,
    as the claim's own JSON renders it."""
    streak = metadata.get("streak", "0")
    return {
        "id": metadata.get("claim_id", ""),
        "day": metadata.get("day", ""),
        "streak": int(streak) if streak.isascii() and streak.isdigit() else 0,
        "claimedAt": metadata.get("claimed_at", ""),
        "reward": {
            "currency": metadata.get("currency", ""),
            "units": metadata.get("units", "0"),
            "amount": metadata.get("amount", ""),
        },
    }


async def claim(incoming: Incoming) -> Response:
    message: Any = await incoming.message()
    try:
        reply = await incoming.gateway.quests.ClaimDailyReward(message)
    except grpc.aio.AioRpcError as error:
        info = decode_rpc_error(error)
        if info.reason != ALREADY_CLAIMED:
            raise
        return errors.problem(
            errors.http_status(info.code),
            ALREADY_CLAIMED,
            info.message,
            extensions={"claim": claim_of(info.metadata)},
        )
    return protojson.json_response(reply, headers=NO_STORE)


ENDPOINTS: tuple[Endpoint, ...] = (
    rpc(
        "GET",
        "/api/rewards/daily",
        call=lambda g, m: g.quests.GetDailyReward(m),
        request=pb.GetDailyRewardRequest,
        response=pb.GetDailyRewardResponse,
        access=Access.USER,
        server_fields=("user_id",),
        operation_id="getDailyReward",
        summary="The caller's daily reward: streak, claimed today, today's and the next reward",
        tag=TAG,
        headers=PRIVATE,
    ),
    Endpoint(
        "POST",
        "/api/rewards/daily",
        handler=claim,
        request=pb.ClaimDailyRewardRequest,
        response=pb.ClaimDailyRewardResponse,
        access=Access.USER,
        server_fields=("user_id", "idempotency_key"),
        idempotency_required=True,
        operation_id="claimDailyReward",
        summary="Claim today's reward, once a day (409 already_claimed with today's claim)",
        tag=TAG,
        headers=NO_STORE,
    ),
)
