"""Revoked tokens (`DELETE /v2/token_auth`), shared through CouchDB's `system_auth`.

One doc per revoked token id (`jti`), so every service instance sees the revocation.
A revocation is final, so positive answers are cached for the token's lifetime; a
"not revoked" answer is cached briefly, so another instance's revocation takes effect
within `negative_ttl` seconds while a busy token costs one CouchDB read per interval.
"""

from __future__ import annotations

import contextlib
import time

from service.couchdb.client import CouchClient, DocumentConflict, DocumentNotFound

REVOCATION_DB = "system_auth"


def _doc_id(jti: str) -> str:
    return f"revoked_token:{jti}"


class RevocationList:
    def __init__(self, client: CouchClient, *, negative_ttl: float = 2.0) -> None:
        self._client = client
        self._negative_ttl = negative_ttl
        self._revoked: dict[str, float] = {}  # jti -> token expiry (unix seconds)
        self._checked: dict[str, float] = {}  # jti -> when "not revoked" was last read

    async def revoke(self, jti: str, expires_at: float, account_id: str) -> None:
        doc = {
            "_id": _doc_id(jti),
            "pvt_type": "revoked_token",
            "pvt_account_id": account_id,
            "pvt_expires": int(expires_at),
        }
        # A conflict means it was revoked already.
        with contextlib.suppress(DocumentConflict):
            await self._client.put_doc(REVOCATION_DB, doc)
        self._remember(jti, expires_at)

    async def is_revoked(self, jti: str) -> bool:
        now = time.time()
        if jti in self._revoked:
            return True
        checked = self._checked.get(jti)
        if checked is not None and now - checked < self._negative_ttl:
            return False
        try:
            doc = await self._client.get_doc(REVOCATION_DB, _doc_id(jti))
        except DocumentNotFound:
            self._checked[jti] = now
            self._prune(now)
            return False
        self._remember(jti, float(doc.get("pvt_expires", now + 3600)))
        return True

    def _remember(self, jti: str, expires_at: float) -> None:
        self._revoked[jti] = expires_at
        self._checked.pop(jti, None)

    def _prune(self, now: float) -> None:
        if len(self._checked) > 10_000:
            self._checked = {k: v for k, v in self._checked.items() if now - v < self._negative_ttl}
        if len(self._revoked) > 10_000:
            self._revoked = {k: v for k, v in self._revoked.items() if v > now}
