"""Service instances for the tests, built one way, and waiting for what an instance does
in the background (changes feeds, index builds).

Every instance is the real app (service.http.app.create_app) on a real port, with
Settings built from `couch_url` and the settings a test names: what differs between two
instances is visible where the test asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from faultproxy import FaultProxy

from service.config import Settings
from service.http.app import create_app

# A generous deadline for something an instance does in the background (a feed needs
# milliseconds): waiting longer means it is not going to happen. Not a speed check.
PROMPTLY = 30.0


async def until(check: Callable[[], Awaitable[bool]], what: str, limit: float = PROMPTLY) -> None:
    """Polls `check` until it is true; fails, naming `what`, past `limit` seconds."""
    deadline = time.monotonic() + limit
    while not await check():
        assert time.monotonic() < deadline, f"waited {limit}s for {what}"
        await asyncio.sleep(0.02)


async def now(value: bool) -> bool:
    return value


async def instance_for(couch_url: str, **settings: Any) -> TestClient:
    """A started service instance of its own on `couch_url`, with these settings."""
    # Rate limits off unless asked for, as every test instance (tests/conftest.py). The
    # instance roster beats faster than by default, so that instances coming and going
    # are in step within a tenth of a second (numbers/instances.py).
    settings = {"rate_limit_cost": 0, "instance_beat_seconds": 0.1, **settings}
    client = TestClient(TestServer(create_app(Settings(couch_url=couch_url, **settings))))
    await client.start_server()
    return client


@contextlib.asynccontextmanager
async def instance(couch_url: str, **settings: Any) -> AsyncIterator[TestClient]:
    """`instance_for`, closed when the block ends."""
    client = await instance_for(couch_url, **settings)
    try:
        yield client
    finally:
        await client.close()


async def proxied_instance(proxy: FaultProxy, **settings: Any) -> TestClient:
    return await instance_for(proxy.url, **settings)
