"""Client factories for MongoDB (PyMongo's asyncio API) and Redis (redis.asyncio),
and the two store failures every service tells apart.

Processes create their clients in their lifespan and close them on the way
out; nothing here is a module-global client.

Every lookup of many documents by key goes through :func:`find_in`: it asks
in chunks of :data:`IN_CHUNK` values. SecantusDB (the embedded server) checks
each document it finds against the whole ``$in`` list, one value after the
other, so one query for 1,000 keys that all exist took 3.1 s here and 20
queries of 50 took 0.25 s; a real ``mongod`` does not mind either way.
(``$or`` is worse still there: one of two ``$in`` clauses over 1,000 keys took
over a minute, so no query here uses it on a hot path.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import pymongo.errors
import redis.asyncio as aioredis
import redis.exceptions
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from runtime.store_monitoring import CommandMonitor, PoolMonitor, TimedRedis

#: Store failures that are outages, not bugs: a service answers them
#: UNAVAILABLE (HTTP 503 with Retry-After), a worker waits them out.
STORE_OUTAGES: tuple[type[Exception], ...] = (
    pymongo.errors.ConnectionFailure,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

DUPLICATE_KEY = 11000
#: Values per ``$in`` query of :func:`find_in`.
IN_CHUNK = 50


async def find_in(
    collection: AsyncCollection[Any],
    field: str,
    values: Iterable[Any],
    projection: dict[str, Any] | None = None,
    *,
    where: dict[str, Any] | None = None,
    session: AsyncClientSession | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The documents whose ``field`` is one of ``values`` (and that match
    ``where``), asked for :data:`IN_CHUNK` values at a time."""
    wanted = list(dict.fromkeys(values))
    for start in range(0, len(wanted), IN_CHUNK):
        query = {**(where or {}), field: {"$in": wanted[start : start + IN_CHUNK]}}
        async for doc in collection.find(query, projection, session=session):
            yield doc


def is_duplicate_key(error: BaseException) -> bool:
    """A unique index refused a write (alone, or every refusal of a bulk write)."""
    if isinstance(error, pymongo.errors.DuplicateKeyError):
        return True
    if isinstance(error, pymongo.errors.BulkWriteError):
        write_errors = error.details.get("writeErrors") or []
        return bool(write_errors) and all(e.get("code") == DUPLICATE_KEY for e in write_errors)
    return False


def mongo_client(
    uri: str, *, app_name: str, server_selection_timeout_ms: int = 5000
) -> AsyncMongoClient[dict[str, Any]]:
    """An ``AsyncMongoClient`` with timezone-aware datetimes that reports its
    command timings, spans and pool states (:mod:`runtime.store_monitoring`)."""
    return AsyncMongoClient(
        uri,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=server_selection_timeout_ms,
        event_listeners=[CommandMonitor(), PoolMonitor(app_name)],
    )


def pool_monitor(client: AsyncMongoClient[Any]) -> PoolMonitor | None:
    """The :class:`PoolMonitor` that :func:`mongo_client` registered on ``client``."""
    return next(
        (each for each in client.options.event_listeners if isinstance(each, PoolMonitor)), None
    )


def redis_client(
    url: str, *, socket_timeout: float = 2.0, max_connections: int = 200
) -> aioredis.Redis:
    """A pooled asyncio Redis client that answers ``str`` values and times each
    command (``redis_operation_duration_seconds``)."""
    return TimedRedis.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        max_connections=max_connections,
        health_check_interval=30,
    )
