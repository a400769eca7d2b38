"""KAZOO's phone number documents, as pure functions (knm_phone_number:to_json/1).

A number lives in `numbers/<first 5 chars>` with id = E.164, and a copy of the same
document sits in the database of the account it is assigned to (knm_phone_number:save/1
writes `to_json(PN)` to both; the copy is what the account's `phone_numbers` listing
reads). A new number doc, as KAZOO writes it for `knm_local`:

    {"_id": "+14155550100", "pvt_type": "number", "pvt_db_name": "numbers%2F%2B1415",
     "pvt_module_name": "knm_local", "pvt_ported_in": false, "pvt_state": "in_service",
     "pvt_assigned_to": "<account>", "pvt_features": {"local": {}},
     "pvt_created": <gregorian s>, "pvt_modified": <gregorian s>, ...public fields}

plus, when set, `pvt_used_by`, `pvt_reserve_history`, `pvt_previously_assigned_to`.
Empty values are left out, as KAZOO's `props:filter_empty` does.

Documents replicated from KAZOO are used as they are: updates here change only the
fields the operation is about (KAZOO's to_json would also drop unknown private fields;
we keep them).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from service.kazoo.ids import now_gregorian
from service.numbers.rules import encoded_number_db

Json = dict[str, Any]

NUMBER_TYPE = "number"
TRUNKSTORE = "trunkstore"
LOCAL_CARRIER = "knm_local"
MDN_CARRIER = "knm_mdn"

STATE_AGING = "aging"
STATE_AVAILABLE = "available"
STATE_DELETED = "deleted"
STATE_IN_SERVICE = "in_service"
STATE_PORT_IN = "port_in"
STATE_RESERVED = "reserved"
# knm_config:released_state/0 default.
RELEASED_STATE = STATE_AVAILABLE

# Older KAZOO kept the state here; knm_phone_number:from_json/1 reads it as a fallback.
_LEGACY_STATE = "pvt_number_state"
# knm_phone_number:sanitize_public_fields/1 never stores these public keys.
_UNSTORED_PUBLIC = ("id", "used_by")


def state_of(number: Json) -> str | None:
    state = number.get("pvt_state", number.get(_LEGACY_STATE))
    return state if isinstance(state, str) else None


def assigned_to(number: Json) -> str | None:
    owner = number.get("pvt_assigned_to")
    return owner if isinstance(owner, str) and owner else None


def used_by(number: Json) -> str | None:
    app = number.get("pvt_used_by")
    return app if isinstance(app, str) and app else None


def is_live(number: Json) -> bool:
    """Soft-deleted number docs are "not found" to KAZOO (kzs_doc hides them)."""
    return not number.get("pvt_deleted") and not number.get("_deleted")


def public_fields(data: Json) -> Json:
    return {
        key: copy.deepcopy(value)
        for key, value in data.items()
        if not key.startswith("_") and not key.startswith("pvt_") and key not in _UNSTORED_PUBLIC
    }


def new_number(
    e164: str,
    *,
    state: str,
    assign_to: str | None,
    module_name: str = LOCAL_CARRIER,
    public: Json | None = None,
    now: int | None = None,
) -> Json:
    """A number doc as knm_ops:create/2 saves it (knm_phone_number:to_json/1)."""
    now = now_gregorian() if now is None else now
    doc = public_fields(public or {})
    doc.update(
        {
            "_id": e164,
            "pvt_type": NUMBER_TYPE,
            "pvt_db_name": encoded_number_db(e164),
            "pvt_module_name": module_name,
            "pvt_ported_in": False,
            "pvt_state": state,
            "pvt_created": now,
            "pvt_modified": now,
        }
    )
    if module_name in (LOCAL_CARRIER, MDN_CARRIER):
        # set_module_name_local/2: local numbers carry the `local` feature.
        doc["pvt_features"] = {"local": {}}
    # knm_states: `available` numbers belong to nobody; reserving records who reserved.
    if assign_to is not None and state != STATE_AVAILABLE:
        doc["pvt_assigned_to"] = assign_to
        if state == STATE_RESERVED:
            doc["pvt_reserve_history"] = [assign_to]
    return doc


def take_over(
    existing: Json,
    e164: str,
    *,
    state: str,
    assign_to: str,
    public: Json | None = None,
    now: int | None = None,
) -> Json:
    """An existing aging/available/port_in number (re)created for an account.

    knm_lib:ensure_can_load_to_create/1 keeps the doc, applies the create options and
    moves it to the requested state; a new owner clears `used_by`
    (knm_phone_number:set_assigned_to/2) and remembers the previous one.
    """
    now = now_gregorian() if now is None else now
    doc = {k: copy.deepcopy(v) for k, v in existing.items() if k.startswith(("_", "pvt_"))}
    doc.update(public_fields(existing))
    doc.update(public_fields(public or {}))
    doc.pop(_LEGACY_STATE, None)
    doc.update({"_id": e164, "pvt_type": NUMBER_TYPE, "pvt_state": state, "pvt_modified": now})
    doc.setdefault("pvt_db_name", encoded_number_db(e164))
    doc.setdefault("pvt_created", now)
    previous = assigned_to(existing)
    if previous != assign_to and state != STATE_AVAILABLE:
        doc["pvt_assigned_to"] = assign_to
        doc.pop("pvt_used_by", None)
        if previous is not None:
            doc["pvt_previously_assigned_to"] = previous
    if state == STATE_RESERVED:
        doc["pvt_reserve_history"] = [assign_to, *doc.get("pvt_reserve_history", [])]
    return doc


def with_used_by(number: Json, app: str | None, *, now: int | None = None) -> Json:
    """The doc with `pvt_used_by` set (or removed for None) — knm_ops:assign_to_app/3."""
    doc = copy.deepcopy(number)
    if app is None:
        doc.pop("pvt_used_by", None)
    else:
        doc["pvt_used_by"] = app
    doc.pop("used_by", None)
    _migrate_legacy_state(doc)
    doc["pvt_modified"] = now_gregorian() if now is None else now
    return doc


def released(number: Json, *, now: int | None = None) -> Json:
    """knm_ops:release/2 up to the save: features reset, public fields cleared, and the
    reservation history unwound (back to the previous reserver, else `available`)."""
    now = now_gregorian() if now is None else now
    doc = {k: copy.deepcopy(v) for k, v in number.items() if k.startswith(("_", "pvt_"))}
    _migrate_legacy_state(doc)
    module = doc.get("pvt_module_name")
    doc.pop("pvt_features", None)
    if module in (LOCAL_CARRIER, MDN_CARRIER):
        doc["pvt_features"] = {"local": {}}
    history = doc.get("pvt_reserve_history")
    history = history if isinstance(history, list) else []
    previous = assigned_to(doc)
    doc.pop("pvt_used_by", None)
    if len(history) >= 2:
        doc["pvt_assigned_to"] = history[1]
        doc["pvt_reserve_history"] = history[1:]
        doc["pvt_state"] = STATE_RESERVED
    else:
        doc.pop("pvt_assigned_to", None)
        doc.pop("pvt_reserve_history", None)
        doc["pvt_state"] = RELEASED_STATE
    if previous is not None and previous != assigned_to(doc):
        doc["pvt_previously_assigned_to"] = previous
    doc["pvt_modified"] = now
    return doc


def is_deleted_on_release(number: Json) -> bool:
    """knm_ops:delete_maybe_age/1: an unassigned local (or mdn) number is deleted."""
    return assigned_to(number) is None and number.get("pvt_module_name") in (
        LOCAL_CARRIER,
        MDN_CARRIER,
    )


def can_release(number: Json) -> bool:
    """knm_ops:can_release/2."""
    releasable = ("released", STATE_RESERVED, STATE_PORT_IN, STATE_IN_SERVICE)
    return state_of(number) in releasable or number.get("pvt_module_name") == LOCAL_CARRIER


def account_copy(number: Json) -> Json:
    """The copy kept in the owner's account db: the same document, its own revision."""
    doc = copy.deepcopy(number)
    doc.pop("_rev", None)
    return doc


def features_list(number: Json) -> list[str]:
    features = number.get("pvt_features")
    return sorted(features) if isinstance(features, dict) else []


def public_json(number: Json, *, deleted: bool = False) -> Json:
    """What the phone_numbers API answers for one number (knm_phone_number:to_public_json/1).

    KAZOO's `_read_only.features_available` comes from the carrier/reseller feature
    configuration, which this service does not have; it is left out.
    """
    state = STATE_DELETED if deleted else state_of(number)
    app = used_by(number)
    features = features_list(number)
    module = number.get("pvt_module_name")
    view = public_fields(number)
    view["id"] = number["_id"]
    read_only = {
        "created": number.get("pvt_created"),
        "modified": number.get("pvt_modified"),
        "state": state,
        "used_by": app,
        "features": features,
        "carrier_module": module[4:] if isinstance(module, str) and module[:4] == "knm_" else None,
        "is_deleted": True if deleted or not is_live(number) else None,
    }
    for key, value in (("state", state), ("used_by", app), ("features", features)):
        if value:
            view[key] = value
    view["_read_only"] = {key: value for key, value in read_only.items() if value}
    return view


def wanted_states(raw: Any) -> frozenset[str] | None:
    """`filter_state` as Monster UI sends it (`["in_service","port_in"]`, monster-ui-pbxs), or
    one state; None when absent. A value that is neither lists nothing."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.lstrip().startswith("[") else raw
        except ValueError:
            return frozenset()
    if isinstance(raw, str):
        return frozenset({raw})
    if isinstance(raw, list):
        return frozenset(item for item in raw if isinstance(item, str))
    return frozenset()


@dataclass(frozen=True)
class InStates:
    """Keeps the number docs in one of these states (a listing's doc test)."""

    states: frozenset[str]

    def __call__(self, doc: Json | None) -> bool:
        return doc is not None and state_of(doc) in self.states


def listing_entry(value: Json) -> Json:
    """One `phone_numbers/crossbar_listing` row value as KAZOO's summary shows it."""
    return {key: v for key, v in value.items() if not key.startswith("pvt_")}


def _migrate_legacy_state(doc: Json) -> None:
    # from_json/1 reads `pvt_number_state` when `pvt_state` is missing; to_json/1 writes
    # only `pvt_state`.
    legacy = doc.pop(_LEGACY_STATE, None)
    if "pvt_state" not in doc and isinstance(legacy, str):
        doc["pvt_state"] = legacy
