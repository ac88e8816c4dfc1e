"""gRPC interceptors: request id, caller authorisation, metrics and error
mapping (server), and request id, end-user principal, deadlines and metrics
(client)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

import grpc
from grpc.aio import ServicerContext

from runtime import context
from runtime.access import ADMIN_ROLE, GATEWAY, Rule, is_open, rule_for
from runtime.errors import (
    DomainError,
    PermissionDenied,
    Unavailable,
    status_code_of,
    to_grpc_status,
)
from runtime.log import Throttle
from runtime.metrics import (
    GRPC_CLIENT_HANDLED,
    GRPC_CLIENT_SECONDS,
    GRPC_SERVER_DENIED,
    GRPC_SERVER_HANDLED,
    GRPC_SERVER_SECONDS,
    split_method,
)
from runtime.stores import STORE_OUTAGES
from runtime.tls import peer_identity

log = logging.getLogger(__name__)

#: One outage line per method every 5 s, however many calls fail.
_OUTAGE_LOG = Throttle(5.0)
#: One refusal line per (caller, method, reason) every 5 s.
_DENIED_LOG = Throttle(5.0)

#: Full service name -> method -> who may call it (``runtime.access.ACCESS``).
AccessTable = Mapping[str, Mapping[str, Rule]]


Context = ServicerContext[Any, Any]
Behavior = Callable[[Any, Context], Awaitable[Any]]


def _metadata_value(metadata: Any, key: str) -> str | None:
    for item_key, value in metadata or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode()
    return None


def _code_of(ctx: Context) -> grpc.StatusCode:
    code = ctx.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Binds the request id, authorises the caller, counts and times calls,
    maps domain errors to status.

    With ``access`` (servers with mutual TLS), each call's verified peer must
    be allowed by the method's rule (see :mod:`runtime.access`) or it is
    refused PERMISSION_DENIED before the handler runs. Without (plaintext:
    nobody has an identity), every caller may call every method.

    Unexpected exceptions are logged with their stack and answered INTERNAL
    with a generic message: a client never sees a stack trace.
    """

    def __init__(self, access: AccessTable | None = None) -> None:
        self._access = access
        #: method -> (the service's handler, our wrapper of it), built once per
        #: method rather than per call: this runs on every RPC of the hot path.
        self._wrapped: dict[str, tuple[Any, grpc.RpcMethodHandler[Any, Any] | None]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        full_method = handler_call_details.method
        cached = self._wrapped.get(full_method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        service, method = split_method(full_method)
        wrapped: grpc.RpcMethodHandler[Any, Any] | None
        if is_open(service):
            wrapped = handler  # health and reflection: any verified peer, no business metrics
        elif handler.unary_unary is None:
            # Only unary methods are authorised below: refuse (UNIMPLEMENTED) a
            # streaming one when callers have identities rather than let it through.
            wrapped = handler if self._access is None else None
            if wrapped is None:
                log.error("streaming method %s has no authorisation: refused", full_method)
        else:
            rule = None if self._access is None else rule_for(self._access, service, method)
            wrapped = _wrap(handler, service, method, rule)
        self._wrapped[full_method] = (handler, wrapped)
        return wrapped


def _wrap(
    handler: grpc.RpcMethodHandler[Any, Any], service: str, method: str, rule: Rule | None
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with the caller authorised by ``rule`` (None: everyone), the
    request id and principal bound, errors mapped, and the call counted."""
    inner: Behavior = handler.unary_unary  # type: ignore[assignment]
    seconds = GRPC_SERVER_SECONDS.labels(service, method)
    handled: dict[grpc.StatusCode, Any] = {}

    async def behavior(request: Any, ctx: Context) -> Any:
        metadata = ctx.invocation_metadata()
        incoming_id = _metadata_value(metadata, context.REQUEST_ID_HEADER)
        request_id = incoming_id if context.valid_request_id(incoming_id) else None
        token = context.request_id.set(request_id or context.new_request_id())
        bound: list[tuple[Any, Any]] = []
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            caller, user, role = _authorise(rule, (service, method), request, ctx, metadata)
            for var, value in (
                (context.caller, caller),
                (context.user_id, user),
                (context.role, role),
            ):
                bound.append((var, var.set(value)))
            return await inner(request, ctx)
        except DomainError as error:
            status = to_grpc_status(error)
            code = status_code_of(error)
            await ctx.abort(status.code, status.details, status.trailing_metadata)
        except grpc.aio.AbortError:  # the handler called ctx.abort itself
            code = _code_of(ctx)
            raise
        except STORE_OUTAGES as error:
            held = _OUTAGE_LOG.allow((service, method))
            if held is not None:
                log.warning(
                    "store unavailable in %s/%s: %s",
                    service,
                    method,
                    error,
                    extra={"held": held},
                )
            outage = Unavailable(
                "a data store is unavailable; retry shortly",
                reason="store_unavailable",
                retry_after=1,
            )
            status = to_grpc_status(outage)
            code = status.code
            await ctx.abort(status.code, status.details, status.trailing_metadata)
        except Exception:
            log.exception("unhandled error in %s/%s", service, method)
            code = grpc.StatusCode.INTERNAL
            await ctx.abort(grpc.StatusCode.INTERNAL, "internal error")
        finally:
            seconds.observe(time.perf_counter() - started)
            counter = handled.get(code)
            if counter is None:
                counter = handled[code] = GRPC_SERVER_HANDLED.labels(service, method, code.name)
            counter.inc()
            for var, var_token in reversed(bound):
                var.reset(var_token)
            context.request_id.reset(token)

    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _authorise(
    rule: Rule | None, where: tuple[str, str], request: Any, ctx: Context, metadata: Any
) -> tuple[str | None, str | None, str | None]:
    """``(caller, user_id, role)`` of a call ``rule`` allows; PermissionDenied otherwise.

    Only the gateway authenticates end users, so only its assertion of one is
    believed; without a rule (plaintext) there is nobody to check.
    """
    if rule is None:
        return (
            None,
            _metadata_value(metadata, context.USER_ID_HEADER),
            _metadata_value(metadata, context.ROLE_HEADER),
        )
    caller = peer_identity(ctx.auth_context())
    if caller not in rule.callers:
        _deny(where, caller, "caller_not_allowed", "may not call this method")
    user = role = None
    if caller == GATEWAY:
        user = _metadata_value(metadata, context.USER_ID_HEADER)
        role = _metadata_value(metadata, context.ROLE_HEADER)
    if rule.admin and (role != ADMIN_ROLE or not user):
        _deny(where, caller, "admin_required", "needs an admin user")
    if rule.principal_field is not None and getattr(request, rule.principal_field, None) != user:
        _deny(
            where, caller, "principal_mismatch", f"{rule.principal_field} must be the calling user"
        )
    return caller, user, role


def _deny(where: tuple[str, str], caller: str | None, reason: str, problem: str) -> NoReturn:
    service, method = where
    who = caller or "unidentified"
    GRPC_SERVER_DENIED.labels(service, method, who, reason).inc()
    held = _DENIED_LOG.allow((who, service, method, reason))
    if held is not None:
        log.warning(
            "refused %s/%s to %s: %s",
            service,
            method,
            who,
            reason,
            extra={"caller": who, "reason": reason, "held": held},
        )
    raise PermissionDenied(f"{who} {problem} ({service}/{method})", reason=reason)


#: Context sent along with every call: the request id and the end user (if any).
_FORWARDED = (
    (context.REQUEST_ID_HEADER, context.request_id),
    (context.USER_ID_HEADER, context.user_id),
    (context.ROLE_HEADER, context.role),
)


class ClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Forwards the request id and end user, applies a default deadline,
    counts and times calls."""

    def __init__(self, default_timeout: float) -> None:
        self.default_timeout = default_timeout

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        service, name = split_method(method)
        metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
        for header, var in _FORWARDED:
            value = var.get()
            if value and _metadata_value(metadata, header) is None:
                metadata.add(header, value)
        timeout = client_call_details.timeout
        details = grpc.aio.ClientCallDetails(
            method=client_call_details.method,
            timeout=self.default_timeout if timeout is None else timeout,
            metadata=metadata,
            credentials=client_call_details.credentials,
            wait_for_ready=client_call_details.wait_for_ready,
        )
        started = time.perf_counter()
        code = grpc.StatusCode.UNKNOWN
        try:
            # Hand the call object back rather than its awaited result: a
            # failed RPC then raises in the caller's ``await``, not inside the
            # interceptor chain, so the interceptors before ours (tracing)
            # still see a normal call and close their spans.
            call = await continuation(details, request)
            code = await call.code()
            return call
        except grpc.aio.AioRpcError as error:
            code = error.code()
            raise
        finally:
            _client_seconds(service, name).observe(time.perf_counter() - started)
            _client_handled(service, name, code.name).inc()


@functools.cache
def _client_seconds(service: str, method: str) -> Any:
    """A series looked up once per label set (``labels()`` locks on every call)."""
    return GRPC_CLIENT_SECONDS.labels(service, method)


@functools.cache
def _client_handled(service: str, method: str, code: str) -> Any:
    return GRPC_CLIENT_HANDLED.labels(service, method, code)
