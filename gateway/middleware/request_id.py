"""Every request's id: the caller's ``X-Request-ID`` when valid, else a new one.

:class:`gateway.middleware.edge.EdgeMiddleware` binds it to
:data:`runtime.context.request_id` (logs and outgoing gRPC metadata pick it
up), keeps it in the request state for handlers that run after the context
is gone, and echoes it in the response's ``X-Request-ID`` header.
"""

from __future__ import annotations

from starlette.types import Scope

from runtime import context

__all__ = ["RAW_HEADER", "request_id_of"]

#: ``X-Request-ID`` as ASGI carries it (lower case bytes): the name the
#: services read from gRPC metadata too.
RAW_HEADER = context.REQUEST_ID_HEADER.encode("latin-1")


def request_id_of(scope: Scope) -> str:
    """The caller's id when it sent a valid one, otherwise a new one."""
    for name, value in scope["headers"]:
        if name == RAW_HEADER:
            given: str = value.decode("latin-1")
            if context.valid_request_id(given):
                return given
            break
    return context.new_request_id()
