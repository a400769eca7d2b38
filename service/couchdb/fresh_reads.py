"""One CouchDB read shared by every caller that asks while it is due.

A check must see every write acknowledged before it began (docs/kazoo-compatibility.md
§11.3), so it cannot reuse a read already under way: that read may have been answered
before the write it must see. It can share the next one, though. Each caller gets a read
that starts after it asked; callers that come while one read runs all wait for the same
following read. Under load that is one request per round trip, whatever the concurrency.

A caller may name an earlier moment instead, the one its request arrived at: any read
begun since then already sees every write acknowledged before the request, so a read
started then (one the request itself started ahead of its checks, `read_ahead` in
numbers/did_guard.py) or the last one finished since will do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FreshReads(Generic[T]):
    """`fresh()`: the result of a call of `read` that started after `fresh()` was called
    (or at `not_before` or later)."""

    def __init__(self, read: Callable[[], Awaitable[T]], name: str) -> None:
        self._read = read
        self._name = name
        self._current: asyncio.Task[T] | None = None
        self._current_started = 0.0
        self._following: asyncio.Future[T] | None = None
        # (when it started, its result) of the last read that succeeded.
        self._last: tuple[float, T] | None = None

    def fresh(self, not_before: float | None = None) -> asyncio.Future[T]:
        """Await it shielded: a caller that goes away must not cancel a read others share.

        `not_before` (time.monotonic): a read begun then or later is fresh enough."""
        if not_before is not None:
            if self._last is not None and self._last[0] >= not_before:
                answered: asyncio.Future[T] = asyncio.get_running_loop().create_future()
                answered.set_result(self._last[1])
                return answered
            if self._current is not None and self._current_started >= not_before:
                return self._current
        if self._current is None:
            return self._start()
        if self._following is None:
            self._following = asyncio.get_running_loop().create_future()
        return self._following

    def read_ahead(self) -> None:
        """Starts a read for callers to come (`fresh` with `not_before` at or before
        now): none waits for it yet, so its failure is theirs to see, not asyncio's."""
        self.fresh().add_done_callback(_retrieved)

    def under_way(self) -> asyncio.Future[T] | None:
        """The read running now, if any (wait for it without cancelling it: shielded, or
        through `asyncio.wait`)."""
        return self._current

    def cancel(self) -> None:
        if self._current is not None:
            self._current.cancel()

    def _start(self) -> asyncio.Task[T]:
        started = time.monotonic()
        task = asyncio.create_task(self._run(), name=self._name)
        self._current, self._current_started = task, started
        task.add_done_callback(lambda finished: self._done(finished, started))
        return task

    async def _run(self) -> T:
        return await self._read()

    def _done(self, done: asyncio.Task[T], started: float) -> None:
        self._current = None
        if not done.cancelled() and done.exception() is None:
            self._last = (started, done.result())
        following, self._following = self._following, None
        if following is None:
            if not done.cancelled():
                done.exception()  # retrieved: every caller that wanted it has it
            return
        if done.cancelled():
            following.cancel()
            return
        self._start().add_done_callback(lambda finished: _relay(finished, following))


def _retrieved(read: asyncio.Future[T]) -> None:
    if not read.cancelled():
        read.exception()


def _relay(finished: asyncio.Task[T], to: asyncio.Future[T]) -> None:
    if to.done():
        return
    if finished.cancelled():
        to.cancel()
    elif (error := finished.exception()) is not None:
        to.set_exception(error)
    else:
        to.set_result(finished.result())
