"""Keeping our design documents in every database (`kazoo-connectivity ensure-views`).

KAZOO's own view refresh (kapps_maintenance) and replication of `_design/*` docs from a
KAZOO CouchDB put KAZOO's original `_design/trunkstore` back, whose `Iterator()` calls
index nothing on CouchDB 3.2+ and on the embedded server (docs/kazoo-compatibility.md §14 #1). This
pass checks the `accounts` database and every account database, rewrites a design doc
only when its content differs (so a second run changes nothing), and says whose version
it replaced, so that two writers fighting over a design doc never go unnoticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from service.couchdb.client import CouchClient, CouchError, CouchUnreachable, DatabaseNotFound
from service.couchdb.design_docs import DesignChange, design_docs, ensure_design_docs
from service.kazoo.ids import ACCOUNTS_DB

log = logging.getLogger(__name__)

Json = dict[str, Any]

# `account/xx/yy/<28 chars>`; KAZOO's monthly databases (`…-YYYYMM`) do not match.
ACCOUNT_DB_NAME = re.compile(r"^account/[^/]{2}/[^/]{2}/[^/]{28}$")
# Databases checked at the same time: enough to hide latency, little load on CouchDB.
CONCURRENCY = 4

# What a replaced design doc was, as reported.
KAZOO_ITERATOR_VERSION = "kazoo_iterator_version"
OTHER_VERSION = "other_version"


@dataclass(frozen=True)
class ViewReport:
    """One line of `ensure-views` output: a design doc written, or a database that failed."""

    db: str
    design_doc: str | None
    action: str  # "created", "updated" or "failed"
    replaced: str | None = None
    views: tuple[str, ...] = ()
    reason: str | None = None

    def to_json(self) -> Json:
        line: Json = {"db": self.db, "design_doc": self.design_doc, "action": self.action}
        if self.replaced is not None:
            line["replaced"] = self.replaced
            line["views"] = list(self.views)
        if self.reason is not None:
            line["reason"] = self.reason
        return line


@dataclass
class ViewSummary:
    checked: int = 0
    reports: list[ViewReport] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for report in self.reports if report.action == "failed")

    @property
    def changed(self) -> int:
        return len(self.reports) - self.failed


def report_for(change: DesignChange, classification: str) -> ViewReport:
    if change.action != "updated":
        return ViewReport(db=change.db, design_doc=change.doc_id, action=change.action)
    wanted = next(doc for doc in design_docs(classification) if doc["_id"] == change.doc_id)
    previous = change.previous or {}
    return ViewReport(
        db=change.db,
        design_doc=change.doc_id,
        action="updated",
        replaced=KAZOO_ITERATOR_VERSION if _uses_iterator(previous) else OTHER_VERSION,
        views=tuple(_differing_views(previous, wanted)),
    )


def _view_maps(doc: Json) -> dict[str, str]:
    views = doc.get("views")
    if not isinstance(views, dict):
        return {}
    maps = {}
    for name, view in views.items():
        source = view.get("map") if isinstance(view, dict) else None
        # KAZOO keeps map functions as arrays of lines in its priv files.
        if isinstance(source, list):
            source = "\n".join(str(line) for line in source)
        maps[name] = source if isinstance(source, str) else ""
    return maps


def _uses_iterator(doc: Json) -> bool:
    return any("Iterator(" in source for source in _view_maps(doc).values())


def _differing_views(previous: Json, wanted: Json) -> list[str]:
    old = previous.get("views")
    if not isinstance(old, dict):
        old = {}
    new = wanted.get("views", {})
    return sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))


async def databases_to_check(client: CouchClient) -> list[tuple[str, str]]:
    """(database, classification) for the `accounts` db and every account db."""
    names = await client.all_dbs()
    targets = [(ACCOUNTS_DB, "accounts")] if ACCOUNTS_DB in names else []
    targets += [(name, "account") for name in sorted(names) if ACCOUNT_DB_NAME.match(name)]
    return targets


async def ensure_all_views(
    client: CouchClient, on_report: Callable[[ViewReport], None] | None = None
) -> ViewSummary:
    """Checks every database; `on_report` hears each change as it happens.

    A database that fails (e.g. deleted meanwhile) is reported and skipped;
    CouchUnreachable ends the pass.
    """
    summary = ViewSummary()
    targets = await databases_to_check(client)
    for start in range(0, len(targets), CONCURRENCY):
        batch = targets[start : start + CONCURRENCY]
        results = await asyncio.gather(*(_check(client, db, kind) for db, kind in batch))
        for reports in results:
            summary.checked += 1
            for report in reports:
                summary.reports.append(report)
                if on_report is not None:
                    on_report(report)
    return summary


async def _check(client: CouchClient, db: str, classification: str) -> list[ViewReport]:
    try:
        changes = await ensure_design_docs(client, db, classification)
    except DatabaseNotFound:
        return [ViewReport(db=db, design_doc=None, action="failed", reason="database vanished")]
    except CouchUnreachable:
        raise
    except CouchError as exc:
        return [ViewReport(db=db, design_doc=None, action="failed", reason=str(exc))]
    return [report_for(change, classification) for change in changes]


# -- at start-up -------------------------------------------------------------------------

VIEW_CHECK = web.AppKey("view_check", asyncio.Task)


def log_report(report: ViewReport) -> None:
    extra: Json = {"couch_db": report.db, "doc_id": report.design_doc, "action": report.action}
    if report.action == "failed":
        log.warning("design doc check failed: %s", report.reason, extra=extra)
    elif report.replaced == KAZOO_ITERATOR_VERSION:
        log.warning(
            "design doc was KAZOO's Iterator version (indexes nothing on CouchDB 3.2+); "
            "replaced with ours: exclude _design docs from replication",
            extra=extra,
        )
    elif report.replaced is not None:
        extra["views"] = list(report.views)
        log.warning("design doc differed from ours; replaced", extra=extra)
    else:
        log.info("design doc %s", report.action, extra=extra)


async def check_views(client: CouchClient) -> ViewSummary | None:
    """The start-up pass: never raises, logs what it changed."""
    try:
        summary = await ensure_all_views(client, log_report)
    except CouchError as exc:
        log.warning("design doc check skipped: %s", type(exc).__name__)
        return None
    log.info(
        "design docs checked",
        extra={"databases": summary.checked, "changed": summary.changed},
    )
    return summary


def start_view_check(client: CouchClient) -> asyncio.Task[ViewSummary | None]:
    """Runs the check in the background so that start-up does not wait for it."""
    return asyncio.create_task(check_views(client), name="ensure-views")


async def stop_view_check(task: asyncio.Task[ViewSummary | None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
