"""CSV listings (§9, §13): what `Accept: text/csv` or `?accept=csv` answers."""

from __future__ import annotations

import re

import pytest
from helpers import call
from number_helpers import fresh_number

from service.kazoo.csv_format import objects_to_csv

DEFAULT_NAME = re.compile(r'^attachment; filename="json_[0-9a-f]{22}\.csv"$')


async def _trunks(api, account, *ids: str) -> None:
    for doc_id in ids:
        reply = await call(api, "PUT", account.url(), data={"id": doc_id}, token=account.token)
        assert reply.status == 201, reply.text


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Accept": "text/csv"}, None),
        ({"Accept": "text/comma-separated-values"}, None),
        ({"Accept": "application/octet-stream"}, None),
        ({"Accept": "text/*"}, None),
        ({"Accept": "application/json;q=0.5, text/csv"}, None),
        ({}, {"accept": "csv"}),
        ({}, {"accept": "text/csv"}),
        ({"Accept": "application/json"}, {"accept": "csv"}),
    ],
    ids=[
        "text-csv",
        "comma-separated",
        "octet-stream",
        "text-star",
        "q",
        "qs",
        "qs-type",
        "qs-wins",
    ],
)
async def test_id_listing_as_csv_is_one_id_per_line(api, master, headers, params):
    """KAZOO runs the ids together with no separator (§14 #7); we answer a header and
    one quoted id per line, in the order of the JSON listing."""
    await _trunks(api, master, "trunk-a", "trunk-b")
    reply = await call(api, "GET", master.url(), token=master.token, headers=headers, params=params)
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Type"] == "text/csv"
    assert DEFAULT_NAME.match(reply.headers["Content-Disposition"])
    assert reply.text == '"ID"\n"trunk-b"\n"trunk-a"\n'
    assert "X-Request-ID" in reply.headers


@pytest.mark.parametrize("accept", [None, "application/json", "*/*", "application/*"])
async def test_json_stays_the_default(api, master, accept):
    await _trunks(api, master, "trunk-j")
    headers = {"Accept": accept} if accept else {}
    reply = await call(api, "GET", master.url(), token=master.token, headers=headers)
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.data == ["trunk-j"]


async def test_accept_neither_json_nor_csv_is_406(api, master):
    reply = await call(
        api, "GET", master.url(), token=master.token, headers={"Accept": "text/html"}
    )
    assert reply.status == 406


async def test_empty_csv_listing_is_204(api, master):
    reply = await call(api, "GET", master.url(), token=master.token, params={"accept": "csv"})
    assert reply.status == 204
    assert reply.text == ""


@pytest.mark.parametrize(
    ("headers", "params", "expected"),
    [
        ({"X-File-Name": "trunks.csv"}, None, "trunks.csv"),
        ({}, {"file_name": "mine.csv"}, "mine.csv"),
        ({"X-File-Name": "header.csv"}, {"file_name": "query.csv"}, "header.csv"),
        ({"X-File-Name": "../../etc/passwd"}, None, "passwd"),
        ({}, {"file_name": 'a"b\\c;d.csv'}, "c_d.csv"),
        ({}, {"file_name": "x\r\nSet-Cookie: a=b.csv"}, "x__Set-Cookie_ a=b.csv"),
    ],
    ids=["header", "query", "header-wins", "path", "quotes", "crlf"],
)
async def test_csv_file_name(api, master, headers, params, expected):
    """X-File-Name, else file_name, as KAZOO; only its base name, and nothing that
    could end the quoted header value."""
    await _trunks(api, master, "trunk-f")
    query = {"accept": "csv", **(params or {})}
    reply = await call(api, "GET", master.url(), token=master.token, headers=headers, params=query)
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Disposition"] == f'attachment; filename="{expected}"'


async def test_csv_is_the_page_the_json_holds(api, master):
    await _trunks(api, master, "p-1", "p-2", "p-3")
    params = {"accept": "csv", "page_size": "2"}
    page = await call(api, "GET", master.url(), token=master.token, params=params)
    assert page.text == '"ID"\n"p-3"\n"p-2"\n'
    params["paginate"] = "false"
    everything = await call(api, "GET", master.url(), token=master.token, params=params)
    assert everything.text == '"ID"\n"p-3"\n"p-2"\n"p-1"\n'


async def test_children_listing_as_csv(api, make_account):
    parent = await make_account("CSV parent")
    child = await make_account("CSV child", parent=parent)
    path = f"/v2/accounts/{parent.id}/children"
    reply = await call(api, "GET", path, token=parent.token, headers={"Accept": "text/csv"})
    assert reply.status == 200, reply.text
    assert reply.text == f'"ID"\n"{child.id}"\n'
    alone = await call(
        api, "GET", f"/v2/accounts/{child.id}/children", token=child.token, params={"accept": "csv"}
    )
    assert alone.status == 204


async def test_phone_numbers_listing_as_csv_is_a_row_per_number(api, make_account):
    owner = await make_account("CSV numbers")
    base = f"/v2/accounts/{owner.id}/phone_numbers"
    # Fresh numbers: an Apache CouchDB keeps those of earlier runs.
    for number in (fresh_number(), fresh_number()):
        url = f"{base}/{number.replace('+', '%2B')}"
        created = await call(api, "PUT", url, data={}, token=owner.token)
        assert created.status == 201, created.text
    json_reply = await call(api, "GET", base, token=owner.token)
    reply = await call(api, "GET", base, token=owner.token, params={"accept": "csv"})
    assert reply.status == 200, reply.text
    lines = reply.text.splitlines()
    header = lines[0].split(",")
    assert header[0] == '"ID"' and '"state"' in header
    numbers = json_reply.data["numbers"]
    assert [line.split(",")[0] for line in lines[1:]] == [f'"{n}"' for n in numbers]
    state = header.index('"state"')
    assert [line.split(",")[state] for line in lines[1:]] == [
        f'"{entry["state"]}"' for entry in numbers.values()
    ]


async def test_a_single_document_is_still_json(api, master):
    """CSV is offered for listings only; a document GET keeps its JSON envelope."""
    await _trunks(api, master, "trunk-doc")
    reply = await call(
        api, "GET", master.url("/trunk-doc"), token=master.token, params={"accept": "csv"}
    )
    assert reply.status == 200 and reply.data["id"] == "trunk-doc"


def test_object_rows_as_crossbar_writes_them():
    text = objects_to_csv(
        [
            {"id": "a", "name": 'PBX "one"', "account": {"trunks": 2, "realm": "x.example"}},
            {"id": "b", "enabled": True, "servers": ["s1", "s2"], "none": None, "empty": ""},
            {"id": "c", "nested": {}, "objs": [{"a": 1}], "price": 1.5},
        ]
    ).decode()
    assert text.splitlines() == [
        '"ID","name","account_trunks","account_realm","enabled","servers","none","empty",'
        '"objs","price"',
        '"a","PBX ""one""","2","x.example",,,,,,',
        '"b",,,,"true","s1,s2","null","",,',
        '"c",,,,,,,,,"1.5"',
    ]
    assert text.endswith("\n")
    assert objects_to_csv([]) == b""
