"""Client factories for MongoDB (PyMongo's asyncio API) and Redis (redis.asyncio).

Processes create their clients in their lifespan and close them on the way
out; nothing here is a module-global client.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient


def mongo_client(
    uri: str, *, app_name: str, server_selection_timeout_ms: int = 5000
) -> AsyncMongoClient[dict[str, Any]]:
    """An ``AsyncMongoClient`` with timezone-aware datetimes."""
    return AsyncMongoClient(
        uri,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=server_selection_timeout_ms,
    )


def redis_client(
    url: str, *, socket_timeout: float = 2.0, max_connections: int = 200
) -> aioredis.Redis:
    """A pooled asyncio Redis client that answers ``str`` values."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        max_connections=max_connections,
        health_check_interval=30,
    )
