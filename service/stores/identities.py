"""The `pvt_signature_secret` of an identity: the account, or a user or device of it
(§10.2, kz_auth_identity).

Every token carries an HMAC of its identity under this secret, so giving the identity a
new one revokes every token it holds (KAZOO's crossbar_auth:reset_identity_secret/1).
An identity without one gets one when its first token is issued, as KAZOO does. Two
instances doing that at once cannot both win: the loser of CouchDB's conflict re-reads
and uses the winner's secret.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.couchdb.client import CouchClient, DatabaseNotFound, DocumentConflict, DocumentNotFound
from service.kazoo.auth_docs import random_hex, signature_secret
from service.kazoo.changes import DocWritten
from service.kazoo.documents import is_live_of_type
from service.kazoo.ids import account_db
from service.stores.accounts import AccountConflict, AccountStore
from service.stores.connectivity import is_acceptable_doc_id

Json = dict[str, Any]

ATTEMPTS = 5


class IdentityGone(Exception):
    """The identity doc was deleted while its secret was being saved."""


class IdentitySecrets:
    def __init__(self, client: CouchClient, accounts: AccountStore) -> None:
        self._client = client
        self._accounts = accounts
        # Told (db, doc id) of every user or device doc saved here: the read cache drops
        # it at once, so a reset revokes on the very next request (read-your-writes).
        # Told of every user doc saved here (service/kazoo/changes.py); account docs are
        # announced by the account store.
        self.on_written: DocWritten | None = None
        self.on_change: Callable[[str, str], None] | None = None

    async def ensure(self, account_id: str, doc: Json) -> Json:
        """`doc` as saved with a secret: its own if it has one, else a new one."""
        return await self._save_secret(account_id, doc, keep_existing=True)

    async def reset(self, account_id: str, doc: Json) -> Json:
        """A new secret: every token of this identity stops verifying."""
        return await self._save_secret(account_id, doc, keep_existing=False)

    async def reset_identity(self, account_id: str, owner_id: str | None = None) -> Json:
        """A new secret for the account (no `owner_id`) or for one of its users;
        IdentityGone when there is no such live user."""
        if owner_id is None:
            doc = await self._accounts.get(account_id)
        elif is_acceptable_doc_id(owner_id):
            doc = await self._read(account_id, owner_id)
        else:
            doc = None
        if owner_id is not None and (doc is None or not is_live_of_type(doc, "user")):
            raise IdentityGone(owner_id)
        if doc is None:
            raise IdentityGone(account_id)
        return await self.reset(account_id, doc)

    async def _save_secret(self, account_id: str, doc: Json, *, keep_existing: bool) -> Json:
        current: Json | None = doc
        for _attempt in range(ATTEMPTS):
            if current is None:
                raise IdentityGone(doc["_id"])
            if keep_existing and signature_secret(current) is not None:
                return current
            current["pvt_signature_secret"] = random_hex()
            try:
                return await self._save(account_id, current)
            except (AccountConflict, DocumentConflict):
                current = await self._read(account_id, doc["_id"])
        raise IdentityGone(doc["_id"])

    async def _save(self, account_id: str, doc: Json) -> Json:
        if doc["_id"] == account_id:
            # Both copies of the account doc, and the account cache told (stores/accounts.py).
            return await self._accounts.save(doc, previous_realm=doc.get("realm"))
        db = account_db(account_id)
        try:
            saved = await self._client.put_doc(db, doc)
        finally:
            if self.on_change is not None:
                self.on_change(db, doc["_id"])
        stored = {**doc, "_rev": saved.rev}
        if self.on_written is not None:
            self.on_written(db, stored, "edited")
        return stored

    async def _read(self, account_id: str, doc_id: str) -> Json | None:
        if doc_id == account_id:
            return await self._accounts.get(account_id)
        try:
            return await self._client.get_doc(account_db(account_id), doc_id)
        except (DocumentNotFound, DatabaseNotFound):
            return None
