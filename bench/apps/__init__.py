"""The three servers ``bench.gateway_overhead`` puts side by side.

Each module has a ``create()`` factory for ``uvicorn --factory`` that reads its
settings from the environment (``MQBENCH_*``, and the gateway's own variables
for the gateway). Every variant serves the same protected operation at
:data:`OP_PATH` and an unprotected :data:`COUNT_PATH` that says how many
requests to the operation the server answered, whatever the status (refusals
included), so the runner can divide Redis commands by the requests a server
really handled (not the ones the load generator saw finish).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

OP_PATH = "/bench/op"
COUNT_PATH = "/bench/count"


class Served:
    """How many requests to :data:`OP_PATH` this process answered."""

    count = 0


def counted(app: ASGIApp, path: str = OP_PATH) -> ASGIApp:
    """``app`` inside an outermost layer that counts answered requests to ``path``."""

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        finally:
            if scope["type"] == "http" and scope["path"] == path:
                Served.count += 1

    return counting


#: The three limits every protected variant applies, per second: high enough
#: that nothing is ever refused, so each request pays the full check.
GLOBAL_PER_SECOND = 100_000
USER_PER_SECOND = 10_000
IP_PER_SECOND = 100_000
