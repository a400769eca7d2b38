"""A small TCP proxy that sits between the service and CouchDB and misbehaves on demand.

It understands just enough HTTP/1.1 to tell requests apart on a keep-alive connection
(request line, `Content-Length`), so a fault can target "the PUT of this document" or
"the next view query" and leave every other request alone. Faults:

* `cut_request`  — forward the head and half the body, then drop both connections:
  CouchDB never sees a complete request, so nothing is written.
* `cut_response` — forward the whole request, drop the connection as soon as CouchDB
  starts answering: CouchDB has already done the work (the ambiguous case).
* `delay_request` / `delay_response` — wait `delay` seconds before forwarding; a
  request whose client gave up meanwhile is dropped instead of forwarded.
* `respond`      — answer `status`/`body` without asking CouchDB (500, 503, 413 …).
* `rewrite_status` — forward, but change the status line of CouchDB's answer (202).

`go_down()` stops listening and aborts every open connection (CouchDB is gone);
`come_up()` listens again on the same port.

`TcpProxy`, its base, relays bytes without reading them: for a broker (AMQP) or any
other TCP service, with the same `go_down()` / `come_up()`, and `hold()` / `release()`
to stop and resume forwarding while the connections stay open (a stalled server).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

ACTIONS = frozenset(
    {
        "cut_request",
        "cut_response",
        "delay_request",
        "delay_response",
        "replay_request",
        "respond",
        "rewrite_status",
    }
)
_REASONS = {202: "Accepted", 413: "Request Entity Too Large", 500: "Internal Server Error"}


@dataclass
class Fault:
    action: str
    method: str | None = None
    path_contains: str | None = None
    # How many matching requests this fault hits; None: every one until cleared.
    times: int | None = 1
    delay: float = 0.0
    status: int = 503
    body: bytes = b'{"error":"unavailable","reason":"injected by the fault proxy"}'
    # delay_request: forward the held request even when the client gave up meanwhile
    # (it was already on its way to CouchDB), instead of dropping it as a lost packet.
    forward_late: bool = False
    # delay_request: hold the request until this is set (the test decides when), not
    # for `delay` seconds.
    hold_until: asyncio.Event | None = None
    hits: int = 0
    # Set once a delay is over: the held request forwarded or dropped, or the held
    # answer passed on (tests wait on it instead of sleeping as long as the delay).
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass(eq=False)
class _Connection:
    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter
    upstream_reader: asyncio.StreamReader
    upstream_writer: asyncio.StreamWriter
    fault: Fault | None = None
    answered: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client_writer, self.upstream_writer):
            writer.transport.abort()


_DEFAULT_PORTS = {"http": 80, "https": 443, "amqp": 5672, "amqps": 5671}


class TcpProxy:
    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)
        self._upstream_url = upstream_url
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        # Connections accepted so far (each a new connection of the client).
        self.accepted = 0

    @property
    def url(self) -> str:
        """The upstream URL (credentials included) with the proxy's address instead."""
        parts = urlsplit(self._upstream_url)
        netloc = f"127.0.0.1:{self.port}"
        if parts.username is not None:
            netloc = f"{parts.username}:{parts.password}@{netloc}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        await self.go_down()

    async def go_down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self._connections):
            connection.abort()

    async def come_up(self) -> None:
        if self._server is None:
            await self.start()

    def hold(self) -> None:
        """Stop forwarding in both directions; connections stay open, bytes wait."""
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    # -- plumbing --------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        connection = _Connection(reader, writer, up_reader, up_writer)
        self._connections.add(connection)
        connection.tasks = [asyncio.create_task(relay) for relay in self._relays(connection)]
        try:
            await asyncio.wait(connection.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in connection.tasks:
                task.cancel()
            connection.abort()
            self._connections.discard(connection)

    def _relays(self, connection: _Connection) -> list[Coroutine[Any, Any, None]]:
        return [
            self._copy(connection.client_reader, connection.upstream_writer),
            self._copy(connection.upstream_reader, connection.client_writer),
        ]

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()


class FaultProxy(TcpProxy):
    def __init__(self, upstream_url: str) -> None:
        super().__init__(upstream_url)
        self.faults: list[Fault] = []
        # Every fault that fired, in order: (action, method, path).
        self.injected: list[tuple[str, str, str]] = []
        # Every request that reached the proxy, in order: (method, path).
        self.seen: list[tuple[str, str]] = []

    def inject(self, action: str, **options: object) -> Fault:
        assert action in ACTIONS, action
        fault = Fault(action=action, **options)  # type: ignore[arg-type]
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.hits += 1
                self.injected.append((fault.action, method, path))
                return fault
        return None

    def _relays(self, connection: _Connection) -> list[Coroutine[Any, Any, None]]:
        return [self._requests(connection), self._responses(connection)]

    async def _requests(self, connection: _Connection) -> None:
        reader = connection.client_reader
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(_content_length(head))
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            method, path = _request_line(head)
            self.seen.append((method, path))
            fault = self._take_fault(method, path)
            connection.fault, connection.answered = fault, False
            if fault is None:
                await self._forward(connection, head + body)
                continue
            if fault.action == "cut_request":
                request = head + body
                cut = len(head) + len(body) // 2 if body else len(head) // 2
                await self._forward(connection, request[:cut])
                await asyncio.sleep(0.05)
                return
            if fault.action == "replay_request":
                # What a load balancer that retries after a lost answer does: the first
                # copy reaches CouchDB, its answer is lost, the same request goes again.
                await self._send_aside(head + body)
                connection.fault = None
                await self._forward(connection, head + body)
                continue
            if fault.action == "respond":
                connection.answered = True
                connection.client_writer.write(_response(fault.status, fault.body))
                await connection.client_writer.drain()
                continue
            if fault.action == "delay_request":
                if fault.hold_until is not None:
                    await fault.hold_until.wait()
                else:
                    await asyncio.sleep(fault.delay)
                gave_up = reader.at_eof() or connection.client_writer.is_closing()
                if gave_up and not fault.forward_late:
                    fault.done.set()
                    return  # the client gave up: CouchDB never hears of it
            await self._forward(connection, head + body)
            if fault.action == "delay_request":
                fault.done.set()

    async def _send_aside(self, request: bytes) -> None:
        """Sends `request` on a connection of its own and waits for the answer, unread."""
        reader, writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        try:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(_content_length(head))
        finally:
            writer.close()

    async def _forward(self, connection: _Connection, data: bytes) -> None:
        connection.upstream_writer.write(data)
        await connection.upstream_writer.drain()

    async def _responses(self, connection: _Connection) -> None:
        while True:
            chunk = await connection.upstream_reader.read(65536)
            if not chunk:
                return
            fault = connection.fault
            if fault is not None and not connection.answered:
                connection.answered = True
                if fault.action == "cut_response":
                    return
                if fault.action == "delay_response":
                    await asyncio.sleep(fault.delay)
                    fault.done.set()
                if fault.action == "rewrite_status":
                    reason = _REASONS.get(fault.status, "Injected").encode()
                    chunk = re.sub(
                        rb"^HTTP/1\.[01] \d{3} [^\r]*",
                        b"HTTP/1.1 %d %s" % (fault.status, reason),
                        chunk,
                        count=1,
                    )
            with contextlib.suppress(ConnectionError):
                connection.client_writer.write(chunk)
                await connection.client_writer.drain()


def _request_line(head: bytes) -> tuple[str, str]:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    return (parts[0], parts[1]) if len(parts) >= 2 else ("", "")


def _content_length(head: bytes) -> int:
    match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    return int(match.group(1)) if match else 0


def _response(status: int, body: bytes) -> bytes:
    reason = _REASONS.get(status, "Service Unavailable").encode()
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % (status, reason, len(body))
        + body
    )
