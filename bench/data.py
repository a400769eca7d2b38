"""Connectivity documents of KAZOO's shape, and loading them straight into CouchDB.

The generator writes what the service would store (defaults filled in, the realm forced,
private fields stamped), so bulk-loaded documents are indistinguishable from ones
written through the API; `check_shape` proves that on a sample with the real validator.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.couchdb.client import CouchClient, CouchError, quote_db
from service.kazoo.documents import WriteContext, public_fields, stamp_private_fields
from service.kazoo.ids import encoded_account_db, new_id
from service.kazoo.validation import SchemaValidator, schema_path

Json = dict[str, Any]

BULK_BATCH = 500


# The service refuses a DID another trunk of the account already routes, and random
# numbers collide long before 100,000 trunks (the birthday problem): exchange and line
# count up instead, so no two of the first 8 million generated numbers are the same.
_NUMBERS = itertools.count()


def _did(rng: random.Random) -> str:
    serial = next(_NUMBERS)
    exchange, line = 200 + (serial // 10_000) % 800, serial % 10_000
    return f"+1{rng.randint(200, 999)}{exchange}{line:04d}"


def _server(rng: random.Random, index: int, dids: int) -> Json:
    by_ip = rng.random() < 0.3
    auth: Json = (
        {"auth_method": "IP", "ip": f"198.51.100.{rng.randint(1, 254)}", "port": 5060}
        if by_ip
        else {
            "auth_method": "password",
            "auth_user": f"pbx{rng.randint(1000, 9999)}",
            "auth_password": f"{rng.getrandbits(64):016x}",
        }
    )
    options: Json = {
        "delay": 0,
        "enabled": True,
        "force_outbound": False,
        "hunt_non_reconcilable": False,
        "inbound_format": rng.choice(["e164", "npan", "1npan"]),
        "media_handling": rng.choice(["bypass", "process"]),
    }
    if rng.random() < 0.5:
        options["caller_id"] = {"cid_name": f"Office {index}", "cid_number": _did(rng)}
    return {
        "server_name": f"PBX {index}",
        "auth": auth,
        "options": options,
        "DIDs": {_did(rng): {"force_outbound": False} for _ in range(dids)},
    }


def public_doc(rng: random.Random, realm: str) -> Json:
    """The public fields of one trunk: 1-5 servers, 0-50 DIDs in all."""
    server_count = rng.randint(1, 5)
    total_dids = rng.randint(0, 50)
    cuts = sorted(rng.randint(0, total_dids) for _ in range(server_count - 1))
    shares = [b - a for a, b in zip([0, *cuts], [*cuts, total_dids], strict=True)]
    return {
        "name": f"Trunk {rng.getrandbits(32):08x}",
        "account": {
            "trunks": rng.randint(0, 20),
            "auth_realm": realm,
            "caller_id": {"cid_name": "Main line", "cid_number": _did(rng)},
        },
        "servers": [_server(rng, i + 1, n) for i, n in enumerate(shares)],
    }


@dataclass(frozen=True)
class AccountRef:
    id: str
    db: str
    realm: str


def stored_doc(public: Json, account: AccountRef, *, doc_id: str | None = None) -> Json:
    """`public` as the service stores it: id, `pvt_type` and KAZOO's private fields."""
    doc = dict(public)
    doc["_id"] = doc_id or new_id()
    doc["pvt_type"] = "sys_info"
    ctx = WriteContext(
        account_id=account.id,
        encoded_account_db=encoded_account_db(account.id),
        request_id=new_id(),
        auth_account_id=account.id,
    )
    return stamp_private_fields(doc, ctx)


def check_shape(rng: random.Random, realm: str, samples: int = 20) -> None:
    """The validator leaves generated docs unchanged: they are what the API would store."""
    validator = SchemaValidator.from_file(schema_path())
    for _ in range(samples):
        doc = public_doc(rng, realm)
        result = validator.validate(public_fields(doc))
        if not result.ok or result.value != doc:
            raise AssertionError(f"generated doc is not in the stored shape: {result.errors}")


async def bulk_load(client: CouchClient, account: AccountRef, docs: list[Json]) -> None:
    """Writes `docs` with `_bulk_docs`, in batches; any per-doc error stops the bench."""
    for start in range(0, len(docs), BULK_BATCH):
        batch = docs[start : start + BULK_BATCH]
        status, body = await client.request(
            "POST", f"{quote_db(account.db)}/_bulk_docs", body={"docs": batch}
        )
        if status not in (201, 202) or any("error" in row for row in body):
            raise CouchError(f"_bulk_docs into {account.db}: HTTP {status} {body!r:.300}")


def small_public_doc(rng: random.Random, realm: str) -> Json:
    """A trunk with one server and no DIDs: for accounts whose size, not content, counts."""
    doc = public_doc(rng, realm)
    doc["servers"] = [_server(rng, 1, 0)]
    return doc


Shape = Callable[[random.Random, str], Json]


def generated_docs(
    rng: random.Random, account: AccountRef, count: int, shape: Shape = public_doc
) -> list[Json]:
    return [stored_doc(shape(rng, account.realm), account) for _ in range(count)]
