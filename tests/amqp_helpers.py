"""The machine's RabbitMQ, listened to the way KAZOO's own consumers listen.

Every queue is exclusive, auto-deleted and uniquely named, so runs of the suite side by
side (other worktrees, other engineers) never take each other's messages; a test only
looks at events of the documents it wrote.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue

from service import fast_json

Json = dict[str, Any]

BROKER_URL = os.environ.get("CONNECTIVITY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

# Long enough for a reconnection with backoff on a loaded machine; events need milliseconds.
EVENTUALLY = 20.0


def _broker_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2):
            return True
    except OSError:
        return False


requires_broker = pytest.mark.skipif(
    not _broker_answers(BROKER_URL),
    reason="nothing answers on the test broker (CONNECTIVITY_TEST_AMQP_URL, "
    "default amqp://guest:guest@127.0.0.1:5672/)",
)


@dataclass(frozen=True)
class Delivery:
    exchange: str
    routing_key: str
    payload: Json
    message_id: str | None
    content_type: str | None


class Listener:
    """One queue bound to an exchange with KAZOO's bindings; collects what arrives."""

    def __init__(self, queue: AbstractQueue) -> None:
        self.queue = queue
        self.received: asyncio.Queue[Delivery] = asyncio.Queue()

    @classmethod
    async def bind(
        cls, connection: AbstractConnection, exchange: str, *routing_keys: str
    ) -> Listener:
        channel = await connection.channel()
        # Declared as KAZOO declares it (kz_amqp_util:new_exchange/3), so that whoever
        # comes first, KAZOO, the service or this test, the others' declarations agree.
        declared = await channel.declare_exchange(
            exchange, aio_pika.ExchangeType.TOPIC, durable=False, auto_delete=False
        )
        queue = await channel.declare_queue(
            f"connectivity-test-{secrets.token_hex(8)}",
            exclusive=True,
            auto_delete=True,
            durable=False,
        )
        for key in routing_keys:
            await queue.bind(declared, key)
        listener = cls(queue)
        await queue.consume(listener._deliver, no_ack=True)
        return listener

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        self.received.put_nowait(
            Delivery(
                exchange=message.exchange or "",
                routing_key=message.routing_key or "",
                payload=fast_json.loads(message.body),
                message_id=message.message_id,
                content_type=message.content_type,
            )
        )

    async def collect(
        self, keep: Callable[[Delivery], bool], *, until: Callable[[Delivery], bool]
    ) -> list[Delivery]:
        """The deliveries `keep` accepts, up to and including the first one `until`
        accepts (events arrive in order, so that one closes the list)."""
        kept: list[Delivery] = []
        deadline = time.monotonic() + EVENTUALLY
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"waited {EVENTUALLY}s; got {[d.routing_key for d in kept]}"
            try:
                delivery = await asyncio.wait_for(self.received.get(), remaining)
            except TimeoutError:
                continue
            if keep(delivery) or until(delivery):
                kept.append(delivery)
            if until(delivery):
                return kept


def about(doc_id: str) -> Callable[[Delivery], bool]:
    return lambda delivery: delivery.payload.get("ID") == doc_id


def for_realm(realm: str) -> Callable[[Delivery], bool]:
    return lambda delivery: delivery.payload.get("Realm") == realm


async def broker_connection() -> AbstractConnection:
    return await aio_pika.connect(BROKER_URL)
