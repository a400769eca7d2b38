"""Start and stop the embedded CouchDB-compatible server as a child process.

Development, tests and CI have no Apache CouchDB (docs/embedded-couchdb.md):
the project ships a small Node server built from PouchDB's packages in
``couch/embedded``. This module runs ``node couch/embedded/server.js``, waits
until it answers, forwards its log to Python logging and stops it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, urlsplit

import aiohttp

from service.paths import COUCH_DIR

logger = logging.getLogger(__name__)

_STDERR_TAIL_LINES = 20  # kept to explain a failed start
_POLL_INTERVAL = 0.05
_MAX_LINE = 1 << 20  # long stack traces must not break the log forwarding
# The server's log lines start with an ISO timestamp and a level.
_LOG_LINE = re.compile(r"^\S+ (DEBUG|INFO|WARN|ERROR) (.*)$")
_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
}
_URL_CREDENTIALS = re.compile(r"//[^/@\s]+@")
_AUTH_HEADER = re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9+/=._-]+")


class EmbeddedCouchError(RuntimeError):
    """The embedded server could not be started or is not running."""


@dataclass(frozen=True, kw_only=True)
class EmbeddedOptions:
    host: str = "127.0.0.1"
    port: int = 0  # 0 = a free port chosen by the OS
    admin_user: str = "admin"
    admin_password: str = field(repr=False)
    data_dir: Path | None = None  # None = in memory

    def __post_init__(self) -> None:
        if not self.admin_password:
            raise ValueError("admin_password must not be empty")
        if not self.admin_user or ":" in self.admin_user:
            raise ValueError("admin_user must be non-empty and contain no ':'")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port out of range: {self.port}")


def embedded_dir() -> Path:
    """The couch/embedded directory of this checkout."""
    return COUCH_DIR / "embedded"


def _server_command(options: EmbeddedOptions) -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise EmbeddedCouchError("Node.js (`node`) is not on PATH; the embedded CouchDB needs it")
    root = embedded_dir()
    if not (root / "node_modules" / "express-pouchdb").is_dir():
        raise EmbeddedCouchError(
            f"{root / 'node_modules'} is missing: run `make install` "
            "(or `npm ci --ignore-scripts --prefix couch/embedded`)"
        )
    storage = ["--data-dir", str(options.data_dir)] if options.data_dir else ["--memory"]
    log_level = "debug" if logger.isEnabledFor(logging.DEBUG) else "info"
    return [
        node,
        str(root / "server.js"),
        "--host",
        options.host,
        "--port",
        str(options.port),
        "--log-level",
        log_level,
        # the server exits when our end of its stdin closes, so a crashed or
        # killed parent never leaves it running
        "--exit-on-stdin-close",
        *storage,
    ]


def _child_env(options: EmbeddedOptions) -> dict[str, str]:
    # The admin credentials travel in the environment, not in argv, so they
    # do not show up in `ps` for other users of the machine.
    env = dict(os.environ)
    env["EMBEDDED_COUCH_ADMIN"] = f"{options.admin_user}:{options.admin_password}"
    return env


def _redact(text: str, secret: str) -> str:
    """Remove credentials from a log line before it is logged."""
    text = _URL_CREDENTIALS.sub("//***@", text)
    text = _AUTH_HEADER.sub(r"\1 ***", text)
    return text.replace(secret, "***") if len(secret) >= 3 else text


class EmbeddedCouch:
    """One embedded CouchDB-compatible server process."""

    def __init__(self, options: EmbeddedOptions) -> None:
        self._options = options
        self._proc: asyncio.subprocess.Process | None = None
        self._url: str | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)

    async def __aenter__(self) -> EmbeddedCouch:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Base URL without credentials, e.g. http://127.0.0.1:41234."""
        if self._url is None:
            raise EmbeddedCouchError("the embedded CouchDB has not been started")
        return self._url

    @property
    def credentials_url(self) -> str:
        """Base URL with the admin credentials, e.g. http://admin:secret@127.0.0.1:41234."""
        parts = urlsplit(self.url)
        user = quote(self._options.admin_user, safe="")
        password = quote(self._options.admin_password, safe="")
        return f"{parts.scheme}://{user}:{password}@{parts.netloc}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self, timeout: float = 20.0) -> str:
        """Start the server; return its base URL once GET /_up answers 200."""
        if self.running:
            raise EmbeddedCouchError(f"the embedded CouchDB is already running at {self._url}")
        command = _server_command(self._options)
        self._stderr_tail.clear()
        self._proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=embedded_dir(),
            env=_child_env(self._options),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_MAX_LINE,
        )
        self._readers = [asyncio.create_task(self._forward_stderr(self._proc))]
        try:
            async with asyncio.timeout(timeout):
                url = await self._read_ready_url(self._proc)
                await self._wait_until_up(url)
        except (TimeoutError, EmbeddedCouchError, aiohttp.ClientError) as exc:
            await self.stop(grace=1.0)
            raise EmbeddedCouchError(self._start_failure(exc, timeout)) from exc
        self._url = url
        self._readers.append(asyncio.create_task(self._drain_stdout(self._proc)))
        logger.info("embedded CouchDB ready at %s (pid %s)", url, self._proc.pid)
        return url

    async def wait_exit(self) -> int:
        """Wait for the server process to end (crash or stop); return its exit code."""
        if self._proc is None:
            raise EmbeddedCouchError("the embedded CouchDB has not been started")
        return await self._proc.wait()

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if the server has not exited after `grace` seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                logger.warning("embedded CouchDB ignored SIGTERM for %.1fs; killing it", grace)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        await asyncio.gather(*self._readers, return_exceptions=True)
        self._readers = []

    async def _read_ready_url(self, proc: asyncio.subprocess.Process) -> str:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                code = await proc.wait()
                raise EmbeddedCouchError(f"the server exited with code {code} before it was ready")
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict) and message.get("ready") is True:
                    return str(message["url"])
            logger.debug("embedded CouchDB stdout: %s", line.decode(errors="replace").rstrip())

    async def _wait_until_up(self, url: str) -> None:
        # The ready line means "listening"; /_up == 200 means "answering".
        async with aiohttp.ClientSession() as session:
            while True:
                if not self.running:
                    raise EmbeddedCouchError("the server exited while starting")
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with session.get(f"{url}/_up") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(_POLL_INTERVAL)

    def _start_failure(self, exc: BaseException, timeout: float) -> str:
        reason = f"not ready within {timeout:g}s" if isinstance(exc, TimeoutError) else str(exc)
        tail = "\n".join(self._stderr_tail)
        return f"embedded CouchDB failed to start: {reason}" + (f"\n{tail}" if tail else "")

    async def _forward_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        secret = self._options.admin_password
        level = logging.INFO
        async for raw in proc.stderr:
            line = _redact(raw.decode(errors="replace").rstrip(), secret)
            if not line:
                continue
            self._stderr_tail.append(line)
            match = _LOG_LINE.match(line)
            if match:
                level, line = _LEVELS[match[1]], match[2]
            # lines without a prefix continue the previous entry (stack traces)
            logger.log(level, "%s", line)

    async def _drain_stdout(self, proc: asyncio.subprocess.Process) -> None:
        # Nothing is expected after the ready line, but an unread pipe that
        # fills up would block the server.
        assert proc.stdout is not None
        async for raw in proc.stdout:
            logger.debug("embedded CouchDB stdout: %s", raw.decode(errors="replace").rstrip())
