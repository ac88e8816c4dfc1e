"""The declarative route table: one row per operation.

An :class:`Endpoint` says everything about an operation — method, path, who
may call it, the protobuf request and response messages, the success status —
and the same rows build the Starlette routes (:func:`build_routes`) and the
OpenAPI document (:mod:`gateway.openapi`). Most rows come from :func:`rpc`,
which forwards JSON to one gRPC method; others bring their own handler.

Every row runs inside the same layers (:func:`_row_stack`): authentication per
its access (which binds the caller to the log context), rate limits and
idempotency (:mod:`gateway.middleware.guard`), and the handler, whose
exceptions become problem+json.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import errors, protojson
from gateway.auth import Access, Principal
from gateway.clientip import TrustedProxies
from gateway.middleware.auth import AuthMiddleware, principal_of
from gateway.middleware.guard import GuardMiddleware, guards
from gateway.ratelimit.policy import PolicySet
from gateway.state import Gateway, gateway_of
from minequest.common.v1 import common_pb2

__all__ = [
    "BODY_METHODS",
    "Access",
    "Endpoint",
    "Handler",
    "Incoming",
    "Protection",
    "build_routes",
    "page_request",
    "read_request",
    "rpc",
]

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True, slots=True)
class Incoming:
    """One request as a handler sees it."""

    request: Request
    gateway: Gateway
    principal: Principal | None

    @property
    def user(self) -> Principal:
        if self.principal is None:
            raise RuntimeError("this route is public: no principal")
        return self.principal


Handler = Callable[[Incoming], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One row of the route table."""

    method: str
    path: str
    operation_id: str
    summary: str
    handler: Handler
    tag: str
    access: Access = Access.PUBLIC
    #: The message a JSON body (POST/PUT/PATCH) or the query string (GET) parses into.
    request: type[Message] | None = None
    #: The message answered on success; ``None`` with no body.
    response: type[Message] | None = None
    status: int = 200
    #: Request fields the gateway sets from the verified token (hidden from clients).
    server_fields: tuple[str, ...] = ()
    #: For handlers that answer something other than a message: a JSON Schema.
    response_schema: Mapping[str, Any] | None = None
    media_type: str = protojson.JSON
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Other statuses that answer the same schema (``{503: "a component is down"}``).
    other_statuses: Mapping[int, str] = field(default_factory=dict)
    #: A request without an ``Idempotency-Key`` is refused (400). Any other
    #: POST/PATCH/DELETE that carries one is still deduplicated.
    idempotency_required: bool = False
    #: The service deduplicates on the key itself, atomically with its write
    #: (the click pipeline): the gateway checks and passes the key on but keeps
    #: no record, saving its two Redis round trips' idempotency work.
    idempotency_in_service: bool = False


#: Request fields the gateway fills from the caller's verified token.
PRINCIPAL_FIELDS: Mapping[str, Callable[[Principal], str]] = {
    "user_id": lambda principal: principal.user_id,
    "session_id": lambda principal: principal.session_id,
}


def rpc(
    method: str,
    path: str,
    *,
    call: Callable[[Gateway, Req], Awaitable[Resp]],
    request: type[Req],
    response: type[Resp],
    operation_id: str,
    summary: str,
    tag: str,
    status: int = 200,
    access: Access = Access.PUBLIC,
    server_fields: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    empty_body: bool = False,
    idempotency_required: bool = False,
    paged: bool = False,
) -> Endpoint:
    """A row that forwards the JSON request to one gRPC method.

    ``empty_body`` answers no body (for 204 and empty replies). ``paged`` fills
    the request's ``page`` from the ``pageSize``/``pageToken`` query parameters.
    """
    unknown = set(server_fields) - set(PRINCIPAL_FIELDS)
    if unknown:
        raise ValueError(f"{operation_id}: no principal value for {sorted(unknown)}")
    if server_fields and access is Access.PUBLIC:
        raise ValueError(f"{operation_id}: server fields need an authenticated route")
    answer_headers = dict(headers or {})
    bound = tuple(server_fields)

    async def handler(incoming: Incoming) -> Response:
        message = await read_request(incoming.request, request)
        for name in bound:
            setattr(message, name, PRINCIPAL_FIELDS[name](incoming.user))
        if paged:
            message.page.CopyFrom(page_request(incoming.request))  # type: ignore[attr-defined]
        reply = await call(incoming.gateway, message)
        return protojson.json_response(
            None if empty_body else reply, status=status, headers=answer_headers
        )

    return Endpoint(
        method=method,
        path=path,
        operation_id=operation_id,
        summary=f"{summary} (pageSize, pageToken)" if paged else summary,
        handler=handler,
        tag=tag,
        access=access,
        request=request,
        response=None if empty_body else response,
        status=status,
        server_fields=(*bound, "page") if paged else bound,
        headers=answer_headers,
        idempotency_required=idempotency_required,
    )


def page_request(request: Request) -> common_pb2.PageRequest:
    """A list's page from ``pageSize`` (0: the service's default) and ``pageToken``."""
    query = request.query_params
    size = query.get("pageSize", "0").strip() or "0"
    if not size.isdigit() or int(size) > 10_000:
        raise errors.invalid_field("pageSize must be a whole number", "pageSize")
    return common_pb2.PageRequest(page_size=int(size), page_token=query.get("pageToken", ""))


async def read_request(request: Request, message_type: type[Req]) -> Req:
    """Parse the body (POST/PUT/PATCH) or the query string into ``message_type``."""
    if request.method in BODY_METHODS:
        return protojson.parse_body(await request.body(), message_type, extra=request.path_params)
    return protojson.parse_query(request.query_params, message_type, extra=request.path_params)


@dataclass(frozen=True, slots=True)
class Protection:
    """What guards the routes: rate-limit policies and whom to trust for the client IP."""

    policies: PolicySet = field(default_factory=lambda: PolicySet(()))
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)


def _row_app(row: Endpoint) -> ASGIApp:
    """The innermost layer: run the row's handler; any exception becomes problem+json."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await row.handler(
                Incoming(request, gateway_of(request), principal_of(scope))
            )
        except Exception as error:
            response = errors.response_for(error)
        await response(scope, receive, send)

    return app


def _row_stack(row: Endpoint, protection: Protection) -> ASGIApp:
    """Authentication, then rate limits + idempotency (when the row has any), then the handler."""
    app = _row_app(row)
    policy = protection.policies.for_route(row.method, row.path)
    if guards(row.method, policy, row.idempotency_required):
        app = GuardMiddleware(
            app,
            method=row.method,
            route=row.path,
            policy=policy,
            idempotency_required=row.idempotency_required,
            idempotency_in_service=row.idempotency_in_service,
            trusted_proxies=protection.trusted_proxies,
        )
    return AuthMiddleware(app, row.access)


class _ByMethod:
    """One path's rows, dispatched on the method (HEAD runs the GET row)."""

    def __init__(self, stacks: Mapping[str, ASGIApp]) -> None:
        self.stacks = dict(stacks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        await self.stacks[method](scope, receive, send)


def build_routes(
    endpoints: Iterable[Endpoint], protection: Protection | None = None
) -> list[BaseRoute]:
    """One Starlette route per path, dispatching on the method (405 lists the rest)."""
    protection = protection or Protection()
    by_path: dict[str, dict[str, Endpoint]] = {}
    for row in endpoints:
        methods = by_path.setdefault(row.path, {})
        if row.method in methods:
            raise ValueError(f"two rows for {row.method} {row.path}")
        methods[row.method] = row
    return [
        Route(
            path,
            _ByMethod({method: _row_stack(row, protection) for method, row in methods.items()}),
            methods=list(methods),
            name=next(iter(methods.values())).operation_id,
        )
        for path, methods in by_path.items()
    ]
