"""The systems under test: a CouchDB and the service, each in its own process.

The service runs as `python -m service serve` — the same command `make run` uses —
so that its CPU time and memory can be read from /proc apart from the benchmark
client's. CouchDB is the embedded server on a temporary data folder (leveldb, as
`make run`), or the Apache CouchDB named by CONNECTIVITY_COUCH_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from service.couchdb.embedded import EmbeddedCouch, EmbeddedOptions
from service.couchdb.runtime import with_credentials

from . import procstat

READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Stack:
    couch_url: str  # with admin credentials
    service_url: str
    service_pid: int
    # A second service with its read cache off: what a read costs when it misses.
    uncached_url: str
    uncached_pid: int
    # None when CouchDB is not ours to watch (an external Apache CouchDB).
    couch_pid: int | None
    couch_kind: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def couchdb(work_dir: Path) -> AsyncIterator[tuple[str, int | None, str]]:
    external = os.environ.get("CONNECTIVITY_COUCH_URL", "").strip()
    if external:
        yield external, None, "Apache CouchDB (CONNECTIVITY_COUCH_URL)"
        return
    password = secrets.token_urlsafe(16)
    server = EmbeddedCouch(EmbeddedOptions(admin_password=password, data_dir=work_dir / "couch"))
    url = await server.start()
    pid = next(p for p in procstat.child_pids() if "server.js" in procstat.command_line(p))
    try:
        yield with_credentials(url, "admin", password), pid, "embedded (leveldb on disk)"
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def service(
    couch_url: str, work_dir: Path, name: str = "service", **settings: str
) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        CONNECTIVITY_COUCH_URL=couch_url,
        CONNECTIVITY_HOST="127.0.0.1",
        CONNECTIVITY_PORT=str(port),
        CONNECTIVITY_DATA_DIR=str(work_dir / name),
        # One client address sending thousands of requests a second: Crossbar's request
        # buckets would answer 429 to most of them, which is not what is measured.
        CONNECTIVITY_RATE_LIMIT_COST="0",
        **{f"CONNECTIVITY_{key.upper()}": value for key, value in settings.items()},
    )
    # Its JSON log goes to a file, as it would to journald: writing it is part of its cost.
    log_path = work_dir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service", "serve", env=env, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await _wait_ready(url, proc, log_path)
            yield url, proc.pid
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _wait_ready(url: str, proc: asyncio.subprocess.Process, log_path: Path) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(READY_TIMEOUT):
        while True:
            if proc.returncode is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the service exited with {proc.returncode}:\n{tail}")
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(f"{url}/__heartbeat__") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running_stack(work_dir: Path) -> AsyncIterator[Stack]:
    # The service is as `make run` starts it (DID claims "auto": on Apache CouchDB it
    # claims while another instance writes, numbers/instances.py). The second service
    # only answers reads here, so it stays out of the instance roster (claims off), and
    # the first one works alone, as one instance on its CouchDB does.
    async with (
        couchdb(work_dir) as (couch_url, couch_pid, kind),
        service(couch_url, work_dir) as (service_url, service_pid),
        service(couch_url, work_dir, "uncached", read_cache_mb="0", did_claims="false") as (
            uncached,
            uncached_pid,
        ),
    ):
        yield Stack(couch_url, service_url, service_pid, uncached, uncached_pid, couch_pid, kind)
