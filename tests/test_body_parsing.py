"""The request body parser: orjson first, the standard library for what orjson refuses
(service/http/body.py). Both must read every body alike: the same value, or the same
KAZOO error (docs/kazoo-compatibility.md §2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.http.body import MAX_DEPTH, parse_json, parse_standard
from service.kazoo.errors import KazooError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def outcome(parse: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "value", parse(raw)
    except KazooError as exc:
        return "error", (exc.status, exc.message, exc.data)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json_reads_the_same_through_both_parsers(value: Any) -> None:
    raw = json.dumps({"data": value}).encode()
    assert outcome(parse_json, raw) == outcome(parse_standard, raw)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
def test_any_bytes_get_the_same_answer_through_both_parsers(raw: bytes) -> None:
    assert outcome(parse_json, raw) == outcome(parse_standard, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":9007199254740991}',
        b'{"a":9007199254740993}',
        b'{"a":-9007199254740993}',
        b'{"a":18446744073709551616}',
        b'{"a":1e400}',
        b'{"a":-1E400}',
        b'{"a":1.5e3}',
        b'{"a":1e5,"b":-2.5E-3,"c":5e-324,"d":1.7976931348623157e308}',
        b'{"id":"612e7696a6cecc1b","e":"9e9"}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":"\\ud800"}',
        b'{"a":"\\ud83d\\ude00"}',
        b'\xef\xbb\xbf{"a":1}',
        b'{"a":"\xff"}',
        b'{"a":1}x',
        b'{"a":1,"a":2}',
        b"",
        b"   ",
        b'{"a":',
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
        b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_edge_cases_read_the_same_through_both_parsers(raw: bytes) -> None:
    assert outcome(parse_json, raw) == outcome(parse_standard, raw)


def test_what_only_the_standard_parser_refuses_is_still_refused() -> None:
    # orjson reads these; the answer must stay KAZOO's 400.
    for raw in (b'{"a":9007199254740993}', b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)):
        kind, _ = outcome(parse_json, raw)
        assert kind == "error"
