"""Runs an operation a bounded number of times at a given concurrency and times it.

A pair (API side, raw side) is measured interleaved — A B A B … — and each figure is the
median over the repeats, so a burst of noise on the shared machine moves one sample,
not the result.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from . import procstat

# Less indexing after a run than this per op is not worth a line of the report.
SETTLE_SHOWN_MS = 0.01

# One call of an operation; `index` is unique within a run, `worker` in [0, concurrency).
OpFn = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True)
class Watched:
    """Processes whose CPU time is charged to a run."""

    service_pid: int
    couch_pid: int | None
    # Waits for CouchDB's background work (bench/indexing.py), returns the seconds waited.
    settle: Callable[[], Awaitable[float]] | None = None

    def of(self, service_pid: int) -> Watched:
        """The same CouchDB, another service."""
        return replace(self, service_pid=service_pid)


@dataclass(frozen=True)
class Run:
    ops: int
    seconds: float
    latencies: list[float]
    service_cpu: float  # CPU seconds the service used during the run
    couch_cpu: float | None
    # How long CouchDB's background indexing of the run's writes went on after it.
    settle_seconds: float = 0.0

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds

    @property
    def sustained_ops_per_s(self) -> float:
        return self.ops / (self.seconds + self.settle_seconds)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(op: OpFn, ops: int, concurrency: int, watched: Watched) -> Run:
    next_index = 0
    latencies: list[float] = []

    async def worker(worker_id: int) -> None:
        nonlocal next_index
        while next_index < ops:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            await op(index, worker_id)
            latencies.append(time.perf_counter() - started)

    if watched.settle is not None:
        await watched.settle()  # what earlier runs set going is not this run's
    service_before = procstat.cpu_seconds(watched.service_pid)
    couch_before = _couch_cpu(watched)
    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    seconds = time.perf_counter() - started
    couch_after = _couch_cpu(watched)
    settle_seconds = await watched.settle() if watched.settle is not None else 0.0
    return Run(
        ops=ops,
        seconds=seconds,
        latencies=latencies,
        service_cpu=procstat.cpu_seconds(watched.service_pid) - service_before,
        couch_cpu=None
        if couch_before is None or couch_after is None
        else couch_after - couch_before,
        settle_seconds=settle_seconds,
    )


def _couch_cpu(watched: Watched) -> float | None:
    return None if watched.couch_pid is None else procstat.cpu_seconds(watched.couch_pid)


@dataclass
class Side:
    """The repeats of one side of a pair."""

    runs: list[Run] = field(default_factory=list)

    def median(self, metric: Callable[[Run], float]) -> float:
        return statistics.median(metric(r) for r in self.runs)

    @property
    def ops_per_s(self) -> float:
        return self.median(lambda r: r.ops_per_s)

    @property
    def sustained_ops_per_s(self) -> float:
        return self.median(lambda r: r.sustained_ops_per_s)

    @property
    def settle_ms_per_op(self) -> float:
        return self.median(lambda r: r.settle_seconds / r.ops) * 1000

    @property
    def p50_ms(self) -> float:
        return self.median(lambda r: r.percentile(0.50)) * 1000

    @property
    def p99_ms(self) -> float:
        return self.median(lambda r: r.percentile(0.99)) * 1000

    @property
    def service_cpu_ms_per_op(self) -> float:
        return self.median(lambda r: r.service_cpu / r.ops) * 1000

    @property
    def service_cpu_share(self) -> float:
        """Share of one core the service used, 1.0 = one core busy."""
        return self.median(lambda r: r.service_cpu / r.seconds)

    @property
    def couch_cpu_share(self) -> float | None:
        if any(r.couch_cpu is None for r in self.runs):
            return None
        return self.median(lambda r: (r.couch_cpu or 0.0) / r.seconds)


@dataclass
class Pair:
    name: str
    concurrency: int
    api: Side = field(default_factory=Side)
    raw: Side = field(default_factory=Side)

    @property
    def throughput_ratio(self) -> float:
        return self.api.ops_per_s / self.raw.ops_per_s

    @property
    def sustained_ratio(self) -> float:
        return self.api.sustained_ops_per_s / self.raw.sustained_ops_per_s

    @property
    def settles(self) -> bool:
        """Whether CouchDB indexed in the background after these runs' writes."""
        return max(self.api.settle_ms_per_op, self.raw.settle_ms_per_op) >= SETTLE_SHOWN_MS

    @property
    def added_p50_ms(self) -> float:
        return self.api.p50_ms - self.raw.p50_ms


async def interleaved(
    name: str,
    api: OpFn,
    raw: OpFn,
    *,
    ops: int,
    concurrency: int,
    repeats: int,
    watched: Watched,
    warmup: int = 0,
) -> Pair:
    pair = Pair(name=name, concurrency=concurrency)
    if warmup:
        await run(api, warmup, concurrency, watched)
        await run(raw, warmup, concurrency, watched)
    for _ in range(repeats):
        pair.api.runs.append(await run(api, ops, concurrency, watched))
        pair.raw.runs.append(await run(raw, ops, concurrency, watched))
    return pair
