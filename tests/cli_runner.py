"""The operator commands run as an operator runs them: `python -m service …` in a process
of its own, with the environment it is given."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A command that has not ended by then is hung: the test fails rather than wait forever.
COMMAND_DEADLINE = 120.0


@dataclass(frozen=True)
class Finished:
    code: int
    out: str
    err: str

    def __iter__(self) -> Iterator[int | str]:
        """`code, out, err = await run_cli(…)`"""
        return iter((self.code, self.out, self.err))


async def run_cli(
    *args: str, env: dict[str, str] | None = None, couch_url: str | None = None
) -> Finished:
    """Runs `python -m service *args` with os.environ plus `env` (and `couch_url` as
    CONNECTIVITY_COUCH_URL, when given)."""
    environment = {**os.environ, **(env or {})}
    if couch_url is not None:
        environment["CONNECTIVITY_COUCH_URL"] = couch_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        *args,
        cwd=ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), COMMAND_DEADLINE)
    return Finished(process.returncode or 0, out.decode(), err.decode())
