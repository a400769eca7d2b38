"""Runs the app on its TCP port until SIGTERM/SIGINT, then shuts down in two steps.

aiohttp's own graceful shutdown stops reading from every open connection at once, so a
client still sending its body when SIGTERM arrives can never finish and is cut when the
grace period ends (seen with aiohttp 3.x). Here the listening socket closes first, the
requests already under way get `CONNECTIVITY_SHUTDOWN_GRACE` seconds to finish, uploads
included, and only then does aiohttp close whatever is left.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

# Time the last responses get to be written once their handlers returned.
RESPONSE_WRITE_TIME = 1.0


class InFlight:
    """How many requests are being handled, and whether the service is draining."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        self.count += 1
        self._idle.clear()

    def finished(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


IN_FLIGHT = web.AppKey("in_flight", InFlight)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def track_in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
    tracker = request.app[IN_FLIGHT]
    tracker.started()
    try:
        response = await handler(request)
        if tracker.draining:
            # No keep-alive while shutting down: the client reconnects elsewhere.
            response.force_close()
        return response
    finally:
        tracker.finished()


async def serve_until_stopped(app: web.Application, host: str, port: int, grace: float) -> bool:
    """Serves until SIGTERM/SIGINT; False when the port could not be opened."""
    tracker = app[IN_FLIGHT]
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=RESPONSE_WRITE_TIME
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen", extra={"host": host, "port": port, "reason": str(exc)})
            return False
        log.info("serving", extra={"url": f"http://{host}:{port}"})
        await _wait_for_stop_signal()
        log.info("shutting down", extra={"in_flight": tracker.count, "grace_seconds": grace})
        tracker.draining = True
        await site.stop()
        if not await tracker.wait_idle(grace):
            log.warning(
                "grace period over; closing the requests still in flight",
                extra={"in_flight": tracker.count},
            )
    finally:
        await runner.cleanup()
    return True


async def _wait_for_stop_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
