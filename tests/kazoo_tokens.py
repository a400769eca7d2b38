"""KAZOO's token algorithm, written for these tests from KAZOO's own rules (§10.2), with
no code of the service's: the service's tokens must verify here, and tokens made here
must be accepted by the service, exactly as between the service and a KAZOO node
sharing its CouchDB.

* Keys: `system_config/auth` → `default.system_key` (the kid) and
  `default.secret_for_user_signature`; `system_auth/{kid}` holds the PKCS#1 RSA key as
  its `private_key.pem` attachment (`application/x-pem-file`).
* Token: base64url (no padding) of the compact header `{"alg":"RS256","typ":"JWT",
  "kid":…}` and of the claims, RSASSA-PKCS1-v1_5 / SHA-256 over `h64.p64`.
* `identity_sig`: base64url of HMAC-SHA256, keyed by the identity doc's
  `pvt_signature_secret` followed by `secret_for_user_signature` (the hex strings, not
  decoded), over the identity id (the user for user logins, else the account).

The documents planted here have the shapes KAZOO writes (accounts in both databases,
users in the account database), so the service meets what a KAZOO install holds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from service.couchdb.client import CouchClient, DatabaseNotFound, DocumentNotFound

Json = dict[str, Any]

GREGORIAN_OFFSET = 62_167_219_200


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def rand_hex() -> str:
    return secrets.token_hex(16)


def account_db_name(account_id: str) -> str:
    return f"account/{account_id[:2]}/{account_id[2:4]}/{account_id[4:]}"


def identity_sig(signature_secret: str, system_secret: str, identity: str) -> str:
    key = (signature_secret + system_secret).encode()
    return b64url(hmac.new(key, identity.encode(), hashlib.sha256).digest())


def mint(
    key: rsa.RSAPrivateKey,
    kid: str,
    claims: Json,
    *,
    header: Json | None = None,
) -> str:
    head = header if header is not None else {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing_input = f"{b64url(compact(head))}.{b64url(compact(claims))}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


@dataclass(frozen=True)
class Decoded:
    header_raw: bytes
    header: Json
    claims_raw: bytes
    claims: Json


def verify(token: str, public_key: rsa.RSAPublicKey) -> Decoded:
    """kz_auth_jwt's checks: three parts, RS256 signature, `exp` in the future."""
    parts = token.split(".")
    assert len(parts) == 3, "a JWT has three parts"
    header_raw, claims_raw = unb64url(parts[0]), unb64url(parts[1])
    header = json.loads(header_raw)
    assert header["alg"] == "RS256"
    try:
        public_key.verify(
            unb64url(parts[2]),
            f"{parts[0]}.{parts[1]}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        raise AssertionError("the signature does not verify") from None
    claims = json.loads(claims_raw)
    assert claims["iss"] == "kazoo"
    if "exp" in claims:
        assert claims["exp"] > time.time()
    return Decoded(header_raw, header, claims_raw, claims)


def pkcs1_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# -- what KAZOO keeps in CouchDB ---------------------------------------------------------


async def _get(couch: CouchClient, db: str, doc_id: str, **params: str) -> Json | None:
    try:
        return await couch.get_doc(db, doc_id, **params)
    except (DocumentNotFound, DatabaseNotFound):
        return None


async def read_key(couch: CouchClient, kid: str) -> rsa.RSAPrivateKey | None:
    doc = await _get(couch, "system_auth", kid, attachments="true")
    if doc is None or "private_key.pem" not in doc.get("_attachments", {}):
        return None
    pem = base64.b64decode(doc["_attachments"]["private_key.pem"]["data"])
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@dataclass(frozen=True)
class KazooKeys:
    kid: str
    key: rsa.RSAPrivateKey
    system_secret: str


async def system_keys(couch: CouchClient) -> KazooKeys:
    """The installation's system key and user-signature secret, as a KAZOO node reads them."""
    config = await _get(couch, "system_config", "auth")
    assert config is not None, "system_config/auth exists once tokens have been issued"
    kid = config["default"]["system_key"]
    key = await read_key(couch, kid)
    assert key is not None
    return KazooKeys(kid, key, config["default"]["secret_for_user_signature"])


async def plant_key_doc(couch: CouchClient, kid: str, key: rsa.RSAPrivateKey) -> None:
    """`system_auth/{kid}` as kz_auth_keys writes it."""
    now = int(time.time()) + GREGORIAN_OFFSET
    doc = {
        "_id": kid,
        "pvt_type": "system_key",
        "pvt_account_db": "system_auth",
        "pvt_account_id": "system_auth",
        "pvt_created": now,
        "pvt_modified": now,
        "pvt_node": "kazoo_apps@kazoo.test",
        "_attachments": {
            "private_key.pem": {
                "content_type": "application/x-pem-file",
                "data": base64.b64encode(pkcs1_pem(key)).decode(),
            }
        },
    }
    await couch.ensure_db("system_auth")
    await couch.put_doc("system_auth", doc)


async def plant_auth_config(couch: CouchClient, kid: str, system_secret: str) -> None:
    now = int(time.time()) + GREGORIAN_OFFSET
    await couch.ensure_db("system_config")
    await couch.put_doc(
        "system_config",
        {
            "_id": "auth",
            "default": {"system_key": kid, "secret_for_user_signature": system_secret},
            "pvt_type": "config",
            "pvt_account_db": "system_config",
            "pvt_account_id": "system_config",
            "pvt_created": now,
            "pvt_modified": now,
            "pvt_node": "kazoo_apps@kazoo.test",
        },
    )


async def plant_account(
    couch: CouchClient,
    name: str,
    *,
    parent: Json | None = None,
    **extra: Any,
) -> Json:
    """An account doc in its own database and in `accounts`, as cb_accounts saves it."""
    account_id = rand_hex()
    db = account_db_name(account_id)
    now = int(time.time()) + GREGORIAN_OFFSET
    tree = [*parent.get("pvt_tree", []), parent["_id"]] if parent else []
    doc = {
        "_id": account_id,
        "name": name,
        "realm": f"{account_id[:8]}.kazoo.test",
        "pvt_type": "account",
        "pvt_vsn": "1",
        "pvt_account_id": account_id,
        "pvt_account_db": quote(db, safe=""),
        "pvt_tree": tree,
        "pvt_api_key": secrets.token_hex(32),
        "pvt_signature_secret": rand_hex(),
        "pvt_enabled": True,
        "pvt_superduper_admin": parent is None,
        "pvt_created": now,
        "pvt_modified": now,
        **extra,
    }
    await couch.ensure_db("accounts")
    await couch.create_db(db)
    saved = await couch.put_doc(db, doc)
    await couch.put_doc("accounts", dict(doc))
    return {**doc, "_rev": saved.rev}


async def plant_user(couch: CouchClient, account_id: str, username: str = "admin") -> Json:
    """A user doc in the account database (kzd_users), with its signature secret."""
    user_id = rand_hex()
    now = int(time.time()) + GREGORIAN_OFFSET
    password = secrets.token_hex(8)
    doc = {
        "_id": user_id,
        "username": username,
        "first_name": "Ada",
        "last_name": "Admin",
        "priv_level": "admin",
        "enabled": True,
        "pvt_type": "user",
        "pvt_md5_auth": hashlib.md5(f"{username}:{password}".encode()).hexdigest(),
        "pvt_sha1_auth": hashlib.sha1(f"{username}:{password}".encode()).hexdigest(),
        "pvt_signature_secret": rand_hex(),
        "pvt_account_id": account_id,
        "pvt_account_db": quote(account_db_name(account_id), safe=""),
        "pvt_created": now,
        "pvt_modified": now,
    }
    saved = await couch.put_doc(account_db_name(account_id), doc)
    return {**doc, "_rev": saved.rev}


def user_token(keys: KazooKeys, account: Json, user: Json, *, ttl: int = 3600, **extra: Any) -> str:
    """What cb_user_auth issues: `owner_id` set, the user's secret signs the identity."""
    claims = {
        "iss": "kazoo",
        "identity_sig": identity_sig(user["pvt_signature_secret"], keys.system_secret, user["_id"]),
        "account_id": account["_id"],
        "owner_id": user["_id"],
        **extra,
        "method": "cb_user_auth",
        "exp": int(time.time()) + ttl,
    }
    return mint(keys.key, keys.kid, claims)


def api_token(keys: KazooKeys, account: Json, *, ttl: int = 3600) -> str:
    """What cb_api_auth issues: no `owner_id`, the account's secret signs the identity."""
    claims = {
        "iss": "kazoo",
        "identity_sig": identity_sig(
            account["pvt_signature_secret"], keys.system_secret, account["_id"]
        ),
        "account_id": account["_id"],
        "method": "cb_api_auth",
        "exp": int(time.time()) + ttl,
    }
    return mint(keys.key, keys.kid, claims)
