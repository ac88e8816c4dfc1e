"""The declarative route table: one row per operation.

An :class:`Endpoint` says everything about an operation — method, path, who
may call it, the protobuf request and response messages, the success status,
which request fields the server fills — and the same rows build the Starlette
routes (:func:`build_routes`) and the OpenAPI document (:mod:`gateway.openapi`).
Most rows come from :func:`rpc`, which forwards JSON to one gRPC method;
others bring their own handler, which gets its request message, server fields
filled, from :meth:`Incoming.message`. No handler reads a context variable.

Every row runs inside the same layers (:func:`_row_stack`): authentication per
its access (which binds the caller to the log context), request protection
(rate limits and idempotency, :mod:`gateway.protection`), and the handler,
whose exceptions become problem+json.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import errors, protojson
from gateway.auth import Access, Principal, principal_of
from gateway.middleware.auth import AuthMiddleware
from gateway.protection.clientip import TrustedProxies
from gateway.protection.middleware import BODY, KEY, KeyMode, ProtectionMiddleware, guards
from gateway.protection.model import PolicySet
from gateway.protection.tokens import TokenGate
from gateway.state import Gateway, gateway_of
from minequest.common.v1 import common_pb2
from runtime.tracing import current_traceparent

__all__ = [
    "BODY_METHODS",
    "SERVER_VALUES",
    "Access",
    "Endpoint",
    "Handler",
    "Incoming",
    "Protection",
    "build_routes",
    "rpc",
]

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PAGE_SIZE = re.compile(r"[0-9]{1,6}")
#: The largest ``pageSize`` a request may ask (the services answer fewer).
MAX_PAGE_SIZE_PARAMETER = 10_000


@dataclass(frozen=True, slots=True)
class Protection:
    """What guards the routes: rate-limit policies and whom to trust for the client IP."""

    policies: PolicySet = field(default_factory=PolicySet)
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One request as a handler sees it."""

    request: Request
    gateway: Gateway
    principal: Principal | None
    row: Endpoint
    protection: Protection

    @property
    def user(self) -> Principal:
        if self.principal is None:
            raise RuntimeError("this route is public: no principal")
        return self.principal

    @property
    def idempotency_key(self) -> str | None:
        """The request's parsed ``Idempotency-Key`` (request protection read it)."""
        key = self.request.scope.get(KEY)
        return key if isinstance(key, str) else None

    @property
    def request_id(self) -> str:
        return str(self.request.scope.get("state", {}).get("request_id") or "")

    @property
    def client_ip(self) -> str:
        """The client's address (the TCP peer, or what a trusted proxy says)."""
        return self.protection.trusted_proxies.client_ip(self.request.scope)

    async def body(self) -> protojson.RequestBody:
        """The request body, read once (request protection may have read it already)."""
        body = self.request.scope.get(BODY)
        if not isinstance(body, protojson.RequestBody):
            body = self.request.scope[BODY] = protojson.RequestBody(await self.request.body())
        return body

    async def message(self) -> Message:
        """The row's request message: the JSON body (POST/PUT/PATCH) or the query
        string, with the path parameters, the server fields and the fixed values."""
        request_type = self.row.request
        if request_type is None:
            raise RuntimeError(f"{self.row.operation_id} declares no request message")
        request = self.request
        if request.method in BODY_METHODS:
            message = protojson.parse_body(
                await self.body(), request_type, extra=request.path_params
            )
        else:
            message = protojson.parse_query(
                request.query_params, request_type, extra=request.path_params
            )
        for name in self.row.server_fields:
            value = SERVER_VALUES[name](self)
            if isinstance(value, Message):
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)
        for name, value in self.row.fixed.items():
            setattr(message, name, value)
        return message


Handler = Callable[[Incoming], Awaitable[Response]]


def page_request(incoming: Incoming) -> common_pb2.PageRequest:
    """A list's page from ``pageSize`` (0: the service's default) and ``pageToken``."""
    query = incoming.request.query_params
    size = query.get("pageSize", "0").strip() or "0"
    if not _PAGE_SIZE.fullmatch(size) or int(size) > MAX_PAGE_SIZE_PARAMETER:
        raise errors.invalid_field(
            f"pageSize must be a whole number up to {MAX_PAGE_SIZE_PARAMETER}", "pageSize"
        )
    return common_pb2.PageRequest(page_size=int(size), page_token=query.get("pageToken", ""))


def _caller_id(incoming: Incoming) -> str:
    return incoming.principal.user_id if incoming.principal else ""


#: Request fields the gateway fills in, never the client (hidden from the
#: OpenAPI document): the caller from the verified token, the parsed
#: Idempotency-Key, the request id, the client key, the request's trace
#: (W3C traceparent), a list's page.
SERVER_VALUES: Mapping[str, Callable[[Incoming], Any]] = {
    "user_id": _caller_id,
    "admin_id": lambda incoming: incoming.user.user_id,
    "session_id": lambda incoming: incoming.user.session_id,
    "idempotency_key": lambda incoming: incoming.idempotency_key or "",
    "request_id": lambda incoming: incoming.request_id,
    "client_ip": lambda incoming: incoming.client_ip,
    "trace_parent": lambda incoming: current_traceparent(),
    "page": page_request,
}


#: Server fields that only a signed-in caller has.
_NEEDS_CALLER = frozenset({"admin_id", "session_id"})


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
    #: Request fields the gateway fills in (:data:`SERVER_VALUES`; hidden from clients).
    server_fields: tuple[str, ...] = ()
    #: Request fields the row sets to a constant (``decision``; hidden from clients).
    fixed: Mapping[str, Any] = field(default_factory=dict)
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
    #: The answer carries credentials (tokens): never stored by the idempotency
    #: layer (an ``Idempotency-Key`` is ignored), answered ``no-store``.
    issues_credentials: bool = False

    def __post_init__(self) -> None:
        fields = set(self.server_fields)
        if fields - set(SERVER_VALUES):
            unknown = sorted(fields - set(SERVER_VALUES))
            raise ValueError(f"{self.operation_id}: no server value for {unknown}")
        signed_in = self.access in (Access.USER, Access.ADMIN)
        if fields & _NEEDS_CALLER and not signed_in:
            raise ValueError(f"{self.operation_id}: {sorted(fields & _NEEDS_CALLER)} need a caller")
        if "user_id" in fields and self.access is Access.PUBLIC:
            raise ValueError(f"{self.operation_id}: user_id needs a route that reads tokens")
        if self.issues_credentials and self.headers.get("Cache-Control") != "no-store":
            raise ValueError(f"{self.operation_id}: credentials must be answered no-store")

    @property
    def key_mode(self) -> KeyMode:
        return KeyMode.of(
            self.method,
            required=self.idempotency_required,
            in_service=self.idempotency_in_service,
            credentials=self.issues_credentials,
        )

    @property
    def hidden_fields(self) -> tuple[str, ...]:
        """Request fields clients never send (the server's and the fixed ones)."""
        return (*self.server_fields, *self.fixed)


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
    fixed: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    empty_body: bool = False,
    idempotency_required: bool = False,
    issues_credentials: bool = False,
    paged: bool = False,
) -> Endpoint:
    """A row that forwards the JSON request to one gRPC method.

    ``empty_body`` answers no body (for 204 and empty replies). ``paged`` fills
    the request's ``page`` from the ``pageSize``/``pageToken`` query parameters.
    """
    answer_headers = dict(headers or {})

    async def handler(incoming: Incoming) -> Response:
        message: Any = await incoming.message()
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
        server_fields=(*server_fields, "page") if paged else tuple(server_fields),
        fixed=dict(fixed or {}),
        headers=answer_headers,
        idempotency_required=idempotency_required,
        issues_credentials=issues_credentials,
    )


def _row_app(row: Endpoint, protection: Protection) -> ASGIApp:
    """The innermost layer: run the row's handler; any exception becomes problem+json."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            incoming = Incoming(request, gateway_of(request), principal_of(scope), row, protection)
            response = await row.handler(incoming)
        except Exception as error:
            response = errors.response_for(error)
        await response(scope, receive, send)

    return app


def _row_stack(row: Endpoint, protection: Protection, gate: TokenGate) -> ASGIApp:
    """Authentication, then rate limits + idempotency (when the row has any), then the handler."""
    app = _row_app(row, protection)
    policy = protection.policies.for_route(row.method, row.path)
    mode = row.key_mode
    if guards(policy, mode):
        app = ProtectionMiddleware(
            app,
            route=row.path,
            policy=policy,
            mode=mode,
            trusted_proxies=protection.trusted_proxies,
        )
    return AuthMiddleware(app, row.access, gate)


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
    gate = TokenGate(protection.policies.token, protection.trusted_proxies)
    by_path: dict[str, dict[str, Endpoint]] = {}
    for row in endpoints:
        methods = by_path.setdefault(row.path, {})
        if row.method in methods:
            raise ValueError(f"two rows for {row.method} {row.path}")
        methods[row.method] = row
    return [
        Route(
            path,
            _ByMethod(
                {method: _row_stack(row, protection, gate) for method, row in methods.items()}
            ),
            methods=list(methods),
            name=next(iter(methods.values())).operation_id,
        )
        for path, methods in by_path.items()
    ]
