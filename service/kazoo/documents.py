"""KAZOO's document rules, as pure functions (docs/kazoo-compatibility.md §6.1, §7.3 to §7.5).

Nothing here talks to CouchDB; the document store composes these.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from service.kazoo.ids import alphanum_name, now_gregorian

Json = dict[str, Any]


def is_private_key(key: str) -> bool:
    return key.startswith("_") or key.startswith("pvt_")


def public_fields(doc: Json) -> Json:
    """The doc without its top-level `_*` and `pvt_*` keys (kz_doc:public_fields/1)."""
    return {key: value for key, value in doc.items() if not is_private_key(key)}


def private_fields(doc: Json) -> Json:
    return {key: value for key, value in doc.items() if is_private_key(key)}


def public_view(doc: Json) -> Json:
    """What the API returns for a stored doc (§7.4): public fields, `id`, `_read_only`."""
    view = public_fields(doc)
    view["id"] = doc["_id"]
    if "_read_only" in doc:
        view["_read_only"] = doc["_read_only"]
    return view


@dataclass(frozen=True)
class WriteContext:
    """Who is writing, for the private fields KAZOO stamps on every save (§7.3)."""

    account_id: str
    encoded_account_db: str
    request_id: str
    auth_account_id: str | None
    auth_user_id: str | None = None
    original_auth_account_id: str | None = None
    original_auth_owner_id: str | None = None


def stamp_private_fields(doc: Json, ctx: WriteContext, *, now: int | None = None) -> Json:
    """Sets the private fields of crossbar_doc:update_pvt_parameters/2 in place."""
    now = now_gregorian() if now is None else now
    doc.setdefault("pvt_vsn", "1")
    doc.setdefault("pvt_account_id", ctx.account_id)
    doc.setdefault("pvt_account_db", ctx.encoded_account_db)
    if "_rev" not in doc:
        doc["pvt_created"] = now
    doc["pvt_modified"] = now
    doc["pvt_request_id"] = ctx.request_id
    doc["pvt_is_authenticated"] = ctx.auth_account_id is not None
    if ctx.auth_account_id is not None:
        doc["pvt_auth_account_id"] = ctx.auth_account_id
    if ctx.auth_user_id is not None:
        doc["pvt_auth_user_id"] = ctx.auth_user_id
    if ctx.original_auth_account_id is not None:
        doc["pvt_original_auth_account_id"] = ctx.original_auth_account_id
    if ctx.original_auth_owner_id is not None:
        doc["pvt_original_auth_owner_id"] = ctx.original_auth_owner_id
    # KAZOO only refreshes this when `name` is a string, so a stale value can remain
    # after `name` is removed; we keep that for byte-compatibility with KAZOO's docs.
    name = doc.get("name")
    if isinstance(name, str):
        doc["pvt_alphanum_name"] = alphanum_name(name)
    return doc


def replace_public_fields(stored: Json, new_public: Json) -> Json:
    """POST semantics (§7.5): every public field replaced, stored private fields kept."""
    merged = copy.deepcopy(new_public)
    merged.update(copy.deepcopy(private_fields(stored)))
    return merged


def merge_patch(stored: Json, patch: Json) -> Json:
    """PATCH semantics (§7.5), as kz_json:merge/2 does them.

    Objects merge recursively and the patch wins on scalars; arrays are replaced whole;
    `null` deletes a key; a patch value of `{}` replaces the stored object with `{}`.
    The merge also drops `null` values that were already stored.
    """
    merged = _merge_objects(stored, patch)
    return _drop_nulls(merged)


def _merge_objects(base: Json, patch: Json) -> Json:
    result = copy.deepcopy(base)
    for key, value in patch.items():
        current = result.get(key)
        if isinstance(value, dict) and value and isinstance(current, dict):
            result[key] = _merge_objects(current, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _drop_nulls(obj: Json) -> Json:
    cleaned: Json = {}
    for key, value in obj.items():
        if value is None:
            continue
        cleaned[key] = _drop_nulls(value) if isinstance(value, dict) else value
    return cleaned


def is_live_of_type(doc: Json, pvt_type: str) -> bool:
    """A doc the API may show: of the resource's type and not soft-deleted (§8)."""
    return doc.get("pvt_type") == pvt_type and not doc.get("pvt_deleted")
