"""``/api/mining/*``: the click pipeline's front door.

``POST /api/mining/click`` needs an ``Idempotency-Key``; the mining service
deduplicates on it atomically with queueing the click, so the gateway keeps
no record of its own (one Redis round trip here for the rate limits; the
clicks of concurrent requests go to the service together in one
``SubmitClicks`` call and one Redis script, :mod:`gateway.click_batcher`).
The answers:

- 202 ``{"key", "status": "queued", "acceptedTaps"}``: queued; a worker
  credits the reward. ``acceptedTaps`` may be fewer than asked (energy, tap
  rate, daily cap).
- 200, the same body with ``"deduplicated": true``: the key was seen before.
- 429 ``energy_exhausted`` / ``tap_rate_exceeded`` / ``daily_cap_reached``
  with ``Retry-After``; 503 ``queue_full`` with ``Retry-After``; 422
  ``idempotency_key_reused`` for the same key with another batch.

``GET /api/mining/click/status?key=`` answers 200 done (with the reward),
202 queued, 409 failed, 429 throttled (problem+json with ``key`` and
``clickStatus``), 404 for a key the caller never sent.
"""

from __future__ import annotations

import math
import time
from typing import Any

import grpc
from starlette.responses import JSONResponse, Response

from gateway import errors
from gateway.middleware.access_log import QUEUE_DEPTH
from gateway.routing import Access, Endpoint, Incoming, rpc
from minequest.mining.v1 import mining_pb2 as pb
from runtime.errors import RpcErrorInfo

TAG = "mining"
_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}
NO_STORE = {"Cache-Control": "no-store"}
#: Energy and totals change by the second; a client may show a slightly old one.
STATUS_CACHE = {"Cache-Control": "private, max-age=2, stale-while-revalidate=30"}

STATE_NAMES = {
    pb.CLICK_STATE_QUEUED: "queued",
    pb.CLICK_STATE_DONE: "done",
    pb.CLICK_STATE_FAILED: "failed",
    pb.CLICK_STATE_THROTTLED: "throttled",
}
STATE_HTTP = {
    pb.CLICK_STATE_QUEUED: 202,
    pb.CLICK_STATE_DONE: 200,
    pb.CLICK_STATE_FAILED: 409,
    pb.CLICK_STATE_THROTTLED: 429,
}

_MONEY = {
    "type": "object",
    "properties": {
        "currency": {"type": "string"},
        "units": {"type": "string", "description": "minor units (int64 as a string)"},
        "amount": {"type": "string", "description": "decimal amount, e.g. 0.00100000"},
    },
}
CLICK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["key", "status", "acceptedTaps"],
    "properties": {
        "key": {"type": "string", "description": "the Idempotency-Key sent"},
        "status": {"type": "string", "enum": ["queued"]},
        "acceptedTaps": {"type": "integer", "minimum": 1},
        "deduplicated": {"type": "boolean", "description": "true on a replay (status 200)"},
    },
}
CLICK_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["key", "status"],
    "properties": {
        "key": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "done"]},
        "acceptedTaps": {"type": "integer"},
        "reward": _MONEY,
    },
}


async def submit_click(incoming: Incoming) -> Response:
    body_json = (await incoming.body()).json()
    if isinstance(body_json, dict) and body_json.get("count") == 0:
        # gRPC reads an unset count (0) as 1; in JSON an explicit 0 is a mistake.
        raise errors.invalid_field("count must be at least 1 (leave it out for one tap)", "count")
    message: Any = await incoming.message()
    result = await incoming.gateway.clicks.submit(message)
    if result.HasField("error"):
        return errors.from_error_info(_error_info(result.error))
    reply = result.accepted
    incoming.request.scope[QUEUE_DEPTH] = reply.queue_depth
    body: dict[str, Any] = {
        "key": reply.key,
        "status": "queued",
        "acceptedTaps": reply.accepted_taps,
    }
    if reply.deduplicated:
        body["deduplicated"] = True
        return JSONResponse(body, 200, {**NO_STORE, "X-Idempotency": "HIT"})
    return JSONResponse(body, 202, {**NO_STORE, "X-Idempotency": "MISS"})


def _error_info(refusal: pb.ClickError) -> RpcErrorInfo:
    """One refused click of a batch, as a failed SubmitClick call would read."""
    return RpcErrorInfo(
        code=_STATUS_CODES.get(refusal.code, grpc.StatusCode.UNKNOWN),
        message=refusal.message,
        reason=refusal.reason or None,
        field=refusal.field or None,
        retry_after=refusal.retry_after.seconds if refusal.HasField("retry_after") else None,
    )


async def click_status(incoming: Incoming) -> Response:
    message: Any = await incoming.message()
    if not message.key:
        raise errors.invalid_field("the key query parameter is required", "key")
    reply = await incoming.gateway.mining.GetClickStatus(message)
    status = STATE_HTTP.get(reply.state, 404)
    name = STATE_NAMES.get(reply.state, "unknown")
    if status >= 400:
        detail = (
            f"the click failed ({reply.error_code}); its taps were not credited"
            if reply.state == pb.CLICK_STATE_FAILED
            else f"the click was refused ({reply.error_code}); send it again later"
        )
        headers = dict(NO_STORE)
        if reply.HasField("retry_at"):
            wait = reply.retry_at.ToMilliseconds() / 1000 - time.time()
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return errors.problem(
            status,
            reply.error_code or name,
            detail,
            headers=headers,
            extensions={"key": reply.key, "clickStatus": name},
        )
    body: dict[str, Any] = {"key": reply.key, "status": name, "acceptedTaps": reply.accepted_taps}
    if reply.HasField("reward"):
        body["reward"] = {
            "currency": reply.reward.currency,
            "units": str(reply.reward.units),
            "amount": reply.reward.amount,
        }
    return JSONResponse(body, status, NO_STORE)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/api/mining/click",
        handler=submit_click,
        request=pb.SubmitClickRequest,
        status=202,
        access=Access.USER,
        server_fields=("user_id", "idempotency_key", "request_id", "trace_parent"),
        idempotency_required=True,
        idempotency_in_service=True,
        response_schema=CLICK_SCHEMA,
        other_statuses={200: "A replay of the key: the first answer, with deduplicated: true"},
        operation_id="submitClick",
        summary="Mine: queue a batch of taps (count, firstTapAt, lastTapAt; count 1 when absent)",
        tag=TAG,
        headers=NO_STORE,
    ),
    Endpoint(
        "GET",
        "/api/mining/click/status",
        handler=click_status,
        request=pb.GetClickStatusRequest,
        access=Access.USER,
        server_fields=("user_id",),
        response_schema=CLICK_STATUS_SCHEMA,
        other_statuses={202: "Still queued"},
        operation_id="getClickStatus",
        summary="Where one of the caller's clicks is: 200 done, 202 queued, 409 failed, "
        "429 throttled, 404 unknown",
        tag=TAG,
        headers=NO_STORE,
    ),
    rpc(
        "GET",
        "/api/mining/status",
        call=lambda g, m: g.mining.GetMiningStatus(m),
        request=pb.GetMiningStatusRequest,
        response=pb.GetMiningStatusResponse,
        access=Access.USER,
        server_fields=("user_id",),
        operation_id="getMiningStatus",
        summary="The caller's totals, today's taps and energy now",
        tag=TAG,
        headers=STATUS_CACHE,
    ),
)
