"""One CouchDB read shared by every caller that asks while it is due.

A check must see every write acknowledged before it began (docs/kazoo-compatibility.md
§11.3), so it cannot reuse a read already under way: that read may have been answered
before the write it must see. It can share the next one, though. Each caller gets a read
that starts after it asked; callers that come while one read runs all wait for the same
following read. Under load that is one request per round trip, whatever the concurrency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FreshReads(Generic[T]):
    """`fresh()`: the result of a call of `read` that started after `fresh()` was called."""

    def __init__(self, read: Callable[[], Awaitable[T]], name: str) -> None:
        self._read = read
        self._name = name
        self._current: asyncio.Task[T] | None = None
        self._following: asyncio.Future[T] | None = None

    def fresh(self) -> asyncio.Future[T]:
        """Await it shielded: a caller that goes away must not cancel a read others share."""
        if self._current is None:
            return self._start()
        if self._following is None:
            self._following = asyncio.get_running_loop().create_future()
        return self._following

    def cancel(self) -> None:
        if self._current is not None:
            self._current.cancel()

    def _start(self) -> asyncio.Task[T]:
        task = asyncio.create_task(self._run(), name=self._name)
        self._current = task
        task.add_done_callback(self._done)
        return task

    async def _run(self) -> T:
        return await self._read()

    def _done(self, done: asyncio.Task[T]) -> None:
        self._current = None
        following, self._following = self._following, None
        if following is None:
            if not done.cancelled():
                done.exception()  # retrieved: every caller that wanted it has it
            return
        if done.cancelled():
            following.cancel()
            return
        self._start().add_done_callback(lambda finished: _relay(finished, following))


def _relay(finished: asyncio.Task[T], to: asyncio.Future[T]) -> None:
    if to.done():
        return
    if finished.cancelled():
        to.cancel()
    elif (error := finished.exception()) is not None:
        to.set_exception(error)
    else:
        to.set_result(finished.result())
