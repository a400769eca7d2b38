"""Which application uses a number: `pvt_used_by`, kept in both copies of the doc.

knm_ops:assign_to_app/3 reads the number with `auth_by` = the account whose
connectivity doc changed, so numbers that account may not use are left alone (KAZOO
only logs them, §11.2, §14 #13). A failed update never fails the caller's write: it is
tried a second time on a fresh read, then logged for `ensure-numbers` to repair.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from service.couchdb.client import CouchError
from service.numbers.docs import assigned_to, used_by, with_used_by
from service.numbers.store import NumberStore

log = logging.getLogger(__name__)

Json = dict[str, Any]
MayUse = Callable[[Json], Awaitable[bool]]

ATTEMPTS = 2


@dataclass(frozen=True)
class UsageChange:
    number: str
    owner: str
    before: str | None
    after: str | None


class NumberUsage:
    def __init__(self, store: NumberStore) -> None:
        self.store = store

    async def assign(
        self, e164: str, app: str, may_use: MayUse, *, where: Json | None = None
    ) -> UsageChange | None:
        """Sets `pvt_used_by` = app on a number the account may use; None if nothing changed."""

        async def attempt() -> UsageChange | None:
            doc = await self.store.get(e164)
            # A number nobody owns is used by nobody: KAZOO would tag an `available`
            # number too, and lose the tag when it is bought (set_assigned_to/2).
            if doc is None or assigned_to(doc) is None or used_by(doc) == app:
                return None
            if not await may_use(doc):
                log.info(
                    "number not assigned: the account may not use it",
                    extra={"number": e164, **(where or {})},
                )
                return None
            return await self._write(doc, app)

        return await self._retried(attempt, e164, app, where)

    async def release(
        self, e164: str, app: str, may_use: MayUse, *, where: Json | None = None
    ) -> UsageChange | None:
        """Clears `pvt_used_by` if it is still `app` (another app's use is not ours to end)."""

        async def attempt() -> UsageChange | None:
            doc = await self.store.get(e164)
            if doc is None or used_by(doc) != app or not await may_use(doc):
                return None
            return await self._write(doc, None)

        return await self._retried(attempt, e164, None, where)

    async def _write(self, doc: Json, app: str | None) -> UsageChange:
        updated = with_used_by(doc, app)
        stored = await self.store.save(updated)
        await self.store.save_copy(stored)
        owner = assigned_to(stored) or ""
        return UsageChange(number=doc["_id"], owner=owner, before=used_by(doc), after=app)

    async def _retried(
        self,
        attempt: Callable[[], Awaitable[UsageChange | None]],
        e164: str,
        app: str | None,
        where: Json | None,
    ) -> UsageChange | None:
        fault = ""
        for _ in range(ATTEMPTS):
            try:
                return await attempt()
            except CouchError as exc:
                fault = type(exc).__name__
        log.warning(
            "number usage not updated; `kazoo-connectivity ensure-numbers` repairs it",
            extra={"number": e164, "used_by": app, "fault": fault, **(where or {})},
        )
        return None
