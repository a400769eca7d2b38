"""Installing the design documents kept as JSON files under `couch/design/`.

Each sub-folder is a database classification, as in KAZOO's `view_map`: `account`
for every account database, `accounts` for the `accounts` database.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from service.couchdb.client import CouchClient, DatabaseNotFound, DocumentConflict, DocumentNotFound
from service.paths import DESIGN_DIR

log = logging.getLogger(__name__)

Json = dict[str, Any]


@dataclass(frozen=True)
class DesignChange:
    db: str
    doc_id: str
    # "created", or "updated" when the stored doc differed (e.g. KAZOO's own version
    # replicated over ours).
    action: str
    # The stored doc that was replaced (for "updated"), to say whose version it was.
    previous: Json | None = field(default=None, compare=False, repr=False)


@cache
def design_docs(classification: str, design_dir: Path = DESIGN_DIR) -> tuple[Json, ...]:
    folder = design_dir / classification
    docs = []
    for path in sorted(folder.glob("*.json")):
        with path.open(encoding="utf-8") as handle:
            docs.append(json.load(handle))
    return tuple(docs)


def _same_content(stored: Json, wanted: Json) -> bool:
    return {k: v for k, v in stored.items() if k != "_rev"} == wanted


async def ensure_design_docs(
    client: CouchClient, db: str, classification: str
) -> list[DesignChange]:
    """Writes each design doc whose stored content differs; returns what changed."""
    changes = []
    for wanted in design_docs(classification):
        change = await _ensure_one(client, db, wanted)
        if change is not None:
            changes.append(change)
    return changes


async def _ensure_one(client: CouchClient, db: str, wanted: Json) -> DesignChange | None:
    doc_id = wanted["_id"]
    for _attempt in range(3):
        try:
            stored: Json | None = await client.get_doc(db, doc_id)
        except DocumentNotFound:
            stored = None
        except DatabaseNotFound:
            raise
        if stored is not None and _same_content(stored, wanted):
            return None
        doc = dict(wanted)
        if stored is not None:
            doc["_rev"] = stored["_rev"]
        try:
            await client.put_doc(db, doc)
        except DocumentConflict:
            # Another instance installed it at the same moment: look again.
            continue
        action = "created" if stored is None else "updated"
        log.info("design doc %s", action, extra={"couch_db": db, "doc_id": doc_id})
        return DesignChange(db=db, doc_id=doc_id, action=action, previous=stored)
    return None
