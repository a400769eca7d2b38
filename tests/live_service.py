"""The service on a real TCP port, in a thread with its own event loop.

Tools that speak blocking HTTP (schemathesis uses `requests`) cannot call a server
running in the test's own event loop: it would never get to answer. This one runs
beside it, on the suite's CouchDB.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web

from service.config import Settings
from service.http.app import create_app

T = TypeVar("T")

START_TIMEOUT = 30.0


class LiveService:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def start(self) -> str:
        self._thread.start()
        self.url = self.run(self._start())
        return self.url

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Runs a coroutine in the service's loop (e.g. to prepare data) and waits for it."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=START_TIMEOUT)

    def stop(self) -> None:
        if self._runner is not None:
            self.run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=START_TIMEOUT)
        self._loop.close()

    async def _start(self) -> str:
        self._runner = web.AppRunner(create_app(self._settings), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"
