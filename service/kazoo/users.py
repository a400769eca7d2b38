"""KAZOO's user documents and logins, as pure functions (cb_users, cb_user_auth).

A user lives in its account's database with `pvt_type: user`. Its login name is stored
lower-cased, and the password only as two hashes of "username:password"
(`cb_modules_util:pass_hashes/2`): `pvt_md5_auth` (md5, what Monster UI sends as
`credentials`) and `pvt_sha1_auth` (sha1, for `method: sha`). A password is never stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from service.kazoo.documents import public_view

Json = dict[str, Any]

USER_TYPE = "user"
PRIV_LEVELS = ("admin", "user")
# The fields of the credentials; the write-only `password` and a client's own
# `credentials` (an md5 it computed) never reach the stored document.
WRITE_ONLY = ("password", "credentials")
HASH_FIELDS = ("pvt_md5_auth", "pvt_sha1_auth")

_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]")


def pass_hashes(username: str, password: str) -> tuple[str, str]:
    """(md5, sha1) hex of "username:password", as KAZOO stores them."""
    creds = f"{username}:{password}".encode()
    return hashlib.md5(creds).hexdigest(), hashlib.sha1(creds).hexdigest()


def login_credentials(username: str, password: str) -> str:
    """What Monster UI sends as `credentials`: md5 of the lower-cased username and password."""
    return pass_hashes(username.lower(), password)[0]


def normalize_account_name(name: str) -> str:
    """kz_util:normalize_account_name/1: lower-cased, letters and digits only."""
    return _NOT_ALPHANUMERIC.sub("", name.lower())


def new_signature_secret() -> str:
    # KAZOO's per-identity `pvt_signature_secret` (kz_binary:rand_hex(16)); a new one
    # revokes the identity's tokens (crossbar_auth:reset_identity_secret/1).
    return secrets.token_hex(16)


class CredentialsProblem(Exception):
    """A user write whose username/password pair KAZOO refuses; `field` and `code` say
    which validation error to report."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Credentials:
    """What a write does to the stored hashes, decided before the save."""

    username: str | None
    password: str | None
    imported_md5: str | None


def credentials_of(body: Json) -> Credentials:
    username = body.get("username")
    password = body.get("password")
    imported = body.get("credentials")
    return Credentials(
        username=username.lower() if isinstance(username, str) and username else None,
        password=password if isinstance(password, str) and password else None,
        imported_md5=imported if isinstance(imported, str) and imported else None,
    )


def apply_credentials(doc: Json, stored: Json | None, creds: Credentials) -> Json:
    """Sets the hashes on the doc about to be saved, as cb_users does (in place).

    * `credentials` (an md5 the client computed) replaces `pvt_md5_auth` and drops the sha1;
    * a changed username needs the password, since the hashes include the username;
    * a password (re)hashes both, and rotates the identity secret (its tokens stop);
    * no username at all leaves no way to log in: both hashes go.
    """
    for key in WRITE_ONLY:
        doc.pop(key, None)
    if creds.username is not None:
        doc["username"] = creds.username
    if creds.imported_md5 is not None:
        doc["pvt_md5_auth"] = creds.imported_md5
        doc.pop("pvt_sha1_auth", None)
    current = (stored or {}).get("username")
    renamed = creds.username is not None and current is not None and current != creds.username
    if renamed and creds.password is None and creds.imported_md5 is None:
        raise CredentialsProblem(
            "password", "required", "The password must be provided when updating the user name"
        )
    if creds.password is not None:
        if creds.username is None:
            raise CredentialsProblem(
                "username", "required", "The user name must be provided when updating the password"
            )
        doc["pvt_md5_auth"], doc["pvt_sha1_auth"] = pass_hashes(creds.username, creds.password)
        doc["pvt_signature_secret"] = new_signature_secret()
    elif creds.username is None and "username" not in doc:
        for key in HASH_FIELDS:
            doc.pop(key, None)
    return doc


def without_secrets(validation_errors: Json) -> Json:
    """Validation errors with the rejected value of a password or credentials left out:
    a 400 must not echo a secret (KAZOO's errors carry `value` and `cause`)."""
    cleaned = dict(validation_errors)
    for key in WRITE_ONLY:
        if isinstance(cleaned.get(key), dict):
            cleaned[key] = {
                code: {k: v for k, v in detail.items() if k not in ("value", "cause")}
                for code, detail in cleaned[key].items()
            }
    return cleaned


def user_view(doc: Json) -> Json:
    """The API's view of a user: public fields only, so neither hash ever leaves."""
    view = public_view(doc)
    for key in WRITE_ONLY:
        view.pop(key, None)
    return view
