"""The connectivity document layer: KAZOO's semantics for `sys_info` docs, written once.

Handlers call these operations; this module applies validation, defaults, merge
rules, the forced realm, private fields and soft delete (docs/kazoo-compatibility.md §6 to §8), and
turns CouchDB's answers into KAZOO errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from service import fast_json, timing
from service.cache.reads import ReadCache
from service.couchdb.client import (
    CouchClient,
    DatabaseNotFound,
    DocumentConflict,
    DocumentNotFound,
    DocumentTooLarge,
)
from service.couchdb.design_docs import ensure_design_docs
from service.couchdb.grouped_saves import GroupedSaves
from service.kazoo import errors
from service.kazoo.changes import Action, DocWritten, hard_deleted
from service.kazoo.documents import (
    WriteContext,
    is_live_of_type,
    merge_patch,
    public_fields,
    public_view,
    replace_public_fields,
    stamp_private_fields,
)
from service.kazoo.ids import EMPTY_ID_VALUES, new_id
from service.kazoo.validation import SchemaValidator
from service.stores import listing

Json = dict[str, Any]

PVT_TYPE = "sys_info"


@dataclass(frozen=True)
class DocView:
    """What a GET answers for a live doc: its revision and public view, as JSON."""

    revision: str
    public: bytes

    def size(self) -> int:
        return len(self.public) + 120


@dataclass(frozen=True)
class Saved:
    """A stored doc as the API shows it, with the revision to report."""

    view: Json
    revision: str
    doc: Json


# Our own bound (KAZOO has none): long enough for any real id (KAZOO's are 32 hex), short
# enough that the id, percent-encoded in a CouchDB URL, stays under every server's
# request-line limit instead of failing there as a 5xx.
MAX_DOC_ID_LENGTH = 255


def doc_id_problem(doc_id: str) -> str | None:
    """Why `doc_id` cannot be a connectivity doc id, or None when it can."""
    if not doc_id:
        return "document ids may not be empty"
    # Ids starting with `_` would address CouchDB's own endpoints or design docs
    # (`_design/trunkstore`, `_all_docs`); KAZOO lets them through (§14 #10), we do not.
    if doc_id.startswith("_"):
        return "document ids may not start with '_'"
    # HTTP clients and proxies resolve `.` and `..` path segments away, so such a
    # document could never be addressed again.
    if doc_id in (".", ".."):
        return "document ids may not be '.' or '..'"
    if len(doc_id) > MAX_DOC_ID_LENGTH:
        return f"document ids may not be longer than {MAX_DOC_ID_LENGTH} characters"
    return None


def is_acceptable_doc_id(doc_id: str) -> bool:
    return doc_id_problem(doc_id) is None


# A body with more DIDs is not looked into before it is validated (a 50,000-DID trunk
# takes ~0.1 s to go through): its check reads what it needs then.
READ_AHEAD_DIDS = 1_000


def did_count(data: Json) -> int:
    servers = data.get("servers")
    if not isinstance(servers, list):
        return 0
    return sum(
        len(server["DIDs"])
        for server in servers
        if isinstance(server, dict) and isinstance(server.get("DIDs"), dict)
    )


def chosen_id(data: Json) -> str | None:
    """A client-chosen id on PUT (`data.id` or `data._id`), as KAZOO honours it (§7.2)."""
    for key in ("id", "_id"):
        value = data.get(key)
        if isinstance(value, str) and value not in EMPTY_ID_VALUES:
            return value
    return None


class DidRules(Protocol):
    """What a write needs from the numbers' rules (§11): a check before the save, and
    word of how it ended. `numbers.did_guard.DidGuard` is the implementation; the store
    only names what it calls, so that it depends on no package above it."""

    async def check(
        self, db: str, doc: Json, ctx: WriteContext, before: Json | None = None
    ) -> dict[str, Json]: ...

    def stored(self, db: str, doc_id: str, doc: Json | None) -> None: ...

    def abandoned(self, db: str, doc_id: str) -> None: ...

    def read_ahead(self, db: str, data: Json) -> None: ...

    def read_ahead_owners(self) -> None: ...

    async def track(
        self,
        db: str,
        before: Json | None,
        after: Json | None,
        *,
        known: dict[str, Json] | None = None,
    ) -> None: ...


class ConnectivityStore:
    def __init__(
        self,
        client: CouchClient,
        validator: SchemaValidator,
        dids: DidRules | None = None,
        reads: ReadCache | None = None,
        max_dids: int | None = None,
        saves: GroupedSaves | None = None,
    ) -> None:
        self.client = client
        self.validator = validator
        # Saves go to CouchDB with the concurrent saves into the same account (one
        # `_bulk_docs`, couchdb/grouped_saves.py); None: one PUT each.
        self.saves = saves
        # Our own bound (§7.5, KAZOO has none), `Settings.did_bound`; None: no bound.
        # Past it a write is a 400, not minutes of view indexing on the embedded server.
        self.max_dids = max_dids
        # The DIDs rules (docs/kazoo-compatibility.md §11): checked before a save, assigned after.
        self.dids = dids
        # Loads go through it; every write here drops what it changes (read-your-writes).
        self.reads = reads
        # Told of every document written (service/kazoo/changes.py): the change events.
        self.on_written: DocWritten | None = None

    def read_ahead(self, db: str, data: Json, *, merges: bool = False) -> bool:
        """A write of `data` into `db` has arrived: the reads its DID check needs may
        start now, while the request's account and token are checked. `merges`: a
        PATCH, whose merged doc keeps the stored doc's numbers. Whether any began."""
        if self.dids is None:
            return False
        count = did_count(data)
        if 0 < count <= READ_AHEAD_DIDS:
            self.dids.read_ahead(db, data)
            return True
        if count == 0 and merges:
            # The stored numbers' owners are checked again (§11.1): where they live is
            # only known once the doc is read, so the number databases are listed now.
            self.dids.read_ahead_owners()
            return True
        return False

    # -- reading -----------------------------------------------------------------------

    async def page(self, db: str, request: listing.PageRequest, query_string: str) -> listing.Page:
        """One listing page of connectivity ids (§9), served from the read cache if kept."""

        async def install_views() -> None:
            await ensure_design_docs(self.client, db, "account")

        async def read() -> listing.Page:
            # KAZOO's own view (cb_connectivity:summary/1), so KAZOO and we list the same rows.
            page = await listing.read_page(
                self.client,
                db,
                "trunkstore",
                "crossbar_listing",
                request,
                install_views=install_views,
            )
            # Kept in the read cache: only what the answer shows (filters read whole docs).
            return listing.ids_of(page)

        if self.reads is None:
            return await read()
        key = listing.page_key("trunkstore/crossbar_listing", request, query_string)
        return await self.reads.page(db, key, read, listing.ids_page_size)

    async def load(self, db: str, doc_id: str) -> Json:
        """The stored doc, or 404 `bad_identifier` if missing, soft-deleted or not ours."""
        if not is_acceptable_doc_id(doc_id):
            raise errors.bad_document_id(doc_id)
        if self.reads is None:
            raw = await self._read(db, doc_id)
        else:
            raw = await self.reads.doc(db, doc_id, lambda: self._read(db, doc_id))
        # Decoded for each caller: callers change the doc they are given.
        return _live(fast_json.loads(raw), doc_id)

    async def load_view(self, db: str, doc_id: str) -> DocView:
        """`load` as a GET shows it. Kept in the read cache rendered: a repeated GET
        neither decodes the stored doc nor encodes its public view again."""
        if not is_acceptable_doc_id(doc_id):
            raise errors.bad_document_id(doc_id)

        async def view() -> DocView:
            doc = _live(fast_json.loads(await self._read(db, doc_id)), doc_id)
            return DocView(revision=doc["_rev"], public=fast_json.dumps(public_view(doc)))

        if self.reads is None:
            return await view()
        return await self.reads.view(db, doc_id, view, DocView.size)

    async def _read(self, db: str, doc_id: str) -> bytes:
        try:
            return await self.client.get_doc_bytes(db, doc_id)
        except (DocumentNotFound, DatabaseNotFound):
            raise errors.bad_document_id(doc_id) from None

    # -- validation --------------------------------------------------------------------

    def validated(self, data: Json, realm: str | None) -> Json:
        """The body's public fields validated, defaults applied, realm forced (§6, §7.6)."""
        # Counted before the schema runs: validating 50,000 DIDs alone takes seconds.
        count = did_count(data)
        if self.max_dids is not None and count > self.max_dids:
            raise errors.too_many_dids(count, self.max_dids)
        candidate = public_fields(data)
        # KAZOO validates with an `id` key added; our schema does not describe it and it
        # is never stored (kzs_doc:prepare_doc_for_save/2), so it is left out here.
        candidate.pop("id", None)
        with timing.step("validate"):
            result = self.validator.validate(candidate)
        if not result.ok or result.value is None:
            raise errors.validation_error(result.errors)
        doc = result.value
        force_realm(doc, realm)
        return doc

    def validated_new(self, data: Json, realm: str | None) -> tuple[Json, str | None]:
        """A PUT body checked as `create` checks it: the client's id, then the schema.

        Also what `PUT /v2/schemas/connectivity/validation` answers, so both give the
        same 400 for the same body.
        """
        doc_id = chosen_id(data)
        problem = doc_id_problem(doc_id) if doc_id is not None else None
        if doc_id is not None and problem is not None:
            raise errors.reserved_document_id(doc_id, problem)
        return self.validated(data, realm), doc_id

    def patched(self, stored: Json, data: Json, realm: str | None) -> Json:
        """What a PATCH would store: the body merged onto `stored`, validated (400)."""
        patch = public_fields(data)
        patch.pop("id", None)
        merged = merge_patch(stored, patch)
        return replace_public_fields(stored, self.validated(merged, realm))

    # -- writing -----------------------------------------------------------------------

    # The writes take what `validated_new`, `validated` and `patched` returned: handlers
    # validate first (400 comes before 404/412, §1), and the body is not validated twice.

    async def create(self, db: str, doc: Json, doc_id: str | None, ctx: WriteContext) -> Saved:
        """PUT: `doc` and `doc_id` as `validated_new` returned them."""
        doc["_id"] = doc_id or new_id()
        doc["pvt_type"] = PVT_TYPE
        stamp_private_fields(doc, ctx)
        return await self._save_tracked(db, doc, ctx, before=None, action="created")

    async def replace(self, db: str, stored: Json, validated: Json, ctx: WriteContext) -> Saved:
        """POST: every public field replaced by the validated body."""
        doc = replace_public_fields(stored, validated)
        stamp_private_fields(doc, ctx)
        return await self._save_tracked(db, doc, ctx, before=stored, action="edited")

    async def patch(self, db: str, stored: Json, patched: Json, ctx: WriteContext) -> Saved:
        """PATCH: `patched` is the body merged onto `stored` and validated (`patched()`)."""
        doc = patched
        stamp_private_fields(doc, ctx)
        return await self._save_tracked(db, doc, ctx, before=stored, action="edited")

    async def soft_delete(self, db: str, stored: Json, ctx: WriteContext) -> Saved:
        doc = dict(stored)
        stamp_private_fields(doc, ctx)
        doc["pvt_deleted"] = True
        saved = await self._save(db, doc, "deleted")
        if self.dids is not None:
            self.dids.stored(db, doc["_id"], saved.doc)
            await self.dids.track(db, stored, None)
        return _deleted(saved.doc, stored["_rev"])

    async def hard_delete(self, db: str, stored: Json) -> Saved:
        try:
            tombstone = await self.client.delete_doc(db, stored["_id"], stored["_rev"])
        except DocumentConflict:
            raise errors.conflict() from None
        except (DocumentNotFound, DatabaseNotFound):
            raise errors.bad_document_id(stored["_id"]) from None
        finally:
            self._forget(db, stored["_id"])
        removed = hard_deleted(stored, tombstone.rev)
        self._written(db, removed, "deleted")
        if self.dids is not None:
            self.dids.stored(db, stored["_id"], removed)
            await self.dids.track(db, stored, None)
        return _deleted(stored, stored["_rev"])

    async def _save_tracked(
        self, db: str, doc: Json, ctx: WriteContext, before: Json | None, action: Action
    ) -> Saved:
        """A validated PUT/POST/PATCH: DIDs checked (400/403), saved, then DIDs assigned."""
        if self.dids is None:
            return await self._save(db, doc, action)
        number_docs = await self.dids.check(db, doc, ctx, before)
        try:
            with timing.step("save"):
                saved = await self._save(db, doc, action)
        except BaseException:
            self.dids.abandoned(db, doc["_id"])
            raise
        self.dids.stored(db, doc["_id"], saved.doc)
        with timing.step("assign"):
            await self.dids.track(db, before, saved.doc, known=number_docs)
        return saved

    async def _save(self, db: str, doc: Json, action: Action) -> Saved:
        try:
            if self.saves is not None:
                saved = await self.saves.save(db, doc)
            else:
                saved = await self.client.put_doc(db, doc)
        except DocumentConflict:
            raise errors.conflict() from None
        except DocumentTooLarge:
            raise errors.document_too_large() from None
        except DatabaseNotFound:
            raise errors.datastore_fault(db) from None
        finally:
            # Also after a failure: a conflict means someone else changed the doc, and a
            # lost answer may hide a write that landed.
            self._forget(db, doc["_id"])
        stored = dict(doc)
        stored["_rev"] = saved.rev
        # Before the DIDs' number docs are assigned: events follow the order of the writes.
        self._written(db, stored, action)
        return Saved(view=public_view(stored), revision=saved.rev, doc=stored)

    def _written(self, db: str, doc: Json, action: Action) -> None:
        if self.on_written is not None:
            self.on_written(db, doc, action)

    def _forget(self, db: str, doc_id: str) -> None:
        if self.reads is not None:
            self.reads.forget(db, doc_id)


def _live(doc: Any, doc_id: str) -> Json:
    """`doc` if the API may show it as a connectivity doc, else 404 `bad_identifier`."""
    if not isinstance(doc, dict) or not is_live_of_type(doc, PVT_TYPE):
        raise errors.bad_document_id(doc_id)
    return doc


def force_realm(doc: Json, realm: str | None) -> None:
    """`account.auth_realm` always follows the account's realm (§7.6)."""
    if not realm:
        # KAZOO keeps the client's value when the account has no realm.
        return
    account = doc.get("account")
    if not isinstance(account, dict):
        account = {}
        doc["account"] = account
    account["auth_realm"] = realm


def _deleted(doc: Json, revision_before: str) -> Saved:
    # KAZOO reports the revision *before* the delete write (§8, §14 #8).
    view = public_view(doc)
    view["_read_only"] = {"deleted": True}
    return Saved(view=view, revision=revision_before, doc=doc)
