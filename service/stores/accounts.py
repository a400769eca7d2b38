"""Account documents, stored as KAZOO stores them (docs/kazoo-compatibility.md §7.1, §10).

The account doc (id = account id) lives in the account's own database
`account/xx/yy/rest`, with a copy in the `accounts` database that the lookups
(`_design/connectivity_accounts`) index.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.couchdb.client import CouchClient, DatabaseNotFound, DocumentConflict, DocumentNotFound
from service.couchdb.design_docs import ensure_design_docs
from service.kazoo.auth_docs import SYSTEM_AUTH_DB, SYSTEM_CONFIG_DB, random_hex
from service.kazoo.changes import Action, DocWritten, saved_action
from service.kazoo.ids import ACCOUNTS_DB, account_db, encoded_account_db, new_id, now_gregorian
from service.stores import listing

Json = dict[str, Any]

# Named apart from KAZOO's own `_design/accounts`, which a replicated `accounts` database
# brings along: neither side overwrites the other's views.
ACCOUNTS_DDOC = "connectivity_accounts"
# The lookups of `PUT /v2/user_auth`, in a design doc of their own: a service instance
# of an older version, sharing the CouchDB, rewrites `connectivity_accounts` to the
# views it knows and would take these away.
LOGINS_DDOC = "connectivity_logins"
# Our own: one doc per claimed realm (id = lower-cased realm), so that two concurrent
# creations with the same realm cannot both win. KAZOO only checks a view (racy).
REALMS_DB = "connectivity_realms"

# Only server admins may read or write; CouchDB 3 defaults to this, the embedded
# server does not (docs/embedded-couchdb.md), so it is always set explicitly.
ADMIN_ONLY_SECURITY: Json = {
    "admins": {"names": [], "roles": ["_admin"]},
    "members": {"names": [], "roles": ["_admin"]},
}

_REALM = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", re.IGNORECASE)


class AccountError(Exception):
    """An account operation the caller asked for cannot be done; the text says why."""


class RealmTaken(AccountError):
    pass


class ParentNotFound(AccountError):
    pass


class AccountConflict(AccountError):
    """The account doc changed since it was read (CouchDB refused its `_rev`)."""


def valid_realm(realm: str) -> bool:
    return len(realm) <= 253 and bool(_REALM.match(realm))


def generated_realm(account_id: str) -> str:
    # The whole id: six hex digits collided once in a few thousand accounts (a birthday
    # bound of 2^24), and a taken realm refuses the account.
    return f"{account_id}.sip.connectivity.local"


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
        # Told the id of every account doc this store writes: the account cache
        # (cache/accounts.py) drops it at once, before the changes feed reports it.
        self.on_change: Callable[[str], None] | None = None
        # Told of every account doc written, in both databases (service/kazoo/changes.py).
        # Realm claims are not announced: KAZOO has no such database.
        self.on_written: DocWritten | None = None

    async def ensure_system_databases(self) -> None:
        """The databases every installation has, with admin-only security."""
        for db in (ACCOUNTS_DB, SYSTEM_AUTH_DB, SYSTEM_CONFIG_DB, REALMS_DB):
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

    async def ids_by_name(self, normalized_name: str) -> list[str]:
        """Live accounts whose name, lower-cased and reduced to letters and digits, is
        this (KAZOO's `accounts/listing_by_name`); several accounts may share a name."""
        rows = await self._lookup("listing_by_name", normalized_name, ddoc=LOGINS_DDOC)
        return [row["id"] for row in rows]

    async def ids_by_realm(self, realm: str) -> list[str]:
        return [row["id"] for row in await self._lookup("listing_by_realm", realm.lower())]

    async def realm_in_use(self, realm: str) -> bool:
        return bool(await self._lookup("listing_by_realm", realm.lower()))

    async def _lookup(self, view: str, key: str, *, ddoc: str = ACCOUNTS_DDOC) -> list[Json]:
        try:
            result = await self.client.view(ACCOUNTS_DB, ddoc, view, key=key, limit=10)
        except (DocumentNotFound, DatabaseNotFound):
            # First use on a fresh CouchDB, or CouchDB was down at start-up.
            await self.ensure_system_databases()
            result = await self.client.view(ACCOUNTS_DB, ddoc, view, key=key, limit=10)
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
        self._written(db, doc, "created")
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
        # The view covers accounts replicated from KAZOO (no claim docs); the claim doc
        # settles races between two creations here.
        rows = await self._lookup("listing_by_realm", realm.lower())
        if any(row["id"] != account_id for row in rows):
            raise RealmTaken(f"realm {realm} is already in use")
        claim = {"_id": realm.lower(), "account_id": account_id, "pvt_type": "realm_claim"}
        try:
            await self.client.put_doc(REALMS_DB, claim)
        except DocumentConflict:
            existing = await self.client.get_doc(REALMS_DB, realm.lower())
            if existing.get("account_id") != account_id:
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

    # -- changes after creation ----------------------------------------------------------

    async def save(self, doc: Json, *, previous_realm: str | None = None) -> Json:
        """Saves a changed account doc (at its `_rev`) and refreshes the `accounts` copy.

        AccountConflict when the doc is no longer at that revision.

        A realm change claims the new realm first (RealmTaken if another account has it)
        and releases the old claim once the account no longer uses it.
        """
        realm = doc.get("realm")
        realm_changed = isinstance(realm, str) and realm.lower() != (previous_realm or "").lower()
        if realm_changed:
            await self._claim_realm(realm, doc["_id"])
        doc["pvt_modified"] = now_gregorian()
        try:
            saved = await self.client.put_doc(account_db(doc["_id"]), doc)
        except DocumentConflict:
            if realm_changed:
                await self._release_realm(realm, doc["_id"])
            raise AccountConflict(doc["_id"]) from None
        doc["_rev"] = saved.rev
        self._written(account_db(doc["_id"]), doc, "edited")
        await self._save_accounts_copy(doc)
        if realm_changed and previous_realm:
            await self._release_realm(previous_realm, doc["_id"])
        return doc

    async def soft_delete(self, doc: Json) -> Json:
        """KAZOO keeps a deleted account's doc with `pvt_deleted`; its tokens stop working."""
        doc["pvt_deleted"] = True
        doc["pvt_enabled"] = False
        saved = await self.save(doc, previous_realm=doc.get("realm"))
        realm = doc.get("realm")
        if isinstance(realm, str):
            await self._release_realm(realm, doc["_id"])
        return saved

    async def rotate_api_key(self, doc: Json) -> Json:
        """A new api key, and a new identity secret: the account's tokens, issued for
        the old key, no longer verify (§10.2)."""
        doc["pvt_api_key"] = new_api_key()
        doc["pvt_signature_secret"] = random_hex()
        return await self.save(doc, previous_realm=doc.get("realm"))

    async def page(self, view: str, request: listing.PageRequest) -> listing.Page:
        """One page of a tree listing (`listing_by_children`, `listing_by_descendants`)."""
        return await listing.read_page(
            self.client,
            ACCOUNTS_DB,
            ACCOUNTS_DDOC,
            view,
            request,
            install_views=self.ensure_system_databases,
        )

    async def has_live_descendants(self, account_id: str) -> bool:
        result = await self._view_range("listing_by_descendants", account_id, limit=1)
        return bool(result)

    async def _view_range(self, view: str, account_id: str, *, limit: int) -> list[Json]:
        result = await self.client.view(
            ACCOUNTS_DB,
            ACCOUNTS_DDOC,
            view,
            reduce=False,
            startkey=[account_id],
            endkey=[account_id, {}],
            limit=limit,
        )
        return list(result.get("rows", []))

    async def _release_realm(self, realm: str, account_id: str) -> None:
        try:
            claim = await self.client.get_doc(REALMS_DB, realm.lower())
        except DocumentNotFound:
            return
        if claim.get("account_id") != account_id:
            return
        try:
            await self.client.delete_doc(REALMS_DB, claim["_id"], claim["_rev"])
        except (DocumentConflict, DocumentNotFound):
            # Someone else changed the claim meanwhile; it is theirs now.
            return

    def _written(self, db: str, doc: Json, action: Action) -> None:
        if self.on_written is not None:
            self.on_written(db, doc, action)

    async def _save_accounts_copy(self, doc: Json) -> None:
        copy_doc = copy.deepcopy(doc)
        copy_doc.pop("_rev", None)
        try:
            try:
                existing = await self.client.get_doc(ACCOUNTS_DB, doc["_id"])
                copy_doc["_rev"] = existing["_rev"]
            except DocumentNotFound:
                pass
            saved = await self.client.put_doc(ACCOUNTS_DB, copy_doc)
            action = saved_action(copy_doc)
            copy_doc["_rev"] = saved.rev
            self._written(ACCOUNTS_DB, copy_doc, action)
        finally:
            # Every account write ends here; the authoritative doc has changed by now,
            # whether or not the copy could be saved.
            if self.on_change is not None:
                self.on_change(doc["_id"])
