"""What the lifespan hands to every request: the clients and shared objects.

The app's lifespan builds one :class:`Gateway`, yields it as the lifespan
state under ``"gateway"``, and closes its clients on the way out. Handlers
reach it with :func:`gateway_of`; nothing here is a module-global client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import grpc
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient
from starlette.requests import HTTPConnection
from starlette.types import Scope

from gateway.auth import TokenVerifier
from gateway.click_batcher import ClickBatcher
from gateway.protection.store import Guard
from gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from minequest.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub
    from minequest.mining.v1.mining_pb2_grpc import MiningServiceAsyncStub
    from minequest.quests.v1.quests_pb2_grpc import QuestsServiceAsyncStub
    from minequest.wallet.v1.wallet_pb2_grpc import WalletServiceAsyncStub


@dataclass(frozen=True, slots=True)
class Backend:
    """A gRPC service the gateway calls, checked by ``/api/health``."""

    name: str
    service: str
    channel: grpc.aio.Channel


@dataclass(slots=True)
class Gateway:
    settings: GatewaySettings
    auth: AuthServiceAsyncStub
    wallet: WalletServiceAsyncStub
    quests: QuestsServiceAsyncStub
    mining: MiningServiceAsyncStub
    #: Click requests' way to the mining service (coalesced into batches).
    clicks: ClickBatcher
    backends: tuple[Backend, ...]
    verifier: TokenVerifier
    guard: Guard
    redis: aioredis.Redis | None
    mongo: AsyncMongoClient[dict[str, Any]] | None
    openapi: dict[str, Any]
    version: str
    started_at: float


class State(TypedDict):
    gateway: Gateway


def gateway_of(connection: HTTPConnection) -> Gateway:
    """The lifespan's :class:`Gateway` for this request."""
    return gateway_of_scope(connection.scope)


def gateway_of_scope(scope: Scope) -> Gateway:
    """The lifespan's :class:`Gateway`, from a pure ASGI middleware."""
    gateway = scope.get("state", {}).get("gateway")
    if not isinstance(gateway, Gateway):
        raise RuntimeError("the gateway lifespan has not run")
    return gateway
