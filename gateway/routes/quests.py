"""``/api/quests/*``, the public quest lookups and ``/api/admin/quests``.

User routes take the user from the verified token. Completing needs an
``Idempotency-Key``: a retry with the same key answers the same completion;
any other request for a quest already completed (this day, for a daily
quest) is 409 ``already_completed`` with the original under ``completion``.

``GET /api/quests/leaderboard`` is public; with a valid bearer token the
answer also carries the caller's own standing (``own``). Its entries come
from a cache in the quests service: ``X-Cache: HIT|MISS`` says which, and
``Cache-Control`` lets clients keep it for as long as the service does.

``GET /api/quests/leaderboard/around-me?count=`` (bearer) answers the
players just above and below the caller (``count`` on each side, 1-50,
default 5), the caller among them, with their ranks, and ``own``; a caller
not on the leaderboard gets an empty list and ``own: null``.

``GET /api/public/users/interaction/{walletAddress}`` answers exactly the
field names clients in the field already read (``totalXP`` included, numbers
as JSON numbers), so it is rendered here rather than by the protobuf JSON
mapping. ``GET /api/public/quests/{questId}/eligible?address=`` answers
``{"result": 1}`` or ``{"result": 0}``, the shape Galxe-style quest
platforms call for their credential checks.

Admins create quests with ``POST /api/admin/quests`` (``{"quest": {...}}``;
an ``id`` slug may be chosen), replace one with ``PUT
/api/admin/quests/{questId}`` and archive it with ``POST
/api/admin/quests/{questId}/archive`` (kept in users' history).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from gateway import protojson
from gateway.routing import Access, Endpoint, Incoming, rpc
from minequest.quests.v1 import quests_pb2 as pb

TAG = "quests"
ADMIN_TAG = "admin"
PRIVATE = {"Cache-Control": "private, no-cache"}
NO_STORE = {"Cache-Control": "no-store"}
PUBLIC_SHORT = {"Cache-Control": "public, max-age=30"}


def board_cache_control(max_age_seconds: int, named: bool) -> str:
    """A leaderboard answer's ``Cache-Control``: for the service's max age,
    ``private`` when it names the caller (the mined-coin boards' too)."""
    max_age = max(max_age_seconds, 0)
    scope = "private" if named else "public"
    return f"{scope}, max-age={max_age}" if max_age else "no-cache"


async def leaderboard(incoming: Incoming) -> Response:
    message: Any = await incoming.message()
    reply = await incoming.gateway.quests.GetLeaderboard(message)
    headers = {
        "X-Cache": "HIT" if reply.cached else "MISS",
        "Cache-Control": board_cache_control(reply.max_age_seconds, bool(message.user_id)),
    }
    body = protojson.to_dict(reply)
    body.pop("cached", None)
    body.pop("maxAgeSeconds", None)
    if not message.user_id:
        body.pop("own", None)
    return JSONResponse(body, headers=headers)


async def around_me(incoming: Incoming) -> Response:
    message: Any = await incoming.message()
    reply = await incoming.gateway.quests.GetLeaderboardAround(message)
    body = protojson.to_dict(reply)
    body["own"] = body.get("own")  # null when the caller is not on the leaderboard
    return JSONResponse(body, headers=PRIVATE)


async def interaction(incoming: Incoming) -> Response:
    message: Any = await incoming.message()
    reply = await incoming.gateway.quests.GetInteraction(message)
    body = {
        "hasInteracted": reply.has_interacted,
        "walletAddress": reply.wallet_address,
        "username": reply.username,
        "totalXP": reply.total_xp,
        "completedQuests": [
            {
                "questId": item.quest_id,
                "questName": item.quest_name,
                "completedAt": item.completed_at.ToJsonString(),
                "xpEarned": item.xp_earned,
            }
            for item in reply.completed_quests
        ],
        "questsCompleted": reply.quests_completed,
    }
    return JSONResponse(body, headers=PUBLIC_SHORT)


async def eligible(incoming: Incoming) -> Response:
    message: Any = await incoming.message()
    reply = await incoming.gateway.quests.CheckCompletion(message)
    return JSONResponse({"result": 1 if reply.completed else 0}, headers=PUBLIC_SHORT)


INTERACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "hasInteracted",
        "walletAddress",
        "username",
        "totalXP",
        "completedQuests",
        "questsCompleted",
    ],
    "properties": {
        "hasInteracted": {"type": "boolean"},
        "walletAddress": {"type": "string", "description": "EIP-55 checksummed"},
        "username": {"type": "string"},
        "totalXP": {"type": "integer"},
        "completedQuests": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "questId": {"type": "string"},
                    "questName": {"type": "string"},
                    "completedAt": {"type": "string", "format": "date-time"},
                    "xpEarned": {"type": "integer"},
                },
            },
        },
        "questsCompleted": {"type": "integer"},
    },
}
_ENTRY_REF = {"$ref": "#/components/schemas/minequest.quests.v1.LeaderboardEntry"}
AROUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["entries", "own"],
    "properties": {
        "entries": {
            "type": "array",
            "items": _ENTRY_REF,
            "description": "Best first: the players above the caller, the caller, those below",
        },
        "own": {"anyOf": [_ENTRY_REF, {"type": "null"}]},
    },
}
ELIGIBLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["result"],
    "properties": {"result": {"type": "integer", "enum": [0, 1]}},
}

ENDPOINTS: tuple[Endpoint, ...] = (
    rpc(
        "GET",
        "/api/quests",
        call=lambda g, m: g.quests.ListQuests(m),
        request=pb.ListQuestsRequest,
        response=pb.ListQuestsResponse,
        access=Access.USER,
        server_fields=("user_id",),
        paged=True,
        operation_id="listQuests",
        summary="The quest catalogue with the caller's progress",
        tag=TAG,
        headers=PRIVATE,
    ),
    rpc(
        "POST",
        "/api/quests/{questId}/complete",
        call=lambda g, m: g.quests.CompleteQuest(m),
        request=pb.CompleteQuestRequest,
        response=pb.CompleteQuestResponse,
        access=Access.USER,
        server_fields=("user_id", "idempotency_key"),
        idempotency_required=True,
        operation_id="completeQuest",
        summary="Complete a quest: once (a day for daily quests), prerequisites first",
        tag=TAG,
        headers=NO_STORE,
    ),
    Endpoint(
        "GET",
        "/api/quests/leaderboard",
        handler=leaderboard,
        request=pb.GetLeaderboardRequest,
        response=pb.GetLeaderboardResponse,
        access=Access.OPTIONAL,
        server_fields=("user_id",),
        operation_id="getLeaderboard",
        summary="Top users by XP (limit 1-100, default 10); with a token, the caller's own rank",
        tag=TAG,
    ),
    Endpoint(
        "GET",
        "/api/quests/leaderboard/around-me",
        handler=around_me,
        request=pb.GetLeaderboardAroundRequest,
        response_schema=AROUND_SCHEMA,
        access=Access.USER,
        server_fields=("user_id",),
        operation_id="getLeaderboardAroundMe",
        summary="The players just above and below the caller by XP (count 1-50 each side, "
        "default 5); not on the board: entries [] and own null",
        tag=TAG,
        headers=PRIVATE,
    ),
    Endpoint(
        "GET",
        "/api/public/users/interaction/{walletAddress}",
        handler=interaction,
        request=pb.GetInteractionRequest,
        response_schema=INTERACTION_SCHEMA,
        operation_id="getInteraction",
        summary="What the user of a wallet address has done (unknown address: hasInteracted false)",
        tag=TAG,
        headers=PUBLIC_SHORT,
    ),
    Endpoint(
        "GET",
        "/api/public/quests/{questId}/eligible",
        handler=eligible,
        request=pb.CheckCompletionRequest,
        response_schema=ELIGIBLE_SCHEMA,
        operation_id="checkQuestEligibility",
        summary="Galxe-style credential check: has ?address= completed the quest (1) or not (0)",
        tag=TAG,
        headers=PUBLIC_SHORT,
    ),
    rpc(
        "POST",
        "/api/admin/quests",
        call=lambda g, m: g.quests.UpsertQuest(m),
        request=pb.UpsertQuestRequest,
        response=pb.UpsertQuestResponse,
        status=201,
        access=Access.ADMIN,
        fixed={"mode": pb.UPSERT_MODE_CREATE, "quest_id": ""},
        operation_id="createQuest",
        summary="Create a quest (409 quest_exists when its id is taken)",
        tag=ADMIN_TAG,
        headers=NO_STORE,
    ),
    rpc(
        "PUT",
        "/api/admin/quests/{questId}",
        call=lambda g, m: g.quests.UpsertQuest(m),
        request=pb.UpsertQuestRequest,
        response=pb.UpsertQuestResponse,
        access=Access.ADMIN,
        fixed={"mode": pb.UPSERT_MODE_UPDATE},
        operation_id="updateQuest",
        summary="Replace a quest's definition (past completions keep what they earned)",
        tag=ADMIN_TAG,
        headers=NO_STORE,
    ),
    rpc(
        "POST",
        "/api/admin/quests/{questId}/archive",
        call=lambda g, m: g.quests.ArchiveQuest(m),
        request=pb.ArchiveQuestRequest,
        response=pb.ArchiveQuestResponse,
        access=Access.ADMIN,
        operation_id="archiveQuest",
        summary="Archive a quest: it leaves the catalogue, stays in users' history",
        tag=ADMIN_TAG,
        headers=NO_STORE,
    ),
)
