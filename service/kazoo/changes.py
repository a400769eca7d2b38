"""How a document store tells the layers above it that CouchDB accepted a write.

KAZOO's data layer announces every save and delete on AMQP (kzs_publish). Our stores
cannot depend on the publisher (it sits above them), so each one takes an optional
`DocWritten` callback; `service/http/services.py` connects it to `service/events/`.

The contract, for every store that takes the callback:
* it is called only after CouchDB answered the write with success, once per document
  written, in the order the answers arrived;
* `db` is the real database name (`account/xx/yy/rest`, `numbers/+1415`, `accounts`);
* `doc` is the document as stored: with its new `_rev`, `_deleted: true` for a hard
  delete, `pvt_deleted: true` for a soft one;
* `action` is what the store did: a first save is `created`, a later one `edited`, a
  (soft or hard) delete `deleted`;
* the callback never raises and never waits: publishing happens in the background.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

Json = dict[str, Any]

Action = Literal["created", "edited", "deleted"]

DocWritten = Callable[[str, Json, Action], None]


def saved_action(doc_before_save: Json) -> Action:
    """kzs_publish:publish_doc/3: a doc saved without a `_rev` is new, otherwise edited;
    soft- and hard-deleted docs are `deleted` whatever the store says (the encoder)."""
    return "edited" if doc_before_save.get("_rev") else "created"


def hard_deleted(doc: Json, new_rev: str) -> Json:
    """What a hard delete leaves, as the change event describes it: the last body with
    the tombstone's revision and `_deleted`."""
    return {**doc, "_rev": new_rev, "_deleted": True}
