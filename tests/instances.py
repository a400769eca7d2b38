"""A second service instance that reaches CouchDB through a FaultProxy, and waiting
for what it does in the background (changes feeds, index builds)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from faultproxy import FaultProxy

from service.config import Settings
from service.http.app import create_app

# Seconds a change from elsewhere may take to reach an instance; feeds need milliseconds.
PROMPTLY = 5.0


async def until(check: Callable[[], Awaitable[bool]], what: str, limit: float = PROMPTLY) -> float:
    """Polls `check` until it is true; returns the seconds waited, fails past `limit`."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < limit, f"waited {limit}s for {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def now(value: bool) -> bool:
    return value


async def instance_for(couch_url: str, **settings: Any) -> TestClient:
    """A started service instance of its own on `couch_url`, with these settings."""
    # Rate limits off unless asked for, as every test instance (tests/conftest.py).
    settings = {"rate_limit_cost": 0, **settings}
    client = TestClient(TestServer(create_app(Settings(couch_url=couch_url, **settings))))
    await client.start_server()
    return client


async def proxied_instance(proxy: FaultProxy, **settings: Any) -> TestClient:
    return await instance_for(proxy.url, **settings)
