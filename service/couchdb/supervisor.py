"""Keeps the embedded CouchDB running while `serve` runs.

If the node process dies (a crash, the OOM killer, `kill -9`), requests get 503
`datastore_unreachable` meanwhile; the supervisor notices the exit, logs it, and starts
a new server on the same port with the same data folder, so the service recovers without
a restart and the URL in `embedded-couch.json` stays right for `create-account` and
friends. When the server cannot be brought back, or keeps dying, it gives up and the
service stops with a non-zero exit code so that the operator's supervisor (systemd,
Kubernetes) restarts everything, rather than answering 503 forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from service.couchdb.embedded import EmbeddedCouch, EmbeddedCouchError, EmbeddedOptions

log = logging.getLogger(__name__)

# Pauses before each attempt to start the server again. Short on purpose: what outlasts
# them (port taken, data folder unusable) is for the operator's supervisor to handle,
# which restarts the whole service once `serve` exits non-zero.
RESTART_DELAYS: tuple[float, ...] = (0.1, 0.5, 1.5)
# More deaths than this within CRASH_WINDOW seconds is a crash loop: give up.
MAX_CRASHES = 5
CRASH_WINDOW = 60.0


class EmbeddedSupervisor:
    def __init__(
        self,
        server: EmbeddedCouch,
        options: EmbeddedOptions,
        on_give_up: Callable[[], None],
        *,
        restart_delays: Sequence[float] = RESTART_DELAYS,
    ) -> None:
        self.server = server
        # The same port as the first server, whatever port 0 picked for it.
        self._options = dataclasses.replace(options, port=urlsplit(server.url).port or 0)
        self._on_give_up = on_give_up
        self._restart_delays = tuple(restart_delays)
        self._crashes: deque[float] = deque(maxlen=MAX_CRASHES + 1)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0
        self.gave_up = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="embedded-couch-supervisor")

    async def stop(self) -> None:
        """Stops watching, then stops the server (a planned exit is not a crash)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.server.stop()

    async def _watch(self) -> None:
        while not self._stopping:
            code = await self.server.wait_exit()
            if self._stopping:
                return
            log.error(
                "embedded couchdb exited unexpectedly",
                extra={"exit_code": code, "couch_port": self._options.port},
            )
            await self.server.stop()  # collects its log readers
            if self._crash_loop():
                self._give_up("it keeps dying")
                return
            restarted = await self._restart()
            if restarted is None:
                self._give_up("it does not start again")
                return
            self.server = restarted
            self.restarts += 1
            log.warning(
                "embedded couchdb restarted",
                extra={"couch_port": self._options.port, "restarts": self.restarts},
            )

    def _crash_loop(self) -> bool:
        now = time.monotonic()
        self._crashes.append(now)
        recent = [t for t in self._crashes if now - t <= CRASH_WINDOW]
        return len(recent) > MAX_CRASHES

    async def _restart(self) -> EmbeddedCouch | None:
        for attempt, delay in enumerate(self._restart_delays, start=1):
            await asyncio.sleep(delay)
            server = EmbeddedCouch(self._options)
            try:
                await server.start()
            except asyncio.CancelledError:
                await server.stop()  # the service is stopping while we start it
                raise
            except EmbeddedCouchError as exc:
                log.warning(
                    "embedded couchdb restart failed",
                    extra={"attempt": attempt, "reason": str(exc).splitlines()[0]},
                )
                continue
            return server
        return None

    def _give_up(self, why: str) -> None:
        self.gave_up = True
        log.critical(
            "embedded couchdb cannot be kept running; stopping the service",
            extra={"reason": why, "couch_port": self._options.port},
        )
        self._on_give_up()
