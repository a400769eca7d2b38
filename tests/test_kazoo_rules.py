"""KAZOO's rules as pure functions (service/kazoo/): documents, ids, start keys, filters.

No CouchDB and no service: each rule is called with the values KAZOO's own code would
see, and the answer is what KAZOO answers. These are the tests `make mutation` runs
against mutants of these modules, so each assertion names one behaviour exactly.
"""

from __future__ import annotations

import base64
import re
import struct
import uuid

import pytest

from service.kazoo import filters, ids, start_keys
from service.kazoo.documents import (
    WriteContext,
    is_live_of_type,
    is_private_key,
    merge_patch,
    private_fields,
    public_fields,
    public_view,
    replace_public_fields,
    stamp_private_fields,
)
from service.kazoo.filters import (
    MISSING,
    FilterFailed,
    as_binary,
    build_filter,
    erlang_round,
    erlang_to_integer,
    is_filter_key,
    lookup,
    mochinum_digits,
    query_pairs,
)
from service.kazoo.start_keys import decode_start_key, encode_start_key
from service.kazoo.validation import SchemaValidator, schema_path

ACCOUNT = "0123456789abcdef0123456789abcdef"

# -- documents ---------------------------------------------------------------------------

STORED = {
    "_id": "doc",
    "_rev": "2-abc",
    "pvt_type": "sys_info",
    "pvt_created": 1,
    "name": "trunk",
    "servers": [],
    "_private_too": 1,
    "pvt": "public: no underscore after pvt",
}


def test_private_keys_start_with_an_underscore_or_pvt_underscore():
    assert is_private_key("_id") and is_private_key("_rev") and is_private_key("pvt_type")
    assert not is_private_key("pvt") and not is_private_key("name")
    assert not is_private_key("a_pvt_b") and not is_private_key("x_")


def test_public_and_private_fields_split_a_doc():
    assert public_fields(STORED) == {"name": "trunk", "servers": [], "pvt": STORED["pvt"]}
    assert private_fields(STORED) == {
        "_id": "doc",
        "_rev": "2-abc",
        "pvt_type": "sys_info",
        "pvt_created": 1,
        "_private_too": 1,
    }


def test_public_view_adds_the_id_and_read_only_only_when_stored():
    assert public_view(STORED) == {
        "name": "trunk",
        "servers": [],
        "pvt": STORED["pvt"],
        "id": "doc",
    }
    deleted = public_view({**STORED, "_read_only": {"deleted": True}})
    assert deleted["_read_only"] == {"deleted": True} and deleted["id"] == "doc"


def _ctx(**fields: str | None) -> WriteContext:
    base = {
        "account_id": ACCOUNT,
        "encoded_account_db": ids.encoded_account_db(ACCOUNT),
        "request_id": "req-1",
        "auth_account_id": "auth-account",
    }
    return WriteContext(**{**base, **fields})  # type: ignore[arg-type]


def test_stamping_a_new_doc_sets_every_private_field():
    doc = stamp_private_fields({"name": "Main PBX #2"}, _ctx(auth_user_id="u1"), now=100)
    assert doc == {
        "name": "Main PBX #2",
        "pvt_vsn": "1",
        "pvt_account_id": ACCOUNT,
        "pvt_account_db": "account%2F01%2F23%2F456789abcdef0123456789abcdef",
        "pvt_created": 100,
        "pvt_modified": 100,
        "pvt_request_id": "req-1",
        "pvt_is_authenticated": True,
        "pvt_auth_account_id": "auth-account",
        "pvt_auth_user_id": "u1",
        "pvt_alphanum_name": "mainpbx2",
    }


def test_stamping_a_saved_doc_keeps_what_kazoo_keeps():
    stored = {
        "_rev": "1-a",
        "pvt_vsn": "2",
        "pvt_account_id": "other",
        "pvt_account_db": "elsewhere",
        "pvt_created": 5,
        "pvt_alphanum_name": "stale",
    }
    ctx = _ctx(
        auth_account_id=None,
        original_auth_account_id="orig-account",
        original_auth_owner_id="orig-owner",
    )
    doc = stamp_private_fields(dict(stored), ctx, now=200)
    assert doc["pvt_vsn"] == "2" and doc["pvt_account_id"] == "other"
    assert doc["pvt_account_db"] == "elsewhere" and doc["pvt_created"] == 5
    assert doc["pvt_modified"] == 200 and doc["pvt_is_authenticated"] is False
    assert "pvt_auth_account_id" not in doc and "pvt_auth_user_id" not in doc
    assert doc["pvt_original_auth_account_id"] == "orig-account"
    assert doc["pvt_original_auth_owner_id"] == "orig-owner"
    # No string `name`: the stale alphanumeric name stays, as in KAZOO.
    assert doc["pvt_alphanum_name"] == "stale"
    renamed = stamp_private_fields({**stored, "name": 5}, ctx, now=200)
    assert renamed["pvt_alphanum_name"] == "stale"


def test_stamping_without_a_time_uses_the_gregorian_clock():
    before = ids.now_gregorian()
    doc = stamp_private_fields({}, _ctx())
    assert before <= doc["pvt_created"] == doc["pvt_modified"] <= ids.now_gregorian()


def test_post_replaces_public_fields_and_keeps_private_ones():
    new = {"name": "new", "nested": {"a": 1}, "pvt_type": "ignored"}
    merged = replace_public_fields(STORED, new)
    assert merged == {
        "name": "new",
        "nested": {"a": 1},
        "_id": "doc",
        "_rev": "2-abc",
        "pvt_type": "sys_info",
        "pvt_created": 1,
        "_private_too": 1,
    }
    merged["nested"]["a"] = 2
    assert new["nested"] == {"a": 1}, "a copy, not the caller's object"


def test_patch_merges_objects_replaces_arrays_and_nulls_delete():
    stored = {
        "keep": 1,
        "obj": {"a": 1, "b": {"c": 1, "d": 2}, "n": None},
        "arr": [1, 2],
        "gone": "x",
        "emptied": {"x": 1},
        "scalar": "s",
    }
    patch = {
        "obj": {"b": {"c": 9}, "new": True},
        "arr": [3],
        "gone": None,
        "emptied": {},
        "scalar": {"now": "object"},
        "added": [None],
    }
    assert merge_patch(stored, patch) == {
        "keep": 1,
        "obj": {"a": 1, "b": {"c": 9, "d": 2}, "new": True},
        "arr": [3],
        "emptied": {},
        "scalar": {"now": "object"},
        "added": [None],  # nulls inside arrays are values
    }
    assert stored["obj"]["b"] == {"c": 1, "d": 2}, "the stored doc is not changed"
    patch["arr"].append(4)
    assert merge_patch({}, {"arr": [3]}) == {"arr": [3]}


def test_live_docs_of_a_type():
    assert is_live_of_type({"pvt_type": "sys_info"}, "sys_info")
    assert is_live_of_type({"pvt_type": "sys_info", "pvt_deleted": False}, "sys_info")
    assert not is_live_of_type({"pvt_type": "sys_info", "pvt_deleted": True}, "sys_info")
    assert not is_live_of_type({"pvt_type": "device"}, "sys_info")
    assert not is_live_of_type({}, "sys_info")


# -- ids ---------------------------------------------------------------------------------


def test_gregorian_seconds():
    assert ids.GREGORIAN_OFFSET == 62_167_219_200
    assert ids.now_gregorian() - ids.GREGORIAN_OFFSET == pytest.approx(
        __import__("time").time(), abs=2
    )


def test_new_ids_are_32_lowercase_hex_and_random():
    first, second = ids.new_id(), ids.new_id()
    assert re.fullmatch("[0-9a-f]{32}", first) and first != second
    assert uuid.UUID(hex=first).hex == first


def test_raw_account_ids_are_32_bytes_of_anything():
    assert ids.is_raw_account_id(ACCOUNT)
    assert ids.is_raw_account_id("z" * 32)
    assert not ids.is_raw_account_id("a" * 31) and not ids.is_raw_account_id("a" * 33)
    assert ids.is_raw_account_id("é" * 16)  # bytes, not characters
    assert not ids.is_raw_account_id("é" * 32)


def test_account_databases():
    assert ids.account_db(ACCOUNT) == "account/01/23/456789abcdef0123456789abcdef"
    assert ids.encoded_account_db(ACCOUNT) == "account%2F01%2F23%2F456789abcdef0123456789abcdef"
    assert ids.account_id_from_db(ids.account_db(ACCOUNT)) == ACCOUNT
    for db in (
        "accounts",
        "account/01/23",
        "account/01/23/45/67",
        "numbers/01/23/456789abcdef0123456789abcdef",
        "account/01/23/456789abcdef0123456789abcde",
        "account/01/23/456789abcdef0123456789abcdef0",
    ):
        assert ids.account_id_from_db(db) is None, db
    assert ids.ACCOUNTS_DB == "accounts"
    assert {"", "0", "undefined", "NULL"} == ids.EMPTY_ID_VALUES


def test_alphanum_name_keeps_lowercase_letters_and_digits():
    assert ids.alphanum_name("Main PBX #2 (Zürich)") == "mainpbx2zrich"
    assert ids.alphanum_name("") == ""


# -- start keys --------------------------------------------------------------------------


def _raw(key: str) -> bytes:
    return base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))


@pytest.mark.parametrize(
    ("key", "term"),
    [
        ("doc-003", b"\x83m\x00\x00\x00\x07doc-003"),
        ("", b"\x83m\x00\x00\x00\x00"),
        ("é", b"\x83m\x00\x00\x00\x02\xc3\xa9"),
        (0, b"\x83a\x00"),
        (255, b"\x83a\xff"),
        (256, b"\x83b\x00\x00\x01\x00"),
        (-1, b"\x83b\xff\xff\xff\xff"),
        (2**31 - 1, b"\x83b\x7f\xff\xff\xff"),
        (-(2**31), b"\x83b\x80\x00\x00\x00"),
        (None, b"\x83w\x04null"),
        (True, b"\x83w\x04true"),
        (False, b"\x83w\x05false"),
        ([], b"\x83j"),
        (["a", 1], b"\x83l\x00\x00\x00\x02m\x00\x00\x00\x01aa\x01j"),
        ([["x"]], b"\x83l\x00\x00\x00\x01l\x00\x00\x00\x01m\x00\x00\x00\x01xjj"),
    ],
    ids=repr,
)
def test_start_keys_are_erlang_terms_in_base64url(key, term):
    encoded = encode_start_key(key)
    assert _raw(encoded) == term
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert decode_start_key(encoded) == key


def test_keys_with_no_term_of_their_own_travel_as_json_text():
    for key, text in ((2**31, "2147483648"), (1.5, "1.5"), ({"a": [1, 2]}, '{"a":[1,2]}')):
        assert decode_start_key(encode_start_key(key)) == text


def test_base64url_alphabet_is_used():
    key = ">>>?"  # bytes whose base64 has a + or a /
    encoded = encode_start_key(key)
    assert "-" in encoded or "_" in encoded
    assert decode_start_key(encoded) == key


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x83",  # a version and nothing else
        b"\x84a\x01",  # not version 131
        b"\x83m\x00\x00\x00\x05abc",  # a binary shorter than its length
        b"\x83m\x00\x00\x00\x01ab",  # bytes left over
        b"\x83m\x00\x00\x00\x02\xff\xfe",  # not UTF-8
        b"\x83l\x00\x00\x00\x01a\x01a\x02",  # an improper list
        b"\x83l\x00\x00\x00\x02a\x01",  # a list cut short
        b"\x83w\x05hello",  # an atom that is no JSON value
        b"\x83b\x00\x00",  # a short integer
        b"\x83t\x00\x00\x00\x00",  # a tuple: not a view key
        b"\x83",
    ],
    ids=repr,
)
def test_values_that_are_no_key_of_ours_are_used_as_they_are(raw):
    value = _b64(raw)
    assert decode_start_key(value) == value


def test_other_atom_encodings_decode_too():
    assert decode_start_key(_b64(b"\x83v\x00\x04true")) is True
    assert decode_start_key(_b64(b"\x83d\x00\x05false")) is False
    assert decode_start_key(_b64(b"\x83d\x00\x04null")) is None
    assert decode_start_key(_b64(b"\x83l\x00\x00\x00\x01d\x00\x04truej")) == [True]


def test_plain_ids_and_garbage_stay_as_they_are():
    for value in ("doc-003", "g2wAAAAB", "%%%", "a", "abc="):
        assert decode_start_key(value) == value
    assert start_keys.VERSION == 131


def test_a_list_key_counts_its_items():
    term = _raw(encode_start_key(["a", "b", "c"]))
    assert struct.unpack(">I", term[2:6]) == (3,)


# -- filters: the query string -------------------------------------------------------------


def test_query_pairs_as_cowboy_parses_them():
    assert query_pairs("a=1&b&c=&a=2&&d=x%20y+z&%66=%3D") == [
        ("a", "1"),
        ("b", True),
        ("c", ""),
        ("a", "2"),
        ("d", "x y z"),
        ("f", "="),
    ]
    assert query_pairs("") == []
    assert query_pairs("k=a=b") == [("k", "a=b")]


@pytest.mark.parametrize(
    ("name", "is_filter"),
    [
        ("filter_name", True),
        ("filter_not_name", True),
        ("filter_", True),
        ("has_key", True),
        ("has_keyboard", True),  # a prefix match, as in KAZOO
        ("key_missing", True),
        ("has_value", True),
        ("value_missing", True),
        ("created_from", True),
        ("created_to", True),
        ("modified_from", True),
        ("modified_to", True),
        ("created_fromage", False),  # the time filters are exact names
        ("page_size", False),
        ("filter", False),
        ("xfilter_name", False),
    ],
)
def test_filter_keys(name, is_filter):
    assert is_filter_key(name) is is_filter


def test_no_filter_key_means_no_filter():
    assert build_filter("page_size=3&paginate=false") is None
    assert build_filter("") is None
    built = build_filter("page_size=3&filter_name=x")
    assert built is not None and built.pairs == (("page_size", "3"), ("filter_name", "x"))


def _listed(query: str, doc: dict | None) -> bool:
    built = build_filter(query)
    assert built is not None
    return built(doc)


DOC = {
    "name": "alpha",
    "count": 2,
    "ratio": 0.5,
    "flag": True,
    "off": False,
    "nothing": None,
    "tags": ["red", "blue"],
    "mixed": ["a", 1],
    "servers": [{"auth": {"auth_method": "IP"}}, {"auth": {"auth_method": "password"}}],
    "account": {"trunks": 2},
    "empty_list": [],
    "empty_obj": {},
    "zero": 0,
    "zero_text": "0",
    "pvt_created": 63_800_000_200,
    "pvt_modified": "63800000300",
}


@pytest.mark.parametrize(
    ("query", "listed"),
    [
        ("filter_name=alpha", True),
        ("filter_name=Alpha", False),
        ("filter_not_name=alpha", False),
        ("filter_not_name=beta", True),
        ("filter_count=2", True),
        ("filter_count=2.0", False),
        ("filter_ratio=0.5", True),
        ("filter_flag=true", True),
        ("filter_flag", True),  # a bare key is `true`
        ("filter_off=false", True),
        ("filter_off", False),
        ("filter_nothing=null", True),
        ("filter_tags=redblue", True),  # iolist_to_binary of the array
        ("filter_mixed=a%01", True),  # bytes 0-255 are part of an iolist
        ("filter_account.trunks=2", True),
        ("filter_account=%7B%22trunks%22%3A2%7D", True),  # objects compare as JSON
        ("filter_servers.1.auth.auth_method=IP", True),
        ("filter_servers.2.auth.auth_method=IP", False),
        ("filter_servers.0.auth.auth_method=IP", False),
        ("filter_servers.3.auth.auth_method=IP", False),
        ("filter_servers.x.auth.auth_method=IP", False),
        ("filter_missing=", True),  # nothing there is the empty binary
        ("filter_missing=x", False),
        ("filter_name.first=alpha", False),  # runs through a string: KAZOO raises
        ("filter_not_name.first=alpha", False),  # …and raising excludes, either way
        ('filter_name=["beta","alpha"]', True),
        ('filter_name=["beta"]', False),
        ("filter_count=[2]", False),  # only the array's strings can match
        ('filter_name="alpha"', True),
        ('filter_name="beta"', False),
        ("filter_name=[", False),
        ("filter_name=alpha&filter_count=3", False),  # every filter must hold
        ("filter_name=alpha&page_size=1", True),  # other keys always hold
        ("has_key=name", True),
        ("has_key=nothing", True),
        ("has_key=absent", False),
        ("has_key", False),  # a bare has_key is no path: nothing passes
        ("has_key=name.first", False),
        ("key_missing=absent", True),
        ("key_missing=name", False),
        ("key_missing", False),
        ("has_value=name", True),
        ("has_value=nothing", False),
        ("has_value=zero", False),
        ("has_value=zero_text", False),
        ("has_value=empty_list", False),
        ("has_value=empty_obj", False),
        ("has_value=off", True),  # false is a value
        ("has_value=ratio", True),
        ("has_value=tags", True),
        ("has_value=absent", False),
        ("value_missing=absent", True),
        ("value_missing=name", False),
        ("value_missing=zero", True),
        ("value_missing=account", False),
        ("created_from=63800000200", True),
        ("created_from=63800000201", False),
        ("created_to=63800000200", True),
        ("created_to=63800000199", False),
        ("created_to=63800000199.5", True),  # rounded half away from zero: 63800000200
        ("modified_from=63800000300", True),  # a numeric string is a number
        ("modified_to=63800000299", False),
        ("created_from=yesterday", False),
        ("created_from", False),
        ("created_from=1e3", False),  # Erlang's float grammar needs a fraction
    ],
)
def test_filters_hold_as_kazoo_decides(query, listed):
    assert _listed(query, DOC) is listed


def test_a_doc_without_timestamps_passes_from_and_fails_to():
    for stamp in ({}, {"pvt_created": True}, {"pvt_created": "soon"}, {"pvt_created": [1]}):
        assert _listed("created_from=1", stamp), stamp
        assert not _listed("created_to=99999999999", stamp), stamp
    assert _listed("created_to=3", {"pvt_created": 2.5})  # stored floats are rounded: 3
    assert not _listed("created_to=2", {"pvt_created": 2.5})
    assert _listed("created_from=1", {"pvt_created": float("inf")})  # no integer: missing


def test_a_missing_doc_is_an_empty_one():
    assert _listed("key_missing=name", None)
    assert not _listed("has_key=name", None)


def test_lookup_walks_objects_and_one_based_arrays():
    assert lookup(DOC, "servers.2.auth.auth_method") == "password"
    assert lookup(DOC, "servers.+1.auth") == {"auth_method": "IP"}
    assert lookup(DOC, "absent") is MISSING
    assert lookup(DOC, "servers.1.absent") is MISSING
    assert lookup(["a", "b"], "2") == "b"
    for bad in ("0", "3", "-1", "x", ""):
        assert lookup(["a", "b"], bad) is MISSING, bad
    with pytest.raises(FilterFailed):
        lookup(DOC, "count.x")


@pytest.mark.parametrize(
    ("value", "binary"),
    [
        (MISSING, b""),
        ("é", "é".encode()),
        (True, b"true"),
        (False, b"false"),
        (None, b"null"),
        (0, b"0"),
        (-12, b"-12"),
        (0.1, b"0.1"),
        ({"é": [1, None]}, '{"é":[1,null]}'.encode()),
        (["a", ["b", [99]]], b"abc"),
        (["a", 256], b""),
        (["a", -1], b""),
        (["a", True], b""),
        (["a", None], b""),
        (["a", ["b", 1.5]], b""),
        ([], b""),
        (object(), b""),
    ],
    ids=repr,
)
def test_values_as_kazoo_turns_them_into_binaries(value, binary):
    assert as_binary(value) == binary


@pytest.mark.parametrize(
    ("number", "digits"),
    [
        (0.0, "0.0"),
        (-0.0, "0.0"),
        (float("inf"), "0.0"),
        (float("nan"), "0.0"),
        (1.0, "1.0"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (123.456, "123.456"),
        (100.0, "100.0"),
        (1e5, "100000.0"),
        (1e6, "1.0e+6"),
        (1.5e7, "1.5e+7"),
        (1e-5, "0.00001"),
        (1.5e-5, "0.000015"),
        (1e-6, "0.000001"),
        (1e-7, "1.0e-7"),
        (1.25e-7, "1.25e-7"),
        (0.5, "0.5"),
        (12345678.9, "12345678.9"),
    ],
    ids=repr,
)
def test_floats_print_as_kazoos_mochinum(number, digits):
    assert mochinum_digits(number) == digits


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("0", 0),
        ("42", 42),
        ("+42", 42),
        ("-42", -42),
        ("007", 7),
        ("2.5", 3),
        ("-2.5", -3),
        ("2.4", 2),
        ("2.5e1", 25),
        ("1.0E+2", 100),
        ("1.5e-1", 0),
        ("", None),
        ("1e3", None),
        (".5", None),
        ("5.", None),
        ("1 ", None),
        ("1_000", None),
        ("abc", None),
        ("1.0e999", None),
    ],
)
def test_erlang_to_integer(text, number):
    assert erlang_to_integer(text) == number


def test_erlang_rounds_halves_away_from_zero():
    assert [erlang_round(x) for x in (0.5, 1.5, 2.5, -0.5, -1.5, 2.49, -2.51)] == [
        1,
        2,
        3,
        -1,
        -2,
        2,
        -3,
    ]


def test_filter_module_constants():
    assert filters.MISSING is MISSING
    assert not isinstance(None, filters._Missing)


# -- what the first mutation run showed was unchecked ---------------------------------------


def test_merges_and_replacements_share_nothing_with_their_inputs():
    stored = {"kept": {"deep": [1]}, "obj": {"a": {"b": 1}}, "pvt_x": {"p": [1]}}
    patch = {"obj": {"c": 1}, "new": {"n": [1]}}
    merged = merge_patch(stored, patch)
    merged["kept"]["deep"].append(2)
    merged["obj"]["a"]["b"] = 2
    merged["new"]["n"].append(2)
    assert stored == {"kept": {"deep": [1]}, "obj": {"a": {"b": 1}}, "pvt_x": {"p": [1]}}
    assert patch == {"obj": {"c": 1}, "new": {"n": [1]}}
    replaced = replace_public_fields(stored, {"name": "x"})
    replaced["pvt_x"]["p"].append(2)
    assert stored["pvt_x"] == {"p": [1]}


def test_iolists_take_bytes_0_to_255():
    assert as_binary(["a", 0, 255]) == b"a\x00\xff"


def test_a_float_ten_and_more_keeps_its_zeros():
    assert [mochinum_digits(x) for x in (10.0, 120.0, 12000.0)] == ["10.0", "120.0", "12000.0"]


def test_modified_bounds_read_pvt_modified():
    assert not _listed("modified_from=63800000301", DOC)
    assert _listed("modified_to=63800000300", DOC)


# -- validation: KAZOO's error table, for the keywords connectivity.json lacks --------------


def _adhoc_error(properties: dict, value: dict) -> dict:
    result = SchemaValidator({"$schema": DRAFT4, "properties": properties}).validate(value)
    assert not result.ok and result.value is None
    return result.errors


DRAFT4 = "http://json-schema.org/draft-04/schema#"


@pytest.mark.parametrize(
    ("schema", "value", "code", "detail"),
    [
        (
            {"minimum": 3},
            2,
            "minimum",
            {"message": "Value must be at least 3", "target": 3, "value": 2},
        ),
        (
            {"maximum": 3},
            4,
            "maximum",
            {"message": "Value must be at most 3", "target": 3, "value": 4},
        ),
        (
            {"minItems": 2},
            [1],
            "minItems",
            {"message": "The list must have at least 2 items", "target": 2, "value": [1]},
        ),
        (
            {"maxItems": 1},
            [1, 2],
            "maxItems",
            {"message": "The list is more than 1 items", "target": 1, "value": [1, 2]},
        ),
        (
            {"minProperties": 1},
            {},
            "minProperties",
            {"message": "The object must have at least 1 keys", "target": 1, "value": {}},
        ),
        (
            {"uniqueItems": True},
            [1, 1],
            "uniqueItems",
            {"message": "List of items is not unique", "value": [1, 1]},
        ),
        (
            {"properties": {}, "additionalProperties": False},
            {"x": 1},
            "additionalProperties",
            {
                "message": "Strict checking of data is enabled; only include schema-defined "
                "properties",
                "value": {"x": 1},
            },
        ),
        (
            {"dependencies": {"a": ["b"]}},
            {"a": 1},
            "dependencies",
            {"message": "Dependencies were not validated", "value": {"a": 1}},
        ),
        (
            {"not": {"type": "string"}},
            "s",
            "not",
            {"message": "failed to validate", "value": "s"},
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_error_details_as_kazoo_renders_them(schema, value, code, detail):
    assert _adhoc_error({"field": schema}, {"field": value}) == {"field": {code: detail}}


def test_a_schema_without_dollar_schema_is_draft4_and_others_are_refused():
    assert SchemaValidator({"properties": {"a": {"type": "string"}}}).validate({"a": "x"}).ok
    for declared in (DRAFT4 + "X", "http://json-schema.org/draft-07/schema#"):
        with pytest.raises(ValueError, match="draft-04"):
            SchemaValidator({"$schema": declared})
    assert SchemaValidator({"$schema": DRAFT4.rstrip("#")}).validate({}).ok


def test_nested_defaults_are_copied_every_time():
    validator = SchemaValidator(
        {
            "$schema": DRAFT4,
            "properties": {
                "outer": {
                    "type": "object",
                    "default": {"deep": {"n": 1}},
                    "properties": {"inner": {"type": "object", "default": {"m": {"k": 1}}}},
                }
            },
        }
    )
    for _ in range(3):  # the second and third answers come from what was remembered
        result = validator.validate({"outer": {}})
        assert result.value == {"outer": {"inner": {"m": {"k": 1}}}}
        result.value["outer"]["inner"]["m"]["k"] = 2
        fresh = validator.validate({})
        assert fresh.value == {"outer": {"deep": {"n": 1}, "inner": {"m": {"k": 1}}}}
        fresh.value["outer"]["deep"]["n"] = 2


def test_lenient_repairs_at_their_edges():
    integer = SchemaValidator(
        {"$schema": DRAFT4, "properties": {"n": {"type": "integer"}, "b": {"type": "boolean"}}}
    )
    assert integer.validate({"n": "4.6"}).value == {"n": 5}
    assert integer.validate({"n": "9007199254740991"}).value == {"n": 9007199254740991}
    for unsafe in ("9007199254740992", "1.0e400", "-9007199254740992"):
        assert "n" in integer.validate({"n": unsafe}).errors, unsafe
    for not_boolean in ([1], {"a": 1}, 1, "True"):
        assert "b" in integer.validate({"b": not_boolean}).errors, not_boolean
    number = SchemaValidator({"$schema": DRAFT4, "properties": {"x": {"type": "number"}}})
    assert "x" in number.validate({"x": "1.0e400"}).errors
    assert number.validate({"x": "2.5"}).value == {"x": 2.5}
    # Only type errors below the top are repaired: a `minimum` is never "fixed".
    limited = SchemaValidator({"$schema": DRAFT4, "properties": {"n": {"minimum": 5}}})
    assert limited.validate({"n": 3}).errors == {
        "n": {"minimum": {"message": "Value must be at least 5", "target": 5, "value": 3}}
    }
    strict = SchemaValidator(
        {"$schema": DRAFT4, "properties": {"n": {"type": "integer"}}}, strict=True
    )
    assert "n" in strict.validate({"n": "4"}).errors
    lenient_by_default = SchemaValidator.from_file(schema_path())
    assert lenient_by_default.validate({"account": {"trunks": "4"}}).value["account"] == {
        "trunks": 4
    }


def test_only_type_errors_are_repaired():
    # A `pattern` whose text happens to name a type is no type error to repair.
    named = SchemaValidator({"$schema": DRAFT4, "properties": {"n": {"pattern": "integer"}}})
    assert named.validate({"n": "5"}).errors == {
        "n": {
            "pattern": {
                "message": "Failed to match pattern 'integer'",
                "target": "integer",
                "value": "5",
            }
        }
    }
