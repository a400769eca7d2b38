"""CouchDB's background view indexing, which a write sets going after it is answered.

Apache CouchDB's indexer brings every design document of a database up to date after
each write: with KAZOO's and our design docs in each account database, that costs it
more CPU than the write itself (README, Performance). A side that writes fast leaves
that work to whatever runs next, which then looks slow. So each run starts once the
indexers are idle, and the indexing its own writes set going is timed after it: a
run's `sustained` rate counts both, its plain rate only the answers.

The embedded server builds views only when they are queried: nothing to wait for.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from .workloads import Client

POLL_SECONDS = 0.05
# Between two databases' index updates the list can be empty for a moment.
QUIET_POLLS = 3
LIMIT_SECONDS = 300.0


def indexers_idle(client: Client) -> Callable[[], Awaitable[float]]:
    """Waits until no view indexer runs; returns the seconds it waited."""

    async def settle() -> float:
        started = time.perf_counter()
        indexed = False
        idle_since = started
        quiet = 0
        while quiet < QUIET_POLLS and time.perf_counter() - started < LIMIT_SECONDS:
            polled = time.perf_counter()
            tasks = json.loads(await client.couch("GET", f"{client.couch_base}/_active_tasks", 200))
            if any(task.get("type") == "indexer" for task in tasks):
                indexed, quiet = True, 0
            else:
                if quiet == 0:
                    idle_since = polled
                quiet += 1
            await asyncio.sleep(POLL_SECONDS)
        return idle_since - started if indexed else 0.0

    return settle
