"""The AMQP messages KAZOO publishes for a document change and a registration flush.

Pure functions, no I/O. The shapes follow KAZOO's own publishers, field by field:
* a document change: `kzs_publish:publish/3` with `kz_api:default_headers/4`, validated
  by consumers with `kapi_conf:doc_update_v/1`; routing key from
  `kz_amqp_util:document_routing_key/4`; exchange `configuration`;
* a registration flush: `crossbar_util:flush_registrations/1` through
  `kapi_registration:publish_flush/1`; exchange `registrar`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from service import fast_json
from service.kazoo.changes import Action
from service.kazoo.ids import account_id_from_db

Json = dict[str, Any]

# Both topic exchanges, declared as kz_amqp_util:new_exchange/3 declares them: not
# durable, not auto-deleted. Declaring them with other flags would fail on a broker
# KAZOO already uses (PRECONDITION_FAILED).
CONFIGURATION_EXCHANGE = "configuration"
REGISTRAR_EXCHANGE = "registrar"
EXCHANGES = (CONFIGURATION_EXCHANGE, REGISTRAR_EXCHANGE)

# kazoo_data's ?APP_NAME / ?APP_VERSION and its cache's name (kz_data.hrl).
DATAMGR_APP = "datamgr"
DATAMGR_VERSION = "4.0.0"
ORIGIN_CACHE = "kazoo_data_cache"
# crossbar's ?APP_NAME / ?APP_VERSION, which its registration flushes carry.
CROSSBAR_APP = "crossbar"
CROSSBAR_VERSION = "4.0.0"

# kz_amqp_util ?KEY_SAFE: the bytes a routing-key segment keeps as they are.
_KEY_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-~_")


@dataclass(frozen=True)
class Event:
    """One message for the broker. `msg_id` is fixed when the event is made, so a resent
    event is recognisably the same one."""

    exchange: str
    routing_key: str
    body: bytes
    msg_id: str


def encode_key(value: str) -> str:
    """kz_amqp_util:encode/1: a routing-key segment with no `.` left in it."""
    if value in ("", "*", "#"):
        return value
    out = []
    for byte in value.encode("utf-8"):
        if byte in _KEY_SAFE:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def kazoo_db_name(db: str) -> str:
    """The database as KAZOO names it to kz_datamgr, and so in events: URL-encoded
    (`account%2Fxx%2Fyy%2Frest`, `numbers%2F%2B1415`, `accounts`)."""
    return quote(db, safe="")


def new_msg_id() -> str:
    # kz_binary:rand_hex(16): 32 lowercase hex digits.
    return secrets.token_hex(16)


def is_published(doc: Json) -> bool:
    """kzs_publish:should_publish_doc/1: design documents never make an event."""
    doc_id = str(doc.get("_id", ""))
    return not doc_id.lower().startswith(("_design/", "_design%2f"))


def doc_event(db: str, doc: Json, action: Action, node: str) -> Event:
    """The `configuration` event for `doc` as stored in the real database `db`."""
    database = kazoo_db_name(db)
    doc_id = str(doc["_id"])
    doc_type = _text(doc.get("pvt_type"))
    soft_deleted = doc.get("pvt_deleted") is True
    # A soft- or hard-deleted doc is always announced as deleted (publish_doc/3).
    if soft_deleted or doc.get("_deleted") is True:
        action = "deleted"
    event_name = f"doc_{action}"
    payload: Json = {
        "ID": doc_id,
        "Origin-Cache": ORIGIN_CACHE,
        "Type": doc_type,
        "Database": database,
        "Rev": _text(doc.get("_rev")),
        "Account-ID": _account_id(db, doc),
        # KAZOO swaps the two dates (kzs_publish:publish/3); consumers expect it so.
        "Date-Modified": _seconds(doc.get("pvt_created")),
        "Date-Created": _seconds(doc.get("pvt_modified")),
        "Is-Soft-Deleted": soft_deleted,
        **_default_headers("configuration", event_name, DATAMGR_APP, DATAMGR_VERSION, node),
    }
    # An undefined type still fills its routing-key segment (kz_term:to_binary/1).
    routing_key = ".".join((event_name, database, doc_type or "undefined", encode_key(doc_id)))
    return _event(CONFIGURATION_EXCHANGE, routing_key, payload)


def reg_flush_event(realm: str, node: str) -> Event:
    """The `registrar` flush Crossbar sends when a trunk of the realm is created or deleted."""
    payload: Json = {
        "Realm": realm,
        **_default_headers("directory", "reg_flush", CROSSBAR_APP, CROSSBAR_VERSION, node),
    }
    return _event(REGISTRAR_EXCHANGE, f"registration.flush.{encode_key(realm)}", payload)


def _default_headers(category: str, name: str, app: str, version: str, node: str) -> Json:
    return {
        "Event-Category": category,
        "Event-Name": name,
        "App-Name": app,
        "App-Version": version,
        "Node": node,
        "Msg-ID": new_msg_id(),
    }


def _event(exchange: str, routing_key: str, payload: Json) -> Event:
    # Undefined values are left out, as props:filter_undefined/1 leaves them out.
    body = {key: value for key, value in payload.items() if value is not None}
    return Event(
        exchange=exchange,
        routing_key=routing_key,
        body=fast_json.dumps(body),
        msg_id=body["Msg-ID"],
    )


def _account_id(db: str, doc: Json) -> str | None:
    """kzs_publish:doc_acct_id/2: `pvt_account_id` when it is a raw account id (32
    bytes), else the account of an account database, else none."""
    value = doc.get("pvt_account_id")
    if isinstance(value, str) and len(value.encode("utf-8")) == 32:
        return value
    return account_id_from_db(db)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _seconds(value: Any) -> int | None:
    # kz_doc:created/1 and modified/1 read integers; anything else is undefined.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
