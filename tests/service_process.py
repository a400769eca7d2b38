"""`kazoo-connectivity serve` as an operator runs it: a real process with its own
embedded CouchDB in a temporary data folder, on a free port, its stderr (the JSON log)
captured line by line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from cli_runner import ROOT, run_cli

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(parent: int) -> list[int]:
    """Direct children of `parent`, from /proc (Linux)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # The command name may contain spaces and parentheses: split after the last ")".
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                children.append(int(entry.name))
    return children


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class ServiceProcess:
    def __init__(self, data_dir: Path, **settings: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "CONNECTIVITY_DATA_DIR": str(data_dir),
            "CONNECTIVITY_PORT": str(self.port),
            "CONNECTIVITY_HOST": "127.0.0.1",
            "CONNECTIVITY_COUCH_URL": "",
            "CONNECTIVITY_LOG_LEVEL": "INFO",
            # Rate limits off, as every test instance (tests/conftest.py).
            "CONNECTIVITY_RATE_LIMIT_COST": "0",
            **settings,
        }
        self.process: asyncio.subprocess.Process | None = None
        self.stderr_lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> ServiceProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service",
            "serve",
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read_stderr())
        await self._wait_until_healthy()
        return self

    async def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for raw in self.process.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    async def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError("serve exited early:\n" + "\n".join(self.stderr_lines))
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/__heartbeat__") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise RuntimeError("serve did not become healthy:\n" + "\n".join(self.stderr_lines))

    def embedded_pid(self) -> int:
        """The node process of the embedded CouchDB this service started."""
        for pid in child_pids(self.pid):
            with contextlib.suppress(OSError):
                if b"server.js" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
        raise LookupError("no embedded CouchDB child")

    def embedded_url(self) -> str:
        return json.loads((self.data_dir / "embedded-couch.json").read_text())["url"]

    async def cli(self, *args: str) -> Any:
        """Runs an operator command beside this `serve` (it shares the embedded server)."""
        done = await run_cli(*args, env=self.env)
        assert done.code == 0, done.err
        self.stderr_lines.extend(done.err.splitlines())
        return json.loads(done.out)

    async def terminate(self, timeout: float) -> int:
        """SIGTERM; the exit code once the process ended (fails after `timeout` s)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def wait(self, timeout: float) -> int:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    async def kill(self) -> None:
        """Last-resort clean-up for a failed test: nothing may outlive it."""
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(LookupError, ProcessLookupError):
            os.kill(self.embedded_pid(), signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines (every line the service wrote must be one)."""
        records = []
        for line in self.stderr_lines:
            if line.strip():
                records.append(json.loads(line))
        return records
