"""What KAZOO's consumers accept, written from their validators, apart from the service's
encoder: a payload the service gets wrong fails here rather than agreeing with itself.

* kz_api:validate/4 — every message has the default headers (Event-Category,
  Event-Name, App-Name, App-Version, Msg-ID) and the API's own required headers, with
  the values and types the API lists;
* kapi_conf:doc_update_v/1 — ID and Database required; Event-Category
  `configuration`, Event-Name one of the doc_/db_ names; ID and Rev strings,
  Is-Soft-Deleted a boolean;
* kapi_registration:flush_v/1 — Realm required; `directory` / `reg_flush`.

kz_api:build_message/3 drops keys it does not list, so a key outside the lists below
would never reach a KAZOO handler: the checks also refuse such keys.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

DEFAULT_HEADERS = ("Event-Category", "Event-Name", "App-Name", "App-Version", "Msg-ID")
OPTIONAL_DEFAULT_HEADERS = (
    "Raw-Headers",
    "Destination-Server",
    "Geo-Location",
    "Access-Group",
    "Tenant-ID",
    "Node",
    "Server-ID",
    "Defer-Response",
)

CONF_HEADERS = ("ID", "Database")
OPTIONAL_CONF_HEADERS = (
    "Account-ID",
    "Date-Created",
    "Date-Modified",
    "Doc",
    "Is-Soft-Deleted",
    "Rev",
    "Type",
    "Version",
    "Origin-Cache",
)
CONF_EVENT_NAMES = (
    "doc_edited",
    "doc_created",
    "doc_deleted",
    "db_edited",
    "db_created",
    "db_deleted",
    "db_views_updated",
)


def doc_update_problems(payload: Json) -> list[str]:
    """Why kapi_conf:doc_update_v/1 would refuse `payload` (empty: it accepts it)."""
    problems = _missing(payload, (*DEFAULT_HEADERS, *CONF_HEADERS))
    problems += _unknown(
        payload,
        (*DEFAULT_HEADERS, *OPTIONAL_DEFAULT_HEADERS, *CONF_HEADERS, *OPTIONAL_CONF_HEADERS),
    )
    if payload.get("Event-Category") != "configuration":
        problems.append(f"Event-Category {payload.get('Event-Category')!r}")
    if payload.get("Event-Name") not in CONF_EVENT_NAMES:
        problems.append(f"Event-Name {payload.get('Event-Name')!r}")
    for key in ("ID", "Rev"):
        if key in payload and not isinstance(payload[key], str):
            problems.append(f"{key} is not a string")
    if "Is-Soft-Deleted" in payload and not isinstance(payload["Is-Soft-Deleted"], bool):
        problems.append("Is-Soft-Deleted is not a boolean")
    return problems


def reg_flush_problems(payload: Json) -> list[str]:
    """Why kapi_registration:flush_v/1 would refuse `payload`."""
    problems = _missing(payload, (*DEFAULT_HEADERS, "Realm"))
    problems += _unknown(
        payload, (*DEFAULT_HEADERS, *OPTIONAL_DEFAULT_HEADERS, "Realm", "Username")
    )
    if payload.get("Event-Category") != "directory":
        problems.append(f"Event-Category {payload.get('Event-Category')!r}")
    if payload.get("Event-Name") != "reg_flush":
        problems.append(f"Event-Name {payload.get('Event-Name')!r}")
    return problems


def _missing(payload: Json, required: tuple[str, ...]) -> list[str]:
    # kz_api:has_all/2 counts an empty value as missing.
    return [f"{key} missing" for key in required if payload.get(key) in (None, "")]


def _unknown(payload: Json, allowed: tuple[str, ...]) -> list[str]:
    return [f"{key} is not a header KAZOO keeps" for key in payload if key not in allowed]
