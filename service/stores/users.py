"""User documents, stored as KAZOO stores them (cb_users, docs/kazoo-compatibility.md §10.2).

A user is a `pvt_type: user` doc in its account's database. Lookups (credentials,
usernames, the listing) go through `_design/connectivity_users`, a design doc of our
own: KAZOO's `_design/users` is never touched, so neither side overwrites the other's
views when the databases are replicated.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from service.couchdb.client import CouchClient, DatabaseNotFound, DocumentConflict, DocumentNotFound
from service.couchdb.design_docs import ensure_design_docs
from service.kazoo import errors
from service.kazoo.documents import (
    WriteContext,
    is_live_of_type,
    merge_patch,
    public_fields,
    replace_public_fields,
    stamp_private_fields,
)
from service.kazoo.ids import account_db, new_id
from service.kazoo.users import (
    USER_TYPE,
    CredentialsProblem,
    apply_credentials,
    credentials_of,
    without_secrets,
)
from service.kazoo.validation import SchemaValidator
from service.stores import listing

Json = dict[str, Any]

USERS_DDOC = "connectivity_users"
# cb_user_auth's two credential views, by login method.
CREDENTIAL_VIEWS = {"md5": "creds_by_md5", "sha": "creds_by_sha"}


class UserError(Exception):
    """A user operation that cannot be done; the handler says why to the client."""


class UserNotFound(UserError):
    pass


class UserConflict(UserError):
    """The user doc changed since it was read (CouchDB refused its `_rev`)."""


class UserStore:
    def __init__(self, client: CouchClient, validator: SchemaValidator) -> None:
        self.client = client
        self.validator = validator
        # Told every user doc this store saves or deletes, as saved (soft-deleted ones
        # with `pvt_deleted`): the hook for publishing KAZOO's doc_created/doc_edited/
        # doc_deleted events. `created` is True for a new doc.
        self.on_change: Callable[[str, Json, bool], None] | None = None

    # -- reading -----------------------------------------------------------------------

    async def get(self, account_id: str, user_id: str) -> Json:
        """The live user doc, or UserNotFound (missing, soft-deleted, or not a user)."""
        if not user_id or user_id.startswith("_"):
            raise UserNotFound(user_id)
        try:
            doc = await self.client.get_doc(account_db(account_id), user_id)
        except (DocumentNotFound, DatabaseNotFound):
            raise UserNotFound(user_id) from None
        if not is_live_of_type(doc, USER_TYPE):
            raise UserNotFound(user_id)
        return doc

    async def page(self, account_id: str, request: listing.PageRequest) -> listing.Page:
        """One page of cb_users' summary (`crossbar_listing` rows, ordered by name)."""
        db = account_db(account_id)
        return await listing.read_page(
            self.client,
            db,
            USERS_DDOC,
            "crossbar_listing",
            request,
            install_views=lambda: self._install(db),
        )

    async def find_by_credentials(
        self, account_id: str, credentials: str, method: str
    ) -> Json | None:
        """`{owner_id, account_id}` of the user these hashed credentials belong to."""
        rows = await self._lookup(account_id, CREDENTIAL_VIEWS[method], credentials)
        # Several users with the same hash: KAZOO takes the first row.
        return dict(rows[0]["value"]) if rows else None

    async def username_owner(self, account_id: str, username: str) -> str | None:
        rows = await self._lookup(account_id, "list_by_username", username)
        return str(rows[0]["id"]) if rows else None

    async def _lookup(self, account_id: str, view: str, key: str) -> list[Json]:
        db = account_db(account_id)
        try:
            result = await self.client.view(db, USERS_DDOC, view, key=key, limit=10)
        except DatabaseNotFound:
            return []
        except DocumentNotFound:
            # An account database replicated from KAZOO: our design doc is not there yet.
            await self._install(db)
            result = await self.client.view(db, USERS_DDOC, view, key=key, limit=10)
        return list(result.get("rows", []))

    async def _install(self, db: str) -> None:
        await ensure_design_docs(self.client, db, "account")

    # -- validation --------------------------------------------------------------------

    def validated(self, data: Json) -> Json:
        """The body's public fields against `schemas/users.json`, defaults applied (400)."""
        candidate = public_fields(data)
        candidate.pop("id", None)
        result = self.validator.validate(candidate)
        if not result.ok or result.value is None:
            raise errors.validation_error(without_secrets(result.errors))
        return result.value

    def patched(self, stored: Json, data: Json) -> Json:
        """A PATCH body merged onto the stored public fields, then validated."""
        patch = public_fields(data)
        patch.pop("id", None)
        return self.validated(merge_patch(public_fields(stored), patch))

    # -- writing -----------------------------------------------------------------------

    async def create(self, account_id: str, body: Json, ctx: WriteContext) -> Json:
        """PUT: a new user from a validated body; the username must be free (400)."""
        doc = copy.deepcopy(body)
        doc["_id"] = new_id()
        doc["pvt_type"] = USER_TYPE
        await self._check_username(account_id, doc["_id"], body)
        _credentials(doc, None, body)
        stamp_private_fields(doc, ctx)
        return await self._save(account_id, doc, created=True)

    async def replace(self, account_id: str, stored: Json, body: Json, ctx: WriteContext) -> Json:
        """POST (a validated body) or PATCH (`patched()`): public fields replaced,
        private ones kept, hashes recomputed when the password or username changes."""
        await self._check_username(account_id, stored["_id"], body)
        doc = replace_public_fields(stored, body)
        _credentials(doc, stored, body)
        stamp_private_fields(doc, ctx)
        return await self._save(account_id, doc, created=False)

    async def soft_delete(self, account_id: str, stored: Json, ctx: WriteContext) -> Json:
        """KAZOO keeps a deleted user's doc with `pvt_deleted`: it can no longer log in."""
        doc = copy.deepcopy(stored)
        stamp_private_fields(doc, ctx)
        doc["pvt_deleted"] = True
        return await self._save(account_id, doc, created=False)

    async def _check_username(self, account_id: str, user_id: str, body: Json) -> None:
        username = body.get("username")
        if not isinstance(username, str) or not username:
            return
        owner = await self.username_owner(account_id, username.lower())
        if owner is not None and owner != user_id:
            raise errors.validation_error(
                {
                    "username": {
                        "unique": {"message": "User name already in use", "cause": username.lower()}
                    }
                }
            )

    async def _save(self, account_id: str, doc: Json, *, created: bool) -> Json:
        try:
            saved = await self.client.put_doc(account_db(account_id), doc)
        except DocumentConflict:
            raise UserConflict(doc["_id"]) from None
        except DatabaseNotFound:
            raise UserNotFound(doc["_id"]) from None
        doc["_rev"] = saved.rev
        if self.on_change is not None:
            self.on_change(account_id, doc, created)
        return doc


def _credentials(doc: Json, stored: Json | None, body: Json) -> None:
    try:
        apply_credentials(doc, stored, credentials_of(body))
    except CredentialsProblem as problem:
        raise errors.validation_error(
            {problem.field: {problem.code: {"message": problem.message}}}
        ) from None
