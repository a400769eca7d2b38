"""The DIDs of a connectivity document, and the uniqueness rule KAZOO lacks.

DIDs are the keys of every `servers[].DIDs` object (cb_connectivity:get_numbers/1).
Inbound routing looks a dialled number up in `trunkstore/lookup_did` by its E.164 form
(docs/kazoo-compatibility.md §12.1); when two servers or two documents of one account carry the same
number the view answers several rows and the call goes to whichever comes first. So a
DID may appear in only one server of one live connectivity document per account,
compared on E.164-normalised numbers.

A duplicate is a 400 `validation error` in KAZOO's schema-error format (§5.2), keyed by
the dotted path of the later occurrence (`servers.1.DIDs.+14155550100`, a `.` inside a
key escaped as `%2E`), under the code `unique`:

    {"message": "...", "value": "<E.164>", "cause": "<where it already is>"}

`cause` is the id of the other connectivity document, or, for a duplicate inside the
document being written, the dotted path of the first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from service.kazoo.documents import is_live_of_type
from service.numbers.rules import is_reconcilable_e164, normalize

Json = dict[str, Any]


# A tuple rather than a frozen dataclass: a write builds one per DID several times
# over, and a tuple is built four times faster (50,000 DIDs: 45 ms instead of 180).
class Did(NamedTuple):
    server: int
    key: str  # as written in the document
    e164: str

    @property
    def path(self) -> str:
        return dotted_path("servers", self.server, "DIDs", self.key)


def dotted_path(*parts: str | int) -> str:
    # kz_json_schema's error keys: 0-based indices, a "." inside a key becomes "%2E".
    return ".".join(str(part).replace(".", "%2E") for part in parts)


def dids_of(doc: Json | None) -> list[Did]:
    """Every DID key of every server, in document order; tolerant of odd shapes."""
    return [
        Did(index, key, normalize(key))
        for index, _server, dids in _did_objects(doc)
        for key in dids
    ]


def _did_objects(doc: Json | None) -> Iterator[tuple[int, Json, Json]]:
    """(index, server, its `DIDs` object) of each server that has one."""
    if not isinstance(doc, dict):
        return
    servers = doc.get("servers")
    if not isinstance(servers, list):
        return
    for index, server in enumerate(servers):
        dids = server.get("DIDs") if isinstance(server, dict) else None
        if isinstance(dids, dict):
            yield index, server, dids


def numbers_of(doc: Json | None) -> set[str]:
    """The reconcilable numbers of a document, E.164; what ownership and assignment see."""
    # Without `Did`s: called several times a write, on every DID.
    numbers = {normalize(key) for _index, _server, dids in _did_objects(doc) for key in dids}
    return {e164 for e164 in numbers if is_reconcilable_e164(e164)}


@dataclass(frozen=True)
class Duplicate:
    did: Did
    # The other connectivity doc's id, or the path of the first occurrence in this doc.
    cause: str
    elsewhere: str  # for the message

    def error(self) -> Json:
        return {
            "unique": {
                "message": f"DID {self.did.e164} is already routed by {self.elsewhere}",
                "value": self.did.e164,
                "cause": self.cause,
            }
        }


def duplicates_within(dids: list[Did]) -> list[Duplicate]:
    """Every occurrence after the first of the same E.164 number among one document's
    DIDs (`dids_of`)."""
    first_seen: dict[str, Did] = {}
    duplicates = []
    for did in dids:
        first = first_seen.setdefault(did.e164, did)
        if first is not did:
            duplicates.append(
                Duplicate(
                    did=did,
                    cause=first.path,
                    elsewhere=f"{first.path} of this document",
                )
            )
    return duplicates


def duplicates_against(dids: list[Did], taken: dict[str, str]) -> list[Duplicate]:
    """Occurrences of numbers that other documents already route.

    `taken` maps an E.164 number to the id of the other connectivity doc (what
    `lookup_did` tells; its rows do not say which server).
    """
    duplicates = []
    for did in dids:
        other_id = taken.get(did.e164)
        if other_id is None:
            continue
        duplicates.append(
            Duplicate(did=did, cause=other_id, elsewhere=f"connectivity document {other_id}")
        )
    return duplicates


def as_validation_errors(duplicates: list[Duplicate]) -> Json:
    return {duplicate.did.path: duplicate.error() for duplicate in duplicates}


def routed_numbers(doc: Json | None) -> frozenset[str]:
    """The E.164 numbers a stored doc answers for in `trunkstore/lookup_did`.

    The view's own rules: live `sys_info` docs only, and no server whose `enabled` is
    false in JavaScript's loose sense (`srv.enabled == false`).
    """
    if not isinstance(doc, dict) or doc.get("_deleted") or not is_live_of_type(doc, "sys_info"):
        return frozenset()
    return frozenset(
        normalize(key)
        for _index, server, dids in _did_objects(doc)
        if not _loosely_false(server.get("enabled"))
        for key in dids
    )


def _loosely_false(value: Any) -> bool:
    """`value == false` in JavaScript: false, 0, and strings or one-item arrays that
    convert to 0 ("", "0", " ", [], [0], …); `null`, objects and `true` are not."""
    if value is None or isinstance(value, dict):
        return False
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        text = value.strip()
        try:
            return not text or float(text) == 0
        except ValueError:
            return False
    if isinstance(value, list):
        # An array compares as its items joined by ",": only one item can make "0".
        if not value:
            return True
        if len(value) > 1:
            return False
        item = value[0]
        if item is None:
            return True
        if isinstance(item, bool):
            return False  # "true" / "false" are not numbers
        return _loosely_false(item)
    return False
