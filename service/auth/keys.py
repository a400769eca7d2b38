"""KAZOO's signing keys, where KAZOO keeps them (§10.2).

* The key id: `system_config/auth` → `default.system_key`, 32 hex characters.
* The key: `system_auth/{kid}`, a `system_key` doc whose `private_key.pem` attachment is
  an unencrypted PKCS#1 RSA 2048 key.
* The system half of every identity signature: `system_config/auth` →
  `default.secret_for_user_signature`.

When they are absent they are created as KAZOO creates them, so a standalone install and
a KAZOO install hold the same documents, and either side's tokens verify on the other.
Two instances creating them at once cannot both win: CouchDB's conflict decides, and the
loser reads the winner's. Verification looks a key up by the token's `kid` and never
creates one: KAZOO would save a fresh key doc for any unknown `kid` a client sends; we
answer 401 and write nothing.

Keys are read once and kept for KEY_CACHE_SECONDS (KAZOO keeps them for an hour idle),
so a key reset elsewhere is seen within that time.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service.couchdb.client import (
    CouchClient,
    CouchError,
    DatabaseNotFound,
    DocumentConflict,
    DocumentNotFound,
)
from service.kazoo import auth_docs
from service.kazoo.changes import DocWritten, saved_action
from service.kazoo.ids import now_gregorian

KEY_CACHE_SECONDS = 60.0
# An unknown kid is asked about again after this long; bounded so that a client sending
# random kids cannot grow the table without end.
UNKNOWN_KID_SECONDS = 5.0
MAX_CACHED_KIDS = 1000
# Attempts at agreeing on a shared value before giving up (each loser re-reads).
CREATE_ATTEMPTS = 5

# What KAZOO writes in `pvt_node`: the node that saved the doc.
NODE = f"connectivity@{socket.gethostname()}"

Json = dict[str, Any]


class KeysUnavailable(CouchError):
    """The signing key could not be read or agreed on: answered 503, retry later."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey


@dataclass(frozen=True)
class _Cached:
    value: rsa.RSAPublicKey | None
    until: float


# Gives an identity doc (account, user or device, in the account's database) a
# `pvt_signature_secret` if it has none, saves it, and answers the doc as saved.
SecretSaver = Callable[[str, Json], Awaitable[Json]]


class AuthKeys:
    """The key holder tokens are issued and verified with: the system key (to sign),
    any kid's public key (to verify), the user-signature secret, the token lifetime,
    and how an identity without a signature secret gets one.

    `ensure_databases` creates the system databases when CouchDB has none yet."""

    def __init__(
        self,
        client: CouchClient,
        *,
        ensure_databases: Callable[[], Awaitable[None]],
        ensure_identity_secret: SecretSaver,
        token_ttl: int,
    ) -> None:
        self._client = client
        # Told of every key or config doc this instance writes (service/kazoo/changes.py).
        self.on_written: DocWritten | None = None
        self._ensure_databases = ensure_databases
        self.ensure_identity_secret = ensure_identity_secret
        self.token_ttl = token_ttl
        self._lock = asyncio.Lock()
        self._config: tuple[str, str, float] | None = None  # (kid, secret, until)
        self._signing: SigningKey | None = None
        self._public: OrderedDict[str, _Cached] = OrderedDict()

    # -- signing -------------------------------------------------------------------------

    async def signing_key(self) -> SigningKey:
        kid, _secret = await self._auth_config()
        signing = self._signing
        if signing is not None and signing.kid == kid:
            return signing
        async with self._lock:
            if self._signing is None or self._signing.kid != kid:
                self._signing = SigningKey(kid, await self._load_or_create_key(kid))
                self._remember(kid, self._signing.private_key.public_key())
            return self._signing

    async def user_signature_secret(self) -> str:
        _kid, secret = await self._auth_config()
        return secret

    # -- verifying -----------------------------------------------------------------------

    async def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        """The public key of an existing key doc; None when there is none (nothing is
        written)."""
        if not auth_docs.is_acceptable_key_id(kid):
            return None
        cached = self._public.get(kid)
        if cached is not None and cached.until > time.monotonic():
            return cached.value
        private = await self._read_key(kid)
        public = private.public_key() if private is not None else None
        self._remember(kid, public)
        return public

    def _remember(self, kid: str, public: rsa.RSAPublicKey | None) -> None:
        before = self._public.get(kid)
        if before is not None and _same_key(before.value, public):
            # The same object as long as the key is unchanged: verified tokens
            # (auth/token_cache.py) stay verified across re-reads.
            public = before.value
        ttl = KEY_CACHE_SECONDS if public is not None else UNKNOWN_KID_SECONDS
        self._public[kid] = _Cached(public, time.monotonic() + ttl)
        self._public.move_to_end(kid)
        while len(self._public) > MAX_CACHED_KIDS:
            self._public.popitem(last=False)

    # -- system_config/auth --------------------------------------------------------------

    async def _auth_config(self) -> tuple[str, str]:
        config = self._config
        if config is not None and config[2] > time.monotonic():
            return config[0], config[1]
        async with self._lock:
            config = self._config
            if config is None or config[2] <= time.monotonic():
                kid, secret = await self._load_or_create_config()
                config = (kid, secret, time.monotonic() + KEY_CACHE_SECONDS)
                self._config = config
        return config[0], config[1]

    async def _load_or_create_config(self) -> tuple[str, str]:
        db, doc_id = auth_docs.SYSTEM_CONFIG_DB, auth_docs.AUTH_CONFIG_ID
        for _attempt in range(CREATE_ATTEMPTS):
            doc = await self._get(db, doc_id)
            kid = auth_docs.config_value(doc or {}, auth_docs.SYSTEM_KEY)
            secret = auth_docs.config_value(doc or {}, auth_docs.USER_SIGNATURE_SECRET)
            if kid is not None and secret is not None:
                return kid, secret
            missing = {}
            if kid is None:
                missing[auth_docs.SYSTEM_KEY] = auth_docs.random_hex()
            if secret is None:
                missing[auth_docs.USER_SIGNATURE_SECRET] = auth_docs.random_hex()
            updated = auth_docs.with_config_defaults(doc, missing, now=now_gregorian(), node=NODE)
            try:
                await self._put(db, updated)
            except DocumentConflict:
                continue  # someone else saved it first: theirs is read on the next pass
            return (
                kid or missing[auth_docs.SYSTEM_KEY],
                secret or missing[auth_docs.USER_SIGNATURE_SECRET],
            )
        raise KeysUnavailable("could not agree on system_config/auth")

    # -- system_auth/{kid} ---------------------------------------------------------------

    async def _read_key(self, kid: str) -> rsa.RSAPrivateKey | None:
        doc = await self._get(auth_docs.SYSTEM_AUTH_DB, kid, attachments="true")
        pem = auth_docs.key_attachment(doc) if doc is not None else None
        return _private_key(pem) if pem is not None else None

    async def _load_or_create_key(self, kid: str) -> rsa.RSAPrivateKey:
        for _attempt in range(CREATE_ATTEMPTS):
            doc = await self._get(auth_docs.SYSTEM_AUTH_DB, kid, attachments="true")
            pem = auth_docs.key_attachment(doc) if doc is not None else None
            if pem is not None:
                key = _private_key(pem)
                if key is None:
                    raise KeysUnavailable(f"system_auth/{kid} does not hold an RSA key")
                return key
            key = await asyncio.to_thread(_new_private_key)
            new_doc = auth_docs.system_key_doc(kid, _pkcs1(key), now=now_gregorian(), node=NODE)
            if doc is not None:
                # The doc without its attachment (KAZOO's load_private_key_attachment/1
                # then adds one): keep the doc, add the key at its revision.
                new_doc = {**doc, "_attachments": new_doc["_attachments"]}
            try:
                await self._put(auth_docs.SYSTEM_AUTH_DB, new_doc)
            except DocumentConflict:
                continue
            return key
        raise KeysUnavailable(f"could not agree on system_auth/{kid}")

    # -- CouchDB -------------------------------------------------------------------------

    async def _get(self, db: str, doc_id: str, **params: str) -> Json | None:
        try:
            return await self._client.get_doc(db, doc_id, **params)
        except (DocumentNotFound, DatabaseNotFound):
            return None

    async def _put(self, db: str, doc: Json) -> None:
        try:
            saved = await self._client.put_doc(db, doc)
        except DatabaseNotFound:
            await self._ensure_databases()
            saved = await self._client.put_doc(db, doc)
        if self.on_written is not None:
            # The event names the doc; its body (the key) never goes on the wire.
            self.on_written(db, {**doc, "_rev": saved.rev}, saved_action(doc))


def _same_key(a: rsa.RSAPublicKey | None, b: rsa.RSAPublicKey | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.public_numbers() == b.public_numbers()


def _new_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(
        public_exponent=auth_docs.RSA_PUBLIC_EXPONENT, key_size=auth_docs.RSA_KEY_BITS
    )


def _pkcs1(key: rsa.RSAPrivateKey) -> bytes:
    """`-----BEGIN RSA PRIVATE KEY-----`: KAZOO's from_pem/1 reads only this form."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _private_key(pem: bytes) -> rsa.RSAPrivateKey | None:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, rsa.RSAPrivateKey) else None
