"""KAZOO's token rules as pure functions: where its keys live, the shape of the documents
it writes for them, and the identity signature (§10.2).

Nothing here talks to CouchDB; `auth/keys.py` and `auth/tokens.py` compose these. The
names follow KAZOO's `kazoo_auth` (kz_auth_keys, kz_auth_identity) and `kapps_config`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from functools import lru_cache
from typing import Any

from service.kazoo.documents import public_fields

Json = dict[str, Any]

SYSTEM_CONFIG_DB = "system_config"
SYSTEM_AUTH_DB = "system_auth"
# The `system_config` doc of the auth app, and its two settings (kazoo_auth.hrl).
AUTH_CONFIG_ID = "auth"
SYSTEM_KEY = "system_key"
USER_SIGNATURE_SECRET = "secret_for_user_signature"
CONFIG_DEFAULT = "default"

KEY_TYPE = "system_key"
KEY_ATTACHMENT = "private_key.pem"
KEY_CONTENT_TYPE = "application/x-pem-file"
# ?RSA_KEY_SIZE; the public exponent of kz_auth_rsa:gen_rsa/2.
RSA_KEY_BITS = 2048
RSA_PUBLIC_EXPONENT = 65537

ISSUER = "kazoo"
# kz_auth_jwt: the algorithms a token may name; KAZOO signs with the first.
ALGORITHMS = ("RS256", "RS384", "RS512")
SIGNING_ALGORITHM = "RS256"


def random_hex() -> str:
    """kz_binary:rand_hex(16): the form of key ids and of every signature secret."""
    return secrets.token_hex(16)


def is_acceptable_key_id(kid: Any) -> bool:
    """A `kid` we may look up: a plain document id, never one of CouchDB's own."""
    return isinstance(kid, str) and 0 < len(kid) <= 128 and not kid.startswith("_")


# -- documents KAZOO writes (kz_doc:update_pvt_parameters/3) ----------------------------


def document_hash(doc: Json) -> str:
    """kz_doc:calculate_document_hash/1: md5 of the public fields (with `id`) and the
    attachments, as compact JSON. Computed before any attachment exists, as KAZOO does."""
    public = {**public_fields(doc), "id": doc.get("_id")}
    content: Json = {"public": public}
    if "_attachments" in doc:
        content["attachments"] = doc["_attachments"]
    encoded = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
    return hashlib.md5(encoded.encode()).hexdigest()


def _stamp(doc: Json, db: str, *, now: int, node: str) -> Json:
    doc["pvt_account_id"] = db
    doc["pvt_account_db"] = db
    if "_rev" not in doc:
        doc["pvt_created"] = now
    doc["pvt_modified"] = now
    doc["pvt_node"] = node
    doc["pvt_document_hash"] = document_hash(doc)
    return doc


def system_key_doc(kid: str, pem: bytes, *, now: int, node: str) -> Json:
    """kz_auth_keys:new_private_key/2 then save_private_key/2, in one write: the key
    doc in `system_auth`, with its PKCS#1 PEM as the `private_key.pem` attachment."""
    doc = _stamp({"pvt_type": KEY_TYPE, "_id": kid}, SYSTEM_AUTH_DB, now=now, node=node)
    doc["_attachments"] = {
        KEY_ATTACHMENT: {
            "content_type": KEY_CONTENT_TYPE,
            "data": base64.b64encode(pem).decode("ascii"),
        }
    }
    return doc


def key_attachment(doc: Json) -> bytes | None:
    """The PEM of a key doc read with `attachments=true`, or None if it has none."""
    attachment = (doc.get("_attachments") or {}).get(KEY_ATTACHMENT)
    if not isinstance(attachment, dict) or not isinstance(attachment.get("data"), str):
        return None
    try:
        return base64.b64decode(attachment["data"], validate=True)
    except ValueError:
        return None


def config_value(doc: Json, key: str) -> str | None:
    """`default.<key>` of a `system_config` doc, when it is a non-empty string.

    KAZOO looks at `<node>.<key>` and `<zone>.<key>` first; those name KAZOO's own nodes
    and zones, which this service is not one of."""
    section = doc.get(CONFIG_DEFAULT)
    value = section.get(key) if isinstance(section, dict) else None
    return value if isinstance(value, str) and value else None


def with_config_defaults(doc: Json | None, values: dict[str, str], *, now: int, node: str) -> Json:
    """kapps_config:set_default/3 for each of `values` (a new doc when `doc` is None)."""
    updated: Json = dict(doc) if doc is not None else {"_id": AUTH_CONFIG_ID}
    section = updated.get(CONFIG_DEFAULT)
    updated[CONFIG_DEFAULT] = {**(section if isinstance(section, dict) else {}), **values}
    updated["pvt_type"] = "config"
    return _stamp(updated, SYSTEM_CONFIG_DB, now=now, node=node)


# -- identity signatures (kz_auth_identity) ---------------------------------------------


def identity_of(claims: Json) -> tuple[str, str] | None:
    """(id of the doc holding the secret, signed identity), in kz_auth_identity's order:
    a device, else the user (`owner_id`), else the account itself. None without an
    account. All three docs live in the account's database."""
    account_id = claims.get("account_id")
    if not isinstance(account_id, str):
        return None
    for claim in ("device_id", "owner_id"):
        value = claims.get(claim)
        if isinstance(value, str) and value:
            return value, value
    return account_id, account_id


# Every authenticated request checks one, for the same few identities again and again.
@lru_cache(maxsize=4096)
def identity_signature(identity_secret: str, system_secret: str, identity: str) -> str:
    """base64url, unpadded, of HMAC-SHA256 keyed by the two hex strings joined as they
    are (not hex-decoded), over the identity id."""
    key = (identity_secret + system_secret).encode()
    digest = hmac.new(key, identity.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def signature_secret(doc: Json) -> str | None:
    secret = doc.get("pvt_signature_secret")
    return secret if isinstance(secret, str) and secret else None
