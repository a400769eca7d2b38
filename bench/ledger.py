"""The accounts the benchmark created, so that it can remove them from a CouchDB it does
not own (CONNECTIVITY_COUCH_URL); the embedded server's data folder is simply deleted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from service.couchdb.client import CouchClient, DatabaseNotFound, DocumentNotFound
from service.kazoo.ids import ACCOUNTS_DB
from service.stores.accounts import REALMS_DB

from .data import AccountRef

T = TypeVar("T")


async def bounded(items: list[T], work: Callable[[T], Awaitable[None]], at_once: int = 8) -> None:
    """`work` on every item, `at_once` at a time."""
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            await work(queue.pop())

    await asyncio.gather(*(worker() for _ in range(at_once)))


@dataclass
class Ledger:
    accounts: list[AccountRef] = field(default_factory=list)

    def add(self, account: AccountRef) -> AccountRef:
        self.accounts.append(account)
        return account

    async def remove_all(self, couch: CouchClient) -> None:
        """Each account's database, its copy in `accounts` and its realm claim."""

        async def remove(account: AccountRef) -> None:
            with contextlib.suppress(DatabaseNotFound):
                await couch.delete_db(account.db)
            for db, doc_id in ((ACCOUNTS_DB, account.id), (REALMS_DB, account.realm.lower())):
                with contextlib.suppress(DocumentNotFound):
                    doc = await couch.get_doc(db, doc_id)
                    await couch.delete_doc(db, doc_id, doc["_rev"])

        await bounded(self.accounts, remove)
        self.accounts.clear()
