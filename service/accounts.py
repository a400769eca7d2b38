"""Account documents, stored as KAZOO stores them (BEHAVIOUR.md §7.1, §10).

The account doc (id = account id) lives in the account's own database
`account/xx/yy/rest`, with a copy in the `accounts` database that the lookups
(`_design/accounts`) index.
"""

from __future__ import annotations

import copy
import re
import secrets
from dataclasses import dataclass
from typing import Any

from .couchdb import (
    CouchClient,
    DatabaseNotFound,
    DocumentConflict,
    DocumentNotFound,
)
from .design_docs import ensure_design_docs
from .kazoo_ids import account_db, encoded_account_db, new_id, now_gregorian

Json = dict[str, Any]

ACCOUNTS_DB = "accounts"
SYSTEM_AUTH_DB = "system_auth"
# Our own: one doc per claimed realm (id = lower-cased realm), so that two concurrent
# creations with the same realm cannot both win. KAZOO only checks a view (racy).
REALMS_DB = "connectivity_realms"

# Only server admins may read or write; CouchDB 3 defaults to this, the embedded
# server does not (EMBEDDED.md), so it is always set explicitly.
ADMIN_ONLY_SECURITY: Json = {
    "admins": {"names": [], "roles": ["_admin"]},
    "members": {"names": [], "roles": ["_admin"]},
}

_REALM = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")


class AccountError(Exception):
    """An account operation the caller asked for cannot be done; the text says why."""


class RealmTaken(AccountError):
    pass


class ParentNotFound(AccountError):
    pass


def valid_realm(realm: str) -> bool:
    return len(realm) <= 253 and bool(_REALM.match(realm))


def generated_realm(account_id: str) -> str:
    return f"{account_id[:6]}.sip.connectivity.local"


def new_api_key() -> str:
    # KAZOO's api keys are 32 random bytes as hex (cb_accounts, kz_binary:rand_hex/1).
    return secrets.token_hex(32)


@dataclass(frozen=True)
class NewAccount:
    doc: Json

    @property
    def summary(self) -> Json:
        return {
            "account_id": self.doc["_id"],
            "name": self.doc["name"],
            "realm": self.doc["realm"],
            "api_key": self.doc["pvt_api_key"],
        }


class AccountStore:
    def __init__(self, client: CouchClient) -> None:
        self.client = client

    async def ensure_system_databases(self) -> None:
        """The databases every installation has, with admin-only security."""
        for db in (ACCOUNTS_DB, SYSTEM_AUTH_DB, REALMS_DB):
            if await self.client.ensure_db(db):
                await self.client.put_security(db, ADMIN_ONLY_SECURITY)
        await ensure_design_docs(self.client, ACCOUNTS_DB, "accounts")

    async def get(self, account_id: str) -> Json | None:
        """The account doc from its own database, soft-deleted ones included."""
        try:
            return await self.client.get_doc(account_db(account_id), account_id)
        except (DocumentNotFound, DatabaseNotFound):
            return None

    async def find_by_api_key(self, api_key: str) -> Json | None:
        rows = await self._lookup("listing_by_api", api_key)
        for row in rows:
            # The account's own doc is authoritative; the `accounts` copy may lag.
            account = await self.get(row["id"])
            if account and not account.get("pvt_deleted") and account.get("pvt_api_key") == api_key:
                return account
        return None

    async def realm_in_use(self, realm: str) -> bool:
        return bool(await self._lookup("listing_by_realm", realm.lower()))

    async def _lookup(self, view: str, key: str) -> list[Json]:
        try:
            result = await self.client.view(ACCOUNTS_DB, "accounts", view, key=key, limit=10)
        except (DocumentNotFound, DatabaseNotFound):
            # First use on a fresh CouchDB, or CouchDB was down at start-up.
            await self.ensure_system_databases()
            result = await self.client.view(ACCOUNTS_DB, "accounts", view, key=key, limit=10)
        return list(result.get("rows", []))

    async def create(self, name: str, realm: str | None, parent_id: str | None) -> NewAccount:
        parent = await self._parent(parent_id)
        account_id = new_id()
        realm = realm or generated_realm(account_id)
        if not valid_realm(realm):
            raise AccountError(f"realm {realm!r} is not a valid SIP domain")
        await self._claim_realm(realm, account_id)
        doc = self._new_doc(account_id, name, realm, parent)
        db = account_db(account_id)
        await self.client.create_db(db)
        await self.client.put_security(db, ADMIN_ONLY_SECURITY)
        await ensure_design_docs(self.client, db, "account")
        saved = await self.client.put_doc(db, doc)
        doc["_rev"] = saved.rev
        await self._save_accounts_copy(doc)
        return NewAccount(doc=doc)

    async def _parent(self, parent_id: str | None) -> Json | None:
        if parent_id is None:
            return None
        parent = await self.get(parent_id)
        if parent is None or parent.get("pvt_deleted"):
            raise ParentNotFound(f"parent account {parent_id} does not exist")
        return parent

    async def _claim_realm(self, realm: str, account_id: str) -> None:
        if await self.realm_in_use(realm):
            raise RealmTaken(f"realm {realm} is already in use")
        claim = {"_id": realm.lower(), "account_id": account_id, "pvt_type": "realm_claim"}
        try:
            await self.client.put_doc(REALMS_DB, claim)
        except DocumentConflict:
            raise RealmTaken(f"realm {realm} is already in use") from None

    @staticmethod
    def _new_doc(account_id: str, name: str, realm: str, parent: Json | None) -> Json:
        now = now_gregorian()
        tree = [*parent.get("pvt_tree", []), parent["_id"]] if parent is not None else []
        return {
            "_id": account_id,
            "name": name,
            "realm": realm,
            "pvt_type": "account",
            "pvt_vsn": "1",
            "pvt_account_id": account_id,
            "pvt_account_db": encoded_account_db(account_id),
            "pvt_tree": tree,
            "pvt_api_key": new_api_key(),
            # A top-level account is the installation's master: KAZOO's superduper admin.
            "pvt_superduper_admin": parent is None,
            "pvt_enabled": True,
            "pvt_created": now,
            "pvt_modified": now,
        }

    async def _save_accounts_copy(self, doc: Json) -> None:
        copy_doc = copy.deepcopy(doc)
        copy_doc.pop("_rev", None)
        try:
            existing = await self.client.get_doc(ACCOUNTS_DB, doc["_id"])
            copy_doc["_rev"] = existing["_rev"]
        except DocumentNotFound:
            pass
        await self.client.put_doc(ACCOUNTS_DB, copy_doc)
