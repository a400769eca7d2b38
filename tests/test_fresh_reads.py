"""Shared fresh reads (service/couchdb/fresh_reads.py): a check gets a read that began
after it asked, or after the moment it names (when its request arrived)."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from service.couchdb.fresh_reads import FreshReads


class Reads:
    """A read the test finishes by hand: each call waits for its own go."""

    def __init__(self) -> None:
        self.started: list[float] = []
        self.go: list[asyncio.Event] = []
        self.fail = False

    async def read(self) -> int:
        self.started.append(time.monotonic())
        gate = asyncio.Event()
        self.go.append(gate)
        await gate.wait()
        if self.fail:
            raise RuntimeError("the read failed")
        return len(self.started)

    async def started_reads(self, count: int) -> None:
        while len(self.started) < count:
            await asyncio.sleep(0)


async def test_a_read_under_way_is_not_fresh_for_a_later_caller():
    reads = Reads()
    shared = FreshReads(reads.read, "test")
    first = shared.fresh()
    await reads.started_reads(1)
    second = shared.fresh()
    reads.go[0].set()
    assert await first == 1
    await reads.started_reads(2)
    reads.go[1].set()
    assert await second == 2


async def test_a_read_begun_since_the_named_moment_is_shared():
    reads = Reads()
    shared = FreshReads(reads.read, "test")
    arrived = time.monotonic()
    ahead = shared.fresh()  # started as the request arrived
    await reads.started_reads(1)
    check = shared.fresh(not_before=arrived)
    reads.go[0].set()
    assert await ahead == 1 and await check == 1
    assert len(reads.started) == 1


async def test_a_read_begun_before_the_named_moment_is_not_used():
    reads = Reads()
    shared = FreshReads(reads.read, "test")
    older = shared.fresh()
    await reads.started_reads(1)
    arrived = time.monotonic()
    check = shared.fresh(not_before=arrived)
    reads.go[0].set()
    assert await older == 1
    await reads.started_reads(2)
    reads.go[1].set()
    assert await check == 2


async def test_the_last_read_answers_at_once_when_it_began_since_the_named_moment():
    reads = Reads()
    shared = FreshReads(reads.read, "test")
    arrived = time.monotonic()
    ahead = shared.fresh()
    await reads.started_reads(1)
    reads.go[0].set()
    assert await ahead == 1
    assert await shared.fresh(not_before=arrived) == 1
    # Asked without a moment, or with one after that read began: a new read.
    later = shared.fresh(not_before=time.monotonic())
    await reads.started_reads(2)
    reads.go[1].set()
    assert await later == 2


async def test_a_failed_read_is_never_reused():
    reads = Reads()
    shared = FreshReads(reads.read, "test")
    arrived = time.monotonic()
    reads.fail = True
    failing = shared.fresh()
    await reads.started_reads(1)
    reads.go[0].set()
    with pytest.raises(RuntimeError):
        await failing
    reads.fail = False
    check = shared.fresh(not_before=arrived)
    await reads.started_reads(2)
    reads.go[1].set()
    assert await check == 2


async def test_a_read_ahead_nobody_waited_for_fails_quietly(caplog: pytest.LogCaptureFixture):
    reads = Reads()
    shared = FreshReads(reads.read, "test")
    reads.fail = True
    first = shared.fresh()
    await reads.started_reads(1)
    shared.read_ahead()  # the read after the one under way
    reads.go[0].set()
    with pytest.raises(RuntimeError):
        await first
    await reads.started_reads(2)
    reads.go[1].set()
    for _ in range(5):
        await asyncio.sleep(0)
    gc.collect()
    assert "exception was never retrieved" not in caplog.text
