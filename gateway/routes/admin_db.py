"""``/api/admin/db/*``: the monitoring guide's database statistics, for MongoDB.

Admin only. The gateway answers them with its own MongoDB client
(``MONGODB_URI``) over the suite's databases (``<SERVICE>_MONGODB_DATABASE``);
without one every route answers 503 ``database_not_configured``. The guide's
PostgreSQL sources map to MongoDB's:

- ``GET slow-queries?limit=10`` (guide: ``pg_stat_statements``):
  ``$currentOp`` (running now), the profiler's ``system.profile`` per
  database (when profiling is on), and ``top`` (time per collection and
  operation since the server started).
- ``GET pool-stats``: the gateway's pool (driver events) and the server's
  ``serverStatus.connections``.
- ``GET size`` (``pg_database_size``): ``dbStats`` per database, and totals.
- ``GET table-sizes``: ``collStats`` per collection.
- ``GET index-usage`` (``pg_stat_user_indexes``): ``$indexStats`` per collection.
- ``POST reset-stats`` (``pg_stat_statements_reset()``): empties each
  database's ``system.profile``.

A part the server cannot answer (a command it lacks, a permission it
withholds) is answered as ``{"supported": false, "error": "..."}`` in that
part's place, never as a failed request; a server that cannot be reached
answers 503. Command documents are shown as their *shape*: every value is
``"?"``, so no user's data (an email in a filter) reaches the answer, just as
``pg_stat_statements`` normalises constants away.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, PyMongoError
from starlette.responses import JSONResponse, Response

from gateway.errors import ApiError, invalid_field
from gateway.routing import Access, Endpoint, Incoming
from runtime.stores import pool_monitor

TAG = "admin"
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
_OPERATIONS = ("queries", "getmore", "insert", "update", "remove", "commands")
Mongo = AsyncMongoClient[dict[str, Any]]


def unsupported(error: BaseException) -> dict[str, Any]:
    """What stands in for a part the server cannot answer."""
    message = getattr(error, "details", None) or {}
    text = message.get("errmsg") if isinstance(message, dict) else None
    return {"supported": False, "error": text or str(error) or type(error).__name__}


async def part(answer: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """One part of an answer: its fields and ``supported: true``, or why not.
    A server that cannot be reached fails the whole request (503)."""
    try:
        return {"supported": True, **await answer()}
    except ConnectionFailure:
        raise
    except PyMongoError as error:
        return unsupported(error)


def shape(value: Any) -> Any:
    """A command document with every value replaced by ``"?"`` (keys kept)."""
    if isinstance(value, dict):
        return {str(key): shape(item) for key, item in value.items() if not key.startswith("$")}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "?"


def plain(value: Any) -> Any:
    """BSON values as JSON: datetimes in ISO 8601, anything unknown as text."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value)


def _limit(incoming: Incoming) -> int:
    text = incoming.request.query_params.get("limit", str(DEFAULT_LIMIT)).strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise invalid_field(f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
    return int(text)


def _mongo(incoming: Incoming) -> tuple[Mongo, tuple[str, ...]]:
    mongo = incoming.gateway.mongo
    if mongo is None:
        raise ApiError(
            503,
            "database_not_configured",
            "the gateway has no MongoDB client: set MONGODB_URI to serve database statistics",
        )
    return mongo, incoming.gateway.settings.service_databases


async def _answer(
    incoming: Incoming, build: Callable[[Mongo, tuple[str, ...]], Awaitable[dict[str, Any]]]
) -> Response:
    mongo, databases = _mongo(incoming)
    try:
        body = await build(mongo, databases)
    except ConnectionFailure as error:
        raise ApiError(
            503,
            "database_unavailable",
            f"MongoDB cannot be reached: {type(error).__name__}",
            headers={"Retry-After": "5"},
        ) from None
    return JSONResponse(
        plain({"databases": list(databases), **body}), headers={"Cache-Control": "no-store"}
    )


# --- slow queries -------------------------------------------------------------


async def _in_progress(mongo: Mongo, databases: tuple[str, ...], limit: int) -> dict[str, Any]:
    pipeline: list[dict[str, Any]] = [
        {"$currentOp": {"allUsers": True, "idleConnections": False}},
        {"$match": {"active": True}},
    ]
    cursor = await mongo.admin.aggregate(pipeline)
    running = []
    for op in await cursor.to_list():
        namespace = str(op.get("ns") or "")
        if namespace.split(".", 1)[0] not in databases:
            continue
        running.append(
            {
                "opid": op.get("opid"),
                "namespace": namespace,
                "op": op.get("op"),
                "microsecsRunning": op.get("microsecs_running", 0),
                "client": op.get("client"),
                "appName": op.get("appName"),
                "command": shape(op.get("command") or {}),
            }
        )
    running.sort(key=lambda op: -int(op["microsecsRunning"] or 0))
    return {"operations": running[:limit]}


async def _profiled(mongo: Mongo, database: str, limit: int) -> dict[str, Any]:
    db = mongo[database]
    level = await db.command("profile", -1)
    entries = (
        await db["system.profile"].find({}).sort("millis", -1).limit(limit).to_list()
        if level.get("was", 0)
        else []
    )
    return {
        "level": level.get("was", 0),
        "slowms": level.get("slowms"),
        "entries": [
            {
                "ts": entry.get("ts"),
                "op": entry.get("op"),
                "namespace": entry.get("ns"),
                "millis": entry.get("millis"),
                "planSummary": entry.get("planSummary"),
                "docsExamined": entry.get("docsExamined"),
                "keysExamined": entry.get("keysExamined"),
                "command": shape(entry.get("command") or {}),
            }
            for entry in entries
        ],
    }


async def _by_collection(mongo: Mongo, databases: tuple[str, ...], limit: int) -> dict[str, Any]:
    totals = (await mongo.admin.command("top")).get("totals", {})
    rows = []
    for namespace, stats in totals.items():
        if not isinstance(stats, dict) or namespace.split(".", 1)[0] not in databases:
            continue
        for operation in _OPERATIONS:
            counted = stats.get(operation) or {}
            count, micros = int(counted.get("count", 0)), int(counted.get("time", 0))
            if count:
                rows.append(
                    {
                        "namespace": namespace,
                        "operation": operation,
                        "count": count,
                        "totalMicros": micros,
                        "meanMicros": round(micros / count, 1),
                    }
                )
    rows.sort(key=lambda row: -row["meanMicros"])
    return {"since": "server start", "operations": rows[:limit]}


async def get_slow_queries(incoming: Incoming) -> Response:
    limit = _limit(incoming)

    async def build(mongo: Mongo, databases: tuple[str, ...]) -> dict[str, Any]:
        profiler = {}
        for database in databases:
            profiler[database] = await part(functools.partial(_profiled, mongo, database, limit))
        return {
            "limit": limit,
            "inProgress": await part(lambda: _in_progress(mongo, databases, limit)),
            "byCollection": await part(lambda: _by_collection(mongo, databases, limit)),
            "profiler": profiler,
        }

    return await _answer(incoming, build)


# --- pool, sizes, indexes -------------------------------------------------------


async def get_pool_stats(incoming: Incoming) -> Response:
    async def build(mongo: Mongo, databases: tuple[str, ...]) -> dict[str, Any]:
        monitor = pool_monitor(mongo)

        async def server() -> dict[str, Any]:
            status = await mongo.admin.command("serverStatus")
            return {"connections": status.get("connections", {})}

        return {
            "gateway": {
                **(monitor.stats() if monitor else {}),
                "maxPoolSize": mongo.options.pool_options.max_pool_size,
                "minPoolSize": mongo.options.pool_options.min_pool_size,
            },
            "server": await part(server),
            "services": "db_connection_pool_size{client,state} on each service's /metrics",
        }

    return await _answer(incoming, build)


_SIZE_FIELDS = ("collections", "objects", "dataSize", "storageSize", "indexes", "indexSize")


async def get_size(incoming: Incoming) -> Response:
    async def build(mongo: Mongo, databases: tuple[str, ...]) -> dict[str, Any]:
        async def stats(database: str) -> dict[str, Any]:
            found = await mongo[database].command("dbStats")
            return {name: found.get(name, 0) for name in (*_SIZE_FIELDS, "totalSize")}

        sizes = {}
        for database in databases:
            sizes[database] = await part(functools.partial(stats, database))
        answered = [each for each in sizes.values() if each["supported"]]
        total = {
            name: sum(int(each.get(name) or 0) for each in answered)
            for name in (*_SIZE_FIELDS, "totalSize")
        }
        return {"sizes": sizes, "total": total, "unit": "bytes"}

    return await _answer(incoming, build)


async def _collections(mongo: Mongo, database: str) -> list[str]:
    names = await mongo[database].list_collection_names()
    return sorted(name for name in names if not name.startswith("system."))


async def get_table_sizes(incoming: Incoming) -> Response:
    async def build(mongo: Mongo, databases: tuple[str, ...]) -> dict[str, Any]:
        rows = []
        for database in databases:
            for collection in await _collections(mongo, database):

                async def stats(database: str = database, name: str = collection) -> dict[str, Any]:
                    found = await mongo[database].command("collStats", name)
                    return {
                        key: found.get(key)
                        for key in ("count", "size", "storageSize", "totalIndexSize", "indexSizes")
                    }

                rows.append({"database": database, "collection": collection, **await part(stats)})
        rows.sort(key=lambda row: -int(row.get("size") or 0))
        return {"collections": rows, "unit": "bytes"}

    return await _answer(incoming, build)


async def get_index_usage(incoming: Incoming) -> Response:
    async def build(mongo: Mongo, databases: tuple[str, ...]) -> dict[str, Any]:
        rows = []
        for database in databases:
            for collection in await _collections(mongo, database):

                async def usage(database: str = database, name: str = collection) -> dict[str, Any]:
                    cursor = await mongo[database][name].aggregate([{"$indexStats": {}}])
                    return {
                        "indexes": [
                            {
                                "name": each.get("name"),
                                "key": each.get("key"),
                                "ops": int((each.get("accesses") or {}).get("ops", 0)),
                                "since": (each.get("accesses") or {}).get("since"),
                            }
                            for each in await cursor.to_list()
                        ]
                    }

                rows.append({"database": database, "collection": collection, **await part(usage)})
        unused = [
            f"{row['database']}.{row['collection']}.{index['name']}"
            for row in rows
            for index in row.get("indexes", [])
            if index["ops"] == 0 and index["name"] != "_id_"
        ]
        return {"collections": rows, "unused": unused, "since": "server start"}

    return await _answer(incoming, build)


# --- reset ---------------------------------------------------------------------


async def _clear_profile(mongo: Mongo, database: str) -> dict[str, Any]:
    db = mongo[database]
    level = await db.command("profile", -1)
    was, slowms = level.get("was", 0), level.get("slowms", 100)
    if was:
        await db.command("profile", 0)
    await db.drop_collection("system.profile")
    if was:
        await db.command("profile", was, slowms=slowms)
    return {"cleared": True, "level": was}


async def post_reset_stats(incoming: Incoming) -> Response:
    async def build(mongo: Mongo, databases: tuple[str, ...]) -> dict[str, Any]:
        profiler = {}
        for database in databases:
            profiler[database] = await part(functools.partial(_clear_profile, mongo, database))
        since_start = "MongoDB counts this since the server started; only a restart resets it"
        return {
            "profiler": profiler,
            "top": {"supported": False, "error": since_start},
            "indexUsage": {"supported": False, "error": since_start},
        }

    return await _answer(incoming, build)


_PART = {
    "type": "object",
    "required": ["supported"],
    "description": 'A part of the answer; {"supported": false, "error": ...} where the '
    "server cannot answer it.",
    "properties": {"supported": {"type": "boolean"}, "error": {"type": "string"}},
    "additionalProperties": True,
}


def _schema(**properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["databases"],
        "properties": {"databases": {"type": "array", "items": {"type": "string"}}, **properties},
    }


def _row(
    method: str,
    path: str,
    handler: Any,
    operation_id: str,
    *,
    summary: str,
    schema: dict[str, Any],
) -> Endpoint:
    return Endpoint(
        method,
        path,
        handler=handler,
        operation_id=operation_id,
        summary=summary,
        tag=TAG,
        access=Access.ADMIN,
        response_schema=schema,
        headers={"Cache-Control": "no-store"},
        # 503 database_not_configured / database_unavailable is problem+json,
        # documented from gateway/refusals.py (other_statuses answer this schema).
    )


_PARTS = {"type": "object", "additionalProperties": _PART}
ENDPOINTS: tuple[Endpoint, ...] = (
    _row(
        "GET",
        "/api/admin/db/slow-queries",
        get_slow_queries,
        "adminDbSlowQueries",
        summary="Slowest operations (limit 1-100, default 10): running, profiled, per collection",
        schema=_schema(
            limit={"type": "integer"}, inProgress=_PART, byCollection=_PART, profiler=_PARTS
        ),
    ),
    _row(
        "GET",
        "/api/admin/db/pool-stats",
        get_pool_stats,
        "adminDbPoolStats",
        summary="Connection pools: the gateway's (active, idle, waiting), the server's connections",
        schema=_schema(gateway={"type": "object"}, server=_PART, services={"type": "string"}),
    ),
    _row(
        "GET",
        "/api/admin/db/size",
        get_size,
        "adminDbSize",
        summary="Size of each database of the suite (dbStats), in bytes, and the totals",
        schema=_schema(sizes=_PARTS, total={"type": "object"}, unit={"type": "string"}),
    ),
    _row(
        "GET",
        "/api/admin/db/table-sizes",
        get_table_sizes,
        "adminDbTableSizes",
        summary="Size of each collection (collStats), largest first, in bytes",
        schema=_schema(collections={"type": "array", "items": _PART}, unit={"type": "string"}),
    ),
    _row(
        "GET",
        "/api/admin/db/index-usage",
        get_index_usage,
        "adminDbIndexUsage",
        summary="Uses of each index since the server started ($indexStats) and the unused ones",
        schema=_schema(
            collections={"type": "array", "items": _PART},
            unused={"type": "array", "items": {"type": "string"}},
            since={"type": "string"},
        ),
    ),
    _row(
        "POST",
        "/api/admin/db/reset-stats",
        post_reset_stats,
        "adminDbResetStats",
        summary="Empty the profiler's log (what MongoDB can reset; the rest says why not)",
        schema=_schema(profiler=_PARTS, top=_PART, indexUsage=_PART),
    ),
)
