"""Every log line the whole test session produces, checked for secrets at the end.

The service's own formatter (service.logs.JsonFormatter) renders each record exactly
as production would write it; when the session ends, every secret the suite used is
looked for in those lines: the api key and signature secret of every account and user
in CouchDB, users' password hashes, every `auth_password` of every stored connectivity
document, the token signing keys and the user-signature secret, the CouchDB admin
password, and any token at all (a JWT). The raw record (before the
formatter's scrubbing, which is only a second line of defence) is checked too.
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from service.couchdb.client import CouchClient, DatabaseNotFound, DocumentNotFound, quote_db
from service.logs import JsonFormatter

Json = dict[str, Any]

# A JWT: three base64url parts, header and claims starting with `{"` (eyJ).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
# Short strings would match by accident (e.g. "admin"); real secrets are long.
_MIN_SECRET_LENGTH = 8


class LogAudit(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.formatter_ = JsonFormatter()
        self.written: list[str] = []  # as production writes them
        self.raw: list[str] = []  # before scrubbing
        self._previous_level = logging.NOTSET

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.written.append(self.formatter_.format(record))
            extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
            self.raw.append(f"{record.getMessage()} {extras} {record.exc_text or ''}")
        except Exception:  # a record that cannot be formatted must not break the test
            self.handleError(record)

    def install(self) -> LogAudit:
        root = logging.getLogger()
        self._previous_level = root.level
        # What `serve` logs by default (CONNECTIVITY_LOG_LEVEL=INFO): one line per request.
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        root.addHandler(self)
        # As service.logs.configure_logging does: `serve` writes no aiohttp access log.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        return self

    def uninstall(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._previous_level)

    def leaks(self, secrets: set[str]) -> list[str]:
        """The offending lines, with the secret itself masked."""
        found = []
        for kind, lines in (("written", self.written), ("raw", self.raw)):
            for line in lines:
                for secret in secrets:
                    if secret in line:
                        found.append(f"{kind}: {line.replace(secret, '<SECRET>')[:300]}")
                if _JWT.search(line):
                    found.append(f"{kind} (token): {_JWT.sub('<JWT>', line)[:300]}")
        return found


_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


async def secrets_used(couch_url: str) -> set[str]:
    """Every secret the session stored in CouchDB, plus the admin password."""
    found: set[str] = set()
    password = urlsplit(couch_url).password
    if password:
        found.add(unquote(password))
    async with CouchClient(couch_url, timeout=60) as client:
        for db in await client.all_dbs():
            if db == "accounts" or db.startswith("account/"):
                for doc in await _all_docs(client, db):
                    found.update(_secrets_of(doc))
        found.update(await _key_secrets(client))
    return {secret for secret in found if len(secret) >= _MIN_SECRET_LENGTH}


async def _all_docs(client: CouchClient, db: str) -> list[Json]:
    status, body = await client.request(
        "GET", f"{quote_db(db)}/_all_docs", params={"include_docs": "true"}
    )
    if status != 200 or not isinstance(body, dict):
        return []
    return [row["doc"] for row in body.get("rows", []) if isinstance(row.get("doc"), dict)]


async def _key_secrets(client: CouchClient) -> set[str]:
    """The private keys (whole, and each line of their PEM) and the system secret."""
    found: set[str] = set()
    try:
        config = await client.get_doc("system_config", "auth")
        found.add(str((config.get("default") or {}).get("secret_for_user_signature", "")))
    except (DocumentNotFound, DatabaseNotFound):
        pass  # no token was ever issued in this session
    status, body = await client.request(
        "GET", "system_auth/_all_docs", params={"include_docs": "true", "attachments": "true"}
    )
    if status != 200 or not isinstance(body, dict):
        return found
    for row in body.get("rows", []):
        attachment = ((row.get("doc") or {}).get("_attachments") or {}).get("private_key.pem")
        if isinstance(attachment, dict) and isinstance(attachment.get("data"), str):
            found.add(attachment["data"])
            pem = base64.b64decode(attachment["data"]).decode()
            found.update(line for line in pem.splitlines() if "-----" not in line)
    return found


def _secrets_of(doc: Json) -> set[str]:
    found = set()
    for key in ("pvt_api_key", "pvt_signature_secret", "pvt_md5_auth", "pvt_sha1_auth"):
        if isinstance(doc.get(key), str):
            found.add(doc[key])
    for server in doc.get("servers") or []:
        auth = server.get("auth") if isinstance(server, dict) else None
        if isinstance(auth, dict) and isinstance(auth.get("auth_password"), str):
            found.add(auth["auth_password"])
    return found
