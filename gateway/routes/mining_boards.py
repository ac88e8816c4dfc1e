"""Mined-coin leaderboards (``/api/mining/leaderboard*``) and the bot-signal
suspects of ``/api/admin/mining/suspects``.

``GET /api/mining/leaderboard?period=day|week&limit=`` is public; with a
valid bearer token the answer also carries the caller's own standing
(``own``). ``GET /api/mining/leaderboard/around-me?period=&count=`` (bearer)
answers the players just above and below the caller (``around``) and the
caller's own row. ``period`` is ``day`` or ``week`` (or the enum's name);
days are the dates at UTC plus ``MINING_LEADERBOARD_UTC_OFFSET_MINUTES``.
Both answer ``Cache-Control`` with the service's ``max_age_seconds``
(``private`` when the answer names the caller), as the XP board does.

Admins list flagged accounts, newest first, each with why (``GET
/api/admin/mining/suspects``, paged) and clear one (``POST
/api/admin/mining/suspects/{suspectId}/clear``, the account's user id): it
earns again and its signal state starts over.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams
from starlette.responses import JSONResponse, Response

from gateway import errors, protojson
from gateway.routes.quests import board_cache_control
from gateway.routing import Access, Endpoint, Incoming, rpc
from minequest.mining.v1 import mining_pb2 as pb

TAG = "mining"
ADMIN_TAG = "admin"
NO_STORE = {"Cache-Control": "no-store"}
#: ``period=day|week`` as well as the enum's own names.
PERIOD_NAMES = {"day": "LEADERBOARD_PERIOD_DAY", "week": "LEADERBOARD_PERIOD_WEEK"}
ENUM_NAMES = frozenset(pb.LeaderboardPeriod.keys())
DEFAULT_AROUND = 5


def _period(value: str) -> str:
    name = PERIOD_NAMES.get(value.lower(), value)
    if name not in ENUM_NAMES:
        raise errors.invalid_field("period must be day or week", "period")
    return name


def _query(incoming: Incoming) -> QueryParams:
    """The query string with ``period=day|week`` read as the enum's names
    (anything else, a number included, is 400)."""
    params = incoming.request.query_params
    items = [
        (key, _period(value) if key == "period" else value) for key, value in params.multi_items()
    ]
    return QueryParams(items)


def _answer(reply: pb.GetMinedLeaderboardResponse, named: bool) -> Response:
    headers = {"Cache-Control": board_cache_control(reply.max_age_seconds, named)}
    body = protojson.to_dict(reply)
    body.pop("maxAgeSeconds", None)
    return JSONResponse(body, headers=headers)


async def leaderboard(incoming: Incoming) -> Response:
    message = protojson.parse_query(_query(incoming), pb.GetMinedLeaderboardRequest)
    message.user_id = incoming.principal.user_id if incoming.principal else ""
    message.around = 0
    reply = await incoming.gateway.mining.GetMinedLeaderboard(message)
    return _answer(reply, bool(message.user_id))


async def around_me(incoming: Incoming) -> Response:
    asked = protojson.parse_query(_query(incoming), pb.GetMinedLeaderboardAroundRequest)
    message = pb.GetMinedLeaderboardRequest(
        period=asked.period,
        user_id=incoming.user.user_id,
        around=asked.count or DEFAULT_AROUND,
        limit=0,
    )
    reply: Any = await incoming.gateway.mining.GetMinedLeaderboard(message)
    return _answer(reply, True)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/api/mining/leaderboard",
        handler=leaderboard,
        request=pb.GetMinedLeaderboardRequest,
        response=pb.GetMinedLeaderboardResponse,
        access=Access.OPTIONAL,
        server_fields=("user_id",),
        fixed={"around": 0},
        operation_id="getMinedLeaderboard",
        summary="Top miners of the day or ISO week (period=day|week, limit 1-100, default "
        "10); with a token, the caller's own rank",
        tag=TAG,
    ),
    Endpoint(
        "GET",
        "/api/mining/leaderboard/around-me",
        handler=around_me,
        request=pb.GetMinedLeaderboardAroundRequest,
        response=pb.GetMinedLeaderboardResponse,
        access=Access.USER,
        server_fields=("user_id",),
        operation_id="getMinedLeaderboardAroundMe",
        summary="The miners just above and below the caller (period=day|week, count 1-50, "
        "default 5)",
        tag=TAG,
    ),
    rpc(
        "GET",
        "/api/admin/mining/suspects",
        call=lambda g, m: g.mining.ListSuspects(m),
        request=pb.ListSuspectsRequest,
        response=pb.ListSuspectsResponse,
        access=Access.ADMIN,
        paged=True,
        operation_id="listMiningSuspects",
        summary="Accounts the bot signals flagged, newest first, each with why",
        tag=ADMIN_TAG,
        headers=NO_STORE,
    ),
    rpc(
        "POST",
        "/api/admin/mining/suspects/{suspectId}/clear",
        call=lambda g, m: g.mining.ClearSuspect(m),
        request=pb.ClearSuspectRequest,
        response=pb.ClearSuspectResponse,
        access=Access.ADMIN,
        operation_id="clearMiningSuspect",
        summary="Clear a flagged account: it earns again, its signal state starts over",
        tag=ADMIN_TAG,
        headers=NO_STORE,
    ),
)
