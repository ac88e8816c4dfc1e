"""``/api/boosts``: boosts bought with mined coins (the mining service sells them).

``GET /api/boosts`` lists the catalogue as the caller has it: each boost's
level, its effect now and the price of the next level (``nextPrice``, absent
at the maximum level).

``POST /api/boosts/{boostId}/purchase`` needs an ``Idempotency-Key``; the
mining service deduplicates on it itself (the purchase document's id), so
the gateway keeps no record. The body ``{"level": n}`` is optional: the
level the caller means to buy, refused (412 ``boost_level_changed``) when
it is not the next one. The answers:

- 200 the purchase (``level``, ``price``, ``debitEntryId``, ``balance``, the
  boost after it); ``X-Idempotency: MISS``, or ``HIT`` with
  ``"duplicate": true`` for a replay of the key (one debit, whatever the retries).
- 412 ``insufficient_funds`` (nothing debited, nothing bought; a replay of the
  key answers the same), ``boost_max_level``, ``boost_level_changed``.
- 404 ``boost_not_found``; 409 ``boost_purchase_in_flight`` (another request is
  buying that level) with ``Retry-After``; 422 ``idempotency_key_reused``.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from gateway import protojson
from gateway.routing import Access, Endpoint, Incoming, rpc
from minequest.mining.v1 import mining_pb2 as pb

TAG = "boosts"
PRIVATE = {"Cache-Control": "private, no-cache"}
NO_STORE = {"Cache-Control": "no-store"}


async def purchase(incoming: Incoming) -> Response:
    message: Any = await incoming.message()
    reply = await incoming.gateway.mining.PurchaseBoost(message)
    hit = "HIT" if reply.duplicate else "MISS"
    return JSONResponse(protojson.to_dict(reply), 200, {**NO_STORE, "X-Idempotency": hit})


ENDPOINTS: tuple[Endpoint, ...] = (
    rpc(
        "GET",
        "/api/boosts",
        call=lambda g, m: g.mining.ListBoosts(m),
        request=pb.ListBoostsRequest,
        response=pb.ListBoostsResponse,
        access=Access.USER,
        server_fields=("user_id",),
        operation_id="listBoosts",
        summary="The boosts: the caller's level, its effect and the next level's price",
        tag=TAG,
        headers=PRIVATE,
    ),
    Endpoint(
        "POST",
        "/api/boosts/{boostId}/purchase",
        handler=purchase,
        request=pb.PurchaseBoostRequest,
        response=pb.PurchaseBoostResponse,
        access=Access.USER,
        server_fields=("user_id", "idempotency_key"),
        idempotency_required=True,
        idempotency_in_service=True,
        operation_id="purchaseBoost",
        summary="Buy the next level of a boost with mined coins (debit and level together)",
        tag=TAG,
        headers=NO_STORE,
    ),
)
