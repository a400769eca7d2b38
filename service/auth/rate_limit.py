"""Token buckets per client, for throttling failed logins (docs/kazoo-compatibility.md §10.5).

Only failures take tokens: a client that keeps presenting wrong api keys is answered
429 once its bucket is empty, while clients that log in correctly are never slowed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class FailureLimiter:
    def __init__(self, burst: int, refill_per_second: float, *, max_clients: int = 100_000) -> None:
        self.burst = burst
        self.refill_per_second = refill_per_second
        self._buckets: dict[str, _Bucket] = {}
        self._max_clients = max_clients

    def _bucket(self, client: str, now: float) -> _Bucket:
        bucket = self._buckets.get(client)
        if bucket is None:
            return _Bucket(tokens=float(self.burst), updated=now)
        refilled = bucket.tokens + (now - bucket.updated) * self.refill_per_second
        return _Bucket(tokens=min(float(self.burst), refilled), updated=now)

    def allows(self, client: str) -> bool:
        """False while the client has used up its failures."""
        return self._bucket(client, time.monotonic()).tokens >= 1.0

    def record_failure(self, client: str) -> None:
        now = time.monotonic()
        bucket = self._bucket(client, now)
        bucket.tokens = max(0.0, bucket.tokens - 1.0)
        if len(self._buckets) >= self._max_clients and client not in self._buckets:
            # Bounded memory: forget the fullest buckets' owners first (they are harmless).
            self._buckets = {k: v for k, v in self._buckets.items() if v.tokens < self.burst - 1}
        self._buckets[client] = bucket
