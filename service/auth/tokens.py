"""Crossbar-style tokens: signed JWTs whose key lives in CouchDB (docs/kazoo-compatibility.md §10).

KAZOO signs RS256 JWTs with a key from `system_auth`; we sign HS256 JWTs with a secret
kept in the same database, so every service instance sharing the CouchDB agrees and
tokens survive restarts. Each token carries an identity signature derived from the
account's api key: rotating the key, or deleting the account, revokes its tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from functools import lru_cache
from typing import Any

import jwt

from service.couchdb.client import CouchClient, DocumentConflict, DocumentNotFound
from service.kazoo.changes import DocWritten

Json = dict[str, Any]

SIGNING_KEY_DB = "system_auth"
SIGNING_KEY_ID = "connectivity_signing_key"
ISSUER = "kazoo"
ALGORITHM = "HS256"


class TokenInvalid(Exception):
    """Not a token of ours: malformed, tampered, or signed with another key."""


class TokenExpired(TokenInvalid):
    """Correctly signed but past its `exp`: KAZOO reports this one differently."""


class SigningKey:
    """The HMAC secret, read from (or first written to) CouchDB once, then cached."""

    def __init__(self, client: CouchClient) -> None:
        self._client = client
        self._secret: bytes | None = None
        self._lock = asyncio.Lock()
        # Told when this instance writes the key doc (service/kazoo/changes.py).
        self.on_written: DocWritten | None = None

    async def get(self) -> bytes:
        if self._secret is None:
            async with self._lock:
                if self._secret is None:
                    self._secret = await self._load_or_create()
        return self._secret

    async def _load_or_create(self) -> bytes:
        for _attempt in range(3):
            try:
                doc = await self._client.get_doc(SIGNING_KEY_DB, SIGNING_KEY_ID)
                return bytes.fromhex(doc["pvt_secret"])
            except DocumentNotFound:
                pass
            doc = {
                "_id": SIGNING_KEY_ID,
                "pvt_type": "signing_key",
                "pvt_algorithm": ALGORITHM,
                "pvt_secret": secrets.token_hex(32),
            }
            try:
                saved = await self._client.put_doc(SIGNING_KEY_DB, doc)
            except DocumentConflict:
                # Another instance wrote it first; read theirs on the next pass.
                continue
            if self.on_written is not None:
                self.on_written(SIGNING_KEY_DB, {**doc, "_rev": saved.rev}, "created")
            return bytes.fromhex(doc["pvt_secret"])
        raise RuntimeError("could not agree on a signing key")


def identity_signature(secret: bytes, account: Json) -> str:
    """Binds a token to the account's current api key (KAZOO's `identity_sig`)."""
    return _signature(secret, str(account["_id"]), str(account.get("pvt_api_key", "")))


# Every authenticated request checks it, for the same few accounts again and again.
@lru_cache(maxsize=4096)
def _signature(secret: bytes, account_id: str, api_key: str) -> str:
    message = f"{account_id}:{api_key}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def issue_token(secret: bytes, account: Json, *, ttl: int, method: str = "cb_api_auth") -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "account_id": account["_id"],
        "method": method,
        "identity_sig": identity_signature(secret, account),
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: bytes, token: str) -> Json:
    """The claims of a token we signed; raises TokenExpired / TokenInvalid."""
    try:
        claims: Json = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iss", "account_id", "identity_sig"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired() from None
    except jwt.PyJWTError:
        raise TokenInvalid() from None
    if not isinstance(claims.get("account_id"), str):
        raise TokenInvalid()
    return claims


def token_matches_account(secret: bytes, claims: Json, account: Json) -> bool:
    if account.get("pvt_deleted") or account.get("pvt_enabled") is False:
        return False
    return hmac.compare_digest(str(claims.get("identity_sig")), identity_signature(secret, account))


def may_act_on(auth_account: Json, target_account: Json) -> bool:
    """cb_simple_authz: self, an ancestor in the target's `pvt_tree`, or a superduper admin."""
    auth_id = auth_account["_id"]
    if auth_id == target_account["_id"]:
        return True
    if auth_id in (target_account.get("pvt_tree") or []):
        return True
    return auth_account.get("pvt_superduper_admin") is True
