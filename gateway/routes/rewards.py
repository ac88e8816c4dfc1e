"""``/api/rewards/daily``: the daily reward and its streak.

``GET`` says where the caller's streak stands (``streak``, ``claimedToday``,
``todayReward``, ``nextReward``, ``nextClaimAt``, the ``rewardTable``).
``POST`` claims today's reward; it needs an ``Idempotency-Key``, as completing
a quest does: a retry with the same key answers the same claim, any other
claim the same day is 409 ``already_claimed`` with today's claim under
``claim`` (built by ``gateway.errors.REASON_EXTENSIONS``). The quests service
pays the coins through ``Wallet.Credit`` exactly once
(services/quests/daily.py).
"""

from __future__ import annotations

from gateway.routing import Access, Endpoint, rpc
from minequest.quests.v1 import quests_pb2 as pb

TAG = "rewards"
NO_STORE = {"Cache-Control": "no-store"}
PRIVATE = {"Cache-Control": "private, no-cache"}

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
    rpc(
        "POST",
        "/api/rewards/daily",
        call=lambda g, m: g.quests.ClaimDailyReward(m),
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
