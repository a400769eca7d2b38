"""`kazoo-connectivity ensure-numbers`: number docs brought in line with the trunks.

For every account's live connectivity docs (`trunkstore/crossbar_listing`) and every
number that claims `pvt_used_by: "trunkstore"` (`numbers/list_assigned_and_app` in each
number database):

* a number a trunk routes, that the trunk's account may use, gets `trunkstore`;
* a number claiming `trunkstore` that no live trunk routes loses it;
* the owner's account copy is rewritten when it differs from the number db doc;
* a DID routed twice inside one account (possible after replication from KAZOO, or a
  race between two writes) is reported, never dropped.

Each finding is reported as it happens; a second run reports nothing new.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.couchdb.client import CouchClient, CouchError, DatabaseNotFound, DocumentNotFound
from service.couchdb.design_docs import ensure_design_docs
from service.kazoo.ids import account_db, account_id_from_db
from service.numbers.dids import dids_of
from service.numbers.docs import TRUNKSTORE, account_copy, assigned_to, used_by
from service.numbers.parties import Parties
from service.numbers.rules import NUMBERS_DB_PREFIX, is_reconcilable
from service.numbers.store import NUMBERS_CLASSIFICATION, NumberStore
from service.numbers.usage import NumberUsage
from service.stores.accounts import AccountStore

log = logging.getLogger(__name__)

Json = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    """One line of `ensure-numbers` output."""

    action: str  # "assigned", "released", "copy_written", "duplicate_did", "failed"
    number: str
    account_id: str | None = None
    detail: Json = field(default_factory=dict)

    def to_json(self) -> Json:
        line: Json = {"action": self.action, "number": self.number, "account_id": self.account_id}
        return line | self.detail


@dataclass
class Summary:
    accounts: int = 0
    numbers: int = 0
    findings: list[Finding] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for finding in self.findings if finding.action == action)


@dataclass(frozen=True)
class Route:
    """A DID in a live connectivity doc."""

    account_id: str
    connectivity_id: str
    path: str


Report = Callable[[Finding], None]


class NumberReconciler:
    def __init__(self, client: CouchClient, *, dry_run: bool = False) -> None:
        self.client = client
        self.store = NumberStore(client)
        self.usage = NumberUsage(self.store)
        self.parties = Parties(AccountStore(client))
        self.dry_run = dry_run

    async def run(self, report: Report) -> Summary:
        summary = Summary()

        def emit(finding: Finding) -> None:
            summary.findings.append(finding)
            report(finding)

        dbs = await self.client.all_dbs()
        routes: dict[str, list[Route]] = defaultdict(list)
        for db in dbs:
            account_id = account_id_from_db(db)
            if account_id is None:
                continue
            summary.accounts += 1
            account_routes = await self._routes(db, account_id)
            _report_duplicates(account_routes, emit)
            for e164, found in account_routes.items():
                if is_reconcilable(e164):
                    routes[e164].extend(found)
        claimed = await self._claimed(db for db in dbs if db.startswith(NUMBERS_DB_PREFIX))
        candidates = sorted(set(routes) | claimed)
        numbers = await self.store.get_many(candidates)
        summary.numbers = len(numbers)
        for e164 in candidates:
            number = numbers.get(e164)
            if number is not None:
                await self._reconcile(number, routes.get(e164, []), emit)
        return summary

    # -- reading -----------------------------------------------------------------------

    async def _routes(self, db: str, account_id: str) -> dict[str, list[Route]]:
        """E.164 number -> where the account's live connectivity docs route it."""
        try:
            rows = await self._listing(db)
        except DatabaseNotFound:
            return {}
        found: dict[str, list[Route]] = defaultdict(list)
        for row in rows:
            servers = (row.get("value") or {}).get("servers")
            for did in dids_of({"servers": servers}):
                found[did.e164].append(Route(account_id, row["id"], did.path))
        return found

    async def _listing(self, db: str) -> list[Json]:
        try:
            result = await self.client.view(db, "trunkstore", "crossbar_listing", reduce=False)
        except DocumentNotFound:
            await ensure_design_docs(self.client, db, "account")
            result = await self.client.view(db, "trunkstore", "crossbar_listing", reduce=False)
        return list(result.get("rows", []))

    async def _claimed(self, number_dbs: Any) -> set[str]:
        """Every number whose number db doc says `pvt_used_by: "trunkstore"`."""
        claimed: set[str] = set()
        for db in number_dbs:
            if not self.dry_run:
                await ensure_design_docs(self.client, db, NUMBERS_CLASSIFICATION)
            try:
                result = await self.client.view(db, "numbers", "list_assigned_and_app")
            except (DocumentNotFound, DatabaseNotFound):
                continue
            for row in result.get("rows", []):
                key = row.get("key")
                if isinstance(key, list) and len(key) == 2 and key[1] == TRUNKSTORE:
                    claimed.add(row["id"])
        return claimed

    # -- repairing ---------------------------------------------------------------------

    async def _reconcile(self, number: Json, routes: list[Route], emit: Report) -> None:
        e164 = number["_id"]
        users = [route for route in routes if await self.parties.verdict(number, route.account_id)]
        owner = assigned_to(number)
        if owner is not None and users and used_by(number) != TRUNKSTORE:
            await self._change(number, TRUNKSTORE, users[0], emit)
        elif used_by(number) == TRUNKSTORE and not users:
            await self._change(number, None, None, emit)
        elif owner is not None:
            await self._repair_copy(number, owner, emit)
        if routes and not users:
            log.info("routed number not usable by its trunk's account", extra={"number": e164})

    async def _change(
        self, number: Json, app: str | None, route: Route | None, emit: Report
    ) -> None:
        e164 = number["_id"]
        detail: Json = {"used_by_before": used_by(number), "used_by": app}
        if route is not None:
            detail.update(connectivity_id=route.connectivity_id, path=route.path)
        account_id = route.account_id if route is not None else assigned_to(number)
        action = "assigned" if app is not None else "released"
        if self.dry_run:
            emit(Finding(action, e164, account_id, detail))
            return

        async def trusted(_doc: Json) -> bool:
            # The verdict was just given on this very number.
            return True

        if app is not None:
            change = await self.usage.assign(e164, app, trusted)
        else:
            change = await self.usage.release(e164, TRUNKSTORE, trusted)
        emit(Finding(action if change is not None else "failed", e164, account_id, detail))

    async def _repair_copy(self, number: Json, owner: str, emit: Report) -> None:
        copy = await self.store.get_copy(owner, number["_id"])
        wanted = account_copy(number)
        if copy is not None and {k: v for k, v in copy.items() if k != "_rev"} == wanted:
            return
        detail: Json = {"db": account_db(owner), "missing": copy is None}
        if not self.dry_run:
            try:
                written = await self.store.save_copy(number)
            except CouchError as exc:
                detail["fault"] = type(exc).__name__
                emit(Finding("failed", number["_id"], owner, detail))
                return
            if not written:
                return
        emit(Finding("copy_written", number["_id"], owner, detail))


def _report_duplicates(routes: dict[str, list[Route]], emit: Report) -> None:
    for e164, found in sorted(routes.items()):
        if len(found) < 2:
            continue
        places = [{"connectivity_id": r.connectivity_id, "path": r.path} for r in found]
        emit(Finding("duplicate_did", e164, found[0].account_id, {"routed_by": places}))
