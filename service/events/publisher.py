"""Publishes KAZOO's change events on its RabbitMQ, in the background, never deciding a write.

`doc_changed` and `registrations_flushed` only encode and queue (outbox.py): the
request that wrote the document does not wait for the broker. One background task
connects (aio-pika), declares KAZOO's exchanges, and sends the queue in order, each
event with publisher confirms: an event leaves the queue only once the broker has
confirmed it. A broker that is down, slow (no confirm within the publish timeout) or
refusing (a failed declare, a nack) costs a reconnection, with a backoff doubling up
to `reconnect_max`; the unconfirmed events are sent again first, with the same
`Msg-ID` (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import aio_pika
import aiormq
from aio_pika.abc import AbstractConnection, AbstractExchange

from service.config import Settings
from service.events.encoding import (
    EXCHANGES,
    Event,
    doc_event,
    is_published,
    reg_flush_event,
)
from service.events.outbox import Outbox
from service.kazoo.changes import Action, DocWritten

log = logging.getLogger(__name__)

Json = dict[str, Any]
T = TypeVar("T")

FIRST_RETRY_SECONDS = 0.1
# How long a cancelled publisher may take to wind down before it is left behind.
STOP_SECONDS = 2.0
# Events sent at once, their confirms awaited together.
BATCH = 200

# What a lost, slow or refusing broker raises; each means: reconnect and send again.
BROKER_FAILURES = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    OSError,
    TimeoutError,
)


class BrokerLost(Exception):
    """The connection closed while the publisher waited for events."""


class EventPublisher:
    def __init__(
        self,
        url: str,
        *,
        node: str,
        capacity: int,
        reconnect_max: float = 5.0,
        publish_timeout: float = 5.0,
    ) -> None:
        self.node = node
        self.outbox = Outbox(capacity)
        self.connected = False
        self.published = 0
        self._url = url
        self._reconnect_max = reconnect_max
        self._publish_timeout = publish_timeout
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        # Set from a failed connection until the next one succeeds.
        self._trouble = asyncio.Event()

    # -- what the writers call -----------------------------------------------------------

    def doc_changed(self, db: str, doc: Json, action: Action) -> None:
        """After CouchDB accepted a write of `doc` to the real database `db`
        (service/kazoo/changes.py says what the arguments are)."""
        if is_published(doc):
            self._queue(doc_event(db, doc, action, self.node))

    def registrations_flushed(self, realm: str) -> None:
        """After a trunk of `realm` was created or deleted (cb_connectivity)."""
        self._queue(reg_flush_event(realm, self.node))

    def state(self) -> Json:
        """For `/__heartbeat__`."""
        return {
            "connected": self.connected,
            "queued": len(self.outbox),
            "dropped": self.outbox.dropped,
            "published": self.published,
        }

    def _queue(self, event: Event) -> None:
        self.outbox.put(event)
        self._idle.clear()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="amqp-publisher")

    async def close(self, grace: float) -> None:
        """Gives waiting events up to `grace` seconds to go out, then stops. A broker
        already known to be away is not waited for."""
        if self._task is None:
            return
        if len(self.outbox) and not self._trouble.is_set():
            await _first_of(self._idle.wait(), self._trouble.wait(), timeout=grace)
        self._task.cancel()
        # Not awaited without a limit: a connection attempt cancelled half-way may never
        # finish closing (aiormq), and shutdown must not hang on the broker.
        done, _pending = await asyncio.wait({self._task}, timeout=STOP_SECONDS)
        if not done:
            log.warning("amqp publisher did not stop in time; left behind")
        self._task = None
        if len(self.outbox):
            log.warning("amqp events not published at shutdown", extra={"lost": len(self.outbox)})

    async def _run(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                connection = await _bounded(
                    aio_pika.connect(self._url, timeout=self._publish_timeout),
                    self._publish_timeout,
                )
            except BROKER_FAILURES as exc:
                self._trouble.set()
                _log_failure("amqp broker unreachable", exc, delay)
            else:
                delay = FIRST_RETRY_SECONDS
                try:
                    await self._session(connection)
                except (*BROKER_FAILURES, BrokerLost) as exc:
                    self._trouble.set()
                    _log_failure("amqp connection lost", exc, delay)
                except Exception:
                    # Anything else is a bug here or in the client library; it must not
                    # silence the events for the rest of the process's life.
                    self._trouble.set()
                    log.exception("amqp publisher failed; reconnecting")
                finally:
                    self.connected = False
                    with contextlib.suppress(*BROKER_FAILURES):
                        await _bounded(connection.close(), self._publish_timeout)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max)

    async def _session(self, connection: AbstractConnection) -> None:
        closed = asyncio.Event()
        connection.close_callbacks.add(lambda *_args: closed.set())
        channel = await connection.channel(publisher_confirms=True)
        channel.close_callbacks.add(lambda *_args: closed.set())
        exchanges = {
            name: await channel.declare_exchange(
                name, aio_pika.ExchangeType.TOPIC, durable=False, auto_delete=False
            )
            for name in EXCHANGES
        }
        self.connected = True
        self._trouble.clear()
        log.info("amqp broker connected", extra={"node": self.node, "queued": len(self.outbox)})
        while True:
            await self._next_events(closed)
            await self._send(exchanges, self.outbox.take(BATCH))

    async def _next_events(self, closed: asyncio.Event) -> None:
        """Returns once events wait; raises BrokerLost if the connection closes first."""
        while not len(self.outbox):
            self._idle.set()
            await _first_of(self.outbox.arrival(), closed.wait())
            if closed.is_set():
                raise BrokerLost("the broker closed the connection")

    async def _send(self, exchanges: dict[str, AbstractExchange], batch: list[Event]) -> None:
        """Sends `batch` in order and waits for every confirm; what was not confirmed,
        from the first failure on, goes back to the head of the queue."""
        # Started in order, the publishes take the channel's lock (aiormq) in that order,
        # so the broker receives them in order; their confirms are awaited together
        # rather than one round trip each.
        sends = [asyncio.ensure_future(self._publish(exchanges, event)) for event in batch]
        try:
            results = await asyncio.gather(*sends, return_exceptions=True)
        except asyncio.CancelledError:
            # Shutting down: nothing is known to be confirmed any more.
            self.outbox.put_back(batch)
            raise
        confirmed = next(
            (index for index, result in enumerate(results) if isinstance(result, BaseException)),
            len(batch),
        )
        self.published += confirmed
        # Confirmed events after the first failure go again too: order before uniqueness.
        self.outbox.put_back(batch[confirmed:])
        if confirmed < len(batch):
            failure = results[confirmed]
            if isinstance(failure, Exception):
                raise failure
            raise BrokerLost("a publish was cancelled with its channel")

    async def _publish(self, exchanges: dict[str, AbstractExchange], event: Event) -> None:
        message = aio_pika.Message(
            event.body,
            content_type="application/json",
            message_id=event.msg_id,
            delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
        )
        # Not mandatory, as KAZOO publishes: an event no queue is bound for is simply
        # not delivered.
        await exchanges[event.exchange].publish(
            message, event.routing_key, mandatory=False, timeout=self._publish_timeout
        )


async def _bounded(call: Coroutine[Any, Any, T], timeout: float) -> T:
    """`call`'s result, or TimeoutError after `timeout` seconds. Unlike `wait_for`, a call
    still running then is cancelled but not waited for: aiormq's connect and close can
    take forever to unwind once cancelled."""
    task = asyncio.ensure_future(call)
    try:
        done, _pending = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        # Whatever it ends with is of no interest any more (and not worth a warning).
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise TimeoutError(f"no answer within {timeout} s")
    return task.result()


async def _first_of(*waits: Coroutine[Any, Any, Any], timeout: float | None = None) -> None:
    """Returns when the first of `waits` is done (or after `timeout`); cancels the rest."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _log_failure(message: str, exc: BaseException, retry_in: float) -> None:
    # The exception's class and text only: the URL, with its password, is never logged.
    log.warning(
        message,
        extra={"reason": f"{type(exc).__name__}: {exc}", "retry_in_seconds": retry_in},
    )


def publisher_for(settings: Settings) -> EventPublisher | None:
    """The publisher the settings ask for (not yet started); None without an AMQP URL."""
    if settings.amqp_url is None:
        return None
    return EventPublisher(
        settings.amqp_url,
        node=settings.amqp_node,
        capacity=settings.amqp_queue_size,
        reconnect_max=settings.amqp_reconnect_max_seconds,
        publish_timeout=settings.amqp_publish_timeout,
    )


@contextlib.asynccontextmanager
async def publishing(settings: Settings) -> AsyncIterator[DocWritten | None]:
    """For an operator command: the hook its stores announce writes to (None without
    an AMQP URL). On the way out the events get `shutdown_grace` seconds to leave."""
    events = publisher_for(settings)
    if events is None:
        yield None
        return
    events.start()
    try:
        yield events.doc_changed
    finally:
        await events.close(settings.shutdown_grace)
