"""Listing filters with KAZOO's semantics (crossbar_filter.erl, crossbar_view.erl, §9).

Filters look at the full stored doc, private fields included; paths are dotted with
1-based array positions; values compare as strings; the page size counts documents
after filtering, and `next_start_key` is the key of the first row not returned.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from helpers import call

from service.couchdb.client import CouchClient
from service.kazoo.start_keys import decode_start_key, encode_start_key
from service.stores.listing import FILTERED_SLICE_MAX

Json = dict[str, Any]


async def bulk_write(couch: CouchClient, db: str, docs: list[Json]) -> None:
    status, body = await couch.request(
        "POST", f"{quote(db, safe='')}/_bulk_docs", body={"docs": docs}
    )
    assert status == 201, body
    assert all("error" not in row for row in body), body


def stored_trunk(doc_id: str, **fields: Any) -> Json:
    """A connectivity doc as KAZOO stores it, written straight to CouchDB."""
    return {"_id": doc_id, "pvt_type": "sys_info", "pvt_vsn": "1", "servers": [], **fields}


async def listing(api, account, **params: str) -> Any:
    reply = await call(api, "GET", account.url(), token=account.token, params=params)
    assert reply.status == 200, reply.text
    return reply


async def ids(api, account, **params: str) -> list[str]:
    return (await listing(api, account, **params)).data


async def test_filters_on_values_public_and_private(api, master):
    servers_ip = [{"auth": {"auth_method": "IP", "ip": "192.0.2.1"}, "options": {"enabled": False}}]
    servers_pw = [
        {"auth": {"auth_user": "u1", "auth_password": "p1"}, "options": {"enabled": True}},
        {"auth": {"auth_method": "IP", "ip": "192.0.2.2"}},
    ]
    bodies = {
        "v-a": {"name": "alpha", "account": {"trunks": 2}, "servers": servers_ip},
        "v-b": {"name": "beta", "account": {"trunks": 5}, "servers": servers_pw},
        "v-c": {"name": "gamma", "account": {"trunks": 2}, "servers": []},
        "v-d": {"name": "Alpha", "servers": servers_pw, "tags": ["red", "blue"]},
    }
    for doc_id, body in bodies.items():
        reply = await call(
            api, "PUT", master.url(), data={"id": doc_id, **body}, token=master.token
        )
        assert reply.status == 201, reply.text

    assert await ids(api, master, filter_name="alpha") == ["v-a"]
    assert await ids(api, master, filter_not_name="alpha") == ["v-d", "v-c", "v-b"]
    # Private fields are part of the filtered document.
    assert await ids(api, master, filter_pvt_type="sys_info") == ["v-d", "v-c", "v-b", "v-a"]
    assert await ids(api, master, filter_pvt_alphanum_name="alpha") == ["v-d", "v-a"]
    # Numbers and booleans compare as their text; array positions count from 1.
    assert await ids(api, master, **{"filter_account.trunks": "2"}) == ["v-c", "v-a"]
    assert await ids(api, master, **{"filter_servers.1.options.enabled": "false"}) == ["v-a"]
    assert await ids(api, master, **{"filter_servers.1.auth.auth_method": "IP"}) == ["v-a"]
    assert await ids(api, master, **{"filter_servers.2.auth.auth_method": "IP"}) == ["v-d", "v-b"]
    assert await ids(api, master, **{"filter_servers.0.auth.auth_method": "IP"}) == []
    # A JSON array means "any of its strings"; a JSON string is compared decoded.
    assert await ids(api, master, filter_name='["alpha","gamma"]') == ["v-c", "v-a"]
    assert await ids(api, master, filter_name='"beta"') == ["v-b"]
    # KAZOO compares the stored value *as text* with the array's members: numbers never match.
    assert await ids(api, master, **{"filter_account.trunks": "[2]"}) == []
    # An array value is compared as its strings run together (iolist_to_binary/1).
    assert await ids(api, master, filter_tags="redblue") == ["v-d"]
    # Repeated filters must all hold.
    both = await call(
        api, "GET", master.url() + "?filter_name=alpha&filter_name=beta", token=master.token
    )
    assert both.data == []


async def test_key_and_value_presence(api, couch, master):
    await bulk_write(
        couch,
        master.db,
        [
            stored_trunk("p-1", note="written", name="one"),
            stored_trunk("p-2", note="", name="two"),
            stored_trunk("p-3", note="0", name="three"),
            stored_trunk("p-4", name="four", note_list=[]),
            stored_trunk("p-5", name="five", note=None),
        ],
    )
    assert await ids(api, master, has_key="note") == ["p-5", "p-3", "p-2", "p-1"]
    assert await ids(api, master, key_missing="note") == ["p-4"]
    # kz_term:is_empty/1: "", "0", null, [] and {} are no value.
    assert await ids(api, master, has_value="note") == ["p-1"]
    assert await ids(api, master, value_missing="note") == ["p-5", "p-4", "p-3", "p-2"]
    assert await ids(api, master, value_missing="note_list") == ["p-5", "p-4", "p-3", "p-2", "p-1"]
    # A path running through a string raises in KAZOO, which excludes the doc either way.
    assert await ids(api, master, has_key="name.first") == []
    assert await ids(api, master, key_missing="name.first") == []
    # A bare `?has_key` (cowboy's `true`) is no path: nothing passes.
    bare = await call(api, "GET", master.url() + "?has_key", token=master.token)
    assert bare.data == []


async def test_bare_filter_key_means_true(api, couch, master):
    await bulk_write(
        couch, master.db, [stored_trunk("b-1", flagged=True), stored_trunk("b-2", flagged=False)]
    )
    reply = await call(api, "GET", master.url() + "?filter_flagged", token=master.token)
    assert reply.data == ["b-1"]


async def test_created_and_modified_ranges(api, couch, master):
    await bulk_write(
        couch,
        master.db,
        [
            stored_trunk("t-1", pvt_created=63_800_000_100, pvt_modified=63_800_000_900),
            stored_trunk("t-2", pvt_created=63_800_000_200, pvt_modified=63_800_000_200),
            stored_trunk("t-3", pvt_created="63800000300", pvt_modified=63_800_000_300),
            stored_trunk("t-4"),
        ],
    )
    # Inclusive bounds on pvt_created / pvt_modified (numeric strings count as numbers).
    assert await ids(api, master, created_from="63800000200") == ["t-4", "t-3", "t-2"]
    assert await ids(api, master, created_to="63800000200") == ["t-2", "t-1"]
    assert await ids(api, master, created_from="63800000150", created_to="63800000300") == [
        "t-3",
        "t-2",
    ]
    assert await ids(api, master, modified_from="63800000800") == ["t-4", "t-1"]
    assert await ids(api, master, modified_to="63800000250") == ["t-2"]
    # A doc without the timestamp passes every `_from` and fails every `_to` (KAZOO compares
    # the bound with `undefined`, and numbers sort before atoms).
    assert "t-4" in await ids(api, master, created_from="99999999999")
    # Not a number: the filter raises, nothing passes.
    assert await ids(api, master, created_from="yesterday") == []
    # A float bound is rounded, as kz_term:to_integer/1 does.
    assert await ids(api, master, created_to="63800000199.5") == ["t-2", "t-1"]


def kazoo_pages(
    all_ids: list[str], keep: set[str], page_size: int, descending: bool, start: str | None
) -> tuple[list[str], str | None]:
    """crossbar_view's paging loop, literally: ask for the missing rows plus one, filter,
    repeat from the extra row until the page is full or the view ends."""
    rows = sorted(all_ids, reverse=descending)
    if start is not None:
        rows = [r for r in rows if (r <= start if descending else r >= start)]
    page: list[str] = []
    position = 0
    while True:
        limit = 1 + page_size - len(page)
        batch = rows[position : position + limit]
        if len(batch) < limit:
            page += [r for r in batch if r in keep]
            return page, None
        examined, extra = batch[:-1], batch[-1]
        passed = [r for r in examined if r in keep]
        page += passed
        if len(page) == page_size:
            return page, extra
        position += limit - 1


async def test_page_size_counts_documents_after_filtering(api, couch, master):
    # 130 docs, one in ten matching, so pages span several view slices.
    all_ids = [f"s-{n:03d}" for n in range(130)]
    keep = {doc_id for n, doc_id in enumerate(all_ids) if n % 10 == 7}
    await bulk_write(
        couch,
        master.db,
        [stored_trunk(doc_id, colour="red" if doc_id in keep else "blue") for doc_id in all_ids],
    )
    for descending in (True, False):
        for page_size in (1, 4, 13):
            start: str | None = None
            seen: list[str] = []
            while True:
                params = {"filter_colour": "red", "page_size": str(page_size)}
                if not descending:
                    params["ascending"] = "true"
                if start is not None:
                    params["start_key"] = encode_start_key(start)
                reply = await listing(api, master, **params)
                expected, next_key = kazoo_pages(all_ids, keep, page_size, descending, start)
                assert reply.data == expected, (descending, page_size, start)
                assert reply.body["page_size"] == len(expected)
                if next_key is None:
                    assert "next_start_key" not in reply.body
                    break
                # The key of the first row not returned, whether or not it matches.
                assert decode_start_key(reply.body["next_start_key"]) == next_key
                seen += reply.data
                start = next_key
            seen += reply.data
            assert seen == sorted(keep, reverse=descending)


async def test_a_full_page_followed_only_by_non_matching_rows(api, couch, master):
    await bulk_write(
        couch,
        master.db,
        [
            stored_trunk("e-1", kind="x"),
            stored_trunk("e-2", kind="y"),
            stored_trunk("e-3", kind="y"),
        ],
    )
    first = await listing(api, master, filter_kind="x", page_size="1", ascending="true")
    assert first.data == ["e-1"]
    # KAZOO cannot know that nothing else matches: it hands out the next key anyway.
    assert decode_start_key(first.body["next_start_key"]) == "e-2"
    rest = await listing(
        api,
        master,
        filter_kind="x",
        page_size="1",
        ascending="true",
        start_key=first.body["next_start_key"],
    )
    assert rest.data == []
    assert rest.body["page_size"] == 0
    assert "next_start_key" not in rest.body


async def test_unpaginated_filtered_listing(api, couch, master):
    await bulk_write(
        couch, master.db, [stored_trunk(f"u-{n:03d}", even=n % 2 == 0) for n in range(120)]
    )
    reply = await listing(api, master, filter_even="true", paginate="false")
    assert reply.data == [f"u-{n:03d}" for n in range(118, -1, -2)]
    for key in ("page_size", "start_key", "next_start_key"):
        assert key not in reply.body
    # Other parameters do not filter, even one that switches filtering on by its prefix.
    unfiltered = await listing(api, master, paginate="false", other="x", has_keyboard="x")
    assert len(unfiltered.data) == 120


async def test_a_huge_page_size_with_filters_reads_bounded_slices(
    proxied_api, proxy, couch, master
):
    await bulk_write(couch, master.db, [stored_trunk(f"h-{n}", n=n) for n in range(5)])
    proxy.clear()
    reply = await listing(proxied_api, master, filter_n='["not","a","number"]', page_size="9" * 20)
    assert reply.data == []
    reply = await listing(proxied_api, master, has_key="n", page_size="9" * 20)
    assert reply.data == ["h-4", "h-3", "h-2", "h-1", "h-0"]
    assert "next_start_key" not in reply.body
    # Each view read asked for a slice of at most FILTERED_SLICE_MAX rows (+1 to know
    # whether more follow), never for the page size the client named.
    limits = [
        int(query["limit"])
        for _method, path in proxy.seen
        if "crossbar_listing" in path
        for query in [dict(parse_qsl(urlsplit(path).query))]
    ]
    assert limits and max(limits) <= FILTERED_SLICE_MAX + 1, limits
