"""gRPC interceptors: request id, metrics and error mapping (server and client)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc.aio import ServicerContext

from runtime import context
from runtime.errors import DomainError, Unavailable, status_code_of, to_grpc_status
from runtime.log import Throttle
from runtime.metrics import (
    GRPC_CLIENT_HANDLED,
    GRPC_CLIENT_SECONDS,
    GRPC_SERVER_HANDLED,
    GRPC_SERVER_SECONDS,
    split_method,
)
from runtime.stores import STORE_OUTAGES

log = logging.getLogger(__name__)

#: One outage line per method every 5 s, however many calls fail.
_OUTAGE_LOG = Throttle(5.0)


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
    """Binds the request id, counts and times calls, maps domain errors to status.

    Unexpected exceptions are logged with their stack and answered INTERNAL
    with a generic message: a client never sees a stack trace.
    """

    def __init__(self) -> None:
        #: method -> (the service's handler, our wrapper of it), built once per
        #: method rather than per call: this runs on every RPC of the hot path.
        self._wrapped: dict[str, tuple[Any, grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        full_method = handler_call_details.method
        cached = self._wrapped.get(full_method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        service, method = split_method(full_method)
        if service.startswith("grpc."):
            return handler  # health and reflection: not our business metrics
        wrapped = _wrap(handler, service, method)
        self._wrapped[full_method] = (handler, wrapped)
        return wrapped


def _wrap(
    handler: grpc.RpcMethodHandler[Any, Any], service: str, method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with the request id bound, errors mapped, and the call counted."""
    inner: Behavior = handler.unary_unary  # type: ignore[assignment]
    seconds = GRPC_SERVER_SECONDS.labels(service, method)
    handled: dict[grpc.StatusCode, Any] = {}

    async def behavior(request: Any, ctx: Context) -> Any:
        incoming_id = _metadata_value(ctx.invocation_metadata(), context.REQUEST_ID_HEADER)
        request_id = incoming_id if context.valid_request_id(incoming_id) else None
        token = context.request_id.set(request_id or context.new_request_id())
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
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
            context.request_id.reset(token)

    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class ClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Forwards the request id, applies a default deadline, counts and times calls."""

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
        request_id = context.request_id.get()
        if request_id and _metadata_value(metadata, context.REQUEST_ID_HEADER) is None:
            metadata.add(context.REQUEST_ID_HEADER, request_id)
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
