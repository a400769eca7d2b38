"""The events waiting for the broker: first in, first out, bounded.

A write never waits for the broker, so while it is away events pile up here. Memory is
bounded by `capacity`: when it is full the oldest waiting event is dropped, counted and
logged (the newest says most about the current state of its document).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence

from service.events.encoding import Event

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._events: deque[Event] = deque()
        self._arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._events)

    def put(self, event: Event) -> None:
        self._events.append(event)
        self._trim()
        self._arrived.set()

    def take(self, count: int) -> list[Event]:
        """Up to `count` events from the head; `put_back` what could not be sent."""
        taken = []
        while self._events and len(taken) < count:
            taken.append(self._events.popleft())
        return taken

    def put_back(self, events: Sequence[Event]) -> None:
        """Unsent events go back to the head, in their order: they are the oldest."""
        if not events:
            return
        self._events.extendleft(reversed(events))
        self._trim()
        self._arrived.set()

    async def arrival(self) -> None:
        """Returns once an event is waiting (at once if one is)."""
        # Checked and cleared in one step: nothing else runs between the two.
        if self._events:
            return
        self._arrived.clear()
        await self._arrived.wait()

    def _trim(self) -> None:
        while len(self._events) > self.capacity:
            event = self._events.popleft()
            self.dropped += 1
            log.warning(
                "amqp event dropped: the queue is full",
                extra={
                    "routing_key": event.routing_key,
                    "msg_id": event.msg_id,
                    "queue_size": self.capacity,
                    "dropped_total": self.dropped,
                },
            )
