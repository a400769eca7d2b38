"""Crossbar's request token buckets (kz_buckets, kz_token_bucket; §10.5).

One bucket per `"{client address}/{URL account}"` (cb_modules_util:bucket_name/1,
`no_account` when the URL names none). A bucket starts full with `capacity` tokens and
gains `fill_rate` tokens as a block once every whole second (`fill_as_block`), never
above `capacity`; each request takes `cost` tokens, all or nothing, and is refused
(429) when there are fewer. A cost of 0 turns the limits off. A bucket left alone
for `idle_seconds` is forgotten, so the next request starts a full one, as KAZOO stops
idle buckets.

Buckets live in this process only, as KAZOO's live in each node's memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]

# kz_buckets' inactivity_timeout_s.
IDLE_SECONDS = 600.0
# Beyond this many buckets, full and idle ones are dropped first (they are the same
# as no bucket at all); a flood of addresses cannot grow memory without bound.
MAX_BUCKETS = 100_000


def bucket_key(client: str | None, account_id: str | None) -> str:
    return f"{client or 'no_ip'}/{account_id or 'no_account'}"


@dataclass
class _Bucket:
    tokens: int
    filled_at: float
    used_at: float


class RequestBuckets:
    def __init__(
        self,
        capacity: int,
        fill_rate: int,
        cost: int,
        *,
        clock: Clock = time.monotonic,
        idle_seconds: float = IDLE_SECONDS,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self.capacity = capacity
        self.fill_rate = fill_rate
        self.cost = cost
        self._clock = clock
        self._idle = idle_seconds
        self._max = max_buckets
        self._buckets: dict[str, _Bucket] = {}

    def __len__(self) -> int:
        """How many buckets are held in memory."""
        return len(self._buckets)

    @property
    def enabled(self) -> bool:
        return self.cost > 0

    def take(self, key: str) -> bool:
        """Takes one request's cost from the bucket; False (nothing taken) when short."""
        if not self.enabled:
            return True
        now = self._clock()
        bucket = self._current(key, now)
        if bucket is None:
            bucket = self._new(key, now)
        bucket.used_at = now
        if bucket.tokens < self.cost:
            return False
        bucket.tokens -= self.cost
        return True

    def remaining(self, key: str) -> int:
        """Tokens left in the bucket; `capacity` when there is none (kz_buckets)."""
        bucket = self._current(key, self._clock())
        return self.capacity if bucket is None else bucket.tokens

    def _current(self, key: str, now: float) -> _Bucket | None:
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        if now - bucket.used_at >= self._idle:
            del self._buckets[key]
            return None
        self._refill(bucket, now)
        return bucket

    def _refill(self, bucket: _Bucket, now: float) -> None:
        blocks = int(now - bucket.filled_at)
        if blocks <= 0:
            return
        bucket.tokens = min(self.capacity, bucket.tokens + blocks * self.fill_rate)
        # Blocks come on the bucket's own second boundaries, full or not, as
        # kz_token_bucket's fill timer ticks from the bucket's start.
        bucket.filled_at += blocks

    def _new(self, key: str, now: float) -> _Bucket:
        if len(self._buckets) >= self._max:
            self._forget_idle(now)
        bucket = _Bucket(tokens=self.capacity, filled_at=now, used_at=now)
        self._buckets[key] = bucket
        return bucket

    def _forget_idle(self, now: float) -> None:
        for key in list(self._buckets):
            bucket = self._buckets[key]
            self._refill(bucket, now)
            if bucket.tokens >= self.capacity or now - bucket.used_at >= self._idle:
                del self._buckets[key]
        if len(self._buckets) >= self._max:
            # Every bucket is in use: forget the oldest (insertion order), not refuse.
            for key in list(self._buckets)[: len(self._buckets) // 10 + 1]:
                del self._buckets[key]
