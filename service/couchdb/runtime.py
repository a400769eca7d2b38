"""Which CouchDB the service uses: the operator's, or the embedded server it starts.

With the embedded server, the data folder holds the admin credentials
(`couch-admin.json`, mode 0600) and, while a server runs, `embedded-couch.json` with its
URL and pid, so that `create-account` or `couch-url` run beside `serve` use the same
server instead of opening the same leveldb files twice.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from service.config import Settings
from service.couchdb.client import CouchClient
from service.couchdb.embedded import EmbeddedCouch, EmbeddedOptions
from service.couchdb.supervisor import EmbeddedSupervisor

log = logging.getLogger(__name__)

ADMIN_FILE = "couch-admin.json"
STATE_FILE = "embedded-couch.json"


@dataclass
class CouchHandle:
    url: str  # with credentials
    embedded: EmbeddedCouch | None = None
    state_file: Path | None = None
    embedded_options: EmbeddedOptions | None = None
    supervisor: EmbeddedSupervisor | None = None

    def supervise(self, on_give_up: Callable[[], None]) -> None:
        """Restart the embedded server whenever it dies (for `serve`; the short operator
        commands do not need it)."""
        if self.embedded is None or self.embedded_options is None:
            return
        self.supervisor = EmbeddedSupervisor(self.embedded, self.embedded_options, on_give_up)
        self.supervisor.start()

    @property
    def gave_up(self) -> bool:
        """True when the embedded server died and could not be restarted."""
        return self.supervisor is not None and self.supervisor.gave_up

    async def close(self) -> None:
        if self.embedded is None:
            return
        if self.supervisor is not None:
            await self.supervisor.stop()  # stops the server it runs now
        else:
            await self.embedded.stop()
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _admin_credentials(data_dir: Path) -> tuple[str, str]:
    path = data_dir / ADMIN_FILE
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        return stored["user"], stored["password"]
    data_dir.mkdir(parents=True, exist_ok=True)
    user, password = "admin", secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"user": user, "password": password}, handle)
    return user, password


async def _running_embedded(data_dir: Path, user: str, password: str) -> str | None:
    """The URL of an embedded server another process started on this data folder."""
    path = data_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        url = json.loads(path.read_text(encoding="utf-8"))["url"]
    except (ValueError, KeyError):
        return None
    full = with_credentials(url, user, password)
    async with CouchClient(full, timeout=2.0) as client:
        if await client.is_up():
            return full
    return None


async def open_couch(settings: Settings) -> CouchHandle:
    if settings.couch_url is not None:
        return CouchHandle(url=settings.couch_url)
    data_dir = settings.data_dir.resolve()
    user, password = _admin_credentials(data_dir)
    running = await _running_embedded(data_dir, user, password)
    if running is not None:
        return CouchHandle(url=running)
    options = EmbeddedOptions(admin_user=user, admin_password=password, data_dir=data_dir / "couch")
    embedded = EmbeddedCouch(options)
    url = await embedded.start()
    state = data_dir / STATE_FILE
    state.write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")
    log.info("embedded couchdb started", extra={"couch_url": url})
    return CouchHandle(
        url=with_credentials(url, user, password),
        embedded=embedded,
        state_file=state,
        embedded_options=options,
    )
