"""Number documents shaped like KAZOO's, written straight into CouchDB, for the DID tests.

`kazoo_number` follows the number docs of KAZOO's fixture database
(core/kazoo_fixturedb/priv/dbs/numbers%2F%2B1215/docs/%2B12156774700.json): the
knm_phone_number private fields, plus the legacy keys (`pvt_authorizing_account`, public
`state` and `used_by`) that documents replicated from older KAZOO installations carry.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from service.couchdb.client import CouchClient, DocumentConflict, DocumentNotFound
from service.kazoo.ids import account_db, now_gregorian
from service.numbers.rules import encoded_number_db, number_db
from service.numbers.store import NumberStore

Json = dict[str, Any]

# Numbers no other test uses: +1 415 <exchange 200-999> <4 digits>, drawn without repeats.
_SEQUENCE = itertools.count(random.SystemRandom().randrange(10**6))


def fresh_number(area: str = "415") -> str:
    n = next(_SEQUENCE) % (8 * 10**6)
    return f"+1{area}{2 + n // 10**6}{n % 10**6:06d}"


def npan(e164: str) -> str:
    """The ten-digit NANP form KAZOO normalises back to `e164`."""
    return e164[2:]


def kazoo_number(
    e164: str,
    *,
    owner: str | None,
    state: str = "in_service",
    used_by: str | None = None,
    module: str = "knm_local",
    **extra: Any,
) -> Json:
    now = now_gregorian() - 86_400
    doc: Json = {
        "_id": e164,
        "pvt_type": "number",
        "pvt_db_name": encoded_number_db(e164),
        "pvt_module_name": module,
        "pvt_ported_in": False,
        "pvt_state": state,
        "pvt_features": {"local": {}} if module == "knm_local" else {},
        "pvt_authorizing_account": "system",
        "pvt_created": now,
        "pvt_modified": now,
        "state": state,
    }
    if owner is not None:
        doc["pvt_assigned_to"] = owner
    if used_by is not None:
        doc["pvt_used_by"] = used_by
        doc["used_by"] = used_by
    doc.update(extra)
    return doc


async def store_number(couch: CouchClient, doc: Json, *, copy: bool = True) -> Json:
    """Writes the number doc (and, by default, the owner's account copy) as KAZOO would."""
    db = number_db(doc["_id"])
    assert db is not None
    await NumberStore(couch).ensure_db(db)
    try:
        saved = await couch.put_doc(db, dict(doc))
    except DocumentConflict:
        # A fixed id (e.g. "+1234") left by an earlier run: an Apache CouchDB
        # (CONNECTIVITY_TEST_COUCH_URL) keeps its databases between runs.
        current = await couch.get_doc(db, doc["_id"])
        saved = await couch.put_doc(db, {**doc, "_rev": current["_rev"]})
    if copy and doc.get("pvt_assigned_to"):
        await couch.put_doc(account_db(doc["pvt_assigned_to"]), dict(doc))
    return {**doc, "_rev": saved.rev}


async def number_doc(couch: CouchClient, e164: str) -> Json:
    db = number_db(e164)
    assert db is not None
    return await couch.get_doc(db, e164)


async def copy_doc(couch: CouchClient, account_id: str, e164: str) -> Json | None:
    try:
        return await couch.get_doc(account_db(account_id), e164)
    except DocumentNotFound:
        return None


def routing_trunk(*servers: list[str] | dict[str, Any], name: str = "PBX") -> Json:
    """A connectivity doc with one IP-authenticated server per list of DIDs."""
    return {
        "name": name,
        "servers": [
            {
                "server_name": f"PBX {index}",
                "auth": {"auth_method": "IP", "ip": f"10.0.0.{index + 1}"},
                "options": {"inbound_format": "e164"},
                "DIDs": {did: {} for did in dids},
            }
            for index, dids in enumerate(servers)
        ],
    }


def numbers_url(account_id: str, number: str | None = None) -> str:
    base = f"/v2/accounts/{account_id}/phone_numbers"
    return base if number is None else f"{base}/{number.replace('+', '%2B')}"
