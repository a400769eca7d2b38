"""Where a request's time went, step by step, for the `Server-Timing` answer header.

A write reports its validation, DID check, ownership check, save and number assignment
(README, "Where a write's time goes"): `make bench` adds them up per step, and a
browser's developer tools show them per request. Steps that run side by side (the DID
and ownership checks) each report their own wall time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

_steps: ContextVar[dict[str, float] | None] = ContextVar("request_steps", default=None)
# When the request arrived (time.monotonic): a read begun since then sees every write
# acknowledged before it (couchdb/fresh_reads.py).
_arrived: ContextVar[float | None] = ContextVar("request_arrived", default=None)


def begin() -> dict[str, float]:
    """Starts collecting this request's steps (each task started from it shares them)."""
    steps: dict[str, float] = {}
    _steps.set(steps)
    _arrived.set(time.monotonic())
    return steps


def arrived_at() -> float | None:
    """When this request arrived (time.monotonic); None outside a request."""
    return _arrived.get()


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        steps = _steps.get()
        if steps is not None:
            steps[name] = steps.get(name, 0.0) + time.perf_counter() - started


def header(steps: dict[str, float]) -> str:
    return ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in steps.items())
