"""Revoked tokens (`DELETE /v2/token_auth`), shared through CouchDB's `system_auth`.

One doc per revoked token (named by tokens.token_id: KAZOO's tokens carry no id of
their own), so every service instance sees the revocation.
A revocation is final, so positive answers are cached for the token's lifetime; a
"not revoked" answer is cached briefly, so another instance's revocation takes effect
within `negative_ttl` seconds while a busy token costs one CouchDB read per interval.
"""

from __future__ import annotations

import contextlib
import time

from service.couchdb.client import CouchClient, DocumentConflict, DocumentNotFound

REVOCATION_DB = "system_auth"


def _doc_id(token_id: str) -> str:
    return f"revoked_token:{token_id}"


class RevocationList:
    def __init__(self, client: CouchClient, *, negative_ttl: float = 2.0) -> None:
        self._client = client
        self._negative_ttl = negative_ttl
        self._revoked: dict[str, float] = {}  # token_id -> token expiry (unix seconds)
        self._checked: dict[str, float] = {}  # token_id -> when "not revoked" was last read

    async def revoke(self, token_id: str, expires_at: float | None, account_id: str) -> None:
        doc: dict[str, object] = {
            "_id": _doc_id(token_id),
            "pvt_type": "revoked_token",
            "pvt_account_id": account_id,
        }
        if expires_at is not None:
            doc["pvt_expires"] = int(expires_at)
        # A conflict means it was revoked already.
        with contextlib.suppress(DocumentConflict):
            await self._client.put_doc(REVOCATION_DB, doc)
        self._remember(token_id, expires_at if expires_at is not None else float("inf"))

    async def is_revoked(self, token_id: str) -> bool:
        now = time.time()
        if token_id in self._revoked:
            return True
        checked = self._checked.get(token_id)
        if checked is not None and now - checked < self._negative_ttl:
            return False
        try:
            doc = await self._client.get_doc(REVOCATION_DB, _doc_id(token_id))
        except DocumentNotFound:
            self._checked[token_id] = now
            self._prune(now)
            return False
        expires = doc.get("pvt_expires")
        self._remember(token_id, float(expires) if isinstance(expires, int) else float("inf"))
        return True

    def _remember(self, token_id: str, expires_at: float) -> None:
        self._revoked[token_id] = expires_at
        self._checked.pop(token_id, None)

    def _prune(self, now: float) -> None:
        if len(self._checked) > 10_000:
            self._checked = {k: v for k, v in self._checked.items() if now - v < self._negative_ttl}
        if len(self._revoked) > 10_000:
            self._revoked = {k: v for k, v in self._revoked.items() if v > now}
